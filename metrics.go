package breaker

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// Metrics is a snapshot of a breaker. Its window figures are read under the
// breaker's lock, its Lifetime counts without it.
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

	// Lifetime counts what the breaker has seen since New; Reset does not
	// clear it.
	Lifetime Lifetime
}

// Lifetime holds a breaker's counts since New. Each only grows, so that a
// metrics system can take them as counters.
type Lifetime struct {
	// Successes, Failures and Ignored count the admitted calls by outcome,
	// trial calls and calls that ended after a state change included.
	Successes, Failures, Ignored uint64
	// SlowCalls counts the successes and failures that lasted at least
	// SlowCallDuration (slow tracking on).
	SlowCalls uint64
	// RefusedOpen counts the calls refused while open or forced open
	// (ErrOpen), RefusedHalfOpen those refused in half-open once its trial
	// calls were taken (ErrTooManyCalls).
	RefusedOpen, RefusedHalfOpen uint64
	// Opens counts the times the circuit opened, ForceOpen aside.
	Opens uint64
	// OpenTime is the time spent open or forced open, up to the reading.
	OpenTime time.Duration
}

// Refused returns the calls refused in all: RefusedOpen + RefusedHalfOpen.
func (l Lifetime) Refused() uint64 { return l.RefusedOpen + l.RefusedHalfOpen }

// Indexes of the plain counts in core.counts.
const (
	refusedOpen = iota
	refusedHalfOpen
)

// totals holds a breaker's lifetime counts. They are written under mu or,
// on the paths that take no lock, in core.counts; they are read without
// the lock. seq is odd while a holder of mu moves successes from the
// stripes to successes, so that a reader can tell it saw them half moved
// and read again.
type totals struct {
	seq       atomic.Uint64
	successes atomic.Uint64 // recorded under mu or drained from the stripes
	failures  atomic.Uint64
	slow      atomic.Uint64
	ignored   atomic.Uint64
	opens     atomic.Uint64
	// openTime is the time spent open, in one word so that it moves in
	// one store: outside an open period, total<<1; inside one that began at
	// since, (total-since)<<1 | 1, to which a reader adds the time now.
	openTime atomic.Int64
	// openSeen is the most open time a reader has reported: readers never
	// report less, though a period may close with a time read before the
	// reading.
	openSeen atomic.Int64
}

// count adds an outcome to the lifetime counts. It requires mu held.
func (t *totals) count(kind EventKind, isSlow bool) {
	switch kind {
	case EventSuccess:
		t.successes.Add(1)
	case EventFailure:
		t.failures.Add(1)
	case EventIgnored:
		t.ignored.Add(1)
		return
	}
	if isSlow {
		t.slow.Add(1)
	}
}

// moveOpenTime ends or begins an open period at now, as the state changes
// from one to another. It requires mu held.
func (c *core) moveOpenTime(from, to State, now time.Duration) {
	if isOpen(from) == isOpen(to) {
		return
	}
	t := &c.life.openTime
	v := t.Load()
	if isOpen(to) {
		t.Store((v>>1-int64(now))<<1 | 1)
	} else {
		t.Store((v>>1 + int64(now)) << 1)
	}
}

func isOpen(s State) bool { return s == StateOpen || s == StateForcedOpen }

// lifetime reads the lifetime counts without the lock.
func (c *core) lifetime() Lifetime {
	t := &c.life
	var successes uint64
	for i := 0; ; i++ {
		s := t.seq.Load()
		if s&1 == 0 {
			successes = t.successes.Load() + c.counts.undrained()
			if t.seq.Load() == s {
				break
			}
		}
		if i > 10 {
			runtime.Gosched() // a holder of mu is in the middle of a move
		}
	}
	open := t.openTime.Load()
	l := Lifetime{
		Successes:       successes,
		Failures:        t.failures.Load(),
		Ignored:         t.ignored.Load(),
		SlowCalls:       t.slow.Load(),
		RefusedOpen:     c.counts.sum(refusedOpen),
		RefusedHalfOpen: c.counts.sum(refusedHalfOpen),
		Opens:           t.opens.Load(),
		OpenTime:        time.Duration(open >> 1),
	}
	if open&1 == 1 {
		l.OpenTime += c.elapsed() // read after the period's start, so never before it
	}
	for {
		seen := t.openSeen.Load()
		if int64(l.OpenTime) <= seen {
			l.OpenTime = time.Duration(seen)
			break
		}
		if t.openSeen.CompareAndSwap(seen, int64(l.OpenTime)) {
			break
		}
	}
	return l
}

// CircuitSet holds circuits without keeping them alive: a breaker that the
// program no longer uses leaves the set when the garbage collector takes it.
// It is for Attachers, such as metrics collectors, that read the breakers
// they are attached to. A CircuitSet is safe for concurrent use; the zero
// value is an empty set.
type CircuitSet struct {
	mu    sync.Mutex
	refs  []weak.Pointer[core]
	index map[weak.Pointer[core]]struct{}
	live  int // live refs at the last prune
}

// Add adds c to the set, if it is not there yet.
func (s *CircuitSet) Add(c Circuit) {
	p := weak.Make(c.base())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index == nil {
		s.index = map[weak.Pointer[core]]struct{}{}
	}
	if _, ok := s.index[p]; ok {
		return
	}
	s.index[p] = struct{}{}
	s.refs = append(s.refs, p)
	if len(s.refs) > 2*s.live+16 {
		s.prune()
	}
}

// Circuits returns the circuits in the set, in the order they were added.
func (s *CircuitSet) Circuits() []Circuit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prune()
}

// prune drops the circuits that are gone and returns the others. It
// requires s.mu held.
func (s *CircuitSet) prune() []Circuit {
	out := make([]Circuit, 0, len(s.refs))
	s.refs = slices.DeleteFunc(s.refs, func(p weak.Pointer[core]) bool {
		c := p.Value()
		if c == nil {
			delete(s.index, p)
			return true
		}
		out = append(out, c.self)
		return false
	})
	s.live = len(s.refs)
	return out
}
