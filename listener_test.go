package breaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

func TestMask(t *testing.T) {
	m := breaker.Mask(breaker.EventFailure, breaker.EventStateChange)
	assert.True(t, m.Has(breaker.EventFailure))
	assert.True(t, m.Has(breaker.EventStateChange))
	assert.False(t, m.Has(breaker.EventSuccess))
	assert.False(t, m.Has(breaker.EventKind(200)), "no unknown kind is held")
	assert.Equal(t, breaker.EventMask(0), breaker.Mask(breaker.EventKind(99)))
	for k := breaker.EventSuccess; k <= breaker.EventAttached; k++ {
		assert.True(t, breaker.AllEvents.Has(k), "%v", k)
		assert.NotEqual(t, breaker.CallEvents.Has(k), breaker.StateEvents.Has(k), "%v is in exactly one set", k)
	}
}

func TestMaskedListenerHearsOnlyItsKinds(t *testing.T) {
	all, states, refusals := &recorder{}, &recorder{}, &recorder{}
	h := newHarness(t, breaker.Config{WindowSize: 2, OpenTimeout: time.Second, Listeners: []breaker.Listener{
		breaker.ListenerFor(breaker.StateEvents, states.OnEvent),
		breaker.ListenerFor(breaker.Mask(breaker.EventRejected), refusals.OnEvent),
		all,
	}})
	for _, step := range "SFS+S" {
		h.do(byte(step))
	}
	assert.Equal(t, []string{"success", "failure", "closed->open", "rejected", "open->half-open", "success", "half-open->closed"}, all.log())
	assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->closed"}, states.log())
	assert.Equal(t, []string{"rejected"}, refusals.log())
}

// countingClock counts its readings.
type countingClock struct {
	now   time.Time
	reads atomic.Int64
}

func (c *countingClock) Now() time.Time {
	c.reads.Add(1)
	return c.now
}

// TestStateListenerCostsCallsNothing checks that a listener of state events
// leaves the closed and open paths as they are without one: no clock
// reading on the closed path of a count window, one on the open path, and
// no allocation; while a listener of call events makes calls read the time
// they take.
func TestStateListenerCostsCallsNothing(t *testing.T) {
	quiet := &attacher{}
	cases := []struct {
		name         string
		listeners    []breaker.Listener
		closed, open int64 // clock readings
	}{
		{"no listener", nil, 0, 1},
		{"state listener", []breaker.Listener{breaker.ListenerFor(breaker.StateEvents, func(breaker.Event) {})}, 0, 1},
		{"attacher", []breaker.Listener{quiet}, 0, 1},
		{"call listener", []breaker.Listener{breaker.ListenerFunc(func(breaker.Event) {})}, 2, 1},
	}
	ok := func(context.Context) (int, error) { return 1, nil }
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			clk := &countingClock{now: time.Unix(0, 0)}
			b, err := breaker.New[int]("dep", breaker.Config{WindowSize: 1, MinimumCalls: 1, Clock: clk, Listeners: tt.listeners})
			require.NoError(t, err)
			b.Execute(context.Background(), ok) // the window is full: successes take the lock-free path
			before := clk.reads.Load()
			allocs := testing.AllocsPerRun(100, func() { b.Execute(context.Background(), ok) })
			assert.Equal(t, tt.closed, (clk.reads.Load()-before)/101, "clock readings per closed call")
			assert.Zero(t, allocs, "allocations per closed call")

			b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
			require.Equal(t, breaker.StateOpen, b.State())
			before = clk.reads.Load()
			allocs = testing.AllocsPerRun(100, func() { b.Execute(context.Background(), ok) })
			assert.Equal(t, tt.open, (clk.reads.Load()-before)/101, "clock readings per refusal")
			assert.Zero(t, allocs, "allocations per refusal")
		})
	}
	assert.Zero(t, quiet.heard, "an attacher with an empty mask hears nothing")
}

// attacher is an Attacher that wants no events.
type attacher struct {
	CircuitsSeen []breaker.Circuit
	heard        int
}

func (a *attacher) OnEvent(breaker.Event)        { a.heard++ }
func (a *attacher) EventMask() breaker.EventMask { return 0 }
func (a *attacher) Attach(c breaker.Circuit)     { a.CircuitsSeen = append(a.CircuitsSeen, c) }
func (a *attacher) names() (out []string)        { return namesOf(a.CircuitsSeen) }
func namesOf(cs []breaker.Circuit) (out []string) {
	for _, c := range cs {
		out = append(out, c.Name())
	}
	return out
}

func TestAttacherLearnsItsBreakers(t *testing.T) {
	a := &attacher{}
	b, err := breaker.New[int]("one", breaker.Config{Listeners: []breaker.Listener{a}})
	require.NoError(t, err)
	require.Len(t, a.CircuitsSeen, 1)
	assert.Same(t, b, a.CircuitsSeen[0], "the circuit is the breaker New returns")

	reg, err := breaker.NewRegistry(breaker.Config{Listeners: []breaker.Listener{a}})
	require.NoError(t, err)
	_, err = breaker.Get[int](reg, "two")
	require.NoError(t, err)
	_, err = breaker.Get[string](reg, "three")
	require.NoError(t, err)
	_, err = breaker.Get[int](reg, "two")
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two", "three"}, a.names(), "once per breaker")

	_, err = breaker.New[int]("bad", breaker.Config{WindowSize: -1, Listeners: []breaker.Listener{a}})
	require.Error(t, err)
	assert.Len(t, a.CircuitsSeen, 3, "a breaker New refuses is not attached")
}

type panickyAttacher struct{ attacher }

func (p *panickyAttacher) Attach(breaker.Circuit) { panic("attach bug") }

func TestPanickingAttach(t *testing.T) {
	var logged bytes.Buffer
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	after := &attacher{}
	b, err := breaker.New[int]("dep", breaker.Config{Listeners: []breaker.Listener{&panickyAttacher{}, after}})
	require.NoError(t, err, "New goes on")
	assert.Equal(t, []string{"dep"}, after.names(), "and so do the other listeners")
	assert.Contains(t, logged.String(), `breaker "dep": listener panicked in Attach: attach bug`)
	_, err = b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	assert.NoError(t, err)
}

func TestCircuitSet(t *testing.T) {
	var set breaker.CircuitSet
	assert.Empty(t, set.Circuits(), "the zero value is an empty set")
	a, _ := breaker.New[int]("a", breaker.Config{})
	b, _ := breaker.New[string]("b", breaker.Config{})
	set.Add(a)
	set.Add(b)
	set.Add(a)
	assert.Equal(t, []string{"a", "b"}, namesOf(set.Circuits()), "in the order added, once each")
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}

func TestCircuitSetDoesNotKeepBreakersAlive(t *testing.T) {
	var set breaker.CircuitSet
	keep, _ := breaker.New[int]("keep", breaker.Config{})
	set.Add(keep)
	for i := range 100 {
		b, _ := breaker.New[int](fmt.Sprintf("drop-%d", i), breaker.Config{})
		set.Add(b)
	}
	for i := 0; i < 20 && len(set.Circuits()) > 1; i++ {
		runtime.GC()
	}
	assert.Equal(t, []string{"keep"}, namesOf(set.Circuits()), "dropped breakers leave the set")
	runtime.KeepAlive(keep)
}

// goid returns the calling goroutine's id, as runtime.Stack prints it.
func goid() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := bytes.Fields(buf[:n])
	id, _ := strconv.ParseUint(string(f[1]), 10, 64)
	return id
}

// spin keeps the processor busy for d, as a listener writing a log line
// would.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// workerErr is the error that worker w's calls return; IsFailure takes it
// for a success, so that a success event names the worker whose call it is.
type workerErr int

func (w workerErr) Error() string { return "worker " + strconv.Itoa(int(w)) }

// TestSlowListenerStallsNoCall is the delivery target: 8 goroutines call a
// trivial function through a breaker whose listener spends 20µs on every
// event. Every event must be delivered, each by the call it belongs to on
// that call's goroutine (so no call waits for another's events), and the
// heap must stay flat. The slowest call is logged; BenchmarkSlowListener
// in the bench module reports it.
func TestSlowListenerStallsNoCall(t *testing.T) {
	const workers = 8
	run := 3 * time.Second
	if testing.Short() {
		run = 300 * time.Millisecond
	}
	var gids [workers]atomic.Uint64
	var heard, strays atomic.Int64
	listener := breaker.ListenerFunc(func(e breaker.Event) {
		if w, ok := e.Err.(workerErr); !ok || e.Kind != breaker.EventSuccess || gids[w].Load() != goid() {
			strays.Add(1)
		}
		heard.Add(1)
		spin(20 * time.Microsecond)
	})
	b, err := breaker.New[int]("dep", breaker.Config{
		Window: breaker.TimeWindow, IsFailure: func(error) bool { return false }, Listeners: []breaker.Listener{listener},
	})
	require.NoError(t, err)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() { // samples the heap every 50ms
		defer sampler.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	var calls atomic.Int64
	var slowest [workers]time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(run)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gids[w].Store(goid())
			for time.Now().Before(deadline) {
				start := time.Now()
				b.Execute(context.Background(), func(context.Context) (int, error) { return 0, workerErr(w) })
				slowest[w] = max(slowest[w], time.Since(start))
				calls.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()

	assert.Equal(t, calls.Load(), heard.Load(), "every event is delivered, once")
	assert.Zero(t, strays.Load(), "each event is delivered by its own call")
	growth := int64(peak.Load()) - int64(before.HeapAlloc)
	assert.Less(t, growth, int64(32<<20), "heap growth")
	t.Logf("%d calls in %v, slowest %v, heap growth %d KB", calls.Load(), run, slices.Max(slowest[:]), growth>>10)
}

// TestStateEventsUnderChurn makes 8 goroutines trip and probe a breaker as
// fast as they can, each call causing two state changes, while the state
// listener spends 50µs on each. Every state change must arrive, in order,
// and no call may deliver more than a bounded share of the others'.
func TestStateEventsUnderChurn(t *testing.T) {
	const workers, calls = 8, 150
	var mu sync.Mutex
	perGoroutine := map[uint64]int{}
	cnt := &counter{}
	listener := breaker.ListenerFor(breaker.StateEvents, func(e breaker.Event) {
		cnt.OnEvent(e)
		mu.Lock()
		perGoroutine[goid()]++
		mu.Unlock()
		spin(50 * time.Microsecond)
	})
	b, err := breaker.New[int]("dep", breaker.Config{WindowSize: 1, OpenTimeout: time.Nanosecond, Listeners: []breaker.Listener{listener}})
	require.NoError(t, err)

	var worst atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := goid()
			for range calls {
				mu.Lock()
				before := perGoroutine[me]
				mu.Unlock()
				b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
				mu.Lock()
				n := perGoroutine[me] - before
				mu.Unlock()
				for w := worst.Load(); int64(n) > w && !worst.CompareAndSwap(w, int64(n)); w = worst.Load() {
				}
			}
		}()
	}
	wg.Wait()

	state, m := b.State(), b.Metrics()
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	assert.Empty(t, cnt.broken, "state changes arrive in order")
	assert.Equal(t, state, cnt.state, "the last state change heard is the current state")
	assert.Greater(t, m.Lifetime.Opens, uint64(workers), "the breaker churned")
	total := 0
	for _, n := range perGoroutine {
		total += n
	}
	assert.Equal(t, cnt.kinds[breaker.EventStateChange], total)
	assert.LessOrEqual(t, worst.Load(), int64(200), "events one call delivers")
	t.Logf("%d state changes, at most %d delivered by one call", total, worst.Load())
}

// TestNestedStateChangesPastTheBound has a listener cause hundreds of state
// changes while it is being delivered one: far more than may be pending
// before callers wait. A listener never waits for the deliverer (it may be
// the deliverer), so this returns, and every change arrives in order.
func TestNestedStateChangesPastTheBound(t *testing.T) {
	var b *breaker.Breaker[int]
	cnt := &counter{}
	first := true
	listener := breaker.ListenerFor(breaker.StateEvents, func(e breaker.Event) {
		cnt.OnEvent(e)
		if first {
			first = false
			for range 300 {
				b.ForceOpen()
				b.Reset()
			}
		}
	})
	var err error
	b, err = breaker.New[int]("dep", breaker.Config{Listeners: []breaker.Listener{listener}})
	require.NoError(t, err)
	b.Disable()
	assert.Equal(t, 1+600, cnt.kinds[breaker.EventStateChange])
	assert.Empty(t, cnt.broken)
	assert.Equal(t, breaker.StateClosed, cnt.state)
}

// TestListenersCallingEachOthersBreaker has the state listener of each of
// two churning breakers reset the other: deliverers of both, each inside a
// listener, must not wait for one another.
func TestListenersCallingEachOthersBreaker(t *testing.T) {
	var a, b *breaker.Breaker[int]
	make := func(name string, other **breaker.Breaker[int]) *breaker.Breaker[int] {
		br, err := breaker.New[int](name, breaker.Config{WindowSize: 1, OpenTimeout: time.Nanosecond, Listeners: []breaker.Listener{
			breaker.ListenerFor(breaker.StateEvents, func(e breaker.Event) {
				spin(10 * time.Microsecond)
				if e.To == breaker.StateOpen {
					(*other).ForceOpen()
					(*other).Reset()
				}
			}),
		}})
		require.NoError(t, err)
		return br
	}
	a, b = make("a", &b), make("b", &a)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := []*breaker.Breaker[int]{a, b}[i%2]
			for range 200 {
				br.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
			}
		}()
	}
	wg.Wait() // returns: no deadlock
	for _, br := range []*breaker.Breaker[int]{a, b} {
		l := br.Metrics().Lifetime
		assert.Equal(t, uint64(4*200), l.Failures+l.Refused(), "%s: every call failed or was refused", br.Name())
	}
	assert.Positive(t, a.Metrics().Lifetime.Opens+b.Metrics().Lifetime.Opens, "and the breakers tripped")
}

// TestListenerGoexit checks that a listener ending its goroutine (as
// t.FailNow does) leaves the state events to the next caller.
func TestListenerGoexit(t *testing.T) {
	var heard []string
	listener := breaker.ListenerFor(breaker.StateEvents, func(e breaker.Event) {
		heard = append(heard, e.From.String()+"->"+e.To.String())
		if e.To == breaker.StateForcedOpen {
			runtime.Goexit()
		}
	})
	b, err := breaker.New[int]("dep", breaker.Config{Clock: clock.NewMock(), Listeners: []breaker.Listener{listener}})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.ForceOpen()
	}()
	<-done
	b.Reset()
	b.Disable()
	assert.Equal(t, []string{"closed->forced-open", "forced-open->closed", "closed->disabled"}, heard)
	_, err = b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errors.New("still works") })
	assert.EqualError(t, err, "still works")
}

// TestCallEventComesBeforeTheTripItCaused holds the failure that trips
// the breaker in a listener while another goroutine reads the breaker:
// every listener still hears the failure before the state change.
func TestCallEventComesBeforeTheTripItCaused(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	first := breaker.ListenerFor(breaker.Mask(breaker.EventFailure), func(breaker.Event) {
		once.Do(func() { close(entered); <-release })
	})
	all := &recorder{}
	b, err := breaker.New[int]("dep", breaker.Config{ConsecutiveFailures: 1, Clock: clock.NewMock(), Listeners: []breaker.Listener{first, all}})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
	}()
	<-entered
	b.Metrics() // a holder of the lock while the trip waits behind the failure
	close(release)
	<-done
	assert.Equal(t, []string{"failure", "closed->open"}, all.log())
}

// TestGoexitWhileMovingToHalfOpen ends the goroutine of the call that
// moves the breaker to half-open, in a listener of that change: the trial
// place it took must go back, or the breaker would refuse for ever.
func TestGoexitWhileMovingToHalfOpen(t *testing.T) {
	l := breaker.ListenerFor(breaker.StateEvents, func(e breaker.Event) {
		if e.To == breaker.StateHalfOpen {
			runtime.Goexit()
		}
	})
	h := newHarness(t, breaker.Config{WindowSize: 1, OpenTimeout: time.Second, Listeners: []breaker.Listener{l}})
	h.trip(t)
	h.clk.Add(time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.do('S')
	}()
	<-done
	assert.Zero(t, h.Metrics().HalfOpenCalls, "the place went back")
	assert.NoError(t, h.do('S'))
	assert.Equal(t, breaker.StateClosed, h.State())
}

type panickyMask struct{}

func (panickyMask) OnEvent(breaker.Event)        {}
func (panickyMask) EventMask() breaker.EventMask { panic("mask bug") }

func TestPanickingEventMask(t *testing.T) {
	var b *breaker.Breaker[int]
	var err error
	require.NotPanics(t, func() {
		b, err = breaker.New[int]("dep", breaker.Config{Listeners: []breaker.Listener{breaker.ListenerFunc(func(breaker.Event) {}), panickyMask{}}})
	})
	assert.Nil(t, b)
	assert.ErrorIs(t, err, breaker.ErrInvalidConfig)
	assert.EqualError(t, err, "breaker: Listeners[1]: EventMask panicked: mask bug; want a listener whose EventMask returns")
}

// TestLifetimeNeverGoesDown reads the lifetime counts while calls, trips,
// probes and manual controls race on the system clock: no count, open time
// included, may ever read less than before, and a refused call's RetryAfter
// never exceeds the open timeout.
func TestLifetimeNeverGoesDown(t *testing.T) {
	b, err := breaker.New[int]("dep", breaker.Config{WindowSize: 4, MinimumCalls: 2, OpenTimeout: 50 * time.Microsecond})
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := error(nil)
				if (g+i)%3 == 0 {
					err = errBoom
				}
				b.Execute(context.Background(), func(context.Context) (int, error) { return 0, err })
				if g == 0 && i%50 == 0 {
					b.ForceOpen()
					b.Reset()
				}
			}
		}()
	}
	var last breaker.Lifetime
	for range 20000 {
		m := b.Metrics()
		l := m.Lifetime
		require.LessOrEqual(t, m.RetryAfter, 50*time.Microsecond)
		require.GreaterOrEqual(t, l.Successes, last.Successes)
		require.GreaterOrEqual(t, l.Failures, last.Failures)
		require.GreaterOrEqual(t, l.Refused(), last.Refused())
		require.GreaterOrEqual(t, l.Opens, last.Opens)
		require.GreaterOrEqual(t, l.OpenTime, last.OpenTime)
		last = l
	}
	close(stop)
	wg.Wait()
	assert.Positive(t, last.Opens)
	assert.Positive(t, last.OpenTime)
}
