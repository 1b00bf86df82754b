package redisstate_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

var errBoom = errors.New("boom")

// fleetConfig: trips at half of at least 8 calls, opens for 300ms, and
// admits 2 trial calls, which close it.
var fleetConfig = breaker.Config{
	MinimumCalls: 8, OpenTimeout: 300 * time.Millisecond, HalfOpenMaxCalls: 2,
	Window: breaker.TimeWindow, WindowDuration: 10 * time.Second,
}

// fleet makes n breakers named name, spread over stores.
func fleet(t *testing.T, name string, stores []*redisstate.Store, n int) []node {
	t.Helper()
	nodes := make([]node, n)
	for i := range nodes {
		nodes[i] = newNode(t, name, stores[i%len(stores)], fleetConfig)
	}
	return nodes
}

func TestFleetInOneProcess(t *testing.T) {
	r := startRedis(t)
	stores := []*redisstate.Store{newStore(t, r.addr, redisstate.Options{}), newStore(t, r.addr, redisstate.Options{})}
	nodes := fleet(t, "payments", stores, 4)

	// Three failures each: none of the breakers has the 8 calls it needs to
	// trip alone, but the fleet has 12.
	for _, n := range nodes {
		for range 3 {
			require.ErrorIs(t, n.call(errBoom), errBoom)
		}
		assert.Equal(t, breaker.StateClosed, n.State(), "no breaker trips alone")
	}
	for _, n := range nodes {
		n.w.waitState(t, breaker.StateOpen)
	}
	assert.ErrorIs(t, nodes[0].call(nil), breaker.ErrOpen)

	// The fleet half-opens as one and admits 2 trial calls in all.
	for _, n := range nodes {
		n.w.waitState(t, breaker.StateHalfOpen)
	}
	const attempts = 5
	admitted, refused := make(chan struct{}), make(chan error)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range nodes {
		for range attempts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := n.Execute(context.Background(), func(context.Context) (int, error) {
					admitted <- struct{}{}
					<-release
					return 1, nil
				})
				if err != nil {
					refused <- err
				}
			}()
		}
	}
	nAdmitted := 0
	for range len(nodes) * attempts {
		select {
		case <-admitted:
			nAdmitted++
		case err := <-refused:
			assert.ErrorIs(t, err, breaker.ErrTooManyCalls)
		}
	}
	assert.Equal(t, fleetConfig.HalfOpenMaxCalls, nAdmitted, "trial calls admitted across the fleet")

	// Their successes close every breaker.
	close(release)
	wg.Wait()
	for _, n := range nodes {
		n.w.waitState(t, breaker.StateClosed)
	}
	assert.NoError(t, nodes[3].call(nil))
}

func TestManualChangesSpread(t *testing.T) {
	r := startRedis(t)
	a := newNode(t, "search", newStore(t, r.addr, redisstate.Options{}), fleetConfig)
	b := newNode(t, "search", newStore(t, r.addr, redisstate.Options{}), fleetConfig)

	a.ForceOpen()
	b.w.waitState(t, breaker.StateForcedOpen)
	b.Disable()
	a.w.waitState(t, breaker.StateDisabled)
	for range 7 {
		a.call(errBoom) // recorded by a and in the fleet's window
	}
	a.Reset()
	b.w.waitState(t, breaker.StateClosed)
	assert.Zero(t, a.Metrics().Calls, "Reset empties the window")

	// 3 failures in 8 calls do not trip the fleet; with a's 7 failures kept
	// in the fleet's window, 10 in 15 would.
	for i := range 8 {
		if i < 3 {
			b.call(errBoom)
		} else {
			b.call(nil)
		}
	}
	c := r.client()
	require.Eventually(t, func() bool { return windowCalls(t, c, "search") == 8 }, 5*time.Second, testSync)
	assert.Equal(t, "0", c.HGet(context.Background(), redisstate.KeyTag("breaker", "search")+"state", "s").Val(), "the fleet is closed")
	assert.Equal(t, breaker.StateClosed, a.State())
}

// windowCalls sums the calls in the fleet window of name.
func windowCalls(t *testing.T, c *redis.Client, name string) int {
	t.Helper()
	n := 0
	for field, v := range c.HGetAll(context.Background(), redisstate.KeyTag("breaker", name)+"window").Val() {
		if strings.HasSuffix(field, ":c") {
			i, err := strconv.Atoi(v)
			require.NoError(t, err)
			n += i
		}
	}
	return n
}

// TestOneSickInstanceDoesNotOpenTheFleet: every call of one instance
// fails, the fleet's aggregate is healthy. The instance protects itself;
// the fleet, judged over its aggregate, stays closed.
func TestOneSickInstanceDoesNotOpenTheFleet(t *testing.T) {
	r := startRedis(t)
	cfg := fleetConfig
	cfg.OpenTimeout = time.Hour
	sick := newNode(t, "ledger", newStore(t, r.addr, redisstate.Options{}), cfg)
	well := newNode(t, "ledger", newStore(t, r.addr, redisstate.Options{}), cfg)
	c := r.client()
	for range 990 {
		require.NoError(t, well.call(nil))
	}
	require.Eventually(t, func() bool { return windowCalls(t, c, "ledger") == 990 }, 5*time.Second, testSync)
	key := redisstate.KeyTag("breaker", "ledger") + "state"
	epoch := c.HGet(bg, key, "e").Val()

	for range 10 {
		sick.call(errBoom) // 8 failures trip it; the last 2 are refused
	}
	require.Equal(t, breaker.StateOpen, sick.State(), "the sick instance protects itself")
	require.Eventually(t, func() bool { return windowCalls(t, c, "ledger") == 998 }, 5*time.Second, testSync, "its failures reach the fleet's window")
	assert.Equal(t, "0", c.HGet(bg, key, "s").Val(), "8 failures in 998 calls: the fleet stays closed")
	assert.Equal(t, epoch, c.HGet(bg, key, "e").Val(), "and nothing changed it")
	assert.Equal(t, breaker.StateClosed, well.State())
	assert.NoError(t, well.call(nil))
	assert.Equal(t, breaker.StateOpen, sick.State(), "the closed fleet does not close the instance that opened alone")
}

// TestLaterLocalChangeWins trips a breaker and resets it at once, before
// its Store has stored the trip: the fleet's answer to the trip (open) is
// older than the Reset and must not reopen the breaker. Many rounds, so that
// the Reset lands both before and after the trip's round trip to Redis.
func TestLaterLocalChangeWins(t *testing.T) {
	r := startRedis(t)
	cfg := fleetConfig
	cfg.ConsecutiveFailures, cfg.OpenTimeout = 1, time.Hour
	a := newNode(t, "orders", newStore(t, r.addr, redisstate.Options{}), cfg)
	b := newNode(t, "orders", newStore(t, r.addr, redisstate.Options{}), cfg)
	c := r.client()
	fleetState := func() string {
		return c.HGet(context.Background(), redisstate.KeyTag("breaker", "orders")+"state", "s").Val()
	}
	for round := range 30 {
		a.call(errBoom)
		a.Reset()
		require.Eventually(t, func() bool { return fleetState() == strconv.Itoa(int(breaker.StateClosed)) },
			5*time.Second, time.Millisecond, "round %d: the fleet takes the Reset", round)
		b.settle(t, breaker.StateClosed)
		a.settle(t, breaker.StateClosed)
	}
}

// TestRemovedBreakerLeavesTheFleet removes a breaker from its Registry:
// its Store stops syncing it, and it no longer follows the fleet.
func TestRemovedBreakerLeavesTheFleet(t *testing.T) {
	r := startRedis(t)
	sa, sb := newStore(t, r.addr, redisstate.Options{}), newStore(t, r.addr, redisstate.Options{})
	cfg := fleetConfig
	cfg.Shared = sa
	reg, err := breaker.NewRegistry(cfg)
	require.NoError(t, err)
	removed, err := breaker.Get[int](reg, "ledger")
	require.NoError(t, err)
	stays := newNode(t, "ledger", sa, fleetConfig) // same Store, not in the registry
	other := newNode(t, "ledger", sb, fleetConfig)
	require.Equal(t, 2, redisstate.Members(sa))

	require.True(t, reg.Remove("ledger"))
	assert.Equal(t, 1, redisstate.Members(sa), "the Store forgets it")
	other.ForceOpen()
	stays.w.waitState(t, breaker.StateForcedOpen) // the change reached the Store
	assert.Equal(t, breaker.StateClosed, removed.State(), "the removed breaker acts alone")
	_, err = removed.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	assert.NoError(t, err)
}

func TestKeys(t *testing.T) {
	r := startRedis(t)
	s := newStore(t, r.addr, redisstate.Options{Prefix: "shop", KeyTTL: time.Hour})
	n := newNode(t, "cart", s, fleetConfig)
	n.call(errBoom)
	c := r.client()
	ctx := context.Background()
	require.Eventually(t, func() bool { return c.Exists(ctx, redisstate.KeyTag("shop", "cart")+"window").Val() == 1 }, 5*time.Second, testSync)
	for _, key := range []string{redisstate.KeyTag("shop", "cart") + "state", redisstate.KeyTag("shop", "cart") + "window"} {
		ttl := c.PTTL(ctx, key).Val()
		assert.Greater(t, ttl, 59*time.Minute, key)
		assert.LessOrEqual(t, ttl, time.Hour, key)
	}
	keys := c.Keys(ctx, "*").Val()
	assert.ElementsMatch(t, []string{redisstate.KeyTag("shop", "cart") + "state", redisstate.KeyTag("shop", "cart") + "window"}, keys)
}

func TestScriptsReloadAfterFlush(t *testing.T) {
	r := startRedis(t)
	nodes := fleet(t, "quotes", []*redisstate.Store{newStore(t, r.addr, redisstate.Options{}), newStore(t, r.addr, redisstate.Options{})}, 2)
	nodes[0].call(nil)
	require.NoError(t, r.client().ScriptFlush(context.Background()).Err()) // as after a restart
	for _, n := range nodes {
		for range 4 {
			n.call(errBoom)
		}
	}
	for _, n := range nodes {
		n.w.waitState(t, breaker.StateOpen)
	}
	assert.Zero(t, nodes[0].w.countKind(breaker.EventDetached), "NOSCRIPT is not an outage")
}

func TestDetachedFromTheStart(t *testing.T) {
	l, err := (&netListener{}).free()
	require.NoError(t, err)
	s := newStore(t, l, redisstate.Options{})
	n := newNode(t, "lonely", s, breaker.Config{WindowSize: 2, OpenTimeout: time.Hour})
	n.w.waitKind(t, breaker.EventDetached, 0)
	start := time.Now()
	n.call(errBoom)
	n.call(errBoom)
	assert.Equal(t, breaker.StateOpen, n.State(), "a detached breaker acts alone")
	assert.Less(t, time.Since(start), time.Second, "and never waits for Redis")
}

func TestNewRejectsBadOptions(t *testing.T) {
	_, err := redisstate.New(nil, redisstate.Options{})
	assert.Error(t, err)
	_, err = redisstate.New(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}}, redisstate.Options{CommandTimeout: -time.Second})
	assert.EqualError(t, err, "redisstate: CommandTimeout -1s is outside [0, ∞)")
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	r := startRedis(t)
	ignore := goleak.IgnoreCurrent()
	s, err := redisstate.New(&redis.UniversalOptions{Addrs: []string{r.addr}}, redisstate.Options{SyncInterval: testSync})
	require.NoError(t, err)
	n := newNode(t, "short-lived", s, fleetConfig)
	n.call(errBoom)
	c := r.client()
	require.Eventually(t, func() bool { return windowCalls(t, c, "short-lived") == 1 }, 5*time.Second, testSync)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "twice is fine")
	n.w.waitKind(t, breaker.EventDetached, 0)
	assert.NoError(t, n.call(nil), "the breaker goes on alone")
	_, err = s.Join("late", breaker.Config{}, nil)
	assert.ErrorIs(t, err, redisstate.ErrClosed)
	goleak.VerifyNone(t, ignore)
}

// hashTag returns what Redis Cluster hashes of key: between its first "{"
// and the first "}" after it, if that is not empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func TestKeysShareOneHashTagWhateverTheName(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{"", "}x", "{", "{}", "a{b}c", "}{", strings.Repeat("n", 10<<10), "payments"} {
		tag := redisstate.KeyTag("breaker", name)
		state, window := tag+"state", tag+"window"
		assert.Equal(t, hashTag(state), hashTag(window), "name %.20q", name)
		assert.Regexp(t, `^[0-9a-f]{1,16}$`, hashTag(state), "a tag of its own for %.20q", name)
		assert.NotContains(t, seen, hashTag(state), "%.20q and %.20q share a tag", name, seen[hashTag(state)])
		seen[hashTag(state)] = name
	}
	for _, prefix := range []string{"a{b", "x}", "{}"} {
		_, err := redisstate.New(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}}, redisstate.Options{Prefix: prefix})
		assert.ErrorContains(t, err, "brace", "Prefix %q", prefix)
	}
}

// TestCountsFromBeforeAResetStayOut: calls an instance made before a
// Reset elsewhere, while it did not know the fleet had opened, and pushed
// after it, stay out of the window the Reset emptied: one failure after
// the Reset trips the fleet again, as MinimumCalls 1 says.
func TestCountsFromBeforeAResetStayOut(t *testing.T) {
	r := startRedis(t)
	c := r.client()
	cfg := breaker.Config{Window: breaker.TimeWindow, MinimumCalls: 1, OpenTimeout: time.Hour}
	tripper := newNode(t, "reset", newStore(t, r.addr, redisstate.Options{}), cfg)
	late := newStore(t, r.addr, redisstate.Options{SyncInterval: time.Hour}) // synced by hand
	watcher := newNode(t, "reset", late, cfg)
	require.NoError(t, redisstate.Deaf(late)) // and hears nothing
	require.Eventually(t, func() bool { return redisstate.Synced(late) }, 5*time.Second, time.Millisecond, "its first sync is done")
	state := func() string { return c.HGet(bg, redisstate.KeyTag("breaker", "reset")+"state", "s").Val() }

	require.ErrorIs(t, tripper.call(errBoom), errBoom)
	require.Eventually(t, func() bool { return state() == "1" }, 5*time.Second, testSync, "the fleet opens")
	for range 50 {
		require.NoError(t, watcher.call(nil), "the watcher does not know yet: %v", states(watcher.w))
	}
	tripper.Reset()
	require.Eventually(t, func() bool { return state() == "0" }, 5*time.Second, testSync, "the Reset closes the fleet")
	redisstate.SyncNow(late) // pushes the 50 calls made before the Reset
	assert.Zero(t, windowCalls(t, c, "reset"), "counts begun before the Reset stay out")
	assert.Equal(t, breaker.StateClosed, watcher.State())

	require.ErrorIs(t, tripper.call(errBoom), errBoom)
	require.Eventually(t, func() bool { return state() == "1" }, 5*time.Second, testSync, "one failure trips the fleet again")
	redisstate.SyncNow(late)
	assert.Equal(t, breaker.StateOpen, watcher.State())
}
