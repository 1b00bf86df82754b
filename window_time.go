package breaker

import (
	"math"
	"time"
)

// timeWindow keeps the outcomes of the last span, in buckets of width
// width. Bucket k holds the outcomes recorded in [k*width, (k+1)*width) and
// stays live while its end is after now-span. So an outcome counts while it
// is younger than span and is dropped no later than one bucket after that.
// Memory is fixed by span/width, whatever the call rate, and each call
// costs O(1) amortized (O(buckets) at worst, after a long quiet spell).
type timeWindow struct {
	span  time.Duration
	width time.Duration
	ring  []counts // bucket k lives in ring[k mod len(ring)]
	tail  int64    // the oldest bucket that may hold outcomes
	tot   counts
}

func newTimeWindow(span, width time.Duration) *timeWindow {
	// A bucket lives until span has passed since its end, so span/width
	// buckets plus the one being filled are live at once.
	n := int64(ceilDiv(span, width)) + 1
	w := &timeWindow{span: span, width: width, ring: make([]counts, n)}
	w.tail = w.oldest(0)
	return w
}

// oldest is the oldest bucket live at now: the first k whose end
// (k+1)*width is after now-span.
func (w *timeWindow) oldest(now time.Duration) int64 {
	return floorDiv(int64(now-w.span), int64(w.width))
}

// bucket is the bucket an outcome at now goes to: a clock that stepped
// back lands in the oldest live bucket.
func (w *timeWindow) bucket(now time.Duration) int64 {
	return max(int64(max(now, 0)/w.width), w.tail)
}

func (w *timeWindow) slot(k int64) *counts {
	i := k % int64(len(w.ring))
	if i < 0 {
		i += int64(len(w.ring))
	}
	return &w.ring[i]
}

// expire drops the buckets that are dead at now.
func (w *timeWindow) expire(now time.Duration) {
	lo := w.oldest(max(now, 0))
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

func (w *timeWindow) record(now time.Duration, o outcome) counts {
	w.expire(now)
	w.slot(w.bucket(now)).add(o, 1)
	w.tot.add(o, 1)
	return w.tot
}

func (w *timeWindow) addSuccesses(at time.Duration, n int) {
	w.expire(at)
	w.slot(w.bucket(at)).calls += n
	w.tot.calls += n
}

func (w *timeWindow) totals(now time.Duration) counts {
	w.expire(now)
	return w.tot
}

func (w *timeWindow) reset() {
	clear(w.ring)
	w.tot = counts{}
}

// steadyUntil is when the totals at now next change by themselves: the end
// of now's bucket, or the expiry of the oldest bucket if sooner.
func (w *timeWindow) steadyUntil(now time.Duration) time.Duration {
	w.expire(now)
	end := (w.bucket(now) + 1) * int64(w.width)
	expiry := (w.tail+1)*int64(w.width) + int64(w.span)
	if expiry < end && expiry >= 0 { // a negative expiry overflowed
		end = expiry
	}
	if end < 0 {
		return math.MaxInt64
	}
	return time.Duration(end)
}

// floorDiv is a/b rounded toward negative infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// resized returns a window of span in buckets of width holding w's live
// counts at now, each old bucket's counts put in the new bucket where the
// old one began.
func (w *timeWindow) resized(span, width, now time.Duration) *timeWindow {
	w.expire(now)
	n := newTimeWindow(span, width)
	n.expire(now)
	end := w.bucket(now)
	for k := w.tail; k <= end; k++ {
		s := w.slot(k)
		if s.calls == 0 || time.Duration(k+1)*w.width <= now-span {
			continue // empty, or all of it older than the new span
		}
		at := time.Duration(k) * w.width
		n.expire(at)
		b := n.slot(n.bucket(at))
		b.calls += s.calls
		b.failures += s.failures
		b.slow += s.slow
		n.tot.calls += s.calls
		n.tot.failures += s.failures
		n.tot.slow += s.slow
	}
	n.expire(now)
	return n
}
