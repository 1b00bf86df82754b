package otelmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/otelmetrics"
)

var errBoom = errors.New("boom")

// newReader returns a manual reader and the MeterProvider it reads.
func newReader(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { assert.NoError(t, mp.Shutdown(context.Background())) })
	return reader, mp
}

// newListener returns a Listener of a fresh provider, and its reader.
func newListener(t *testing.T, opts ...otelmetrics.Option) (*otelmetrics.Listener, *sdkmetric.ManualReader) {
	t.Helper()
	reader, mp := newReader(t)
	l, err := otelmetrics.New(mp, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l, reader
}

func newBreaker(t *testing.T, name string, cfg breaker.Config) *breaker.Breaker[int] {
	t.Helper()
	b, err := breaker.New[int](name, cfg)
	require.NoError(t, err)
	return b
}

// call makes a call through b that takes took on clk and returns err.
func call(b *breaker.Breaker[int], clk *clock.Mock, took time.Duration, err error) {
	b.Execute(context.Background(), func(context.Context) (int, error) {
		clk.Add(took)
		return 1, err
	})
}

// collect returns the metrics r reads, by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, otelmetrics.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// key writes an attribute set as "breaker.name=db,breaker.outcome=success".
func key(s attribute.Set) string { return s.Encoded(attribute.DefaultEncoder()) }

// values returns the points of a sum or gauge by their attributes (see
// key), failing on a point seen twice.
func values(t *testing.T, m metricdata.Metrics) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	add := func(s attribute.Set, v float64) {
		_, dup := out[key(s)]
		assert.False(t, dup, "%s: two points for %s", m.Name, key(s))
		out[key(s)] = v
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			add(p.Attributes, float64(p.Value))
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			add(p.Attributes, p.Value)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			add(p.Attributes, float64(p.Value))
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			add(p.Attributes, p.Value)
		}
	case nil:
	default:
		t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
	}
	return out
}

// report is what a Listener reports of one breaker name: each instrument's
// points, keyed by their attributes other than breaker.name.
type report map[string]map[string]float64

// reportOf returns what got holds for the breakers named name, the
// histogram aside.
func reportOf(t *testing.T, got map[string]metricdata.Metrics, name string) report {
	t.Helper()
	prefix := "breaker.name=" + name
	out := report{}
	for _, m := range got {
		if m.Name == "breaker.call.duration" {
			continue // see histogram
		}
		for k, v := range values(t, m) {
			rest, ok := cutName(k, prefix)
			if !ok {
				continue
			}
			if out[m.Name] == nil {
				out[m.Name] = map[string]float64{}
			}
			out[m.Name][rest] = v
		}
	}
	return out
}

func cutName(k, prefix string) (string, bool) {
	switch {
	case k == prefix:
		return "", true
	case len(k) > len(prefix) && k[:len(prefix)+1] == prefix+",":
		return k[len(prefix)+1:], true
	}
	return "", false
}

// expect builds the report of one breaker name from its values.
func expect(calls [5]float64, slow, opens, openSeconds float64, state breaker.State, failureRate, slowRate, window float64) report {
	states := map[string]float64{}
	for _, s := range []breaker.State{breaker.StateClosed, breaker.StateOpen, breaker.StateHalfOpen, breaker.StateForcedOpen, breaker.StateDisabled} {
		states["breaker.state="+s.String()] = 0
	}
	states["breaker.state="+state.String()] = 1
	return report{
		"breaker.calls": {
			"breaker.outcome=success":            calls[0],
			"breaker.outcome=failure":            calls[1],
			"breaker.outcome=ignored":            calls[2],
			"breaker.outcome=rejected_open":      calls[3],
			"breaker.outcome=rejected_half_open": calls[4],
		},
		"breaker.slow_calls":     {"": slow},
		"breaker.opens":          {"": opens},
		"breaker.open.time":      {"": openSeconds},
		"breaker.state":          states,
		"breaker.failure_rate":   {"": failureRate},
		"breaker.slow_call_rate": {"": slowRate},
		"breaker.window.calls":   {"": window},
	}
}

func TestInstruments(t *testing.T) {
	l, reader := newListener(t)
	assert.Equal(t, breaker.EventMask(0), l.EventMask(), "the Listener hears nothing by default")
	newBreaker(t, "db", breaker.Config{Listeners: []breaker.Listener{l}})
	got := collect(t, reader)

	tests := []struct {
		name, unit string
		counter    bool // a monotonic cumulative sum; else a gauge
	}{
		{"breaker.calls", "{call}", true},
		{"breaker.slow_calls", "{call}", true},
		{"breaker.opens", "{open}", true},
		{"breaker.open.time", "s", true},
		{"breaker.state", "{breaker}", false},
		{"breaker.failure_rate", "1", false},
		{"breaker.slow_call_rate", "1", false},
		{"breaker.window.calls", "{call}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := got[tt.name]
			require.True(t, ok, "not reported")
			assert.Equal(t, tt.unit, m.Unit)
			assert.NotEmpty(t, m.Description)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				assert.True(t, tt.counter && d.IsMonotonic && d.Temporality == metricdata.CumulativeTemporality, "sum %+v", d)
			case metricdata.Sum[float64]:
				assert.True(t, tt.counter && d.IsMonotonic && d.Temporality == metricdata.CumulativeTemporality, "sum %+v", d)
			case metricdata.Gauge[int64], metricdata.Gauge[float64]:
				assert.False(t, tt.counter, "a gauge")
			default:
				t.Errorf("unexpected data %T", m.Data)
			}
		})
	}
	assert.Len(t, got, len(tests), "no other instruments")
	assert.NotContains(t, got, "breaker.call.duration", "only with WithDurations")
}

// TestScript runs a breaker through closed, open, half-open and closed
// again, and checks every value reported on the way.
func TestScript(t *testing.T) {
	l, reader := newListener(t)
	clk := clock.NewMock()
	b := newBreaker(t, "db", breaker.Config{
		WindowSize: 4, SlowCallDuration: time.Second, OpenTimeout: 10 * time.Second,
		Clock: clk, Listeners: []breaker.Listener{l},
	})

	call(b, clk, 0, nil)
	call(b, clk, 2*time.Second, nil) // slow
	call(b, clk, 500*time.Millisecond, errBoom)
	call(b, clk, 0, context.Canceled) // ignored
	call(b, clk, 0, errBoom)          // 2 failures in 4: open
	require.Equal(t, breaker.StateOpen, b.State())
	call(b, clk, 0, nil) // refused
	call(b, clk, 0, nil) // refused
	clk.Add(4 * time.Second)

	assert.Equal(t, expect([5]float64{2, 2, 1, 2, 0}, 1, 1, 4, breaker.StateOpen, 0.5, 0.25, 4),
		reportOf(t, collect(t, reader), "db"), "open")

	clk.Add(6 * time.Second)
	done, err := b.Allow() // the trial call
	require.NoError(t, err)
	_, err = b.Allow()
	require.ErrorIs(t, err, breaker.ErrTooManyCalls)
	assert.Equal(t, expect([5]float64{2, 2, 1, 2, 1}, 1, 1, 10, breaker.StateHalfOpen, 0.5, 0.25, 4),
		reportOf(t, collect(t, reader), "db"), "half-open")

	done(nil) // closes the circuit with a fresh window
	require.Equal(t, breaker.StateClosed, b.State())
	clk.Add(time.Minute)
	assert.Equal(t, expect([5]float64{3, 2, 1, 2, 1}, 1, 1, 10, breaker.StateClosed, 0, 0, 0),
		reportOf(t, collect(t, reader), "db"), "closed again")
}

func TestForcedOpen(t *testing.T) {
	l, reader := newListener(t)
	clk := clock.NewMock()
	b := newBreaker(t, "db", breaker.Config{Clock: clk, Listeners: []breaker.Listener{l}})

	b.ForceOpen()
	call(b, clk, 0, nil)
	call(b, clk, 0, nil)
	clk.Add(3 * time.Second)
	assert.Equal(t, expect([5]float64{0, 0, 0, 2, 0}, 0, 0, 3, breaker.StateForcedOpen, 0, 0, 0),
		reportOf(t, collect(t, reader), "db"), "forced open: refusals count as rejected_open, not as opens")

	b.Reset()
	clk.Add(time.Hour)
	assert.Equal(t, expect([5]float64{0, 0, 0, 2, 0}, 0, 0, 3, breaker.StateClosed, 0, 0, 0),
		reportOf(t, collect(t, reader), "db"), "reset")
}

func TestSameNameAddedUp(t *testing.T) {
	l, reader := newListener(t)
	clk := clock.NewMock()
	ls := []breaker.Listener{l}
	one := newBreaker(t, "db", breaker.Config{Clock: clk, Listeners: ls})
	two := newBreaker(t, "db", breaker.Config{WindowSize: 2, SlowCallDuration: time.Second, Clock: clk, Listeners: ls})
	newBreaker(t, "cache", breaker.Config{Clock: clk, Listeners: ls})

	call(one, clk, 0, nil)
	call(two, clk, 2*time.Second, errBoom)
	call(two, clk, 0, errBoom) // open
	call(two, clk, 0, nil)     // refused
	require.Equal(t, breaker.StateOpen, two.State())
	clk.Add(time.Second)

	got := collect(t, reader)
	want := expect([5]float64{1, 2, 0, 1, 0}, 1, 1, 1, breaker.StateClosed, 2.0/3, 1.0/3, 3)
	want["breaker.state"]["breaker.state=open"] = 1 // one closed, one open
	assert.Equal(t, want, reportOf(t, got, "db"))
	assert.Equal(t, expect([5]float64{}, 0, 0, 0, breaker.StateClosed, 0, 0, 0), reportOf(t, got, "cache"))
}

func TestDroppedBreakerLeaves(t *testing.T) {
	l, reader := newListener(t)
	kept := newBreaker(t, "kept", breaker.Config{Listeners: []breaker.Listener{l}})
	func() {
		b := newBreaker(t, "dropped", breaker.Config{Listeners: []breaker.Listener{l}})
		b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	}()
	require.NotEmpty(t, reportOf(t, collect(t, reader), "dropped"), "reported while alive")

	gone := false
	for i := 0; i < 10 && !gone; i++ {
		runtime.GC()
		gone = len(reportOf(t, collect(t, reader), "dropped")) == 0
	}
	assert.True(t, gone, "a dropped breaker leaves the metrics")
	assert.NotEmpty(t, reportOf(t, collect(t, reader), "kept"), "a live breaker stays")
	runtime.KeepAlive(kept)
}

// histogram returns the points of breaker.call.duration, by outcome.
func histogram(t *testing.T, got map[string]metricdata.Metrics) map[string]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	m, ok := got["breaker.call.duration"]
	require.True(t, ok, "breaker.call.duration reported")
	assert.Equal(t, "s", m.Unit)
	h, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "a histogram: %T", m.Data)
	out := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, p := range h.DataPoints {
		name, _ := p.Attributes.Value("breaker.name")
		outcome, _ := p.Attributes.Value("breaker.outcome")
		assert.Equal(t, 2, p.Attributes.Len(), "breaker.name and breaker.outcome only")
		out[name.AsString()+" "+outcome.AsString()] = p
	}
	return out
}

func TestDurations(t *testing.T) {
	l, reader := newListener(t, otelmetrics.WithDurations(), otelmetrics.WithBuckets(0.1, 1, 5))
	assert.Equal(t, breaker.Mask(breaker.EventSuccess, breaker.EventFailure, breaker.EventIgnored), l.EventMask())
	clk := clock.NewMock()
	b := newBreaker(t, "db", breaker.Config{WindowSize: 4, Clock: clk, Listeners: []breaker.Listener{l}})

	call(b, clk, 0, nil)
	call(b, clk, 2*time.Second, nil)
	call(b, clk, 500*time.Millisecond, errBoom)
	call(b, clk, 0, context.Canceled)
	call(b, clk, 0, errBoom) // open
	call(b, clk, 0, nil)     // refused: no duration
	require.Equal(t, breaker.StateOpen, b.State())

	got := histogram(t, collect(t, reader))
	assert.Len(t, got, 3, "success, failure and ignored: %v", got)
	success, failure, ignored := got["db success"], got["db failure"], got["db ignored"]
	assert.Equal(t, []float64{0.1, 1, 5}, success.Bounds)
	assert.Equal(t, []uint64{1, 0, 1, 0}, success.BucketCounts, "0s and 2s")
	assert.Equal(t, 2.0, success.Sum)
	assert.Equal(t, []uint64{1, 1, 0, 0}, failure.BucketCounts, "0s and 0.5s")
	assert.Equal(t, 0.5, failure.Sum)
	assert.Equal(t, uint64(1), ignored.Count)
	assert.Equal(t, float64(2), reportOf(t, collect(t, reader), "db")["breaker.calls"]["breaker.outcome=success"],
		"the counters do not change with WithDurations")
}

func TestDurationsDefaultBuckets(t *testing.T) {
	l, reader := newListener(t, otelmetrics.WithDurations())
	b := newBreaker(t, "db", breaker.Config{Listeners: []breaker.Listener{l}})
	b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	got := histogram(t, collect(t, reader))
	assert.Equal(t, otelmetrics.DefaultBuckets, got["db success"].Bounds)
	assert.Equal(t, uint64(1), got["db success"].Count)
}

func TestClose(t *testing.T) {
	reader, mp := newReader(t)
	l, err := otelmetrics.New(mp, otelmetrics.WithDurations())
	require.NoError(t, err)
	b := newBreaker(t, "db", breaker.Config{Listeners: []breaker.Listener{l}})
	b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	require.NotEmpty(t, reportOf(t, collect(t, reader), "db"))

	require.NoError(t, l.Close())
	b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	got := collect(t, reader)
	assert.Empty(t, reportOf(t, got, "db"), "no observations after Close")
	assert.Equal(t, uint64(2), histogram(t, got)["db success"].Count, "the histogram goes on")
}

func TestRegistry(t *testing.T) {
	l, reader := newListener(t)
	r, err := breaker.NewRegistry(breaker.Config{Listeners: []breaker.Listener{l}})
	require.NoError(t, err)
	other := breaker.ListenerFunc(func(breaker.Event) {})
	require.NoError(t, r.Configure("c", func(c *breaker.Config) { c.Listeners = append(c.Listeners, other) }))

	a, err := breaker.Get[int](r, "a")
	require.NoError(t, err)
	_, err = breaker.Get[string](r, "b")
	require.NoError(t, err)
	_, err = breaker.Get[int](r, "c")
	require.NoError(t, err)
	a.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	_, err = breaker.Get[int](r, "a") // the same breaker, attached once
	require.NoError(t, err)

	got := collect(t, reader)
	for _, name := range []string{"a", "b", "c"} {
		assert.Equal(t, float64(1), reportOf(t, got, name)["breaker.state"]["breaker.state=closed"], name)
	}
	assert.Equal(t, float64(1), reportOf(t, got, "a")["breaker.calls"]["breaker.outcome=success"])
}

// TestConcurrent collects while many goroutines make calls, under -race.
func TestConcurrent(t *testing.T) {
	const goroutines, calls = 8, 500
	l, reader := newListener(t, otelmetrics.WithDurations())
	b := newBreaker(t, "db", breaker.Config{Listeners: []breaker.Listener{l}})

	stop := make(chan struct{})
	collected := make(chan int)
	go func() {
		n, last := 0, -1.0
		defer func() { collected <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var rm metricdata.ResourceMetrics
			if !assert.NoError(t, reader.Collect(context.Background(), &rm)) {
				return
			}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != "breaker.calls" {
						continue
					}
					for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
						if v, _ := p.Attributes.Value("breaker.outcome"); v.AsString() == "success" {
							assert.GreaterOrEqual(t, float64(p.Value), last, "a counter never falls")
							last = float64(p.Value)
						}
					}
				}
			}
			n++
		}
	}()

	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range calls {
				var err error
				if i%10 == 0 {
					err = errBoom // too few to trip
				}
				b.Execute(context.Background(), func(context.Context) (int, error) { return 1, err })
			}
		})
	}
	wg.Wait()
	close(stop)
	assert.Positive(t, <-collected)

	got := collect(t, reader)
	byOutcome := reportOf(t, got, "db")["breaker.calls"]
	assert.Equal(t, float64(goroutines*calls*9/10), byOutcome["breaker.outcome=success"])
	assert.Equal(t, float64(goroutines*calls/10), byOutcome["breaker.outcome=failure"])
	h := histogram(t, got)
	assert.Equal(t, uint64(goroutines*calls*9/10), h["db success"].Count)
	assert.Equal(t, uint64(goroutines*calls/10), h["db failure"].Count)
}

func BenchmarkOnEvent(b *testing.B) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	l, err := otelmetrics.New(mp, otelmetrics.WithDurations())
	require.NoError(b, err)
	e := breaker.Event{Breaker: "db", Kind: breaker.EventSuccess, Duration: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.OnEvent(e)
		}
	})
}

func TestOnEventAllocatesNothing(t *testing.T) {
	l, _ := newListener(t, otelmetrics.WithDurations())
	e := breaker.Event{Breaker: "db", Kind: breaker.EventFailure, Duration: time.Millisecond}
	l.OnEvent(e) // makes the attribute set
	assert.Zero(t, testing.AllocsPerRun(100, func() { l.OnEvent(e) }))
}

func BenchmarkExecute(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []otelmetrics.Option // nil: no Listener
	}{
		{"none", nil},
		{"listener", []otelmetrics.Option{}},
		{"durations", []otelmetrics.Option{otelmetrics.WithDurations()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var cfg breaker.Config
			if bc.opts != nil {
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer mp.Shutdown(context.Background())
				l, err := otelmetrics.New(mp, bc.opts...)
				require.NoError(b, err)
				cfg.Listeners = []breaker.Listener{l}
			}
			br, err := breaker.New[int]("db", cfg)
			require.NoError(b, err)
			fn := func(context.Context) (int, error) { return 1, nil }
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					br.Execute(ctx, fn)
				}
			})
		})
	}
}

func TestDurationCacheForgetsDroppedBreakers(t *testing.T) {
	l, reader := newListener(t, otelmetrics.WithDurations())
	kept := newBreaker(t, "kept", breaker.Config{Listeners: []breaker.Listener{l}})
	kept.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	func() {
		for i := range 50 {
			b := newBreaker(t, fmt.Sprintf("dropped-%d", i), breaker.Config{Listeners: []breaker.Listener{l}})
			b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
		}
	}()
	require.Equal(t, 51, otelmetrics.CachedOutcomes(l))
	for i := 0; i < 10 && otelmetrics.CachedOutcomes(l) > 1; i++ {
		runtime.GC()
		collect(t, reader)
	}
	assert.Equal(t, 1, otelmetrics.CachedOutcomes(l), "only the live breaker's outcome stays cached")
	runtime.KeepAlive(kept)
}
