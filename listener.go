package breaker

import (
	"fmt"
	"log"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
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
	Reason   Reason    // EventStateChange: why
	Err      error     // the call's error, or the rejection error
	Duration time.Duration
	Slow     bool      // the call lasted at least SlowCallDuration (slow tracking on)
	Time     time.Time // when it happened, by the breaker's Clock
}

// EventMask is a set of event kinds.
type EventMask uint16

// Sets of event kinds.
const (
	// CallEvents are the kinds that each call causes one of: success,
	// failure, ignored and rejected.
	CallEvents EventMask = 1<<EventSuccess | 1<<EventFailure | 1<<EventIgnored | 1<<EventRejected
	// StateEvents are the kinds that tell of the circuit: state changes,
	// and detached and attached for a breaker with a SharedState.
	StateEvents EventMask = 1<<EventStateChange | 1<<EventDetached | 1<<EventAttached
	// AllEvents is every kind.
	AllEvents = CallEvents | StateEvents
)

// Mask returns the set of the given kinds.
func Mask(kinds ...EventKind) EventMask {
	var m EventMask
	for _, k := range kinds {
		m |= 1 << k
	}
	return m & AllEvents
}

// Has reports whether m holds k.
func (m EventMask) Has(k EventKind) bool { return k < 16 && m&(1<<k) != 0 }

// Listener receives a breaker's events, outside the breaker's lock and on
// the goroutine of a caller of the breaker (or, for EventDetached and
// EventAttached, of the SharedState's store); it may call the breaker's
// methods. A panic in OnEvent is recovered and logged, and the call goes on.
//
// Each call delivers its own event (EventSuccess, EventFailure,
// EventIgnored or EventRejected) before it returns, so a listener of these
// kinds runs on many goroutines at once and must be safe for concurrent
// use; each call pays for its own event and for nobody else's.
//
// State events (EventStateChange, EventDetached, EventAttached) reach each
// listener one at a time and in the order they happened: each state
// change's From is the previous one's To. A call that causes one returns
// once it is delivered, unless another call is delivering at that moment;
// then that call delivers it. When listeners fall far behind, calls that
// cause state events wait for them, so that the events pending stay few
// and no call delivers more than a bounded share of other calls' events.
//
// A Listener hears every kind of event unless it implements MaskedListener.
type Listener interface {
	OnEvent(Event)
}

// MaskedListener is a Listener that hears only the kinds of event in its
// EventMask, read once by New. Events that no listener of a breaker wants
// are never made: a listener of StateEvents only costs calls on the closed
// and open paths nothing at all.
type MaskedListener interface {
	Listener
	EventMask() EventMask
}

// Attacher is a Listener that wants to know the breakers it is attached to,
// for example to read their Metrics when it is scraped rather than hear
// every call. New calls Attach with the breaker it makes, before it
// returns, once for each time the Attacher is among the Listeners, and
// Reconfigure does so for the Attachers among its Listeners; a panic in
// Attach is recovered and logged. CircuitSet keeps such breakers, once
// each, without keeping them alive.
type Attacher interface {
	Listener
	Attach(Circuit)
}

// ListenerFunc is shorthand for a Listener made of one function.
type ListenerFunc func(Event)

// OnEvent calls f(e).
func (f ListenerFunc) OnEvent(e Event) { f(e) }

// ListenerFor returns a Listener that passes f the events of the kinds in
// m, and hears no others.
func ListenerFor(m EventMask, f func(Event)) Listener { return maskedFunc{f, m} }

type maskedFunc struct {
	f func(Event)
	m EventMask
}

func (l maskedFunc) OnEvent(e Event)      { l.f(e) }
func (l maskedFunc) EventMask() EventMask { return l.m }

// subscriber is a listener with the kinds it hears.
type subscriber struct {
	l    Listener
	mask EventMask
}

// subscribe returns the listeners with their masks, and the kinds that any
// of them wants. An EventMask that panics makes a *ConfigError.
func subscribe(ls []Listener) (subs []subscriber, wants EventMask, err error) {
	for i, l := range ls {
		m := AllEvents
		if ml, ok := l.(MaskedListener); ok {
			if m, err = eventMask(ml); err != nil {
				return nil, 0, &ConfigError{Field: fmt.Sprintf("Listeners[%d]", i), Value: err, Allowed: "a listener whose EventMask returns"}
			}
		}
		subs = append(subs, subscriber{l, m})
		wants |= m
	}
	return subs, wants, nil
}

// eventMask returns l's EventMask, or the panic it raised as an error.
func eventMask(l MaskedListener) (m EventMask, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("EventMask panicked: %v", r)
		}
	}()
	return l.EventMask() & AllEvents, nil
}

// attach tells the Attachers among subs that they hear from c. A panic in
// Attach is recovered and logged.
func (c *core) attach(subs []subscriber) {
	for _, s := range subs {
		a, ok := s.l.(Attacher)
		if !ok {
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					log.Printf("breaker %q: listener panicked in Attach: %v\n%s", c.name, r, debug.Stack())
				}
			}()
			a.Attach(c.self)
		}()
	}
}

// tell delivers e, the event of a call, to the listeners of s that want
// it, on the calling goroutine.
func (c *core) tell(s *settings, e Event) {
	e.Breaker = c.name
	for i := range s.subs {
		if s.subs[i].mask.Has(e.Kind) {
			notify(s.subs[i].l, &e)
		}
	}
}

// notify hands e to l, recovering a panic in the listener. inListener looks
// for its frame on the stack, so it must not be inlined.
//
//go:noinline
func notify(l Listener, e *Event) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("breaker %q: listener panicked on %s event: %v\n%s", e.Breaker, e.Kind, r, debug.Stack())
		}
	}()
	l.OnEvent(*e)
}

var notifyEntry = reflect.ValueOf(notify).Pointer()

// inListener reports whether the calling goroutine is running a listener,
// of any breaker: whether notify is on its stack. It walks the whole stack,
// so it is for the rare moments when a call would wait for listeners.
func inListener() bool {
	var pcs [64]uintptr
	for skip := 2; ; skip += len(pcs) {
		n := runtime.Callers(skip, pcs[:])
		frames := runtime.CallersFrames(pcs[:n])
		for {
			f, more := frames.Next()
			if f.Entry == notifyEntry {
				return true
			}
			if !more {
				break
			}
		}
		if n < len(pcs) {
			return false
		}
	}
}

// Limits of the state-event feed.
const (
	// maxPending is how many state events may wait for delivery before
	// the calls that cause more wait too.
	maxPending = 64
	// maxShare is how many events beyond its own a call delivers before it
	// asks the next call that causes one to take over.
	maxShare = 64
	// feedBatch is how many events a deliverer takes at a time.
	feedBatch = 8
	// maxFeedWait bounds a call's wait for the listeners. Past it the call
	// leaves its events to the deliverer and returns, so that a listener
	// that waits for a caller of the breaker cannot deadlock with it.
	maxFeedWait = 100 * time.Millisecond
)

// feed holds a breaker's state events until they are delivered, and says
// who delivers them: at most one goroutine at a time, so that they arrive
// in order. Its fields are guarded by the breaker's mu.
type feed struct {
	queue     []Event // from head on: queued, not yet taken for delivery
	head      int
	queued    uint64 // events ever queued
	delivered uint64 // events ever delivered
	busy      bool   // a goroutine is delivering
	handoff   bool   // the deliverer has done its share: the next caller takes over
	fresh     bool   // events were queued in the current hold of mu
	waiters   int
	wake      chan struct{} // closed to wake the waiters; nil while none wait
}

// emit queues e, a state event that happened at now, for the listeners
// that want it. It requires mu held.
func (c *core) emit(e Event, now time.Duration) {
	if !c.hot.Load().wants.Has(e.Kind) {
		return
	}
	e.Breaker, e.Time = c.name, c.at(now)
	f := c.feed
	if f == nil {
		f = &feed{}
		c.feed = f
	}
	f.queue = append(f.queue, e)
	f.queued++
	f.fresh = true
}

// queued returns how many state events were ever queued. It requires mu
// held.
func (c *core) queued() uint64 {
	if c.feed == nil {
		return 0
	}
	return c.feed.queued
}

// queueBefore queues e, the event of the call holding mu, ahead of the
// state events it caused, those queued since the feed had queued since,
// so that every listener hears the call before what it led to. It requires
// mu held.
func (c *core) queueBefore(e Event, since uint64) {
	f := c.feed
	e.Breaker = c.name
	f.queue = slices.Insert(f.queue, len(f.queue)-int(f.queued-since), e)
	f.queued++
}

// pending reports whether state events wait for delivery. It requires mu
// held.
func (c *core) pending() bool { return c.feed != nil && c.feed.delivered < c.feed.queued }

// deliver sees the state events queued so far delivered: by this goroutine
// if no other is delivering, else by that one. It requires mu held and
// releases it.
//
// A goroutine that queued events, and is not running a listener, waits for
// the deliverer when more than maxPending events are pending, or when the
// deliverer has delivered its share and asks to be relieved; it waits
// until its events are delivered, it finds the feed free (and delivers
// next), or maxFeedWait has passed. A goroutine running a listener never
// waits (it may be the deliverer itself): the deliverer delivers its
// events. Nor does one that queued none, such as a reader of Metrics.
func (c *core) deliver() { c.deliverAs(c.takeFresh()) }

// takeFresh reports whether the current hold of mu queued events, and
// forgets it. It requires mu held.
func (c *core) takeFresh() bool {
	if c.feed == nil {
		return false
	}
	fresh := c.feed.fresh
	c.feed.fresh = false
	return fresh
}

// deliverAs is deliver for a goroutine that queued events, or not.
func (c *core) deliverAs(produced bool) {
	f := c.feed
	mine := f.queued
	checked, nested, waited := false, false, false
	var deadline time.Time
	for f.delivered < f.queued {
		if !f.busy { // free: whoever finds it so with events pending delivers
			f.busy = true
			c.run(mine)
			break
		}
		if f.delivered >= mine {
			break // ours are out
		}
		if !waited {
			if !produced || !f.handoff && f.queued-f.delivered <= maxPending {
				break // the deliverer delivers them
			}
			if !checked {
				c.mu.Unlock()
				nested = inListener()
				c.mu.Lock()
				checked = true
				continue
			}
			if nested {
				break
			}
			deadline = time.Now().Add(maxFeedWait)
		} else if !time.Now().Before(deadline) {
			break // the listeners are stuck: leave ours to the deliverer
		}
		waited = true
		c.waitFeed(deadline)
	}
	c.mu.Unlock()
}

// waitFeed waits until the deliverer wakes the waiters or deadline comes.
// It requires mu held, and releases it while it waits.
func (c *core) waitFeed(deadline time.Time) {
	f := c.feed
	if f.wake == nil {
		f.wake = make(chan struct{})
	}
	wake := f.wake
	f.waiters++
	c.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	select {
	case <-wake:
	case <-t.C:
	}
	t.Stop()
	c.mu.Lock()
	f.waiters--
}

// wakeWaiters wakes the goroutines waiting for the feed. It requires mu
// held.
func (f *feed) wakeWaiters() {
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
}

// take removes up to len(batch) events from the head of the queue into
// batch and returns how many. It requires mu held.
func (f *feed) take(batch []Event) int {
	n := copy(batch, f.queue[f.head:])
	clear(f.queue[f.head : f.head+n]) // drop the references the events hold
	f.head += n
	switch {
	case f.head == len(f.queue) && cap(f.queue) > 4*maxPending:
		f.queue, f.head = nil, 0 // let a burst's memory go
	case f.head == len(f.queue):
		f.queue, f.head = f.queue[:0], 0
	case f.head >= len(f.queue)/2: // keep the queue from creeping along its array
		k := copy(f.queue, f.queue[f.head:])
		clear(f.queue[k:])
		f.queue, f.head = f.queue[:k], 0
	}
	return n
}

// run delivers the feed in order: at least up to mine, then on while no
// goroutine waits to take over, asking for relief after maxShare more. It
// requires mu held and f.busy set by the caller; it returns with mu held
// and f.busy clear.
//
// If a listener ends the goroutine (runtime.Goexit, as t.FailNow does),
// the event it was hearing counts as delivered, the rest of the batch goes
// back to the head of the queue, and the goroutine delivers on while it
// ends, so that no event is left without a deliverer.
func (c *core) run(mine uint64) {
	f := c.feed
	var batch [feedBatch]Event
	n, at := 0, -1 // at: the event being delivered with mu released; -1 while mu is held
	defer func() {
		if at < 0 {
			f.busy, f.handoff = false, false
			f.wakeWaiters()
			return
		}
		c.mu.Lock()
		f.queue = slices.Insert(f.queue[f.head:], 0, batch[at+1:n]...)
		f.head = 0
		f.delivered += uint64(at + 1)
		c.run(mine)
		c.mu.Unlock()
	}()
	for f.delivered < f.queued {
		if f.delivered >= mine {
			if f.waiters > 0 {
				break // a waiter takes over
			}
			if f.delivered-mine >= maxShare {
				f.handoff = true
			}
		}
		n = f.take(batch[:])
		subs := c.hot.Load().subs
		c.mu.Unlock()
		for at = 0; at < n; at++ {
			for j := range subs {
				if subs[j].mask.Has(batch[at].Kind) {
					notify(subs[j].l, &batch[at])
				}
			}
		}
		c.mu.Lock()
		at = -1
		f.delivered += uint64(n)
		clear(batch[:n])
		f.wakeWaiters()
	}
}
