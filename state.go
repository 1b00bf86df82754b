package breaker

import (
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"time"
)

// State is the state of a circuit.
type State uint8

const (
	// StateClosed admits every call and records its outcome.
	StateClosed State = iota
	// StateOpen refuses every call until the open wait has passed.
	StateOpen
	// StateHalfOpen admits a few trial calls to learn whether the
	// dependency has recovered.
	StateHalfOpen
	// StateForcedOpen refuses every call until Reset (see ForceOpen).
	StateForcedOpen
	// StateDisabled admits and records every call but never trips (see
	// Disable).
	StateDisabled
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	case StateForcedOpen:
		return "forced-open"
	case StateDisabled:
		return "disabled"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText encodes s as its String, so that JSON shows "half-open".
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a state's name, as MarshalText writes it.
func (s *State) UnmarshalText(text []byte) error {
	for st := StateClosed; st <= StateDisabled; st++ {
		if st.String() == string(text) {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("breaker: unknown state %q", text)
}

// The low stateBits bits of core.word hold the state and, in half-open,
// trialsFull while the period admits no more trials; the rest hold the
// generation.
const (
	stateBits  = 8
	trialsFull = 1 << (stateBits - 1)
	stateMask  = trialsFull - 1
)

// The methods below move the state machine. Each requires c.mu held. A now
// of unknownTime means the caller has not read the clock.

// setState enters s at now for reason r and starts a new generation, so
// that outcomes of calls admitted before do not count in s.
func (c *core) setState(s State, now time.Duration, r Reason) {
	now = c.known(now)
	from := c.state
	c.state = s
	c.gen++
	c.trials, c.trialSuccesses, c.fleetDenied = 0, 0, false
	// halfOpenUntil is left as it is: a period's first trial sets it
	// (trialTaken), and until then nothing acts on it (tick asks for a trial).
	c.word.Store(c.gen<<stateBits | uint64(s))
	if from != s {
		c.since = now
		c.moveOpenTime(from, s, now)
		if c.history == nil {
			c.history = new([historyLen]change)
		}
		c.history[c.changes%historyLen] = change{from, s, now, r}
		c.changes++
		if c.hot.Load().wants.Has(EventStateChange) { // the Event is big: make it only if heard
			c.emit(Event{Kind: EventStateChange, From: from, To: s, Reason: r}, now)
		}
	}
}

// historyLen is how many state changes a breaker remembers.
const historyLen = 16

// Transition is a state change.
type Transition struct {
	From, To State
	Time     time.Time
	Reason   Reason
}

// change is a Transition as the breaker keeps it, timed by its own clock.
type change struct {
	from, to State
	at       time.Duration
	reason   Reason
}

// transitions returns the remembered state changes, oldest first. It
// requires c.mu held.
func (c *core) transitions() []Transition {
	n := min(c.changes, historyLen)
	out := make([]Transition, 0, n)
	for i := c.changes - n; i < c.changes; i++ {
		h := c.history[i%historyLen]
		out = append(out, Transition{From: h.from, To: h.to, Time: c.at(h.at), Reason: h.reason})
	}
	return out
}

// tick makes the moves that time alone decides: open to half-open once the
// open wait is over, and half-open back to open, as a failed trial, once
// the period has lasted HalfOpenMaxWait without a decision.
func (c *core) tick(now time.Duration) {
	if c.state == StateOpen && int64(now) >= c.openUntil.Load() {
		c.setState(StateHalfOpen, now, Reason{Kind: ReasonOpenWaitOver})
	}
	if c.state == StateHalfOpen && c.trials > 0 && int64(now) >= c.halfOpenUntil.Load() {
		c.reopens++
		wait := c.trip(now, Reason{Kind: ReasonHalfOpenMaxWait, Wait: c.cfg.HalfOpenMaxWait})
		c.changed(Change{From: StateHalfOpen, To: StateOpen, Wait: wait})
	}
}

// trip opens the circuit for the current open wait, which it returns, for
// reason r. The wait is in place before the state, for calls that read them
// without mu.
func (c *core) trip(now time.Duration, r Reason) time.Duration {
	now = c.known(now)
	wait := min(c.openWait(), maxDuration-max(now, 0))
	c.openUntil.Store(int64(now + wait))
	c.life.opens.Add(1)
	c.setState(StateOpen, now, r)
	return wait
}

// openWait is OpenTimeout doubled for each reopening since the circuit last
// closed, capped at MaxOpenTimeout, then spread by OpenJitter.
func (c *core) openWait() time.Duration {
	wait := c.cfg.OpenTimeout
	if limit := c.cfg.MaxOpenTimeout; limit > 0 {
		for i := 0; i < c.reopens && wait < limit; i++ {
			if wait > limit/2 {
				wait = limit
			} else {
				wait *= 2
			}
		}
	}
	if j := c.cfg.OpenJitter; j > 0 {
		f := float64(wait) * (1 + j*(2*rand.Float64()-1))
		if f >= math.MaxInt64 {
			return math.MaxInt64
		}
		wait = time.Duration(f)
	}
	return wait
}

// close enters closed with a fresh window, forgetting the back-off.
func (c *core) close(now time.Duration, r Reason) {
	c.win.reset()
	c.consecutive = 0
	c.reopens = 0
	c.setState(StateClosed, now, r)
}

// recordResult applies the outcome of a call admitted in the current
// generation.
func (c *core) recordResult(kind EventKind, isSlow bool, now time.Duration) {
	switch c.state {
	case StateClosed, StateDisabled:
		if kind == EventIgnored {
			return
		}
		var o outcome
		if kind == EventFailure {
			o |= failed
			c.consecutive++
		} else {
			c.consecutive = 0
		}
		if isSlow {
			o |= slow
		}
		if c.fleet != nil {
			c.fleet.totals.add(o)
		}
		n := c.win.record(now, o)
		if c.state != StateClosed {
			return
		}
		if trip, r := c.shouldTrip(n, o); trip {
			wait := c.trip(now, r)
			c.changed(Change{From: StateClosed, To: StateOpen, Wait: wait})
		}
	case StateHalfOpen:
		if f := c.fleet; f != nil && f.peer != nil {
			f.peer.TrialDone(kind, isSlow)
		}
		switch {
		case kind == EventIgnored:
			c.trialGone() // the permit goes back
		case kind == EventFailure:
			c.reopens++
			c.trip(now, Reason{Kind: ReasonTrialFailed})
		case isSlow:
			c.reopens++
			c.trip(now, Reason{Kind: ReasonTrialSlow})
		default:
			if c.trialSuccesses++; c.trialSuccesses >= c.cfg.SuccessThreshold {
				c.close(now, Reason{Kind: ReasonTrialsSucceeded, Calls: c.trialSuccesses})
			}
		}
	}
}

// shouldTrip says whether window totals n, just after outcome o, trip the
// circuit, and why. A TripRule is asked after failures and slow calls
// only, as gobreaker asks ReadyToTrip after failures.
func (c *core) shouldTrip(n counts, o outcome) (bool, Reason) {
	if rule := c.cfg.TripRule; rule != nil {
		if o == 0 {
			return false, Reason{}
		}
		in := Counts{Calls: n.calls, Failures: n.failures, SlowCalls: n.slow, ConsecutiveFailures: c.consecutive}
		if c.askRule(rule, in) {
			return true, Reason{Kind: ReasonTripRule, Calls: n.calls, Failures: n.failures, SlowCalls: n.slow, Consecutive: c.consecutive}
		}
		return false, Reason{}
	}
	if k := c.cfg.ConsecutiveFailures; k > 0 && c.consecutive >= k {
		return true, Reason{Kind: ReasonConsecutiveFailures, Consecutive: c.consecutive}
	}
	if n.calls < c.cfg.MinimumCalls {
		return false, Reason{}
	}
	if r := rate(n.failures, n.calls); r >= c.cfg.FailureRateThreshold {
		return true, Reason{Kind: ReasonFailureRate, Rate: r, Threshold: c.cfg.FailureRateThreshold, Calls: n.calls}
	}
	if r := rate(n.slow, n.calls); c.slowOn() && r >= c.cfg.SlowCallRateThreshold {
		return true, Reason{Kind: ReasonSlowCallRate, Rate: r, Threshold: c.cfg.SlowCallRateThreshold, Calls: n.calls}
	}
	return false, Reason{}
}

// slowOn reports whether slow calls are tracked. It requires mu held.
func (c *core) slowOn() bool { return c.cfg.SlowCallDuration > 0 }

// askRule calls the TripRule, recovering a panic in it: a rule that panics
// trips nothing, and the first panic is logged.
func (c *core) askRule(rule func(Counts) bool, in Counts) (trip bool) {
	defer func() {
		if r := recover(); r != nil {
			if !c.rulePanicked { // once: the lock is held, and a broken rule breaks every time
				c.rulePanicked = true
				log.Printf("breaker %q: TripRule panicked (logged once): %v\n%s", c.name, r, debug.Stack())
			}
			trip = false
		}
	}()
	return rule(in)
}

// ratesTrip reports whether the failure or slow-call rate of n is at its
// threshold.
func (c *core) ratesTrip(n counts) bool {
	return rate(n.failures, n.calls) >= c.cfg.FailureRateThreshold ||
		c.slowOn() && rate(n.slow, n.calls) >= c.cfg.SlowCallRateThreshold
}

func rate(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}
