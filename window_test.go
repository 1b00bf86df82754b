package breaker

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCountWindowKeepsLastN(t *testing.T) {
	w := newCountWindow(3)
	assert.Equal(t, counts{}, w.totals(0))

	steps := []struct {
		o    outcome
		want counts
	}{
		{failed, counts{1, 1, 0}},
		{slow, counts{2, 1, 1}},
		{0, counts{3, 1, 1}},
		{failed | slow, counts{3, 1, 2}}, // evicts the first failure
		{0, counts{3, 1, 1}},             // evicts the slow success
		{0, counts{3, 1, 1}},
		{0, counts{3, 0, 0}}, // evicts the slow failure
	}
	for i, s := range steps {
		assert.Equal(t, s.want, w.record(0, s.o), "step %d", i)
		assert.Equal(t, s.want, w.totals(0), "step %d", i)
	}

	w.reset()
	assert.Equal(t, counts{}, w.totals(0))
	assert.Equal(t, counts{1, 1, 0}, w.record(0, failed), "the ring starts over after reset")
}

func TestCountWindowOfOne(t *testing.T) {
	w := newCountWindow(1)
	assert.Equal(t, counts{1, 1, 0}, w.record(0, failed))
	assert.Equal(t, counts{1, 0, 1}, w.record(0, slow))
	assert.Equal(t, counts{1, 0, 0}, w.record(0, 0))
}

func TestTimeWindowBucketEdges(t *testing.T) {
	tests := []struct {
		name        string
		span, width time.Duration
		recordAt    time.Duration
		lastLive    time.Duration // the outcome still counts here
		gone        time.Duration // and no longer here
	}{
		// Bucket [2s,4s) ends at 4s: live while 4s > now-10s.
		{"divisible, start of bucket", 10 * time.Second, 2 * time.Second, 2 * time.Second, 14*time.Second - 1, 14 * time.Second},
		{"divisible, end of bucket", 10 * time.Second, 2 * time.Second, 4*time.Second - 1, 14*time.Second - 1, 14 * time.Second},
		{"divisible, first bucket", 10 * time.Second, 2 * time.Second, 0, 12*time.Second - 1, 12 * time.Second},
		// Bucket [3s,6s) ends at 6s: live while 6s > now-10s.
		{"not divisible", 10 * time.Second, 3 * time.Second, 5 * time.Second, 16*time.Second - 1, 16 * time.Second},
		{"one bucket", 10 * time.Second, 10 * time.Second, 9 * time.Second, 20*time.Second - 1, 20 * time.Second},
		{"nanosecond buckets", 10, 1, 3, 13, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.GreaterOrEqual(t, tt.lastLive-tt.recordAt, tt.span-1, "the outcome must count while younger than span")
			require.LessOrEqual(t, tt.gone-tt.recordAt, tt.span+tt.width, "the outcome must go within one bucket after span")

			w := newTimeWindow(tt.span, tt.width)
			w.record(tt.recordAt, failed)
			assert.Equal(t, counts{1, 1, 0}, w.totals(tt.lastLive))
			assert.Equal(t, counts{}, w.totals(tt.gone))
		})
	}
}

func TestTimeWindowSlidesBucketByBucket(t *testing.T) {
	w := newTimeWindow(4*time.Second, time.Second)
	for s := range 6 {
		w.record(time.Duration(s)*time.Second, failed)
	}
	// At 5s, buckets 1..5 are live (bucket 1 ends at 2s > 1s).
	assert.Equal(t, counts{5, 5, 0}, w.totals(5*time.Second))
	assert.Equal(t, counts{4, 4, 0}, w.totals(6*time.Second))
	assert.Equal(t, counts{1, 1, 0}, w.totals(9*time.Second))
	assert.Equal(t, counts{}, w.totals(10*time.Second))
}

func TestTimeWindowLongGapClearsEverything(t *testing.T) {
	w := newTimeWindow(10*time.Second, time.Second)
	for i := range 10 {
		w.record(time.Duration(i)*time.Second, slow)
	}
	require.Equal(t, 10, w.totals(9*time.Second).calls)
	assert.Equal(t, counts{1, 0, 0}, w.record(time.Hour, 0))
	assert.Equal(t, counts{1, 0, 0}, w.totals(time.Hour+9*time.Second))
}

func TestTimeWindowClockSteppingBack(t *testing.T) {
	w := newTimeWindow(10*time.Second, time.Second)
	w.record(30*time.Second, failed)
	// Earlier than the window's oldest live bucket: lands in that bucket.
	assert.Equal(t, counts{2, 1, 0}, w.record(5*time.Second, 0))
	// Earlier than the window's creation.
	assert.Equal(t, counts{3, 1, 1}, w.record(-time.Hour, slow))
	// The stepped-back outcomes expire with the oldest live bucket (20s).
	assert.Equal(t, counts{1, 1, 0}, w.totals(31*time.Second))
	assert.Equal(t, counts{}, w.totals(41*time.Second))
}

func TestTimeWindowReset(t *testing.T) {
	w := newTimeWindow(10*time.Second, time.Second)
	w.record(time.Second, failed)
	w.reset()
	assert.Equal(t, counts{}, w.totals(time.Second))
	assert.Equal(t, counts{1, 0, 0}, w.record(2*time.Second, 0))
}

// TestTimeWindowAgainstList compares the window with a plain list of
// timestamped outcomes filtered by the bucket rule, over random steps.
func TestTimeWindowAgainstList(t *testing.T) {
	type rec struct {
		at time.Duration
		o  outcome
	}
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		span := time.Duration(1+rng.IntN(20)) * time.Second
		width := min(span, span/time.Duration(1+rng.IntN(40))+time.Duration(rng.IntN(1000)))
		w := newTimeWindow(span, width)
		var list []rec
		now := time.Duration(0)
		for step := range 400 {
			now += time.Duration(rng.Int64N(int64(span) / 3))
			if rng.IntN(50) == 0 {
				now += 2 * span // a quiet spell
			}
			o := outcome(rng.IntN(4))
			list = append(list, rec{now, o})
			w.record(now, o)

			var want counts
			for _, r := range list {
				end := (r.at/width + 1) * width
				if end > now-span {
					want.add(r.o, 1)
				}
			}
			require.Equal(t, want, w.totals(now), "seed %d step %d span %v width %v", seed, step, span, width)
		}
	}
}

func TestCountWindowAddSuccesses(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		want  counts
		after counts // totals after one more failure
	}{
		{"fewer than the window", 2, counts{3, 0, 1}, counts{3, 1, 0}},
		{"as many as the window", 3, counts{3, 0, 0}, counts{3, 1, 0}},
		{"more than the window", 7, counts{3, 0, 0}, counts{3, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCountWindow(3)
			w.record(0, failed)
			w.record(0, slow)
			w.addSuccesses(0, tt.n)
			assert.Equal(t, tt.want, w.totals(0))
			assert.Equal(t, tt.after, w.record(0, failed))
		})
	}

	t.Run("keeps the ring's order", func(t *testing.T) {
		// The same steps one by one and in bulk must leave the same ring.
		a, b := newCountWindow(5), newCountWindow(5)
		for _, w := range []*countWindow{a, b} {
			w.record(0, failed)
			w.record(0, slow)
		}
		for range 11 {
			a.record(0, 0)
		}
		b.addSuccesses(0, 11)
		assert.Equal(t, a, b)
	})
}

func TestTimeWindowAddSuccesses(t *testing.T) {
	w := newTimeWindow(10*time.Second, time.Second)
	w.record(3*time.Second, failed)
	w.addSuccesses(4*time.Second, 5)
	assert.Equal(t, counts{6, 1, 0}, w.totals(13*time.Second+time.Millisecond))
	assert.Equal(t, counts{5, 0, 0}, w.totals(14*time.Second), "the failure's bucket is gone")
	assert.Equal(t, counts{}, w.totals(15*time.Second), "the successes went to the bucket of their time")
}

func TestTimeWindowSteadyUntil(t *testing.T) {
	w := newTimeWindow(10*time.Second, 2*time.Second)
	assert.Equal(t, 2*time.Second, w.steadyUntil(0), "the end of the first bucket")
	w.record(time.Second, failed)
	assert.Equal(t, 12*time.Second, w.steadyUntil(11*time.Second), "the end of bucket 5, when bucket 0 also expires")
	w.totals(12 * time.Second)
	assert.Equal(t, 14*time.Second, w.steadyUntil(13*time.Second))

	odd := newTimeWindow(10*time.Second, 3*time.Second)
	odd.totals(20 * time.Second)
	// Bucket 6 ends at 21s; bucket 3, the oldest live one, expires at 22s.
	assert.Equal(t, 21*time.Second, odd.steadyUntil(20*time.Second))
	odd.totals(21 * time.Second)
	assert.Equal(t, 22*time.Second, odd.steadyUntil(21*time.Second))

	huge := newTimeWindow(math.MaxInt64, math.MaxInt64/4)
	assert.Positive(t, huge.steadyUntil(math.MaxInt64-1), "no overflow")
}

func TestFloorDiv(t *testing.T) {
	tests := []struct{ a, b, want int64 }{
		{7, 2, 3}, {6, 2, 3}, {0, 2, 0}, {-1, 2, -1}, {-2, 2, -1}, {-3, 2, -2},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, floorDiv(tt.a, tt.b), "floorDiv(%d, %d)", tt.a, tt.b)
	}
}

func BenchmarkCountWindowRecord(b *testing.B) {
	w := newCountWindow(DefaultWindowSize)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.record(0, outcome(i&3))
	}
}

func BenchmarkTimeWindowRecord(b *testing.B) {
	w := newTimeWindow(DefaultWindowDuration, DefaultWindowDuration/DefaultBuckets)
	b.ReportAllocs()
	now := time.Duration(0)
	for i := 0; b.Loop(); i++ {
		now += time.Millisecond
		w.record(now, outcome(i&3))
	}
}
