package breaker

import (
	"context"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
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

// cacheLine is the size, with the adjacent line that x86 prefetches along,
// that keeps fields written by different cores apart.
const cacheLine = 128

// unknownTime stands for a time the caller has not read from the clock.
const unknownTime = time.Duration(math.MinInt64)

// maxDuration is the end of time, as far as a breaker can tell it.
const maxDuration = time.Duration(math.MaxInt64)

// core is the state machine behind a Breaker; it does not depend on T.
//
// Times are durations since base, read from the monotonic clock (or from
// Clock). Calls take mu once at most: closed and disabled admit a call
// without it, open and forced open refuse one without it, and a success that
// can change nothing but the window's counts is counted in a stripe and
// folded into the window by the next holder of mu. So in the common cases a
// call writes no memory shared with the other cores.
type core struct {
	// Read by every call. Set by init, or written under mu when the state
	// or the eligibility of successes for the stripes changes.
	name          string
	cfg           Config
	clock         Clock     // nil: the monotonic clock
	base          time.Time // elapsed() is measured from here
	listeners     []Listener
	slowOn        bool // SlowCallDuration > 0
	timed         bool // the window needs the time of each outcome
	stamp         bool // each call needs its start time: slow tracking or listeners
	quiet         bool // no listeners, so calls need not queue events under mu
	stripes       []stripe
	stripeShift   uint   // 64 - log2(len(stripes))
	stripeSeed    uint64 // mixed into the stripe hash, so breakers differ
	rejectForced  error
	rejectTooMany error
	peer          Peer // Config.Shared's link; nil without one. Set under mu.

	word       atomic.Uint64 // gen<<stateBits | state
	openUntil  atomic.Int64  // while open: when half-open begins
	rejectOpen atomic.Pointer[RejectedError]
	// stripeGen is gen+1 while a success of generation gen that is neither
	// slow nor a failure may go to a stripe instead of the window; 0 when
	// none may. stripeUntil bounds that in time for a time window.
	stripeGen   atomic.Uint64
	stripeUntil atomic.Int64

	_ [cacheLine]byte // keeps the lock, written by every holder, off the lines above

	mu             sync.Mutex
	state          State
	gen            uint64 // changes with every setState
	since          time.Duration
	win            window
	stripeAt       time.Duration // where successes from the stripes go in a time window
	consecutive    int
	reopens        int // reopenings since the circuit last closed
	opens          uint64
	trials         int  // trial calls admitted in this half-open period
	trialSuccesses int  // and those that succeeded
	fleetDenied    bool // the peer refused a trial in this half-open period
	totals         Totals
	history        [historyLen]change // the latest state changes, a ring
	changes        int                // state changes since New
	queue, spare   []Event            // events waiting for delivery; spare is the other buffer
	delivering     bool               // a goroutine is delivering the queue
}

// stripe holds counters that calls update without mu; each call picks one
// by its goroutine's stack, so that cores rarely share one.
type stripe struct {
	// pending is uint32(gen)<<32 | the number of successes of generation
	// gen not yet in the window.
	pending  atomic.Uint64
	rejected atomic.Uint64
	_        [64 - 16]byte // one cache line
}

const pendingMask = 1<<32 - 1

// ticket is an admitted call: the generation it was admitted in and, when
// needed, when it started.
type ticket struct {
	gen   uint64
	start time.Duration
}

func (c *core) init(name string, cfg Config) error {
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	c.name, c.cfg, c.clock, c.listeners = name, cfg, cfg.Clock, cfg.Listeners
	c.slowOn = cfg.SlowCallDuration > 0
	c.timed = cfg.Window == TimeWindow
	c.quiet = len(c.listeners) == 0
	c.stamp = c.slowOn || !c.quiet
	if c.clock == nil {
		c.base = time.Now()
	} else {
		c.base = c.clock.Now()
	}
	if c.timed {
		c.win = newTimeWindow(cfg.WindowDuration, cfg.BucketDuration)
	} else {
		c.win = newCountWindow(cfg.WindowSize)
	}
	// Enough stripes that goroutines on different processors seldom share
	// one: eight per processor.
	n := 16
	for n < 8*runtime.GOMAXPROCS(0) && n < 1024 {
		n *= 2
	}
	c.stripes = make([]stripe, n)
	c.stripeShift = uint(64 - bits.Len(uint(n-1)))
	c.stripeSeed = rand.Uint64()
	c.rejectForced = &RejectedError{Breaker: name, State: StateForcedOpen}
	c.rejectTooMany = &RejectedError{Breaker: name, State: StateHalfOpen}
	c.word.Store(uint64(StateClosed))
	if cfg.Shared != nil {
		peer, err := cfg.Shared.Join(name, cfg, &Local{c})
		if err != nil {
			return err
		}
		c.mu.Lock() // the store may already be using the breaker
		c.peer = peer
		c.mu.Unlock()
	}
	return nil
}

// elapsed reads the clock.
func (c *core) elapsed() time.Duration {
	if c.clock == nil {
		return time.Since(c.base) // reads only the monotonic clock: cheaper than time.Now
	}
	return c.clock.Now().Sub(c.base)
}

// at turns an elapsed duration back into a time.
func (c *core) at(d time.Duration) time.Time { return c.base.Add(d) }

// known returns now, reading the clock if now is unknownTime.
func (c *core) known(now time.Duration) time.Duration {
	if now == unknownTime {
		return c.elapsed()
	}
	return now
}

// stripe returns the calling goroutine's stripe, picked by the address of
// a variable on its stack: that stays put while the goroutine runs, and
// goroutines tend to reuse the stacks freed on the same processor. The
// address, mixed with the breaker's seed (so that two goroutines that share
// a stripe of one breaker seldom share one of another), is spread by
// Fibonacci hashing, whose top bits depend on all of it.
func (c *core) stripe() *stripe {
	var anchor byte
	h := (uint64(uintptr(unsafe.Pointer(&anchor))) ^ c.stripeSeed) * 0x9e3779b97f4a7c15
	return &c.stripes[h>>c.stripeShift]
}

// acquire admits a call or returns the error that refuses it.
func (c *core) acquire() (ticket, error) {
	w := c.word.Load()
	switch State(w & (1<<stateBits - 1)) {
	case StateClosed, StateDisabled:
		t := ticket{gen: w >> stateBits}
		if c.stamp {
			t.start = c.elapsed()
		}
		return t, nil
	case StateForcedOpen:
		if c.quiet {
			c.stripe().rejected.Add(1)
			return ticket{}, c.rejectForced
		}
	case StateOpen:
		now := c.elapsed()
		if until := c.openUntil.Load(); c.quiet && int64(now) < until {
			c.stripe().rejected.Add(1)
			return ticket{}, c.openError(until)
		}
		return c.acquireSlow(now)
	}
	return c.acquireSlow(unknownTime)
}

// acquireSlow is acquire under mu, for the cases that need it: a move to
// half-open, trial calls, and refusals that listeners must hear of.
func (c *core) acquireSlow(now time.Duration) (ticket, error) {
	now = c.known(now)
	c.lock()
	c.tick(now)
	var err error
	trial := false
	switch c.state {
	case StateOpen:
		err = c.openError(c.openUntil.Load())
	case StateForcedOpen:
		err = c.rejectForced
	case StateHalfOpen:
		if c.trials < c.cfg.HalfOpenMaxCalls && !c.fleetDenied {
			c.trials++
			trial = true
		} else {
			err = c.rejectTooMany
		}
	}
	if err != nil {
		c.refuse(err, now)
	}
	t := ticket{gen: c.gen, start: now}
	peer := c.peer
	c.unlock(now)
	if trial && peer != nil && !peer.Permit() {
		return c.denied(t)
	}
	return t, err
}

// refuse counts a refusal and tells the listeners. It requires mu held.
func (c *core) refuse(err error, now time.Duration) {
	c.stripe().rejected.Add(1)
	c.emit(Event{Kind: EventRejected, Err: err}, now)
}

// denied gives back the half-open place that t took, after the peer
// refused it a permit, and refuses the call.
func (c *core) denied(t ticket) (ticket, error) {
	now := c.elapsed()
	c.lock()
	if t.gen == c.gen {
		c.trials--
		c.fleetDenied = true
	}
	c.refuse(c.rejectTooMany, now)
	c.unlock(now)
	return ticket{}, c.rejectTooMany
}

// openError returns the error refusing calls in the open period that ends
// at until. It is made by the period's first refusal, not by the trip, so
// that trips allocate nothing; calls racing to make it make equal ones.
func (c *core) openError(until int64) error {
	if e := c.rejectOpen.Load(); e != nil && e.until == until {
		return e
	}
	e := &RejectedError{Breaker: c.name, State: StateOpen, RetryAt: c.at(time.Duration(until)), until: until}
	c.rejectOpen.Store(e)
	return e
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
	now := unknownTime
	if c.stamp || c.timed {
		now = c.elapsed()
	}
	var d time.Duration
	if c.stamp {
		d = now - t.start
	}
	isSlow := c.slowOn && d >= c.cfg.SlowCallDuration
	if kind == EventSuccess && !isSlow && c.stripeSuccess(t.gen, now) {
		return
	}
	c.lock()
	c.emit(Event{Kind: kind, Err: err, Duration: d, Slow: isSlow}, now)
	if t.gen == c.gen {
		c.recordResult(kind, isSlow, now)
	}
	c.unlock(now)
}

// stripeSuccess counts a success of generation gen, neither slow nor a
// failure, in the caller's stripe, if the last holder of mu said that such
// a success can change nothing but the window's counts. It reports whether
// it did.
func (c *core) stripeSuccess(gen uint64, now time.Duration) bool {
	if c.stripeGen.Load() != gen+1 || c.timed && int64(now) >= c.stripeUntil.Load() {
		return false
	}
	p := &c.stripe().pending
	tag := uint64(uint32(gen)) << 32
	for {
		old := p.Load()
		next := old + 1
		switch {
		case old&pendingMask == 0:
			next = tag | 1
		case old&^pendingMask != tag || old&pendingMask == pendingMask:
			return false // left by another generation, or full: mu's holder empties it
		}
		if p.CompareAndSwap(old, next) {
			return true
		}
	}
}

// lock takes mu and moves the successes waiting in the stripes into the
// window. Those of an earlier generation are dropped: they finished after
// the state changed.
func (c *core) lock() {
	c.mu.Lock()
	if !c.quiet {
		return
	}
	tag := uint64(uint32(c.gen)) << 32
	n := 0
	for i := range c.stripes {
		p := &c.stripes[i].pending
		if p.Load()&pendingMask == 0 {
			continue
		}
		if v := p.Swap(0); v&^pendingMask == tag {
			n += int(v & pendingMask)
		}
	}
	if n > 0 {
		c.win.addSuccesses(c.stripeAt, n)
		c.totals.Calls += uint64(n)
	}
}

// unlock says whether successes may go to the stripes until the next
// holder of mu, releases mu, and then delivers the queued events, unless
// another goroutine is delivering them already: that one will deliver these
// too. Events so reach the listeners once each, in the order they were
// queued, never while mu is held, and never on a goroutine of the breaker's
// own.
func (c *core) unlock(now time.Duration) {
	if c.quiet {
		c.allowStripes(now)
		c.mu.Unlock()
		return
	}
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

// allowStripes lets successes of the current generation go to the stripes
// while one can change nothing but the window's counts: in closed or
// disabled, with no failure streak to end and, when closed, rates that
// successes can only lower. In a time window that holds until the totals
// would change by themselves. It requires mu held.
func (c *core) allowStripes(now time.Duration) {
	var gen uint64
	until := int64(math.MaxInt64)
	if (c.state == StateClosed || c.state == StateDisabled) && c.consecutive == 0 {
		if c.timed {
			now = c.known(now)
		}
		n := c.win.totals(now)
		if c.state == StateDisabled || n.calls >= c.cfg.MinimumCalls && !c.ratesTrip(n) {
			gen = c.gen + 1
			if c.timed {
				c.stripeAt = now
				until = int64(c.win.(*timeWindow).steadyUntil(now))
			}
		}
	}
	if gen == 0 {
		if c.stripeGen.Load() != 0 {
			c.stripeGen.Store(0)
		}
		return
	}
	if c.stripeUntil.Load() != until {
		c.stripeUntil.Store(until)
	}
	if c.stripeGen.Load() != gen {
		c.stripeGen.Store(gen)
	}
}

func (c *core) currentState() State {
	s := State(c.word.Load() & (1<<stateBits - 1))
	if s != StateOpen {
		return s
	}
	now := c.elapsed()
	if int64(now) < c.openUntil.Load() {
		return s
	}
	c.lock()
	c.tick(now)
	s = c.state
	c.unlock(now)
	return s
}

func (c *core) metrics() Metrics {
	now := c.elapsed()
	c.lock()
	c.tick(now)
	m := c.snapshot(now)
	c.unlock(now)
	return m
}

// snapshot returns the Metrics at now. It requires mu held.
func (c *core) snapshot(now time.Duration) Metrics {
	n := c.win.totals(now)
	m := Metrics{
		State:               c.state,
		Since:               c.at(c.since),
		Calls:               n.calls,
		Failures:            n.failures,
		SlowCalls:           n.slow,
		FailureRate:         rate(n.failures, n.calls),
		SlowCallRate:        rate(n.slow, n.calls),
		ConsecutiveFailures: c.consecutive,
		Opens:               c.opens,
	}
	for i := range c.stripes {
		m.Rejected += c.stripes[i].rejected.Load()
	}
	switch c.state {
	case StateHalfOpen:
		m.HalfOpenCalls, m.HalfOpenSuccesses = c.trials, c.trialSuccesses
	case StateOpen:
		m.RetryAfter = time.Duration(c.openUntil.Load()) - now
	}
	return m
}

func (c *core) force(s State) {
	c.lock()
	from := c.state
	if from != s {
		c.setState(s, unknownTime)
	}
	if c.peer != nil {
		c.peer.Changed(Change{From: from, To: s, Manual: true, Totals: c.totals})
	}
	c.unlock(unknownTime)
}

func (c *core) reset() {
	c.lock()
	from := c.state
	c.close(unknownTime)
	if c.peer != nil {
		c.peer.Changed(Change{From: from, To: StateClosed, Manual: true, Totals: c.totals})
	}
	c.unlock(unknownTime)
}

// emit queues e, which happened at now, for the listeners. It requires mu
// held.
func (c *core) emit(e Event, now time.Duration) {
	if c.quiet {
		return
	}
	e.Breaker, e.Time = c.name, c.at(now)
	c.queue = append(c.queue, e)
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
