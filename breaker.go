package breaker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Breaker is a circuit breaker guarding calls that return a T. Create one
// with New and share it among every caller of the dependency it protects.
type Breaker[T any] struct {
	c core
}

// New returns a closed breaker named name (the name appears in its errors
// and events). An invalid cfg gets a *ConfigError naming the field, the value
// and the values allowed; New never panics.
func New[T any](name string, cfg Config) (*Breaker[T], error) {
	b := new(Breaker[T])
	if err := b.c.init(name, cfg); err != nil {
		return nil, err
	}
	return b, nil
}

// Execute calls fn(ctx) if the breaker admits the call, records its outcome
// and returns what fn returned, error untouched. A refused call returns a
// *RejectedError matching ErrOpen or ErrTooManyCalls without calling fn.
//
// A ctx that is already done returns ctx.Err() and records nothing; a nil
// ctx is taken as context.Background(). A nil fn returns ErrNilFunc. If fn
// panics, the call is recorded as a failure and the panic goes on up to the
// caller with its original value.
func (b *Breaker[T]) Execute(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if fn == nil {
		return zero, ErrNilFunc
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	t, err := b.c.acquire()
	if err != nil {
		return zero, err
	}
	returned := false
	defer func() {
		if !returned {
			b.c.abort(t, recover())
		}
	}()
	v, err := fn(ctx)
	returned = true
	b.c.complete(t, err)
	return v, err
}

// Allow is the two-step form of Execute, for code that cannot wrap the call
// in a function (middleware, streams). If the call is admitted, make it and
// pass its error to done exactly once; later calls of done do nothing. If it
// is refused, err is a *RejectedError and done does nothing.
func (b *Breaker[T]) Allow() (done func(err error), err error) {
	t, err := b.c.acquire()
	if err != nil {
		return func(error) {}, err
	}
	p := &permit{c: &b.c, t: t}
	return p.done, nil
}

// Name returns the name given to New.
func (b *Breaker[T]) Name() string { return b.c.name }

// State returns the current state, first moving an open circuit whose wait
// is over to half-open.
func (b *Breaker[T]) State() State { return b.c.currentState() }

// Metrics returns a snapshot of the breaker's state and counts, first
// moving an open circuit whose wait is over to half-open and dropping
// expired time-window buckets.
func (b *Breaker[T]) Metrics() Metrics { return b.c.metrics() }

// ForceOpen refuses every call with ErrOpen until Reset; it never times out.
func (b *Breaker[T]) ForceOpen() { b.c.force(StateForcedOpen) }

// Disable admits every call, keeps recording outcomes and never trips,
// until Reset.
func (b *Breaker[T]) Disable() { b.c.force(StateDisabled) }

// Reset closes the circuit with an empty window and forgets the open
// back-off. Outcomes of calls admitted before Reset are not recorded.
func (b *Breaker[T]) Reset() { b.c.reset() }

// Metrics is a snapshot of a breaker.
type Metrics struct {
	State State
	Since time.Time // when the current state began

	// Calls, Failures and SlowCalls are the recorded calls in the window.
	Calls, Failures, SlowCalls int
	FailureRate, SlowCallRate  float64 // Failures/Calls, SlowCalls/Calls; 0 with no calls
	ConsecutiveFailures        int     // failures in a row, up to now

	// HalfOpenCalls is the number of trial calls admitted in this half-open
	// period, HalfOpenSuccesses the number that succeeded.
	HalfOpenCalls, HalfOpenSuccesses int

	// RetryAfter is, while open, the time left until the next trial call is
	// admitted; 0 otherwise.
	RetryAfter time.Duration

	Rejected uint64 // calls refused since New
	Opens    uint64 // times the circuit opened since New, ForceOpen aside
}

// core is the state machine behind a Breaker; it does not depend on T.
type core struct {
	name      string
	cfg       Config
	clock     Clock // nil: time.Now
	listeners []Listener
	slowOn    bool // SlowCallDuration > 0
	timed     bool // the window needs the time of each outcome
	stamp     bool // each call needs its start time: slow tracking or listeners

	// word holds gen<<stateBits | state. It is written under mu and read
	// without it, so that closed and disabled admit calls lock-free.
	word     atomic.Uint64
	rejected atomic.Uint64

	mu             sync.Mutex
	state          State
	gen            uint64 // changes with every setState
	since          time.Time
	win            window
	consecutive    int
	openUntil      time.Time // while open: when half-open begins
	reopens        int       // reopenings since the circuit last closed
	opens          uint64
	trials         int // trial calls admitted in this half-open period
	trialSuccesses int
	rejectOpen     error // returned while open, carrying RetryAt
	rejectForced   error
	rejectTooMany  error
	queue, spare   []Event // events waiting for delivery; spare is the other buffer
	delivering     bool    // a goroutine is delivering the queue
}

// ticket is an admitted call: the generation it was admitted in and, when
// needed, when it started.
type ticket struct {
	gen   uint64
	start time.Time
}

func (c *core) init(name string, cfg Config) error {
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	c.name, c.cfg, c.clock, c.listeners = name, cfg, cfg.Clock, cfg.Listeners
	c.slowOn = cfg.SlowCallDuration > 0
	c.timed = cfg.Window == TimeWindow
	c.stamp = c.slowOn || len(c.listeners) > 0
	c.since = c.now()
	if c.timed {
		c.win = newTimeWindow(c.since, cfg.WindowDuration, cfg.BucketDuration)
	} else {
		c.win = newCountWindow(cfg.WindowSize)
	}
	c.rejectForced = &RejectedError{Breaker: name, State: StateForcedOpen}
	c.rejectTooMany = &RejectedError{Breaker: name, State: StateHalfOpen}
	c.word.Store(uint64(StateClosed))
	return nil
}

func (c *core) now() time.Time {
	if c.clock == nil {
		return time.Now()
	}
	return c.clock.Now()
}

// acquire admits a call or returns the error that refuses it.
func (c *core) acquire() (ticket, error) {
	w := c.word.Load()
	if s := State(w & (1<<stateBits - 1)); s == StateClosed || s == StateDisabled {
		t := ticket{gen: w >> stateBits}
		if c.stamp {
			t.start = c.now()
		}
		return t, nil
	}
	return c.acquireSlow()
}

func (c *core) acquireSlow() (ticket, error) {
	now := c.now()
	c.mu.Lock()
	c.tick(now)
	var err error
	switch c.state {
	case StateOpen:
		err = c.rejectOpen
	case StateForcedOpen:
		err = c.rejectForced
	case StateHalfOpen:
		if c.trials < c.cfg.HalfOpenMaxCalls {
			c.trials++
		} else {
			err = c.rejectTooMany
		}
	}
	if err != nil {
		c.rejected.Add(1)
		c.emit(Event{Kind: EventRejected, Err: err, Time: now})
	}
	t := ticket{gen: c.gen, start: now}
	c.unlock()
	return t, err
}

// complete records the outcome of an admitted call that returned err.
func (c *core) complete(t ticket, err error) {
	kind, p := c.classify(err)
	c.release(t, kind, err)
	if p != nil {
		panic(p) // from IsIgnored or IsFailure, now that the call is recorded
	}
}

// abort records an admitted call whose function panicked with p, or ended
// its goroutine if p is nil, and re-raises the panic.
func (c *core) abort(t ticket, p any) {
	if p == nil {
		c.release(t, EventFailure, errGoexit)
		return
	}
	c.release(t, EventFailure, &PanicError{Value: p})
	panic(p)
}

// classify turns a call's error into its outcome. A panic in IsIgnored or
// IsFailure makes the call a failure; the panic value is returned so that
// it can be re-raised once the call is recorded.
func (c *core) classify(err error) (kind EventKind, p any) {
	if err == nil {
		return EventSuccess, nil
	}
	defer func() {
		if r := recover(); r != nil {
			kind, p = EventFailure, r
		}
	}()
	switch {
	case c.cfg.IsIgnored(err):
		return EventIgnored, nil
	case c.cfg.IsFailure(err):
		return EventFailure, nil
	}
	return EventSuccess, nil
}

// release records the end of an admitted call.
func (c *core) release(t ticket, kind EventKind, err error) {
	var now time.Time
	var d time.Duration
	if c.stamp || c.timed {
		now = c.now()
	}
	if c.stamp {
		d = now.Sub(t.start)
	}
	isSlow := c.slowOn && d >= c.cfg.SlowCallDuration
	c.mu.Lock()
	c.emit(Event{Kind: kind, Err: err, Duration: d, Slow: isSlow, Time: now})
	if t.gen == c.gen {
		c.recordResult(kind, isSlow, now)
	}
	c.unlock()
}

func (c *core) currentState() State {
	if s := State(c.word.Load() & (1<<stateBits - 1)); s != StateOpen {
		return s
	}
	now := c.now()
	c.mu.Lock()
	c.tick(now)
	s := c.state
	c.unlock()
	return s
}

func (c *core) metrics() Metrics {
	now := c.now()
	c.mu.Lock()
	c.tick(now)
	n := c.win.totals(now)
	m := Metrics{
		State:               c.state,
		Since:               c.since,
		Calls:               n.calls,
		Failures:            n.failures,
		SlowCalls:           n.slow,
		FailureRate:         rate(n.failures, n.calls),
		SlowCallRate:        rate(n.slow, n.calls),
		ConsecutiveFailures: c.consecutive,
		Opens:               c.opens,
		Rejected:            c.rejected.Load(),
	}
	if c.state == StateHalfOpen {
		m.HalfOpenCalls, m.HalfOpenSuccesses = c.trials, c.trialSuccesses
	}
	if c.state == StateOpen {
		m.RetryAfter = c.openUntil.Sub(now)
	}
	c.unlock()
	return m
}

func (c *core) force(s State) {
	c.mu.Lock()
	if c.state != s {
		c.setState(s, time.Time{})
	}
	c.unlock()
}

func (c *core) reset() {
	c.mu.Lock()
	c.close(time.Time{})
	c.unlock()
}

// emit queues e for the listeners. It requires c.mu held.
func (c *core) emit(e Event) {
	if len(c.listeners) == 0 {
		return
	}
	e.Breaker = c.name
	c.queue = append(c.queue, e)
}

// unlock releases c.mu and then delivers the queued events, unless another
// goroutine is delivering them already: that one will deliver these too.
// Events so reach the listeners once each, in the order they were queued,
// never while c.mu is held, and never on a goroutine of the breaker's own.
func (c *core) unlock() {
	if c.delivering || len(c.queue) == 0 {
		c.mu.Unlock()
		return
	}
	c.delivering = true
	for len(c.queue) > 0 {
		batch := c.queue
		c.queue = c.spare[:0]
		c.mu.Unlock()
		for i := range batch {
			for _, l := range c.listeners {
				notify(l, &batch[i])
			}
		}
		clear(batch) // drop the references the events hold
		c.mu.Lock()
		c.spare = batch[:0]
	}
	c.delivering = false
	c.mu.Unlock()
}

// permit is a call admitted by Allow.
type permit struct {
	c    *core
	t    ticket
	used atomic.Bool
}

func (p *permit) done(err error) {
	if p.used.Swap(true) {
		return
	}
	p.c.complete(p.t, err)
}
