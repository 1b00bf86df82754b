package breaker

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Breaker is a circuit breaker guarding calls that return a T. Create one
// with New and share it among every caller of the dependency it protects.
type Breaker[T any] struct {
	c      core
	failOn func(T, error) bool // FailOn's classifier; nil without one
}

// Option is an option of New that depends on the result type.
type Option[T any] func(*Breaker[T])

// FailOn makes f decide, from a call's result and error, whether the call
// failed: for example an *http.Response with a 5xx status and a nil error.
// f replaces Config.IsFailure; a non-nil error that Config.IsIgnored
// matches is still ignored first. Execute returns fn's result and error
// untouched whatever f says. A done from Allow has no result: f sees the
// zero T. A panic in f makes the call a failure, and goes on to the caller
// once the call is recorded.
func FailOn[T any](f func(T, error) bool) Option[T] {
	return func(b *Breaker[T]) { b.failOn = f }
}

// New returns a closed breaker named name (the name appears in its errors
// and events). An invalid cfg gets a *ConfigError naming the field, the value
// and the values allowed; New never panics.
func New[T any](name string, cfg Config, opts ...Option[T]) (*Breaker[T], error) {
	b := new(Breaker[T])
	b.c.self = b
	for _, o := range opts {
		if o != nil {
			o(b)
		}
	}
	if f := b.failOn; f != nil {
		var zero T
		b.c.failOnErr = func(err error) bool { return f(zero, err) }
	}
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
	if b.failOn != nil {
		b.c.completeJudged(t, err, func() bool { return b.failOn(v, err) })
	} else {
		b.c.complete(t, err)
	}
	return v, err
}

// Allow is the two-step form of Execute, for code that cannot wrap the call
// in a function (middleware, streams). If the call is admitted, make it and
// pass its error to done exactly once; later calls of done do nothing. If it
// is refused, err is a *RejectedError and done does nothing.
func (b *Breaker[T]) Allow() (done func(err error), err error) {
	t, err := b.c.acquire()
	if err != nil {
		return noop, err
	}
	return b.c.permit(t), nil
}

// Name returns the name given to New.
func (b *Breaker[T]) Name() string { return b.c.name }

// State returns the current state, first making the moves that time
// decides: an open circuit whose wait is over goes half-open, a half-open
// one past HalfOpenMaxWait opens again.
func (b *Breaker[T]) State() State { return b.c.currentState() }

// Metrics returns a snapshot of the breaker's state and counts, first
// making the moves that time decides (see State) and dropping expired
// time-window buckets.
func (b *Breaker[T]) Metrics() Metrics { return b.c.metrics() }

// ForceOpen refuses every call with ErrOpen until Reset; it never times out.
func (b *Breaker[T]) ForceOpen() { b.c.force(StateForcedOpen) }

// Disable admits every call, keeps recording outcomes and never trips,
// until Reset.
func (b *Breaker[T]) Disable() { b.c.force(StateDisabled) }

// Reset closes the circuit with an empty window and forgets the open
// back-off. Outcomes of calls admitted before Reset are not recorded.
func (b *Breaker[T]) Reset() { b.c.reset() }

// OpenFor opens the circuit now for d, for operators and maintenance
// windows: a normal open period (calls refused with ErrOpen, RetryAt
// telling when), then half-open, and closed again once trial calls
// succeed. With a d of 0 or less, the next use finds it half-open.
func (b *Breaker[T]) OpenFor(d time.Duration) { b.c.openFor(d) }

// Reconfigure puts cfg in force, validated as New validates it: on error
// the breaker keeps its config. It is safe while calls are under way: each
// call sees the old config or the new one, whole. The state is kept, and so
// is the window where the new one allows: a count window keeps its newest
// outcomes, as many as the new size holds; a time window keeps its counts,
// re-bucketed by the start of each old bucket, when its width or span
// changes; a change between a count and a time window starts an empty
// one. Clock and Shared stay those New was given. Attachers among the new
// Listeners are attached; listeners no longer listed are not told. A
// breaker with a SharedState changes alone: its store keeps judging the
// fleet by the Config the breaker joined with.
func (b *Breaker[T]) Reconfigure(cfg Config) error { return b.c.reconfigure(cfg) }

// Config returns the Config in force as New or Reconfigure was given it:
// a zero field means its default, so that a copy changed in one field and
// passed to Reconfigure keeps the other defaults as they are. Clock and
// Shared are those New was given.
func (b *Breaker[T]) Config() Config { return b.c.config() }

func (b *Breaker[T]) base() *core { return &b.c }

// unknownTime stands for a time the caller has not read from the clock.
const unknownTime = time.Duration(math.MinInt64)

// maxDuration is the end of time, as far as a breaker can tell it.
const maxDuration = time.Duration(math.MaxInt64)

// core is the state machine behind a Breaker; it does not depend on T.
//
// Times are durations since base, read from the monotonic clock (or from
// Clock). Calls take mu once at most: closed and disabled admit a call
// without it; open, forced open and a half-open period whose trials are all
// taken refuse one without it; and a success that can change nothing but
// the window's counts is counted in counts and folded into the window by
// the next holder of mu. So in the common cases a call writes no memory
// shared with the other cores. Listeners do not change that: a call's
// event is delivered by the call, outside the lock.
type core struct {
	// Read by every call. Set by init, or written under mu when the state
	// or the eligibility of successes for the stripes changes.
	name      string
	hot       atomic.Pointer[settings] // what calls read of the config
	clock     Clock                    // nil: the monotonic clock
	base      time.Time                // elapsed() is measured from here
	failOnErr func(error) bool         // FailOn for a done of Allow; nil without FailOn
	self      Circuit                  // the Breaker around this core
	peer      Peer                     // Config.Shared's link; nil without one. Set under mu.

	word          atomic.Uint64 // gen<<stateBits | trialsFull | state
	openUntil     atomic.Int64  // while open: when half-open begins
	halfOpenUntil atomic.Int64  // while half-open: when the period counts as a failed trial
	rejectOpen    atomic.Pointer[RejectedError]
	rejects       atomic.Pointer[rejections] // made by the first refusal forced open or half-open
	// stripeGen is gen+1 while a success of generation gen that is neither
	// slow nor a failure may go to counts instead of the window; 0 when
	// none may. stripeUntil bounds that in time for a time window.
	stripeGen   atomic.Uint64
	stripeUntil atomic.Int64

	// counts holds the successes waiting for the window (tagged with
	// their generation) and the refusals. Its base cell, written by calls
	// only while they do not contend, spans 64 bytes and so keeps mu off
	// the line of the fields above it.
	counts striped

	mu             sync.Mutex
	state          State
	fleetDenied    bool     // the peer refused a trial in this half-open period
	rulePanicked   bool     // the TripRule panicked once, and that was logged
	defaulted      defaults // the fields of cfg that were zero as given
	gen            uint64   // changes with every setState
	cfg            Config   // the config in force, normalized, as hot has it
	since          time.Duration
	win            window
	stripeAt       time.Duration // where successes from the stripes go in a time window
	consecutive    int
	reopens        int           // reopenings since the circuit last closed
	trials         int           // trial calls admitted in this half-open period
	trialSuccesses int           // and those that succeeded
	trialSince     time.Duration // when the period admitted its first trial
	fleet          *fleetLink    // Config.Shared's link; nil for a breaker alone
	life           totals
	history        *[historyLen]change // the latest state changes, a ring; nil before the first
	changes        int                 // state changes since New
	feed           *feed               // state events on their way to listeners; nil before the first
}

// settings is what calls read of the config without the lock. Reconfigure
// replaces it whole, so that a call sees one config or the other.
type settings struct {
	subs      []subscriber
	wants     EventMask // the kinds some listener wants
	timed     bool      // the window needs the time of each outcome
	stamp     bool      // each call needs its start time: slow tracking or call events
	slowCall  time.Duration
	isFailure func(error) bool
	isIgnored func(error) bool
}

func newSettings(cfg Config, subs []subscriber, wants EventMask) *settings {
	return &settings{
		subs:      subs,
		wants:     wants,
		timed:     cfg.Window == TimeWindow,
		stamp:     cfg.SlowCallDuration > 0 || wants&(CallEvents&^Mask(EventRejected)) != 0,
		slowCall:  cfg.SlowCallDuration,
		isFailure: cfg.IsFailure,
		isIgnored: cfg.IsIgnored,
	}
}

// ticket is an admitted call: the generation it was admitted in, the
// settings it was admitted under (so that a Reconfigure under way cannot
// mix two configs in one call) and, when needed, when it started
// (unknownTime when it was not timed).
type ticket struct {
	gen   uint64
	start time.Duration
	s     *settings
}

func (c *core) init(name string, given Config) error {
	cfg, err := given.normalize()
	if err != nil {
		return err
	}
	subs, wants, err := subscribe(cfg.Listeners)
	if err != nil {
		return err
	}
	c.defaulted = defaultedIn(given)
	c.name, c.cfg, c.clock = name, cfg, cfg.Clock
	c.hot.Store(newSettings(cfg, subs, wants))
	if c.clock == nil {
		c.base = time.Now()
	} else {
		c.base = c.clock.Now()
	}
	c.win = newWindow(cfg)
	c.counts.seed.Store(rand.Uint64())
	c.word.Store(uint64(StateClosed))
	if cfg.Shared != nil {
		c.fleet = &fleetLink{}
		peer, err := cfg.Shared.Join(name, cfg, &Local{c})
		if err != nil {
			return err
		}
		c.mu.Lock() // the store may already be using the breaker
		c.fleet.peer = peer
		c.mu.Unlock()
	}
	c.attach(subs)
	return nil
}

// newWindow returns the empty window cfg asks for.
func newWindow(cfg Config) window {
	if cfg.Window == TimeWindow {
		return newTimeWindow(cfg.WindowDuration, cfg.BucketDuration)
	}
	return newCountWindow(cfg.WindowSize)
}

// elapsed reads the clock.
func (c *core) elapsed() time.Duration {
	if c.clock != nil {
		return c.clockElapsed()
	}
	return time.Since(c.base) // reads only the monotonic clock: cheaper than time.Now
}

func (c *core) clockElapsed() time.Duration { return c.clock.Now().Sub(c.base) }

// at turns an elapsed duration back into a time.
func (c *core) at(d time.Duration) time.Time { return c.base.Add(d) }

// known returns now, reading the clock if now is unknownTime.
func (c *core) known(now time.Duration) time.Duration {
	if now == unknownTime {
		return c.elapsed()
	}
	return now
}

// acquire admits a call or returns the error that refuses it.
func (c *core) acquire() (ticket, error) {
	w := c.word.Load()
	switch w & (1<<stateBits - 1) {
	case uint64(StateClosed), uint64(StateDisabled):
		t := ticket{gen: w >> stateBits, start: unknownTime, s: c.hot.Load()}
		if t.s.stamp {
			t.start = c.elapsed()
		}
		return t, nil
	case uint64(StateOpen):
		now := c.elapsed()
		if until := c.openUntil.Load(); int64(now) < until {
			c.counts.add(refusedOpen)
			err := c.openError(until)
			if c.hot.Load().wants.Has(EventRejected) {
				c.tellRefusal(err, now)
			}
			return ticket{}, err
		}
		return c.acquireSlow(now)
	}
	return c.acquireOther(w)
}

// halfOpenCheckEvery is how often a call refused without the lock in a
// half-open period whose trials are taken reads the clock, to end the
// period at HalfOpenMaxWait: every so many refusals of a striped cell.
// Reading it on every refusal would make that path, which refuses calls
// by the million while a trial runs, several times dearer.
const halfOpenCheckEvery = 16

// tellRefusal delivers the event of a call refused with err at now.
func (c *core) tellRefusal(err error, now time.Duration) {
	c.tell(c.hot.Load(), Event{Kind: EventRejected, Err: err, Time: c.at(now)})
}

// acquireOther is acquire in the states other than closed, disabled and
// open.
func (c *core) acquireOther(w uint64) (ticket, error) {
	switch w & (1<<stateBits - 1) {
	case uint64(StateForcedOpen):
		c.counts.add(refusedOpen)
		err := c.rejection(StateForcedOpen)
		if c.hot.Load().wants.Has(EventRejected) {
			c.tellRefusal(err, c.elapsed())
		}
		return ticket{}, err
	case uint64(StateHalfOpen) | trialsFull:
		now := unknownTime
		if c.counts.add(refusedHalfOpen)%halfOpenCheckEvery == 0 {
			if now = c.elapsed(); int64(now) >= c.halfOpenUntil.Load() {
				c.lock() // the period is over: it reopens for the calls to come
				c.tick(now)
				c.unlock(now)
			}
		}
		err := c.rejection(StateHalfOpen)
		if c.hot.Load().wants.Has(EventRejected) {
			c.tellRefusal(err, c.known(now))
		}
		return ticket{}, err
	}
	return c.acquireSlow(unknownTime)
}

// acquireSlow is acquire under mu, for the cases that need it: a move to
// half-open, and trial calls.
func (c *core) acquireSlow(now time.Duration) (ticket, error) {
	now = c.known(now)
	c.lock()
	c.tick(now)
	var err error
	trial := false
	switch c.state {
	case StateOpen:
		c.counts.add(refusedOpen)
		err = c.openError(c.openUntil.Load())
	case StateForcedOpen:
		c.counts.add(refusedOpen)
		err = c.rejection(StateForcedOpen)
	case StateHalfOpen:
		if c.trials < c.cfg.HalfOpenMaxCalls && !c.fleetDenied {
			c.trialTaken(now)
			trial = true
		} else {
			c.counts.add(refusedHalfOpen)
			err = c.rejection(StateHalfOpen)
		}
	}
	t := ticket{gen: c.gen, start: now, s: c.hot.Load()}
	var peer Peer
	if c.fleet != nil {
		peer = c.fleet.peer
	}
	if trial { // until the caller has the ticket, the place is ours to give back
		handed := false
		defer func() {
			if !handed {
				c.giveBack(t)
			}
		}()
		c.unlock(now) // delivers state events: a listener may end the goroutine
		if peer != nil && !peer.Permit() {
			handed = true
			return c.denied(t)
		}
		handed = true
		return t, nil
	}
	c.unlock(now)
	if err != nil && c.hot.Load().wants.Has(EventRejected) {
		c.tellRefusal(err, now)
	}
	return t, err
}

// giveBack returns the half-open place that t took, for a trial that never
// reached its caller (a listener or the peer panicked, or ended the
// goroutine, on the way).
func (c *core) giveBack(t ticket) {
	c.lock()
	if t.gen == c.gen && c.state == StateHalfOpen {
		c.trialGone()
	}
	c.unlock(unknownTime)
}

// trialTaken admits a trial call at now. The first trial of a half-open
// period starts its HalfOpenMaxWait: a period nobody has called in has
// nothing to decide. It requires mu held.
func (c *core) trialTaken(now time.Duration) {
	if c.trials == 0 {
		c.trialSince = now
		c.halfOpenUntil.Store(c.halfOpenDeadline())
	}
	c.trials++
	c.markTrials()
}

// trialGone gives back the place of a trial call that will not decide. It
// requires mu held.
func (c *core) trialGone() {
	if c.trials--; c.trials == 0 {
		c.halfOpenUntil.Store(math.MaxInt64)
	}
	c.markTrials()
}

// halfOpenDeadline is when the half-open period counts as a failed trial,
// if its first trial was admitted at trialSince. It requires mu held.
func (c *core) halfOpenDeadline() int64 {
	w := c.cfg.HalfOpenMaxWait
	if w <= 0 {
		return math.MaxInt64
	}
	return int64(c.trialSince + min(w, maxDuration-max(c.trialSince, 0)))
}

// markTrials flags the state word while the half-open period admits no
// more trials, so that calls refuse without mu. It requires mu held.
func (c *core) markTrials() {
	w := c.gen<<stateBits | uint64(c.state)
	if c.state == StateHalfOpen && (c.trials >= c.cfg.HalfOpenMaxCalls || c.fleetDenied) {
		w |= trialsFull
	}
	c.word.Store(w)
}

// denied gives back the half-open place that t took, after the peer
// refused it a permit, and refuses the call.
func (c *core) denied(t ticket) (ticket, error) {
	now := c.elapsed()
	c.lock()
	if t.gen == c.gen {
		c.fleetDenied = true
		c.trialGone()
	}
	c.counts.add(refusedHalfOpen)
	err := c.rejection(StateHalfOpen)
	c.unlock(now)
	if c.hot.Load().wants.Has(EventRejected) {
		c.tellRefusal(err, now)
	}
	return ticket{}, err
}

// openError returns the error refusing calls in the open period that ends
// at until. It is made by the period's first refusal, not by the trip, so
// that trips allocate nothing; calls racing to make it make equal ones.
func (c *core) openError(until int64) error {
	if e := c.rejectOpen.Load(); e != nil && e.until == until {
		return e
	}
	return c.newOpenError(until)
}

func (c *core) newOpenError(until int64) error {
	e := &RejectedError{Breaker: c.name, State: StateOpen, RetryAt: c.at(time.Duration(until)), until: until, c: c}
	c.rejectOpen.Store(e)
	return e
}

// rejections are the errors refusing calls forced open and half-open:
// they change for no period, so each breaker makes them once.
type rejections struct{ forcedOpen, halfOpen RejectedError }

// rejection returns the error refusing calls in s, StateForcedOpen or
// StateHalfOpen, making the pair on first use.
func (c *core) rejection(s State) error {
	r := c.rejects.Load()
	if r == nil {
		c.rejects.CompareAndSwap(nil, &rejections{
			forcedOpen: RejectedError{Breaker: c.name, State: StateForcedOpen},
			halfOpen:   RejectedError{Breaker: c.name, State: StateHalfOpen},
		})
		r = c.rejects.Load()
	}
	if s == StateForcedOpen {
		return &r.forcedOpen
	}
	return &r.halfOpen
}

// complete records the outcome of an admitted call that returned err,
// judged by the config's IsIgnored and IsFailure (or, from a done of Allow,
// by FailOn). It is small enough to inline, so that a success takes one
// call less.
func (c *core) complete(t ticket, err error) {
	if err == nil && c.failOnErr == nil {
		c.succeed(t)
		return
	}
	c.completeErr(t, err)
}

// completeErr is complete for a non-nil err, or with FailOn.
func (c *core) completeErr(t ticket, err error) {
	var judge func() bool
	if c.failOnErr != nil {
		judge = func() bool { return c.failOnErr(err) }
	}
	c.completeJudged(t, err, judge)
}

// completeJudged records the outcome of an admitted call that returned
// err; judge, if not nil, says whether it failed, in place of IsFailure.
func (c *core) completeJudged(t ticket, err error, judge func() bool) {
	kind, p := classify(t.s, err, judge)
	if kind == EventSuccess && err == nil {
		c.succeed(t)
	} else {
		c.release(t, kind, err)
	}
	if p != nil {
		panic(p) // from a classifier, now that the call is recorded
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

// classify turns a call's error into its outcome: IsIgnored first, then
// judge if not nil, else IsFailure. A panic in one of them makes the call a
// failure; the panic value is returned so that it can be re-raised once
// the call is recorded.
func classify(s *settings, err error, judge func() bool) (kind EventKind, p any) {
	defer func() {
		if r := recover(); r != nil {
			kind, p = EventFailure, r
		}
	}()
	switch {
	case err != nil && s.isIgnored(err):
		return EventIgnored, nil
	case judge != nil:
		if judge() {
			return EventFailure, nil
		}
	case err != nil && s.isFailure(err):
		return EventFailure, nil
	}
	return EventSuccess, nil
}

// succeed is release for a call that succeeded: the common case, kept
// apart so that it stays lean.
func (c *core) succeed(t ticket) {
	s := t.s
	now := unknownTime
	if s.stamp || s.timed {
		now = c.elapsed()
	}
	var d time.Duration
	if t.start != unknownTime && now != unknownTime {
		d = now - t.start
	}
	if (s.slowCall <= 0 || d < s.slowCall) && c.stripeSuccess(t.gen, now, s.timed) {
		if s.wants.Has(EventSuccess) {
			c.tell(s, Event{Kind: EventSuccess, Duration: d, Time: c.at(now)})
		}
		return
	}
	c.release(t, EventSuccess, nil)
}

// release records the end of an admitted call and delivers its event.
func (c *core) release(t ticket, kind EventKind, err error) {
	s := t.s
	now := unknownTime
	if s.stamp || s.timed {
		now = c.elapsed()
	}
	var d time.Duration
	if t.start != unknownTime && now != unknownTime {
		d = now - t.start
	}
	isSlow := s.slowCall > 0 && d >= s.slowCall
	if kind == EventSuccess && !isSlow && c.stripeSuccess(t.gen, now, s.timed) {
		if s.wants.Has(EventSuccess) {
			c.tell(s, Event{Kind: EventSuccess, Err: err, Duration: d, Time: c.at(now)})
		}
		return
	}
	c.lock()
	c.life.count(kind, isSlow)
	before := c.queued()
	if c.state == StateHalfOpen || c.cfg.Window == TimeWindow {
		now = c.known(now) // a config changed under the call may need the time
		c.tick(now)        // a trial past HalfOpenMaxWait is late: the period reopens first
	}
	if t.gen == c.gen {
		c.recordResult(kind, isSlow, now)
	}
	if !s.wants.Has(kind) {
		c.unlock(now)
		return
	}
	now = c.known(now)
	e := Event{Kind: kind, Err: err, Duration: d, Slow: isSlow, Time: c.at(now)}
	if c.queued() > before { // the call caused state events: its own goes first, in the feed
		c.queueBefore(e, before)
		c.unlock(now)
		return
	}
	c.allowStripes(now)
	c.mu.Unlock()
	c.tell(s, e)
}

// stripeSuccess counts a success of generation gen, neither slow nor a
// failure, in counts, if the last holder of mu said that such a success
// can change nothing but the window's counts. It reports whether it did.
func (c *core) stripeSuccess(gen uint64, now time.Duration, timed bool) bool {
	return c.stripeGen.Load() == gen+1 && (!timed || int64(now) < c.stripeUntil.Load()) &&
		c.counts.addTagged(uint32(gen))
}

// lock takes mu and moves the successes waiting in counts into the window.
// Those of an earlier generation are dropped from it: they finished after
// the state changed.
func (c *core) lock() {
	c.mu.Lock()
	if c.counts.undrained() == 0 {
		return
	}
	c.life.seq.Add(1)
	matched, all := c.counts.drain(uint32(c.gen))
	c.life.successes.Add(all)
	c.life.seq.Add(1)
	if matched > 0 {
		c.win.addSuccesses(c.stripeAt, int(matched))
		if c.fleet != nil {
			c.fleet.totals.Calls += matched
		}
	}
}

// unlock says whether successes may go to counts until the next holder of
// mu, releases mu, and sees the state events queued so far delivered.
func (c *core) unlock(now time.Duration) {
	c.allowStripes(now)
	if c.pending() {
		c.deliver()
		return
	}
	c.mu.Unlock()
}

// allowStripes lets successes of the current generation go to counts
// while one can change nothing but the window's counts: in closed or
// disabled, with no failure streak to end and, when closed, rates that
// successes can only lower. In a time window that holds until the totals
// would change by themselves. It requires mu held.
func (c *core) allowStripes(now time.Duration) {
	var gen uint64
	until := int64(math.MaxInt64)
	if (c.state == StateClosed || c.state == StateDisabled) && c.consecutive == 0 {
		timed := c.cfg.Window == TimeWindow
		if timed {
			now = c.known(now)
		}
		n := c.win.totals(now)
		if c.state == StateDisabled || c.cfg.TripRule != nil || n.calls >= c.cfg.MinimumCalls && !c.ratesTrip(n) {
			gen = c.gen + 1
			if timed {
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
	s := State(c.word.Load() & stateMask)
	var until int64
	switch s {
	case StateOpen:
		until = c.openUntil.Load()
	case StateHalfOpen:
		until = c.halfOpenUntil.Load()
	default:
		return s
	}
	now := c.elapsed()
	if int64(now) < until {
		return s
	}
	c.lock()
	c.tick(now)
	s = c.state
	c.unlockRead(now)
	return s
}

func (c *core) metrics() Metrics {
	c.lock()
	now := c.elapsed() // under mu: no state change can be stamped later
	c.tick(now)
	m := c.snapshot(now)
	c.unlockRead(now)
	m.Lifetime = c.lifetime()
	return m
}

// unlockRead is unlock for a goroutine that only reads the breaker: it
// delivers the state events its reading caused (an open circuit found
// half-open) if nobody is delivering, but never waits for the listeners.
func (c *core) unlockRead(now time.Duration) {
	c.allowStripes(now)
	if c.pending() {
		c.takeFresh()
		c.deliverAs(false)
		return
	}
	c.mu.Unlock()
}

// snapshot returns the Metrics at now, Lifetime aside. It requires mu held.
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
	}
	switch c.state {
	case StateHalfOpen:
		m.HalfOpenCalls, m.HalfOpenSuccesses = c.trials, c.trialSuccesses
	case StateOpen:
		m.RetryAfter = time.Duration(c.openUntil.Load()) - now
	}
	return m
}

func (c *core) force(s State) { c.forceFor(s, Reason{Kind: ReasonManual}) }

func (c *core) reset() { c.resetFor(Reason{Kind: ReasonManual}) }

// forceFor puts the circuit in s, forced open or disabled, for reason r.
func (c *core) forceFor(s State, r Reason) {
	c.lock()
	from := c.state
	if from != s {
		c.setState(s, unknownTime, r)
	}
	c.changed(Change{From: from, To: s, Manual: true})
	c.unlock(unknownTime)
}

// resetFor closes the circuit with a fresh window for reason r.
func (c *core) resetFor(r Reason) {
	c.lock()
	from := c.state
	c.close(unknownTime, r)
	c.changed(Change{From: from, To: StateClosed, Manual: true})
	c.unlock(unknownTime)
}

// startIn puts a breaker that no call has seen yet in s, forced open or
// disabled, as if it had been made so: no event, no history. Its fleet, if
// any, hears of it as of a manual change.
func (c *core) startIn(s State) {
	c.mu.Lock()
	c.state = s
	c.gen++
	c.word.Store(c.gen<<stateBits | uint64(s))
	c.moveOpenTime(StateClosed, s, 0)
	c.changed(Change{From: StateClosed, To: s, Manual: true})
	c.mu.Unlock()
}

// leave takes the breaker out of its fleet, if it has one: it acts alone
// from then on.
func (c *core) leave() {
	c.mu.Lock()
	var peer Peer
	if c.fleet != nil {
		peer = c.fleet.peer
	}
	c.fleet = nil
	c.mu.Unlock()
	if peer != nil {
		peer.Leave()
	}
}

// fleetLink is what a breaker with a SharedState keeps of its fleet.
type fleetLink struct {
	peer   Peer   // nil while Join has not returned
	totals Totals // the outcomes recorded since New, for the store
}

// changed tells the peer, if any, of a change the breaker made itself.
// It requires mu held.
func (c *core) changed(ch Change) {
	if f := c.fleet; f != nil && f.peer != nil {
		ch.Totals = f.totals
		f.peer.Changed(ch)
	}
}

// activity returns a count that grows with every call, admitted or
// refused, read without the lock.
func (c *core) activity() uint64 {
	l := c.lifetime()
	return l.Successes + l.Failures + l.Ignored + l.Refused()
}

// noop is the done of a refused Allow. A func literal in a generic method
// would capture the method's dictionary and allocate.
var noop = func(error) {}

// usage is the state of an Allow permit that outlives it: each done
// carries the seq it was made with, and only the first done with that seq
// moves it on. Usages are pooled, so that a permit costs one allocation,
// its done closure; seq only grows, so a late done can never pass for a
// later permit's.
type usage struct{ seq atomic.Uint64 }

var usages = sync.Pool{New: func() any { return new(usage) }}

// permit returns the done of a call admitted by Allow with ticket t.
func (c *core) permit(t ticket) func(error) {
	u := usages.Get().(*usage)
	seq := u.seq.Load()
	return func(err error) {
		if !u.seq.CompareAndSwap(seq, seq+1) {
			return
		}
		usages.Put(u)
		c.complete(t, err)
	}
}
