package breaker

import "time"

// SharedState makes the breakers of one name, in any number of processes,
// act as one: a store (such as the redisstate module) keeps the fleet's
// window and state, and every breaker follows it. Set it in Config.Shared.
//
// A breaker never waits for its store on the closed and open paths: it
// counts outcomes locally, and the store reads the counts (Local.Counts)
// and pushes the fleet's decisions (Local.Apply) from goroutines of its own.
// Only a half-open trial call asks the store first (Peer.Permit), so that
// the fleet as a whole admits at most HalfOpenMaxCalls trials. When the
// store cannot be reached, every breaker goes on alone with its own window.
type SharedState interface {
	// Join links a breaker that New has just made to the others of its
	// name. The store drives the breaker through local and hears from it
	// through the returned Peer. An error makes New fail.
	Join(name string, cfg Config, local *Local) (Peer, error)
}

// Peer is a store's side of one breaker's link. The breaker calls Changed
// and TrialDone with its lock held, in the order things happened, so they
// must not block (queue the work); it calls Permit without its lock.
type Peer interface {
	// Changed tells of a state change the breaker made itself: a trip
	// from closed, or ForceOpen, Disable or Reset (Manual). Changes made
	// by Local.Apply, and those that follow from trial calls (see
	// TrialDone), are not told.
	Changed(Change)

	// Permit asks whether a call that the breaker would admit as a
	// half-open trial may go ahead, fleet-wide. It must return within a
	// bounded time, and true when the store cannot tell: the breaker then
	// acts alone. On false the call is refused with ErrTooManyCalls, and
	// so are the breaker's further trials until its state changes.
	Permit() bool

	// TrialDone tells how a trial call that Permit let through ended:
	// EventSuccess, EventFailure or EventIgnored (which gives the permit
	// back), and whether it was slow (with slow tracking on).
	TrialDone(kind EventKind, slow bool)

	// Leave takes the breaker out of the fleet, when a Registry removes
	// or evicts it: the store stops syncing it, and the breaker acts alone
	// from then on. It is called without the breaker's lock, at most once.
	Leave()
}

// Change is a state change that a breaker made itself.
type Change struct {
	From, To State
	Manual   bool          // ForceOpen, Disable or Reset
	Wait     time.Duration // To == StateOpen: the breaker's own open wait
	Totals   Totals        // the breaker's Totals when it changed
}

// Totals are the outcomes a breaker has recorded since New.
type Totals struct {
	Calls, Failures, SlowCalls uint64
}

func (t *Totals) add(o outcome) {
	t.Calls++
	t.Failures += uint64(o & failed)
	t.SlowCalls += uint64(o & slow >> 1)
}

// Local is a breaker as its SharedState sees it. Its methods are safe for
// concurrent use; the store must not call them from within Peer methods.
type Local struct {
	c *core
}

// Name returns the breaker's name.
func (l *Local) Name() string { return l.c.name }

// State returns the breaker's state (see Breaker.State).
func (l *Local) State() State { return l.c.currentState() }

// Counts returns the outcomes the breaker has recorded since New; a store
// pushes the difference between two readings to the fleet's window.
func (l *Local) Counts() Totals {
	c := l.c
	c.lock()
	var t Totals
	if c.fleet != nil {
		t = c.fleet.totals
	}
	c.unlock(unknownTime)
	return t
}

// Apply puts the breaker in state s as the fleet decided, without telling
// its Peer: an open circuit admits trials after wait (remaining open time
// by the store's clock); half-open starts a new half-open period, and
// closed a fresh window, even if the breaker was in that state already (a
// new fleet period, a Reset elsewhere). Outcomes of calls admitted before
// do not count, and listeners hear of state changes as usual. A State
// that is none of the five is ignored.
func (l *Local) Apply(s State, wait time.Duration) {
	fleet := Reason{Kind: ReasonFleet}
	if s > StateDisabled {
		return // not a state: a store must not make one up
	}
	c := l.c
	now := c.elapsed()
	c.lock()
	switch s {
	case StateOpen:
		c.openUntil.Store(int64(now + min(max(wait, 0), maxDuration-max(now, 0))))
		if c.state != StateOpen {
			c.life.opens.Add(1)
			c.setState(StateOpen, now, fleet)
		}
	case StateClosed:
		c.close(now, fleet)
	case StateHalfOpen:
		c.setState(StateHalfOpen, now, fleet) // a new period, even if half-open already
	default:
		if c.state != s {
			c.setState(s, now, fleet)
		}
	}
	c.unlock(now)
}

// Notify delivers an event of kind EventDetached (err says why) or
// EventAttached to the breaker's listeners.
func (l *Local) Notify(kind EventKind, err error) {
	c := l.c
	now := c.elapsed()
	c.lock()
	c.emit(Event{Kind: kind, Err: err}, now)
	c.unlock(now)
}
