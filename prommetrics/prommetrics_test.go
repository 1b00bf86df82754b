package prommetrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/prommetrics"
)

var errBoom = errors.New("boom")

// setup returns a breaker "db" reporting to a Collector, both on a mock
// clock: a window of 4 calls, slow from 1s, open for 10s.
func setup(t *testing.T) (*breaker.Breaker[int], *prommetrics.Collector, *clock.Mock) {
	t.Helper()
	clk := clock.NewMock()
	m := prommetrics.New(prommetrics.Opts{Buckets: []float64{0.1, 1, 5}, Now: clk.Now})
	b, err := breaker.New[int]("db", breaker.Config{
		WindowSize: 4, SlowCallDuration: time.Second, OpenTimeout: 10 * time.Second,
		Clock: clk, Listeners: []breaker.Listener{m},
	})
	require.NoError(t, err)
	return b, m, clk
}

func call(b *breaker.Breaker[int], clk *clock.Mock, took time.Duration, err error) {
	b.Execute(context.Background(), func(context.Context) (int, error) {
		clk.Add(took)
		return 1, err
	})
}

func TestCollector(t *testing.T) {
	b, m, clk := setup(t)
	call(b, clk, 0, nil)
	call(b, clk, 2*time.Second, nil) // slow
	call(b, clk, 500*time.Millisecond, errBoom)
	call(b, clk, 0, context.Canceled) // ignored
	call(b, clk, 0, errBoom)          // 2 failures in 4: open
	require.Equal(t, breaker.StateOpen, b.State())
	call(b, clk, 0, nil) // rejected

	clk.Add(4 * time.Second)
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(`
# HELP breaker_open_seconds_total Time the circuit has spent open or forced open.
# TYPE breaker_open_seconds_total counter
breaker_open_seconds_total{breaker="db"} 4
# HELP breaker_state Current state of the circuit: 1 for the state it is in, 0 for the others.
# TYPE breaker_state gauge
breaker_state{breaker="db",state="closed"} 0
breaker_state{breaker="db",state="disabled"} 0
breaker_state{breaker="db",state="forced-open"} 0
breaker_state{breaker="db",state="half-open"} 0
breaker_state{breaker="db",state="open"} 1
`), "breaker_open_seconds_total", "breaker_state"), "while open, the open time runs")

	clk.Add(6 * time.Second)
	call(b, clk, 0, nil) // the trial call closes the circuit
	require.Equal(t, breaker.StateClosed, b.State())
	clk.Add(time.Minute)

	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(`
# HELP breaker_call_duration_seconds Duration of the calls the breaker admitted, by outcome.
# TYPE breaker_call_duration_seconds histogram
breaker_call_duration_seconds_bucket{breaker="db",outcome="failure",le="0.1"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="failure",le="1"} 2
breaker_call_duration_seconds_bucket{breaker="db",outcome="failure",le="5"} 2
breaker_call_duration_seconds_bucket{breaker="db",outcome="failure",le="+Inf"} 2
breaker_call_duration_seconds_sum{breaker="db",outcome="failure"} 0.5
breaker_call_duration_seconds_count{breaker="db",outcome="failure"} 2
breaker_call_duration_seconds_bucket{breaker="db",outcome="ignored",le="0.1"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="ignored",le="1"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="ignored",le="5"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="ignored",le="+Inf"} 1
breaker_call_duration_seconds_sum{breaker="db",outcome="ignored"} 0
breaker_call_duration_seconds_count{breaker="db",outcome="ignored"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="success",le="0.1"} 2
breaker_call_duration_seconds_bucket{breaker="db",outcome="success",le="1"} 2
breaker_call_duration_seconds_bucket{breaker="db",outcome="success",le="5"} 3
breaker_call_duration_seconds_bucket{breaker="db",outcome="success",le="+Inf"} 3
breaker_call_duration_seconds_sum{breaker="db",outcome="success"} 2
breaker_call_duration_seconds_count{breaker="db",outcome="success"} 3
# HELP breaker_calls_total Calls through the circuit breaker, by outcome: success, failure, ignored or rejected.
# TYPE breaker_calls_total counter
breaker_calls_total{breaker="db",outcome="failure"} 2
breaker_calls_total{breaker="db",outcome="ignored"} 1
breaker_calls_total{breaker="db",outcome="rejected"} 1
breaker_calls_total{breaker="db",outcome="success"} 3
# HELP breaker_open_seconds_total Time the circuit has spent open or forced open.
# TYPE breaker_open_seconds_total counter
breaker_open_seconds_total{breaker="db"} 10
# HELP breaker_slow_calls_total Calls that lasted at least the breaker's SlowCallDuration.
# TYPE breaker_slow_calls_total counter
breaker_slow_calls_total{breaker="db"} 1
# HELP breaker_state Current state of the circuit: 1 for the state it is in, 0 for the others.
# TYPE breaker_state gauge
breaker_state{breaker="db",state="closed"} 1
breaker_state{breaker="db",state="disabled"} 0
breaker_state{breaker="db",state="forced-open"} 0
breaker_state{breaker="db",state="half-open"} 0
breaker_state{breaker="db",state="open"} 0
# HELP breaker_transitions_total State changes of the circuit.
# TYPE breaker_transitions_total counter
breaker_transitions_total{breaker="db",from="closed",to="open"} 1
breaker_transitions_total{breaker="db",from="half-open",to="closed"} 1
breaker_transitions_total{breaker="db",from="open",to="half-open"} 1
`)))
}

func TestCollectorForcedOpenCountsAsOpen(t *testing.T) {
	b, m, clk := setup(t)
	b.ForceOpen()
	clk.Add(3 * time.Second)
	b.Reset()
	clk.Add(time.Hour)
	assert.InDelta(t, 3, testutil.ToFloat64(openSeconds(m)), 1e-9)
}

// openSeconds is a prometheus.Collector of m's open-time metric alone.
func openSeconds(m *prommetrics.Collector) prometheus.Collector {
	return filter{m, "breaker_open_seconds_total"}
}

type filter struct {
	prometheus.Collector
	name string
}

func (f filter) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.Collector.Collect(all); close(all) }()
	for metric := range all {
		if strings.Contains(metric.Desc().String(), `"`+f.name+`"`) {
			ch <- metric
		}
	}
}

func TestCollectorRegistersAndLints(t *testing.T) {
	b, m, clk := setup(t)
	call(b, clk, 0, nil)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)

	m2 := prommetrics.New(prommetrics.Opts{Namespace: "payments_cb"})
	b2, err := breaker.New[int]("db", breaker.Config{Listeners: []breaker.Listener{m2}})
	require.NoError(t, err)
	b2.Execute(context.Background(), func(context.Context) (int, error) { return 0, nil })
	assert.Equal(t, 1, testutil.CollectAndCount(m2, "payments_cb_calls_total"))
}
