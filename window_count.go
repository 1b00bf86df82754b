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
// for concurrent use and know nothing of states; a count window ignores now.
type window interface {
	// record adds an outcome at now and returns the totals after it.
	record(now time.Time, o outcome) counts
	// totals returns the totals at now, dropping what has expired.
	totals(now time.Time) counts
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

func (w *countWindow) record(_ time.Time, o outcome) counts {
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

func (w *countWindow) totals(time.Time) counts { return w.tot }

func (w *countWindow) reset() {
	w.next, w.tot = 0, counts{}
}
