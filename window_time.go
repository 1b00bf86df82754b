package breaker

import "time"

// timeWindow keeps the outcomes of the last span, in buckets of width
// width. Bucket k holds the outcomes recorded in [base+k*width,
// base+(k+1)*width) and stays live while its end is after now-span. So an
// outcome counts while it is younger than span and is dropped no later than
// one bucket after that. Memory is fixed by span/width, whatever the call
// rate, and each call costs O(1) amortized (O(buckets) at worst, after a
// long quiet spell).
type timeWindow struct {
	base  time.Time
	span  time.Duration
	width time.Duration
	ring  []counts // bucket k lives in ring[k mod len(ring)]
	tail  int64    // the oldest bucket that may hold outcomes
	tot   counts
}

func newTimeWindow(now time.Time, span, width time.Duration) *timeWindow {
	// A bucket lives until span has passed since its end, so span/width
	// buckets plus the one being filled are live at once.
	n := int64(ceilDiv(span, width)) + 1
	w := &timeWindow{base: now, span: span, width: width, ring: make([]counts, n)}
	w.tail = w.oldest(0)
	return w
}

// elapsed is the time from base to now, never negative.
func (w *timeWindow) elapsed(now time.Time) time.Duration {
	return max(now.Sub(w.base), 0)
}

// oldest is the oldest bucket live at elapsed time d: the first k whose end
// (k+1)*width is after d-span.
func (w *timeWindow) oldest(d time.Duration) int64 {
	return floorDiv(int64(d-w.span), int64(w.width))
}

func (w *timeWindow) slot(k int64) *counts {
	i := k % int64(len(w.ring))
	if i < 0 {
		i += int64(len(w.ring))
	}
	return &w.ring[i]
}

// expire drops the buckets that are dead at elapsed time d.
func (w *timeWindow) expire(d time.Duration) {
	lo := w.oldest(d)
	if lo <= w.tail {
		return
	}
	if lo-w.tail >= int64(len(w.ring)) {
		clear(w.ring)
		w.tot = counts{}
	} else {
		for k := w.tail; k < lo; k++ {
			s := w.slot(k)
			w.tot.calls -= s.calls
			w.tot.failures -= s.failures
			w.tot.slow -= s.slow
			*s = counts{}
		}
	}
	w.tail = lo
}

func (w *timeWindow) record(now time.Time, o outcome) counts {
	d := w.elapsed(now)
	w.expire(d)
	// A clock that stepped back lands in the oldest live bucket.
	k := max(int64(d/w.width), w.tail)
	w.slot(k).add(o, 1)
	w.tot.add(o, 1)
	return w.tot
}

func (w *timeWindow) totals(now time.Time) counts {
	w.expire(w.elapsed(now))
	return w.tot
}

func (w *timeWindow) reset() {
	clear(w.ring)
	w.tot = counts{}
}

// floorDiv is a/b rounded toward negative infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
