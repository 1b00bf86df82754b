package otelmetrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/otelmetrics"
)

var errBoom = errors.New("boom")

func setup(t *testing.T) (*breaker.Breaker[int], *sdkmetric.ManualReader, *clock.Mock) {
	t.Helper()
	clk := clock.NewMock()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	l, err := otelmetrics.New(mp, otelmetrics.WithBuckets(0.1, 1, 5), otelmetrics.WithNow(clk.Now))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	b, err := breaker.New[int]("db", breaker.Config{
		WindowSize: 4, SlowCallDuration: time.Second, OpenTimeout: 10 * time.Second,
		Clock: clk, Listeners: []breaker.Listener{l},
	})
	require.NoError(t, err)
	return b, reader, clk
}

func call(b *breaker.Breaker[int], clk *clock.Mock, took time.Duration, err error) {
	b.Execute(context.Background(), func(context.Context) (int, error) {
		clk.Add(took)
		return 1, err
	})
}

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

func set(kv ...string) attribute.Set {
	attrs := []attribute.KeyValue{attribute.String("breaker.name", "db")}
	for i := 0; i < len(kv); i += 2 {
		attrs = append(attrs, attribute.String(kv[i], kv[i+1]))
	}
	return attribute.NewSet(attrs...)
}

func sum[N int64 | float64](points ...metricdata.DataPoint[N]) metricdata.Sum[N] {
	return metricdata.Sum[N]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: points}
}

func TestListener(t *testing.T) {
	b, reader, clk := setup(t)
	call(b, clk, 0, nil)
	call(b, clk, 2*time.Second, nil) // slow
	call(b, clk, 500*time.Millisecond, errBoom)
	call(b, clk, 0, context.Canceled) // ignored
	call(b, clk, 0, errBoom)          // 2 failures in 4: open
	require.Equal(t, breaker.StateOpen, b.State())
	call(b, clk, 0, nil) // rejected
	clk.Add(4 * time.Second)

	got := collect(t, reader)
	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "breaker.open.time", Unit: "s", Description: "Time the circuit has spent open or forced open.",
		Data: sum(metricdata.DataPoint[float64]{Attributes: set(), Value: 4}),
	}, got["breaker.open.time"], metricdatatest.IgnoreTimestamp())

	clk.Add(6 * time.Second)
	call(b, clk, 0, nil) // the trial call closes the circuit
	clk.Add(time.Minute)
	got = collect(t, reader)

	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "breaker.calls", Unit: "{call}",
		Description: "Calls through the circuit breaker, by outcome: success, failure, ignored or rejected.",
		Data: sum(
			metricdata.DataPoint[int64]{Attributes: set("breaker.outcome", "success"), Value: 3},
			metricdata.DataPoint[int64]{Attributes: set("breaker.outcome", "failure"), Value: 2},
			metricdata.DataPoint[int64]{Attributes: set("breaker.outcome", "ignored"), Value: 1},
			metricdata.DataPoint[int64]{Attributes: set("breaker.outcome", "rejected"), Value: 1},
		),
	}, got["breaker.calls"], metricdatatest.IgnoreTimestamp())

	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "breaker.slow_calls", Unit: "{call}", Description: "Calls that lasted at least the breaker's SlowCallDuration.",
		Data: sum(metricdata.DataPoint[int64]{Attributes: set(), Value: 1}),
	}, got["breaker.slow_calls"], metricdatatest.IgnoreTimestamp())

	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "breaker.transitions", Unit: "{transition}", Description: "State changes of the circuit.",
		Data: sum(
			metricdata.DataPoint[int64]{Attributes: set("breaker.from", "closed", "breaker.to", "open"), Value: 1},
			metricdata.DataPoint[int64]{Attributes: set("breaker.from", "open", "breaker.to", "half-open"), Value: 1},
			metricdata.DataPoint[int64]{Attributes: set("breaker.from", "half-open", "breaker.to", "closed"), Value: 1},
		),
	}, got["breaker.transitions"], metricdatatest.IgnoreTimestamp())

	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "breaker.open.time", Unit: "s", Description: "Time the circuit has spent open or forced open.",
		Data: sum(metricdata.DataPoint[float64]{Attributes: set(), Value: 10}),
	}, got["breaker.open.time"], metricdatatest.IgnoreTimestamp())

	state := metricdata.Gauge[int64]{}
	for _, s := range []string{"closed", "open", "half-open", "forced-open", "disabled"} {
		v := int64(0)
		if s == "closed" {
			v = 1
		}
		state.DataPoints = append(state.DataPoints, metricdata.DataPoint[int64]{Attributes: set("breaker.state", s), Value: v})
	}
	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "breaker.state", Description: "Current state of the circuit: 1 for the state it is in, 0 for the others.",
		Data: state,
	}, got["breaker.state"], metricdatatest.IgnoreTimestamp())

	hist, ok := got["breaker.call.duration"].Data.(metricdata.Histogram[float64])
	require.True(t, ok)
	assert.Equal(t, "s", got["breaker.call.duration"].Unit)
	byOutcome := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, p := range hist.DataPoints {
		outcome, _ := p.Attributes.Value("breaker.outcome")
		byOutcome[outcome.AsString()] = p
	}
	assert.Equal(t, []float64{0.1, 1, 5}, byOutcome["success"].Bounds)
	assert.Equal(t, []uint64{2, 0, 1, 0}, byOutcome["success"].BucketCounts, "0s, 0s and 2s")
	assert.Equal(t, 2.0, byOutcome["success"].Sum)
	assert.Equal(t, []uint64{1, 1, 0, 0}, byOutcome["failure"].BucketCounts, "0s and 0.5s")
	assert.Equal(t, uint64(1), byOutcome["ignored"].Count)
	_, rejected := byOutcome["rejected"]
	assert.False(t, rejected, "refused calls have no duration")
}

func TestListenerForcedOpenCountsAsOpen(t *testing.T) {
	b, reader, clk := setup(t)
	b.ForceOpen()
	clk.Add(3 * time.Second)
	b.Reset()
	clk.Add(time.Hour)
	open := collect(t, reader)["breaker.open.time"].Data.(metricdata.Sum[float64])
	require.Len(t, open.DataPoints, 1)
	assert.InDelta(t, 3, open.DataPoints[0].Value, 1e-9)
}
