package redisstate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

// TestResetWhileCutOffDoesNotTripTheFleet: a breaker trips alone and is
// Reset while Redis is down, then makes 5 calls. When Redis is back, the
// failure it Reset must not reach the fleet (it would open it, for
// everyone, before the Reset is proposed and closes it again), and the 5
// calls made after its Reset count, whether a sync kept them meanwhile or
// not.
func TestResetWhileCutOffDoesNotTripTheFleet(t *testing.T) {
	for _, keptWhileDown := range []bool{false, true} {
		t.Run(map[bool]string{false: "untaken", true: "kept"}[keptWhileDown], func(t *testing.T) {
			r := startRedis(t)
			cfg := breaker.Config{Window: breaker.TimeWindow, MinimumCalls: 1, OpenTimeout: time.Hour}
			s := newStore(t, r.addr, redisstate.Options{SyncInterval: time.Hour})
			a := newNode(t, "cutreset", s, cfg)
			require.Eventually(t, func() bool { return redisstate.Synced(s) }, 5*time.Second, time.Millisecond)

			r.kill()
			require.ErrorIs(t, a.call(errBoom), errBoom) // a trips alone; its sync fails
			a.w.waitKind(t, breaker.EventDetached, 0)
			a.Reset()
			for range 5 {
				require.NoError(t, a.call(nil)) // after the Reset: these count
			}
			if keptWhileDown {
				redisstate.SyncNow(s) // Redis is still down: the counts are kept
			}
			r.restart()

			c := r.client()
			sub := c.Subscribe(bg, redisstate.KeyTag("breaker", "cutreset")+"events")
			defer sub.Close()
			_, err := sub.Receive(bg) // the subscription is made
			require.NoError(t, err)

			redisstate.SyncNow(s) // back: pushes, and proposes the Reset
			ctx, cancel := context.WithTimeout(bg, 5*time.Second)
			defer cancel()
			msg, err := sub.ReceiveMessage(ctx)
			require.NoError(t, err)
			f := strings.Fields(msg.Payload)
			require.Len(t, f, 3)
			assert.Equal(t, "0", f[1], "the fleet's first change is the Reset, not a trip on the counts it reset: %q", msg.Payload)
			redisstate.SyncNow(s)
			assert.Equal(t, 5, windowCalls(t, c, "cutreset"), "the calls made after the Reset count")
			assert.Equal(t, breaker.StateClosed, a.State())
		})
	}
}

// TestCountsFromBeforeAResetStayOutAfterTheEpochWentBack: as
// TestCountsFromBeforeAResetStayOut, after the fleet's epoch went back (a
// failover to a replica that lost the last changes, an empty Redis whose
// clock is behind): the watcher follows the earlier epoch, and its counts
// from before the Reset must still stay out.
func TestCountsFromBeforeAResetStayOutAfterTheEpochWentBack(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	key := redisstate.KeyTag("breaker", "goback") + "state"
	cfg := breaker.Config{Window: breaker.TimeWindow, MinimumCalls: 1, OpenTimeout: time.Hour}
	tripper := newNode(t, "goback", newStore(t, r.addr, redisstate.Options{}), cfg)
	late := newStore(t, r.addr, redisstate.Options{SyncInterval: time.Hour})
	watcher := newNode(t, "goback", late, cfg)
	require.NoError(t, redisstate.Deaf(late))
	require.Eventually(t, func() bool { return redisstate.Synced(late) }, 5*time.Second, time.Millisecond)
	state := func() string { return c.HGet(bg, key, "s").Val() }

	e0, err := c.HGet(bg, key, "e").Int64()
	require.NoError(t, err)
	require.NoError(t, c.HSet(bg, key, "e", e0+1000).Err()) // changes a failover loses
	redisstate.SyncNow(late)
	require.NoError(t, c.HSet(bg, key, "e", e0).Err()) // the failover
	redisstate.SyncNow(late)                           // the watcher follows the earlier epoch

	require.ErrorIs(t, tripper.call(errBoom), errBoom)
	require.Eventually(t, func() bool { return state() == "1" }, 5*time.Second, testSync, "the fleet opens")
	for range 50 {
		require.NoError(t, watcher.call(nil))
	}
	tripper.Reset()
	require.Eventually(t, func() bool { return state() == "0" }, 5*time.Second, testSync, "the Reset closes the fleet")
	redisstate.SyncNow(late) // pushes the 50 calls made before the Reset
	assert.Zero(t, windowCalls(t, c, "goback"), "counts begun before the Reset stay out")
}
