package redisstate_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

// counter counts the events of one kind that any breaker hears.
type counter struct {
	kind breaker.EventKind
	n    atomic.Int64
}

func (c *counter) OnEvent(e breaker.Event) {
	if e.Kind == c.kind {
		c.n.Add(1)
	}
}

// TestTenThousandNamesStayAttached: one Store, 10,000 breakers, every one
// of them called in every round, synced at the default SyncInterval and
// CommandTimeout: not one is cut off, and every count reaches its fleet.
func TestTenThousandNamesStayAttached(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 10,000 breakers take a few seconds")
	}
	r := startRedis(t)
	c := r.client()
	s := newStore(t, r.addr, redisstate.Options{SyncInterval: redisstate.DefaultSyncInterval})
	detached := &counter{kind: breaker.EventDetached}
	cfg := breaker.Config{Window: breaker.TimeWindow, Shared: s, Listeners: []breaker.Listener{detached}}
	const names = 10_000
	bs := make([]*breaker.Breaker[int], names)
	for i := range bs {
		b, err := breaker.New[int]("host-"+strconv.Itoa(i), cfg)
		require.NoError(t, err)
		bs[i] = b
	}
	require.Equal(t, names, redisstate.Members(s))

	const rounds = 3
	for range rounds {
		for _, b := range bs {
			require.NoError(t, call(b))
		}
	}
	// Every name's 3 calls reach Redis: look at a spread of them.
	for i := 0; i < names; i += names / 50 {
		name := "host-" + strconv.Itoa(i)
		require.Eventually(t, func() bool { return windowCalls(t, c, name) == rounds }, 10*time.Second, 10*time.Millisecond, "%s: %d calls, %d detached", name, windowCalls(t, c, name), detached.n.Load())
	}
	last := "host-" + strconv.Itoa(names-1)
	require.Eventually(t, func() bool { return windowCalls(t, c, last) == rounds }, 10*time.Second, 10*time.Millisecond, last)
	// And the syncs go on, round after round, with no one cut off.
	before := redisstate.Rounds(s)
	require.Eventually(t, func() bool { return redisstate.Rounds(s) >= before+10 }, 30*time.Second, 10*time.Millisecond)
	assert.Zero(t, detached.n.Load(), "no breaker was cut off")
	keys := c.DBSize(bg).Val()
	assert.Equal(t, int64(2*names), keys, "a state and a window for each name")
}
