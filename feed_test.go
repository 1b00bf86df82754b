package breaker

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
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
		toggle(b, i)
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

// feedCounts returns what b's feed has queued and delivered, and how many
// goroutines wait for it.
func feedCounts(b *Breaker[int]) (queued, delivered uint64, waiters int) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	f := b.c.feed
	return f.queued, f.delivered, f.waiters
}

func waitFor(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

// toggle makes a state change.
func toggle(b *Breaker[int], i int) {
	if i%2 == 0 {
		b.Reset()
	} else {
		b.ForceOpen()
	}
}

// TestFeedHandoverLeavesNothingBehind hands the feed from a deliverer to a
// waiter while a second waiter's event is queued: once every caller has
// returned, every event must have been delivered, though refusals while
// forced open take no lock that could deliver them later.
func TestFeedHandoverLeavesNothingBehind(t *testing.T) {
	gate1, gate2, gate3 := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var heard atomic.Int32
	l := ListenerFor(StateEvents, func(e Event) {
		switch heard.Add(1) {
		case 1:
			<-gate1
		case 2:
			<-gate2
		case 10:
			<-gate3
		}
	})
	b, err := New[int]("dep", Config{Clock: clock.NewMock(), Listeners: []Listener{l}})
	require.NoError(t, err)
	go b.ForceOpen() // event 1: its caller delivers and is held at gate1
	waitFor(func() bool { return heard.Load() == 1 })
	for i := 0; ; i++ { // up to maxPending pending: nobody waits
		if q, d, _ := feedCounts(b); q-d >= maxPending {
			break
		}
		toggle(b, i)
	}
	w1 := make(chan struct{})
	go func() { defer close(w1); b.Disable() }() // past the bound: waits
	waitFor(func() bool { _, _, w := feedCounts(b); return w == 1 })
	close(gate1) // the deliverer hands over to the waiter, held at gate2
	waitFor(func() bool { return heard.Load() == 2 })
	w2 := make(chan struct{})
	go func() { defer close(w2); b.ForceOpen() }() // past the bound again: waits
	waitFor(func() bool { _, _, w := feedCounts(b); return w == 1 })
	close(gate2)
	close(gate3)
	<-w1
	<-w2
	for range 100 {
		b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	}
	q, d, w := feedCounts(b)
	assert.Equal(t, q, d, "every event delivered")
	assert.Equal(t, int32(q), heard.Load())
	assert.Zero(t, w)
}

// TestFeedWaitIsBounded has a listener wait for a goroutine that changes
// the breaker's state while the feed is full: that goroutine waits for the
// listener at most maxFeedWait, and then leaves its event to the deliverer.
func TestFeedWaitIsBounded(t *testing.T) {
	gate := make(chan struct{})
	var n atomic.Int32
	var b *Breaker[int]
	helped := make(chan struct{})
	l := ListenerFor(StateEvents, func(e Event) {
		switch n.Add(1) {
		case 1:
			<-gate
		case 2:
			ch := make(chan struct{})
			go func() { defer close(ch); b.ForceOpen(); b.Reset() }()
			<-ch // deadlocks if the helper waits for this listener for ever
			close(helped)
		}
	})
	var err error
	b, err = New[int]("dep", Config{Clock: clock.NewMock(), Listeners: []Listener{l}})
	require.NoError(t, err)
	go b.ForceOpen() // event 1: the deliverer is held at the gate
	waitFor(func() bool { return n.Load() == 1 })
	for i := 0; ; i++ {
		if q, d, _ := feedCounts(b); q-d >= maxPending {
			break
		}
		toggle(b, i)
	}
	done := make(chan struct{})
	go func() { defer close(done); b.Disable() }() // one more: this caller waits
	waitFor(func() bool { _, _, w := feedCounts(b); return w > 0 })
	close(gate)
	<-helped
	<-done
	waitFor(func() bool { q, d, _ := feedCounts(b); return q == d })
	assert.Equal(t, StateClosed, b.State())
}

// TestFeedQueueStaysSmall churns state changes from 4 goroutines past a
// slowish listener: the queue's array stays bounded by what is pending, and
// does not creep along with every event ever queued.
func TestFeedQueueStaysSmall(t *testing.T) {
	l := ListenerFor(StateEvents, func(Event) {
		for range 200 {
			runtime.Gosched()
		}
	})
	b, err := New[int]("dep", Config{Clock: clock.NewMock(), Listeners: []Listener{l}})
	require.NoError(t, err)
	var most atomic.Int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b.c.mu.Lock()
			if f := b.c.feed; f != nil {
				most.Store(max(most.Load(), int64(cap(f.queue))))
			}
			b.c.mu.Unlock()
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3000 {
				b.ForceOpen()
				b.Reset()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	q, d, _ := feedCounts(b)
	assert.Equal(t, q, d)
	assert.Greater(t, q, uint64(20000))
	assert.LessOrEqual(t, most.Load(), int64(4*maxPending), "largest queue array")
}

// TestGoexitInACallListener ends the goroutine of a call that trips the
// breaker, in the listener of its failure: the trip must still be
// delivered, though the open breaker refuses later calls without the lock.
func TestGoexitInACallListener(t *testing.T) {
	var heard atomic.Int32
	l := ListenerFunc(func(e Event) {
		switch e.Kind {
		case EventFailure:
			runtime.Goexit()
		case EventStateChange:
			heard.Add(1)
		}
	})
	b, err := New[int]("dep", Config{ConsecutiveFailures: 1, OpenTimeout: time.Hour, Clock: clock.NewMock(), Listeners: []Listener{l}})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errors.New("down") })
	}()
	<-done
	assert.Equal(t, int32(1), heard.Load(), "closed->open delivered as the goroutine ended")
	q, d, _ := feedCounts(b)
	assert.Equal(t, q, d)
}
