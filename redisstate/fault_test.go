package redisstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

// slowest makes n calls through node and returns the slowest one's
// duration, failing the test on any error but want.
func slowest(t *testing.T, nd node, n int, err, want error) time.Duration {
	t.Helper()
	var worst time.Duration
	for range n {
		start := time.Now()
		got := nd.call(err)
		worst = max(worst, time.Since(start))
		if want == nil {
			require.NoError(t, got)
		} else {
			require.ErrorIs(t, got, want)
		}
	}
	return worst
}

func TestRedisKilledAndRestarted(t *testing.T) {
	r := startRedis(t)
	cfg := fleetConfig
	cfg.OpenTimeout, cfg.ConsecutiveFailures = time.Minute, 3
	a := newNode(t, "inventory", newStore(t, r.addr, redisstate.Options{}), cfg)
	b := newNode(t, "inventory", newStore(t, r.addr, redisstate.Options{}), cfg)
	a.call(nil)
	b.call(nil)
	c := r.client()
	require.Eventually(t, func() bool { return windowCalls(t, c, "inventory") == 2 }, 5*time.Second, testSync)

	r.kill()
	a.w.waitKind(t, breaker.EventDetached, 0)
	b.w.waitKind(t, breaker.EventDetached, 0)
	assert.Less(t, slowest(t, a, 500, nil, nil), time.Second, "calls go on, never waiting for Redis")

	for range 3 {
		a.call(errBoom) // a trips alone while Redis is down
	}
	require.Equal(t, breaker.StateOpen, a.State())
	assert.Equal(t, breaker.StateClosed, b.State(), "no news reaches b without Redis")

	r.restart()
	a.w.waitKind(t, breaker.EventAttached, 0)
	b.w.waitKind(t, breaker.EventAttached, 0)
	// What a did while Redis was down reaches the fleet's window (which
	// the restart emptied): its 500 successes and 3 failures, still inside
	// the window. 3 failures in 503 calls do not open the fleet.
	require.Eventually(t, func() bool { return windowCalls(t, c, "inventory") == 503 }, 5*time.Second, testSync)
	assert.Equal(t, "0", c.HGet(context.Background(), redisstate.KeyTag("breaker", "inventory")+"state", "s").Val(), "the fleet stays closed")
	assert.NoError(t, b.call(nil))
	assert.Equal(t, breaker.StateOpen, a.State(), "a, which tripped alone, protects itself until its wait is over")
}

func TestRedisPaused(t *testing.T) {
	r := startRedis(t)
	o := redisstate.Options{CommandTimeout: 50 * time.Millisecond, TrialTimeout: 500 * time.Millisecond}
	a := newNode(t, "pricing", newStore(t, r.addr, o), fleetConfig)
	b := newNode(t, "pricing", newStore(t, r.addr, o), fleetConfig)
	for _, n := range []node{a, b} {
		for range 4 {
			n.call(errBoom)
		}
	}
	for _, n := range []node{a, b} {
		n.w.waitState(t, breaker.StateHalfOpen)
	}

	// Paused, Redis neither answers nor drops the connection. Trial calls
	// ask it for permits: the first waits CommandTimeout, then a acts alone.
	r.pause()
	t.Cleanup(r.resume)
	assert.Less(t, slowest(t, a, 2, nil, nil), time.Second, "a trial call waits a bounded time for its permit")
	a.w.waitKind(t, breaker.EventDetached, 0)
	b.w.waitKind(t, breaker.EventDetached, 0)
	assert.Equal(t, breaker.StateClosed, a.State(), "a's own 2 trials closed it")
	assert.Less(t, slowest(t, a, 500, nil, nil), time.Second, "and its calls go on")

	r.resume()
	a.w.waitKind(t, breaker.EventAttached, 0)
	b.w.waitKind(t, breaker.EventAttached, 0)
	// b is still half-open with the fleet: its trials close the fleet, and a
	// follows. (The permit a asked for while Redis was paused may have been
	// handed out when it resumed; then the fleet's half-open period times out
	// and the next one admits b's trials.)
	closeFleet(t, b)
	c := r.client()
	require.Eventually(t, func() bool {
		return c.HGet(context.Background(), redisstate.KeyTag("breaker", "pricing")+"state", "s").Val() == "0"
	}, 5*time.Second, testSync, "b's trials close the fleet")
	a.settle(t, breaker.StateClosed)
}

// closeFleet makes trial calls through n until the fleet closes.
func closeFleet(t *testing.T, n node) {
	t.Helper()
	for {
		n.w.mu.Lock()
		seen := len(n.w.events)
		n.w.mu.Unlock()
		if n.State() == breaker.StateClosed {
			return
		}
		if err := n.call(nil); err == nil {
			continue
		}
		// Refused: wait for the fleet's next change.
		n.w.waitFor(t, "a change", func(events []breaker.Event) bool {
			for _, e := range events[seen:] {
				if e.Kind == breaker.EventStateChange {
					return true
				}
			}
			return false
		})
	}
}

// TestRedisPausedCountsOnce: commands sent to a paused Redis time out, and
// Redis runs them when it resumes. The counts they carried are pushed
// again, and must count once.
func TestRedisPausedCountsOnce(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	o := redisstate.Options{CommandTimeout: 50 * time.Millisecond}
	s := newStore(t, r.addr, o)
	a := newNode(t, "search", s, fleetConfig)
	require.NoError(t, a.call(nil))
	require.Eventually(t, func() bool { return windowCalls(t, c, "search") == 1 }, 5*time.Second, testSync)

	r.pause()
	t.Cleanup(r.resume)
	for range 10 {
		require.NoError(t, a.call(nil))
	}
	a.w.waitKind(t, breaker.EventDetached, 0) // a sync carrying them timed out
	for range 10 {
		require.NoError(t, a.call(nil))
	}
	r.resume()
	a.w.waitKind(t, breaker.EventAttached, 0)
	require.Eventually(t, func() bool { return windowCalls(t, c, "search") >= 21 }, 5*time.Second, testSync)
	redisstate.SyncNow(s)
	assert.Equal(t, 21, windowCalls(t, c, "search"), "every call counted once")
}

// TestCloseWithASyncInFlight: Close does not wait for a sync chunk blocked
// on a Redis that does not answer, whose deadline is a SyncInterval away.
func TestCloseWithASyncInFlight(t *testing.T) {
	r := startRedis(t)
	s, err := redisstate.New(redisOptions(r.addr), redisstate.Options{SyncInterval: time.Hour}) // rounds by hand
	require.NoError(t, err)
	n := newNode(t, "slow", s, fleetConfig)
	require.NoError(t, n.call(nil))
	r.pause()
	t.Cleanup(r.resume)
	before := redisstate.Chunks(s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		redisstate.SyncNow(s)
	}()
	require.Eventually(t, func() bool { return redisstate.Chunks(s) > before }, 5*time.Second, time.Millisecond)
	start := time.Now()
	require.NoError(t, s.Close())
	assert.Less(t, time.Since(start), time.Second, "Close waits for no chunk in flight")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the round in flight never ended")
	}
}
