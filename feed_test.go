package breaker

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waiters returns how many goroutines wait for b's state listeners.
func (c *core) waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.feed == nil {
		return 0
	}
	return c.feed.waiters
}

// TestFeedBackPressure blocks a state listener and piles up state changes:
// up to maxPending of them leave their callers free; the next caller waits
// until the listener catches up; a reader of Metrics never waits.
func TestFeedBackPressure(t *testing.T) {
	blocked, release := make(chan struct{}), make(chan struct{})
	var heard atomic.Int64
	listener := ListenerFor(StateEvents, func(e Event) {
		if heard.Add(1) == 1 {
			close(blocked)
			<-release
		}
	})
	b, err := New[int]("dep", Config{Listeners: []Listener{listener}})
	require.NoError(t, err)

	go b.ForceOpen() // delivers, and is held in the listener
	<-blocked
	for i := range maxPending - 1 { // with the one in flight: maxPending pending
		if i%2 == 0 {
			b.Reset()
		} else {
			b.ForceOpen()
		}
	}
	assert.Zero(t, b.c.waiters(), "up to maxPending pending, callers go on")

	waited := make(chan struct{})
	go func() {
		defer close(waited)
		b.Disable() // one too many: waits
	}()
	for b.c.waiters() == 0 {
		runtime.Gosched()
	}
	m := b.Metrics() // over the bound, but a reader queued nothing
	assert.Equal(t, StateDisabled, m.State)
	assert.Equal(t, 1, b.c.waiters())

	close(release)
	<-waited
	assert.Equal(t, int64(maxPending+1), heard.Load(), "every change delivered")
}
