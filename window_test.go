package breaker

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestCountWindowKeepsLastN(t *testing.T) {
	w := newCountWindow(3)
	assert.Equal(t, counts{}, w.totals(t0))

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
		assert.Equal(t, s.want, w.record(t0, s.o), "step %d", i)
		assert.Equal(t, s.want, w.totals(t0), "step %d", i)
	}

	w.reset()
	assert.Equal(t, counts{}, w.totals(t0))
	assert.Equal(t, counts{1, 1, 0}, w.record(t0, failed), "the ring starts over after reset")
}

func TestCountWindowOfOne(t *testing.T) {
	w := newCountWindow(1)
	assert.Equal(t, counts{1, 1, 0}, w.record(t0, failed))
	assert.Equal(t, counts{1, 0, 1}, w.record(t0, slow))
	assert.Equal(t, counts{1, 0, 0}, w.record(t0, 0))
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

			w := newTimeWindow(t0, tt.span, tt.width)
			w.record(at(tt.recordAt), failed)
			assert.Equal(t, counts{1, 1, 0}, w.totals(at(tt.lastLive)))
			assert.Equal(t, counts{}, w.totals(at(tt.gone)))
		})
	}
}

func TestTimeWindowSlidesBucketByBucket(t *testing.T) {
	w := newTimeWindow(t0, 4*time.Second, time.Second)
	for s := range 6 {
		w.record(at(time.Duration(s)*time.Second), failed)
	}
	// At 5s, buckets 1..5 are live (bucket 1 ends at 2s > 1s).
	assert.Equal(t, counts{5, 5, 0}, w.totals(at(5*time.Second)))
	assert.Equal(t, counts{4, 4, 0}, w.totals(at(6*time.Second)))
	assert.Equal(t, counts{1, 1, 0}, w.totals(at(9*time.Second)))
	assert.Equal(t, counts{}, w.totals(at(10*time.Second)))
}

func TestTimeWindowLongGapClearsEverything(t *testing.T) {
	w := newTimeWindow(t0, 10*time.Second, time.Second)
	for i := range 10 {
		w.record(at(time.Duration(i)*time.Second), slow)
	}
	require.Equal(t, 10, w.totals(at(9*time.Second)).calls)
	assert.Equal(t, counts{1, 0, 0}, w.record(at(time.Hour), 0))
	assert.Equal(t, counts{1, 0, 0}, w.totals(at(time.Hour+9*time.Second)))
}

func TestTimeWindowClockSteppingBack(t *testing.T) {
	w := newTimeWindow(t0, 10*time.Second, time.Second)
	w.record(at(30*time.Second), failed)
	// Earlier than the window's oldest live bucket: lands in that bucket.
	assert.Equal(t, counts{2, 1, 0}, w.record(at(5*time.Second), 0))
	// Earlier than the window's creation.
	assert.Equal(t, counts{3, 1, 1}, w.record(t0.Add(-time.Hour), slow))
	// The stepped-back outcomes expire with the oldest live bucket (20s).
	assert.Equal(t, counts{1, 1, 0}, w.totals(at(31*time.Second)))
	assert.Equal(t, counts{}, w.totals(at(41*time.Second)))
}

func TestTimeWindowReset(t *testing.T) {
	w := newTimeWindow(t0, 10*time.Second, time.Second)
	w.record(at(time.Second), failed)
	w.reset()
	assert.Equal(t, counts{}, w.totals(at(time.Second)))
	assert.Equal(t, counts{1, 0, 0}, w.record(at(2*time.Second), 0))
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
		w := newTimeWindow(t0, span, width)
		var list []rec
		now := time.Duration(0)
		for step := range 400 {
			now += time.Duration(rng.Int64N(int64(span) / 3))
			if rng.IntN(50) == 0 {
				now += 2 * span // a quiet spell
			}
			o := outcome(rng.IntN(4))
			list = append(list, rec{now, o})
			w.record(at(now), o)

			var want counts
			for _, r := range list {
				end := (r.at/width + 1) * width
				if end > now-span {
					want.add(r.o, 1)
				}
			}
			require.Equal(t, want, w.totals(at(now)), "seed %d step %d span %v width %v", seed, step, span, width)
		}
	}
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
		w.record(t0, outcome(i&3))
	}
}

func BenchmarkTimeWindowRecord(b *testing.B) {
	w := newTimeWindow(t0, DefaultWindowDuration, DefaultWindowDuration/DefaultBuckets)
	b.ReportAllocs()
	now := t0
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Millisecond)
		w.record(now, outcome(i&3))
	}
}
