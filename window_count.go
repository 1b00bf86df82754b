package breaker

import "time"

// outcome is a recorded call: a failure, slow, both, or neither.
type outcome uint8

const (
	failed outcome = 1 << iota
	slow
)

// counts are a window's totals.
type counts struct {
	calls, failures, slow int
}

func (c *counts) add(o outcome, sign int) {
	c.calls += sign
	c.failures += sign * int(o&failed)
	c.slow += sign * int(o&slow>>1)
}

// window is where a breaker records outcomes. Implementations are not safe
// for concurrent use and know nothing of states. Times are durations since
// the breaker's creation; a count window ignores them.
type window interface {
	// record adds an outcome at now and returns the totals after it.
	record(now time.Duration, o outcome) counts
	// addSuccesses adds n calls that neither failed nor ran slow, at a time
	// no later than the last record or totals.
	addSuccesses(at time.Duration, n int)
	// totals returns the totals at now, dropping what has expired.
	totals(now time.Duration) counts
	// reset empties the window.
	reset()
}

// countWindow keeps the outcomes of the last len(ring) recorded calls.
type countWindow struct {
	ring []outcome
	next int // the slot the next outcome overwrites
	tot  counts
}

func newCountWindow(size int) *countWindow {
	return &countWindow{ring: make([]outcome, size)}
}

func (w *countWindow) record(_ time.Duration, o outcome) counts {
	if w.tot.calls == len(w.ring) {
		w.tot.add(w.ring[w.next], -1)
	}
	w.ring[w.next] = o
	w.tot.add(o, 1)
	if w.next++; w.next == len(w.ring) {
		w.next = 0
	}
	return w.tot
}

func (w *countWindow) addSuccesses(_ time.Duration, n int) {
	if n < len(w.ring) {
		for range n {
			w.record(0, 0)
		}
		return
	}
	clear(w.ring)
	w.tot = counts{calls: len(w.ring)}
	w.next = (w.next + n) % len(w.ring)
}

func (w *countWindow) totals(time.Duration) counts { return w.tot }

func (w *countWindow) reset() {
	w.next, w.tot = 0, counts{}
}

// resized returns a window of size outcomes holding the newest outcomes of
// w, as many as fit, in the same order.
func (w *countWindow) resized(size int) *countWindow {
	n := newCountWindow(size)
	keep := min(w.tot.calls, size)
	for i := keep; i > 0; i-- { // oldest kept first
		n.record(0, w.ring[((w.next-i)%len(w.ring)+len(w.ring))%len(w.ring)])
	}
	return n
}
