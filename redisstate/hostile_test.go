package redisstate_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

// TestOneBadKeyCutsOffOnlyItsName: a value of the wrong type on one name's
// key fails that name's commands; the other breakers of the same Store go
// on with their fleets, and the bad one's listeners hear why.
func TestOneBadKeyCutsOffOnlyItsName(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	require.NoError(t, c.Set(bg, redisstate.KeyTag("breaker", "poisoned")+"window", "not a hash", 0).Err())
	s := newStore(t, r.addr, redisstate.Options{})
	bad := newNode(t, "poisoned", s, fleetConfig)
	good := newNode(t, "healthy", s, fleetConfig)
	other := newNode(t, "healthy", newStore(t, r.addr, redisstate.Options{}), fleetConfig)

	for range 3 {
		bad.call(nil)
		good.call(errBoom)
		other.call(errBoom)
	}
	require.Eventually(t, func() bool { return windowCalls(t, c, "healthy") == 6 }, 5*time.Second, testSync, "good's failures reach its fleet")
	bad.w.waitKind(t, breaker.EventDetached, 0)
	bad.w.mu.Lock()
	var why error
	for _, e := range bad.w.events {
		if e.Kind == breaker.EventDetached {
			why = e.Err
		}
	}
	bad.w.mu.Unlock()
	assert.ErrorContains(t, why, "WRONGTYPE", "its listeners hear why")

	for range 2 {
		good.call(errBoom) // 8 calls in the fleet's window: it trips
	}
	other.w.waitState(t, breaker.StateOpen)
	assert.Zero(t, good.w.countKind(breaker.EventDetached), "the bad key cut off only its own name")
	assert.Zero(t, other.w.countKind(breaker.EventDetached))
	assert.Equal(t, 1, bad.w.countKind(breaker.EventDetached), "told once, not flapping")

	// Fixed, the name rejoins, with the counts it kept.
	require.NoError(t, c.Del(bg, redisstate.KeyTag("breaker", "poisoned")+"window").Err())
	bad.w.waitKind(t, breaker.EventAttached, 0)
	require.Eventually(t, func() bool { return windowCalls(t, c, "poisoned") == 3 }, 5*time.Second, testSync)
}

// TestStateOutOfRangeStartsAgain: a state field of 99 (or any field that
// is not what the scripts write) never reaches a breaker: the fleet's
// state starts again, closed, and trips as it should.
func TestStateOutOfRangeStartsAgain(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	a := newNode(t, "quotes", newStore(t, r.addr, redisstate.Options{}), fleetConfig)
	b := newNode(t, "quotes", newStore(t, r.addr, redisstate.Options{}), fleetConfig)
	a.call(nil)
	key := redisstate.KeyTag("breaker", "quotes") + "state"
	require.Eventually(t, func() bool { return c.Exists(bg, key).Val() == 1 }, 5*time.Second, testSync)

	for _, field := range []struct{ name, value string }{{"s", "99"}, {"s", "-1"}, {"e", "x"}, {"u", "1.5"}, {"p", "-3"}} {
		require.NoError(t, c.HSet(bg, key, field.name, field.value).Err())
		require.Eventually(t, func() bool {
			s := c.HGet(bg, key, "s").Val()
			return s == "0" && c.HGet(bg, key, field.name).Val() != field.value
		}, 5*time.Second, testSync, "%s=%s is put right", field.name, field.value)
	}
	for _, n := range []node{a, b} {
		assert.LessOrEqual(t, n.State(), breaker.StateDisabled, "a breaker is only ever in one of the five states")
		assert.Zero(t, n.w.countKind(breaker.EventDetached))
	}
	for range 8 {
		b.call(errBoom)
	}
	a.w.waitState(t, breaker.StateOpen)
	assert.ErrorIs(t, a.call(nil), breaker.ErrOpen, "the fleet trips as ever")
}

// TestForgedMessageIsOnlyAHint: anything that can publish on a fleet's
// channel can say anything; members read the state instead of believing
// it, and later changes reach them as ever.
func TestForgedMessageIsOnlyAHint(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	a := newNode(t, "search", newStore(t, r.addr, redisstate.Options{}), fleetConfig)
	b := newNode(t, "search", newStore(t, r.addr, redisstate.Options{}), fleetConfig)
	a.call(nil)
	b.call(nil)
	channel := redisstate.KeyTag("breaker", "search") + "events"
	require.Eventually(t, func() bool { return windowCalls(t, c, "search") == 2 }, 5*time.Second, testSync)

	for _, forged := range []string{"999999999999999999 3 0", "1 1 999999999", "x y z", "", "9223372036854775807 2 -5"} {
		require.NoError(t, c.Publish(bg, channel, forged).Err())
	}
	a.settle(t, breaker.StateClosed)
	b.ForceOpen()
	a.w.waitState(t, breaker.StateForcedOpen)
	b.Reset()
	a.w.waitState(t, breaker.StateClosed)
	assert.Equal(t, []breaker.State{breaker.StateForcedOpen, breaker.StateClosed}, states(a.w), "only the real changes")
}

// states returns the states w's breaker went to, in order.
func states(w *watcher) []breaker.State {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []breaker.State
	for _, e := range w.events {
		if e.Kind == breaker.EventStateChange {
			out = append(out, e.To)
		}
	}
	return out
}

// TestWindowGarbageIsDropped: window fields that are not counts are left
// out of the sums and removed.
func TestWindowGarbageIsDropped(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	win := redisstate.KeyTag("breaker", "cart") + "window"
	now := time.Now().UnixMilli() / 1000 // 1 s buckets: fleetConfig's 10 s window
	require.NoError(t, c.HSet(bg, win, "junk", "1", fmtBucket(now, "c"), "lots", fmtBucket(now, "f"), "-7", fmtBucket(now, "x"), "3",
		"m:forged", "nonsense", "m:future", "1:"+strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)).Err())
	n := newNode(t, "cart", newStore(t, r.addr, redisstate.Options{}), fleetConfig)
	for range 8 {
		n.call(nil)
	}
	require.Eventually(t, func() bool {
		fields := c.HKeys(bg, win).Val()
		return len(fields) == 2 && slices.Contains(fields, fmtBucket(now, "c")) && windowCalls(t, c, "cart") == 8
	}, 5*time.Second, testSync, "the garbage is gone: a count of calls and the member's last push are left")
	assert.Zero(t, n.w.countKind(breaker.EventDetached))
	assert.Equal(t, breaker.StateClosed, n.State(), "no made-up failures")
}

func fmtBucket(b int64, kind string) string { return strconv.FormatInt(b, 10) + ":" + kind }

// TestMixedWindowConfigsAreRefused: the breakers of a fleet share one
// window. One that joins with another gets a clear error from New, and
// the fleet's counts are untouched.
func TestMixedWindowConfigsAreRefused(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	a := newNode(t, "orders", newStore(t, r.addr, redisstate.Options{}), fleetConfig) // 10 s in 1 s buckets
	for range 5 {
		a.call(errBoom)
	}
	require.Eventually(t, func() bool { return windowCalls(t, c, "orders") == 5 }, 5*time.Second, testSync)

	other := fleetConfig
	other.BucketDuration = 2 * time.Second
	other.Shared = newStore(t, r.addr, redisstate.Options{})
	_, err := breaker.New[int]("orders", other)
	require.ErrorIs(t, err, redisstate.ErrConfigMismatch)
	var mismatch *redisstate.ConfigMismatchError
	require.ErrorAs(t, err, &mismatch)
	assert.Equal(t, "orders", mismatch.Name)
	assert.Contains(t, err.Error(), "TimeWindow of 10s in 2s buckets")
	assert.Contains(t, err.Error(), "TimeWindow of 10s in 1s buckets")

	counted := breaker.Config{WindowSize: 20, Shared: other.Shared} // a CountWindow
	_, err = breaker.New[int]("orders", counted)
	assert.ErrorIs(t, err, redisstate.ErrConfigMismatch, "another window type")

	for range 3 {
		a.call(errBoom)
	}
	require.Eventually(t, func() bool {
		return c.HGet(bg, redisstate.KeyTag("breaker", "orders")+"state", "s").Val() == "1"
	}, 5*time.Second, testSync, "the fleet trips at its 8th failure")
	assert.Equal(t, 8, windowCalls(t, c, "orders"), "no count lost")
}

// TestMixedWindowFoundLater: a breaker that joined while its fleet's keys
// did not say, and learns of the mismatch at a sync, is cut off with the
// error, acts alone, and keeps its counts out of the fleet's window.
func TestMixedWindowFoundLater(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	other := fleetConfig
	other.WindowDuration, other.BucketDuration = 20*time.Second, 2*time.Second
	lateStore := newStore(t, r.addr, redisstate.Options{SyncInterval: time.Hour}) // synced by hand
	late := newNode(t, "orders", lateStore, other)                                // its keys
	require.Equal(t, int64(1), c.Exists(bg, redisstate.KeyTag("breaker", "orders")+"state").Val())
	// The fleet's keys go, and a breaker of the usual window makes them
	// again: the late one finds at its next sync that they are not its own.
	tag := redisstate.KeyTag("breaker", "orders")
	require.NoError(t, c.Del(bg, tag+"state", tag+"window").Err()) // expired, or lost
	a := newNode(t, "orders", newStore(t, r.addr, redisstate.Options{}), fleetConfig)
	redisstate.SyncNow(lateStore)
	late.w.waitKind(t, breaker.EventDetached, 0)
	var why error
	late.w.mu.Lock()
	for _, e := range late.w.events {
		if e.Kind == breaker.EventDetached {
			why = e.Err
		}
	}
	late.w.mu.Unlock()
	assert.ErrorIs(t, why, redisstate.ErrConfigMismatch)

	for range 4 {
		late.call(errBoom)
		a.call(nil)
	}
	redisstate.SyncNow(lateStore)
	require.Eventually(t, func() bool { return windowCalls(t, c, "orders") == 4 }, 5*time.Second, testSync)
	redisstate.SyncNow(lateStore)
	assert.Equal(t, 4, windowCalls(t, c, "orders"), "the late breaker's failures stay out of a window they do not fit")
	assert.Equal(t, breaker.StateClosed, a.State())
}

func TestForgetStartsTheFleetAgain(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	s := newStore(t, r.addr, redisstate.Options{})
	a := newNode(t, "ledger", s, fleetConfig)
	a.ForceOpen()
	key := redisstate.KeyTag("breaker", "ledger") + "state"
	require.Eventually(t, func() bool { return c.HGet(bg, key, "s").Val() == "3" }, 5*time.Second, testSync)
	ctx, cancel := context.WithTimeout(bg, time.Second)
	defer cancel()
	require.NoError(t, s.Forget(ctx, "ledger"))
	require.Eventually(t, func() bool { return c.HGet(bg, key, "s").Val() == "0" }, 5*time.Second, testSync, "made again at the next sync, closed")
	a.settle(t, breaker.StateClosed)
	_, err := breaker.New[int]("ledger", breaker.Config{WindowSize: 3, Shared: s})
	assert.True(t, errors.Is(err, redisstate.ErrConfigMismatch), "the new keys hold the window of the breaker that made them")
}

// TestThousandsOfGarbageFieldsAreDropped: a window with more fields to drop
// than a Lua unpack takes (some 8000) is cleaned all the same, and its name
// stays attached.
func TestThousandsOfGarbageFieldsAreDropped(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	win := redisstate.KeyTag("breaker", "cart") + "window"
	junk := make([]any, 0, 2*9000)
	for i := range 9000 {
		junk = append(junk, "m:gone"+strconv.Itoa(i), "1:1") // members long gone
	}
	require.NoError(t, c.HSet(bg, win, junk...).Err())
	n := newNode(t, "cart", newStore(t, r.addr, redisstate.Options{}), fleetConfig)
	for range 8 {
		n.call(nil)
	}
	require.Eventually(t, func() bool { return windowCalls(t, c, "cart") == 8 }, 5*time.Second, testSync, "calls reach the window")
	assert.Zero(t, n.w.countKind(breaker.EventDetached))
	assert.Less(t, c.HLen(bg, win).Val(), int64(10), "the garbage is dropped")
}

// TestCountsKeptWhileOneNameIsCutOff: a name cut off by an error of its
// own (a key of the wrong type) keeps the counts of every round it is cut
// off, not only the last few, and they reach the fleet when it is back.
func TestCountsKeptWhileOneNameIsCutOff(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	win := redisstate.KeyTag("breaker", "poisoned") + "window"
	require.NoError(t, c.Set(bg, win, "not a hash", 0).Err())
	s := newStore(t, r.addr, redisstate.Options{})
	bad := newNode(t, "poisoned", s, fleetConfig)
	const calls = 100
	for range calls { // one call per sync round: more rounds than a member keeps pushes
		before := redisstate.Rounds(s)
		require.NoError(t, bad.call(nil))
		require.Eventually(t, func() bool { return redisstate.Rounds(s) > before }, 5*time.Second, time.Millisecond)
	}
	bad.w.waitKind(t, breaker.EventDetached, 0)
	require.NoError(t, c.Del(bg, win).Err())
	bad.w.waitKind(t, breaker.EventAttached, 0)
	require.Eventually(t, func() bool { return windowCalls(t, c, "poisoned") == calls }, 5*time.Second, testSync,
		"window holds %d calls of %d", windowCalls(t, c, "poisoned"), calls)
}
