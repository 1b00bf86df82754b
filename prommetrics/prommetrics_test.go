package prommetrics_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
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

// config is a breaker on clk: a window of 4 calls, slow from 1s, open for
// 10s, reporting to m.
func config(clk *clock.Mock, m *prommetrics.Collector) breaker.Config {
	return breaker.Config{
		WindowSize: 4, SlowCallDuration: time.Second, OpenTimeout: 10 * time.Second,
		Clock: clk, Listeners: []breaker.Listener{m},
	}
}

// newBreaker returns a breaker that stays alive until the test ends: a
// Collector does not keep the breakers it reports alive.
func newBreaker(t *testing.T, name string, cfg breaker.Config) *breaker.Breaker[int] {
	t.Helper()
	b, err := breaker.New[int](name, cfg)
	require.NoError(t, err)
	keepAlive(t, b)
	return b
}

// keepAlive keeps v alive until the test ends.
func keepAlive(t *testing.T, v any) {
	t.Cleanup(func() { runtime.KeepAlive(v) })
}

// newRegistry returns a registry that stays alive, with its breakers, until
// the test ends.
func newRegistry(t *testing.T, cfg breaker.Config) *breaker.Registry {
	t.Helper()
	reg, err := breaker.NewRegistry(cfg)
	require.NoError(t, err)
	keepAlive(t, reg)
	return reg
}

// call makes a call through b that lasts took on clk and returns err.
func call(b *breaker.Breaker[int], clk *clock.Mock, took time.Duration, err error) error {
	_, err = b.Execute(context.Background(), func(context.Context) (int, error) {
		clk.Add(took)
		return 1, err
	})
	return err
}

// compare checks the metrics named names that c collects against want, in
// the text format without HELP and TYPE lines, which it adds from the
// metrics of New(Opts{}).
func compare(t *testing.T, c prometheus.Collector, want string, names ...string) {
	t.Helper()
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(withHeaders(want)), names...))
}

var help = map[string]string{
	"breaker_state":              "Breakers of the name in each state: for one breaker, 1 for the state it is in and 0 for the others.",
	"breaker_calls_total":        "Calls through the circuit breaker, by outcome: success, failure, ignored, rejected_open or rejected_half_open.",
	"breaker_slow_calls_total":   "Calls that lasted at least the breaker's SlowCallDuration.",
	"breaker_opens_total":        "Times the circuit opened, ForceOpen aside.",
	"breaker_open_seconds_total": "Time the circuit has spent open or forced open.",
	"breaker_failure_rate":       "Fraction of the calls in the window that failed.",
	"breaker_slow_call_rate":     "Fraction of the calls in the window that were slow.",
	"breaker_window_calls":       "Calls recorded in the window.",
}

// withHeaders adds a HELP and a TYPE line before the first sample of each
// metric in samples.
func withHeaders(samples string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(samples), "\n") {
		line = strings.TrimSpace(line)
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if !seen[name] {
			seen[name] = true
			typ := "gauge"
			if strings.HasSuffix(name, "_total") {
				typ = "counter"
			}
			b.WriteString("# HELP " + name + " " + help[name] + "\n# TYPE " + name + " " + typ + "\n")
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func TestCollectorScripted(t *testing.T) {
	clk := clock.NewMock()
	m := prommetrics.New(prommetrics.Opts{})
	b := newBreaker(t, "db", config(clk, m))

	require.NoError(t, call(b, clk, 0, nil))
	require.NoError(t, call(b, clk, 2*time.Second, nil)) // slow
	require.ErrorIs(t, call(b, clk, 500*time.Millisecond, errBoom), errBoom)
	compare(t, m, `
		breaker_state{breaker="db",state="closed"} 1
		breaker_state{breaker="db",state="open"} 0
		breaker_state{breaker="db",state="half-open"} 0
		breaker_state{breaker="db",state="forced-open"} 0
		breaker_state{breaker="db",state="disabled"} 0
		breaker_failure_rate{breaker="db"} 0.3333333333333333
		breaker_slow_call_rate{breaker="db"} 0.3333333333333333
		breaker_window_calls{breaker="db"} 3
	`, "breaker_state", "breaker_failure_rate", "breaker_slow_call_rate", "breaker_window_calls")

	require.ErrorIs(t, call(b, clk, 0, context.Canceled), context.Canceled) // ignored
	require.ErrorIs(t, call(b, clk, 0, errBoom), errBoom)                   // 2 failures in 4: open
	require.Equal(t, breaker.StateOpen, b.State())
	require.ErrorIs(t, call(b, clk, 0, nil), breaker.ErrOpen)
	require.ErrorIs(t, call(b, clk, 0, nil), breaker.ErrOpen)
	clk.Add(4 * time.Second)
	compare(t, m, `
		breaker_state{breaker="db",state="closed"} 0
		breaker_state{breaker="db",state="open"} 1
		breaker_state{breaker="db",state="half-open"} 0
		breaker_state{breaker="db",state="forced-open"} 0
		breaker_state{breaker="db",state="disabled"} 0
		breaker_open_seconds_total{breaker="db"} 4
		breaker_opens_total{breaker="db"} 1
	`, "breaker_state", "breaker_open_seconds_total", "breaker_opens_total")

	clk.Add(6 * time.Second)
	done, err := b.Allow() // the trial call
	require.NoError(t, err)
	_, err = b.Allow()
	require.ErrorIs(t, err, breaker.ErrTooManyCalls)
	compare(t, m, `
		breaker_state{breaker="db",state="closed"} 0
		breaker_state{breaker="db",state="open"} 0
		breaker_state{breaker="db",state="half-open"} 1
		breaker_state{breaker="db",state="forced-open"} 0
		breaker_state{breaker="db",state="disabled"} 0
	`, "breaker_state")
	done(nil) // closes the circuit
	require.Equal(t, breaker.StateClosed, b.State())
	clk.Add(time.Minute)

	compare(t, m, `
		breaker_state{breaker="db",state="closed"} 1
		breaker_state{breaker="db",state="open"} 0
		breaker_state{breaker="db",state="half-open"} 0
		breaker_state{breaker="db",state="forced-open"} 0
		breaker_state{breaker="db",state="disabled"} 0
		breaker_calls_total{breaker="db",outcome="success"} 3
		breaker_calls_total{breaker="db",outcome="failure"} 2
		breaker_calls_total{breaker="db",outcome="ignored"} 1
		breaker_calls_total{breaker="db",outcome="rejected_open"} 2
		breaker_calls_total{breaker="db",outcome="rejected_half_open"} 1
		breaker_slow_calls_total{breaker="db"} 1
		breaker_opens_total{breaker="db"} 1
		breaker_open_seconds_total{breaker="db"} 10
		breaker_failure_rate{breaker="db"} 0
		breaker_slow_call_rate{breaker="db"} 0
		breaker_window_calls{breaker="db"} 0
	`)
}

func TestCollectorForcedOpen(t *testing.T) {
	clk := clock.NewMock()
	m := prommetrics.New(prommetrics.Opts{})
	b := newBreaker(t, "db", config(clk, m))
	b.ForceOpen()
	require.ErrorIs(t, call(b, clk, 0, nil), breaker.ErrOpen)
	clk.Add(3 * time.Second)
	compare(t, m, `
		breaker_state{breaker="db",state="closed"} 0
		breaker_state{breaker="db",state="open"} 0
		breaker_state{breaker="db",state="half-open"} 0
		breaker_state{breaker="db",state="forced-open"} 1
		breaker_state{breaker="db",state="disabled"} 0
		breaker_calls_total{breaker="db",outcome="success"} 0
		breaker_calls_total{breaker="db",outcome="failure"} 0
		breaker_calls_total{breaker="db",outcome="ignored"} 0
		breaker_calls_total{breaker="db",outcome="rejected_open"} 1
		breaker_calls_total{breaker="db",outcome="rejected_half_open"} 0
		breaker_open_seconds_total{breaker="db"} 3
		breaker_opens_total{breaker="db"} 0
	`, "breaker_state", "breaker_calls_total", "breaker_open_seconds_total", "breaker_opens_total")
	b.Reset()
	clk.Add(time.Hour)
	compare(t, m, `breaker_open_seconds_total{breaker="db"} 3`, "breaker_open_seconds_total")
}

func TestCollectorSumsSameNames(t *testing.T) {
	clk := clock.NewMock()
	m := prommetrics.New(prommetrics.Opts{})
	reg1, reg2 := newRegistry(t, config(clk, m)), newRegistry(t, config(clk, m))
	a, err := breaker.Get[int](reg1, "db")
	require.NoError(t, err)
	b, err := breaker.Get[int](reg2, "db")
	require.NoError(t, err)
	other := newBreaker(t, "cache", config(clk, m))

	require.NoError(t, call(a, clk, 0, nil))
	require.ErrorIs(t, call(a, clk, 0, errBoom), errBoom)
	require.NoError(t, call(b, clk, 2*time.Second, nil))
	require.NoError(t, call(b, clk, 0, nil))
	require.NoError(t, call(b, clk, 0, nil))
	require.NoError(t, call(other, clk, 0, nil))
	b.ForceOpen()
	require.ErrorIs(t, call(b, clk, 0, nil), breaker.ErrOpen)
	clk.Add(5 * time.Second)

	compare(t, m, `
		breaker_state{breaker="cache",state="closed"} 1
		breaker_state{breaker="cache",state="open"} 0
		breaker_state{breaker="cache",state="half-open"} 0
		breaker_state{breaker="cache",state="forced-open"} 0
		breaker_state{breaker="cache",state="disabled"} 0
		breaker_state{breaker="db",state="closed"} 1
		breaker_state{breaker="db",state="open"} 0
		breaker_state{breaker="db",state="half-open"} 0
		breaker_state{breaker="db",state="forced-open"} 1
		breaker_state{breaker="db",state="disabled"} 0
		breaker_calls_total{breaker="cache",outcome="success"} 1
		breaker_calls_total{breaker="cache",outcome="failure"} 0
		breaker_calls_total{breaker="cache",outcome="ignored"} 0
		breaker_calls_total{breaker="cache",outcome="rejected_open"} 0
		breaker_calls_total{breaker="cache",outcome="rejected_half_open"} 0
		breaker_calls_total{breaker="db",outcome="success"} 4
		breaker_calls_total{breaker="db",outcome="failure"} 1
		breaker_calls_total{breaker="db",outcome="ignored"} 0
		breaker_calls_total{breaker="db",outcome="rejected_open"} 1
		breaker_calls_total{breaker="db",outcome="rejected_half_open"} 0
		breaker_slow_calls_total{breaker="cache"} 0
		breaker_slow_calls_total{breaker="db"} 1
		breaker_open_seconds_total{breaker="cache"} 0
		breaker_open_seconds_total{breaker="db"} 5
		breaker_failure_rate{breaker="cache"} 0
		breaker_failure_rate{breaker="db"} 0.2
		breaker_window_calls{breaker="cache"} 1
		breaker_window_calls{breaker="db"} 5
	`, "breaker_state", "breaker_calls_total", "breaker_slow_calls_total", "breaker_open_seconds_total",
		"breaker_failure_rate", "breaker_window_calls")

	b.Reset() // empties b's window
	require.NoError(t, call(b, clk, 0, nil))
	compare(t, m, `
		breaker_failure_rate{breaker="cache"} 0
		breaker_failure_rate{breaker="db"} 0.3333333333333333
		breaker_window_calls{breaker="cache"} 1
		breaker_window_calls{breaker="db"} 3
	`, "breaker_failure_rate", "breaker_window_calls")
}

func TestCollectorListedTwiceCountsOnce(t *testing.T) {
	clk := clock.NewMock()
	m := prommetrics.New(prommetrics.Opts{})
	cfg := config(clk, m)
	cfg.Listeners = append(cfg.Listeners, m)
	b := newBreaker(t, "db", cfg)
	require.NoError(t, call(b, clk, 0, nil))
	compare(t, m, `breaker_window_calls{breaker="db"} 1`, "breaker_window_calls")
}

func TestCollectorForgetsDroppedBreakers(t *testing.T) {
	clk := clock.NewMock()
	m := prommetrics.New(prommetrics.Opts{})
	newBreaker(t, "kept", config(clk, m))
	func() {
		b, err := breaker.New[int]("dropped", config(clk, m))
		require.NoError(t, err)
		require.NoError(t, call(b, clk, 0, nil))
		compare(t, m, `
			breaker_window_calls{breaker="dropped"} 1
			breaker_window_calls{breaker="kept"} 0
		`, "breaker_window_calls")
	}()
	for range 10 {
		runtime.GC()
		if testutil.CollectAndCount(m, "breaker_window_calls") == 1 {
			break
		}
	}
	compare(t, m, `breaker_window_calls{breaker="kept"} 0`, "breaker_window_calls")
}

func TestCollectorForgetsDurationsOfDroppedBreakers(t *testing.T) {
	clk := clock.NewMock()
	m := prommetrics.New(prommetrics.Opts{Durations: true, Buckets: []float64{1}})
	kept := newBreaker(t, "kept", config(clk, m))
	require.NoError(t, call(kept, clk, 0, nil))
	func() {
		b, err := breaker.New[int]("dropped", config(clk, m))
		require.NoError(t, err)
		require.NoError(t, call(b, clk, 0, nil))
	}()
	histograms := func() int { return testutil.CollectAndCount(m, "breaker_call_duration_seconds") }
	require.Equal(t, 2, histograms())
	for i := 0; i < 10 && testutil.CollectAndCount(m, "breaker_window_calls") > 1; i++ {
		runtime.GC()
	}
	require.Equal(t, 1, testutil.CollectAndCount(m, "breaker_window_calls"), "the dropped breaker is gone")
	// The scrape that first finds the name gone still reports its
	// durations; the next one drops them.
	histograms()
	assert.Equal(t, 1, histograms(), "only the live breaker keeps a histogram")
	require.NoError(t, call(kept, clk, 0, nil))
	assert.Equal(t, 1, histograms())
}

func TestCollectorDurations(t *testing.T) {
	clk := clock.NewMock()
	assert.Zero(t, prommetrics.New(prommetrics.Opts{}).EventMask(), "without Durations the Collector hears nothing")
	m := prommetrics.New(prommetrics.Opts{Durations: true, Buckets: []float64{0.1, 1, 5}})
	assert.Equal(t, breaker.Mask(breaker.EventSuccess, breaker.EventFailure, breaker.EventIgnored), m.EventMask())
	b := newBreaker(t, "db", config(clk, m))

	require.NoError(t, call(b, clk, 0, nil))
	require.NoError(t, call(b, clk, 2*time.Second, nil))
	require.NoError(t, call(b, clk, 50*time.Millisecond, nil))
	require.ErrorIs(t, call(b, clk, 500*time.Millisecond, errBoom), errBoom)
	require.ErrorIs(t, call(b, clk, 10*time.Second, context.Canceled), context.Canceled)
	b.ForceOpen()
	require.ErrorIs(t, call(b, clk, 0, nil), breaker.ErrOpen) // no duration

	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(`
# HELP breaker_call_duration_seconds Duration of the calls the breaker admitted, by outcome: success, failure or ignored.
# TYPE breaker_call_duration_seconds histogram
breaker_call_duration_seconds_bucket{breaker="db",outcome="failure",le="0.1"} 0
breaker_call_duration_seconds_bucket{breaker="db",outcome="failure",le="1"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="failure",le="5"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="failure",le="+Inf"} 1
breaker_call_duration_seconds_sum{breaker="db",outcome="failure"} 0.5
breaker_call_duration_seconds_count{breaker="db",outcome="failure"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="ignored",le="0.1"} 0
breaker_call_duration_seconds_bucket{breaker="db",outcome="ignored",le="1"} 0
breaker_call_duration_seconds_bucket{breaker="db",outcome="ignored",le="5"} 0
breaker_call_duration_seconds_bucket{breaker="db",outcome="ignored",le="+Inf"} 1
breaker_call_duration_seconds_sum{breaker="db",outcome="ignored"} 10
breaker_call_duration_seconds_count{breaker="db",outcome="ignored"} 1
breaker_call_duration_seconds_bucket{breaker="db",outcome="success",le="0.1"} 2
breaker_call_duration_seconds_bucket{breaker="db",outcome="success",le="1"} 2
breaker_call_duration_seconds_bucket{breaker="db",outcome="success",le="5"} 3
breaker_call_duration_seconds_bucket{breaker="db",outcome="success",le="+Inf"} 3
breaker_call_duration_seconds_sum{breaker="db",outcome="success"} 2.05
breaker_call_duration_seconds_count{breaker="db",outcome="success"} 3
`), "breaker_call_duration_seconds"))
}

func TestCollectorDefaultBuckets(t *testing.T) {
	m := prommetrics.New(prommetrics.Opts{Durations: true})
	b := newBreaker(t, "db", breaker.Config{Listeners: []breaker.Listener{m}})
	_, err := b.Execute(context.Background(), func(context.Context) (int, error) { return 0, nil })
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "breaker_call_duration_seconds" {
			require.Len(t, f.GetMetric(), 1)
			assert.Len(t, f.GetMetric()[0].GetHistogram().GetBucket(), len(prometheus.DefBuckets))
			return
		}
	}
	t.Fatal("no breaker_call_duration_seconds")
}

func TestCollectorLints(t *testing.T) {
	for name, opts := range map[string]prommetrics.Opts{
		"default":    {},
		"durations":  {Durations: true},
		"namespaced": {Namespace: "payments_cb", Durations: true},
	} {
		t.Run(name, func(t *testing.T) {
			clk := clock.NewMock()
			m := prommetrics.New(opts)
			b := newBreaker(t, "db", config(clk, m))
			require.NoError(t, call(b, clk, 0, nil))
			require.ErrorIs(t, call(b, clk, 0, errBoom), errBoom)
			reg := prometheus.NewPedanticRegistry() // checks Collect against Describe
			require.NoError(t, reg.Register(m))
			problems, err := testutil.GatherAndLint(reg)
			require.NoError(t, err)
			assert.Empty(t, problems)

			ns := opts.Namespace
			if ns == "" {
				ns = "breaker"
			}
			families, series := 8, 5+5+6 // state and calls_total have 5 each
			if opts.Durations {
				families, series = families+1, series+2 // a success and a failure histogram
			}
			n, err := testutil.GatherAndCount(reg)
			require.NoError(t, err)
			assert.Equal(t, series, n)
			assert.Equal(t, 5, testutil.CollectAndCount(m, ns+"_calls_total"))
			gathered, err := reg.Gather()
			require.NoError(t, err)
			assert.Len(t, gathered, families)
		})
	}
}

func TestCollectorInvalidUTF8Name(t *testing.T) {
	m := prommetrics.New(prommetrics.Opts{Durations: true})
	b := newBreaker(t, "db\xff", breaker.Config{Listeners: []breaker.Listener{m}})
	_, err := b.Execute(context.Background(), func(context.Context) (int, error) { return 0, nil })
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))
	_, err = reg.Gather()
	require.NoError(t, err)
	assert.Equal(t, 1, testutil.CollectAndCount(m, "breaker_call_duration_seconds"))
	compare(t, m, `breaker_window_calls{breaker="db`+"\uFFFD"+`"} 1`, "breaker_window_calls")
}

func TestCollectorInRegistryDefaults(t *testing.T) {
	clk := clock.NewMock()
	m := prommetrics.New(prommetrics.Opts{})
	reg := newRegistry(t, config(clk, m))
	require.NoError(t, reg.Configure("cache", func(c *breaker.Config) { c.FailureRateThreshold = 0.2 }))
	compare(t, m, ``, "breaker_window_calls")

	db, err := breaker.Get[int](reg, "db")
	require.NoError(t, err)
	_, err = breaker.Get[string](reg, "api")
	require.NoError(t, err)
	_, err = breaker.Get[bool](reg, "cache")
	require.NoError(t, err)
	require.NoError(t, call(db, clk, 0, nil))
	reg.Circuits()[0].ForceOpen() // "api"
	compare(t, m, `
		breaker_state{breaker="api",state="closed"} 0
		breaker_state{breaker="api",state="open"} 0
		breaker_state{breaker="api",state="half-open"} 0
		breaker_state{breaker="api",state="forced-open"} 1
		breaker_state{breaker="api",state="disabled"} 0
		breaker_state{breaker="cache",state="closed"} 1
		breaker_state{breaker="cache",state="open"} 0
		breaker_state{breaker="cache",state="half-open"} 0
		breaker_state{breaker="cache",state="forced-open"} 0
		breaker_state{breaker="cache",state="disabled"} 0
		breaker_state{breaker="db",state="closed"} 1
		breaker_state{breaker="db",state="open"} 0
		breaker_state{breaker="db",state="half-open"} 0
		breaker_state{breaker="db",state="forced-open"} 0
		breaker_state{breaker="db",state="disabled"} 0
		breaker_window_calls{breaker="api"} 0
		breaker_window_calls{breaker="cache"} 0
		breaker_window_calls{breaker="db"} 1
	`, "breaker_state", "breaker_window_calls")
}

// TestCollectorConcurrent scrapes while calls go on, for -race: each
// scrape must see the counters no lower than the last one did.
func TestCollectorConcurrent(t *testing.T) {
	const workers, calls = 8, 2000
	m := prommetrics.New(prommetrics.Opts{Durations: true})
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(m))
	bs := []*breaker.Breaker[int]{
		newBreaker(t, "a", breaker.Config{Listeners: []breaker.Listener{m}}),
		newBreaker(t, "b", breaker.Config{Listeners: []breaker.Listener{m}, Window: breaker.TimeWindow}),
	}

	stop := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		var last float64
		for {
			total, err := successes(reg)
			if err == nil && total < last {
				err = errors.New("breaker_calls_total went down")
			}
			if err != nil {
				scraped <- err
				return
			}
			last = total
			select {
			case <-stop:
				scraped <- nil
				return
			default:
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := bs[w%len(bs)]
			for range calls {
				_, _ = b.Execute(context.Background(), func(context.Context) (int, error) { return 0, nil })
			}
		}()
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-scraped)

	total, err := successes(reg)
	require.NoError(t, err)
	assert.Equal(t, float64(workers*calls), total)
	families, err := reg.Gather()
	require.NoError(t, err)
	var observed uint64
	for _, f := range families {
		if f.GetName() == "breaker_call_duration_seconds" {
			for _, metric := range f.GetMetric() {
				observed += metric.GetHistogram().GetSampleCount()
			}
		}
	}
	assert.Equal(t, uint64(workers*calls), observed)
}

// successes gathers reg and sums breaker_calls_total{outcome="success"}.
func successes(reg *prometheus.Registry) (float64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, f := range families {
		if f.GetName() != "breaker_calls_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "success" {
					total += metric.GetCounter().GetValue()
				}
			}
		}
	}
	return total, nil
}
