package breaker

import (
	"fmt"
	"log"
	"runtime/debug"
	"time"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventSuccess: an admitted call ended without a failure.
	EventSuccess EventKind = iota + 1
	// EventFailure: an admitted call failed (or panicked).
	EventFailure
	// EventIgnored: an admitted call ended with an error that IsIgnored
	// matched; it was not recorded.
	EventIgnored
	// EventRejected: a call was refused without being made.
	EventRejected
	// EventStateChange: the circuit moved From one state To another.
	EventStateChange
	// EventDetached: the breaker's SharedState cannot reach its store
	// (Err says why); the breaker acts alone until EventAttached.
	EventDetached
	// EventAttached: the breaker's SharedState reaches its store again.
	EventAttached
)

func (k EventKind) String() string {
	switch k {
	case EventSuccess:
		return "success"
	case EventFailure:
		return "failure"
	case EventIgnored:
		return "ignored"
	case EventRejected:
		return "rejected"
	case EventStateChange:
		return "state-change"
	case EventDetached:
		return "detached"
	case EventAttached:
		return "attached"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one thing that happened to a breaker: a call's outcome, a
// rejection, or a state change.
type Event struct {
	Breaker  string    // the breaker's name
	Kind     EventKind // what happened
	From, To State     // EventStateChange: the states left and entered
	Err      error     // the call's error, or the rejection error
	Duration time.Duration
	Slow     bool      // the call lasted at least SlowCallDuration (slow tracking on)
	Time     time.Time // when it happened, by the breaker's Clock
}

// Listener receives a breaker's events. OnEvent runs on the goroutine of a
// caller of the breaker, outside its lock, one event at a time and in the
// order the events happened; it may call the breaker's methods. It should be
// quick: callers of the breaker wait for it. A panic in OnEvent is recovered
// and logged, and the call goes on.
type Listener interface {
	OnEvent(Event)
}

// ListenerFunc is shorthand for a Listener made of one function.
type ListenerFunc func(Event)

// OnEvent calls f(e).
func (f ListenerFunc) OnEvent(e Event) { f(e) }

// notify hands e to l, recovering a panic in the listener.
func notify(l Listener, e *Event) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("breaker %q: listener panicked on %s event: %v\n%s", e.Breaker, e.Kind, r, debug.Stack())
		}
	}()
	l.OnEvent(*e)
}
