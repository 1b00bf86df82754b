package bench

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seed18491788/breaker"
)

// TestSubjects checks that each subject is in the scenario it is benchmarked
// in: closed calls succeed, failing ones never trip the circuit, an open
// circuit refuses, a half-open one admits a trial call.
func TestSubjects(t *testing.T) {
	for _, s := range append(subjects(), floors()...) {
		t.Run(s.name, func(t *testing.T) {
			call := s.make(closed)
			v, err := call(false)
			require.NoError(t, err)
			assert.Equal(t, 1, v)
			_, err = call(true)
			assert.ErrorIs(t, err, errDown)
			if strings.HasPrefix(s.name, "floor") {
				return
			}

			call = s.make(failing10)
			for i := range 200 {
				call(fails(failing10, i))
			}
			_, err = call(false)
			assert.NoError(t, err, "Failing10 tripped the circuit")

			call = s.make(open)
			_, err = call(false)
			assert.Error(t, err, "Open admitted a call")
			assert.NotErrorIs(t, err, errDown, "Open admitted a call")

			if s.name == "hystrix" {
				return // it refuses most calls in HalfOpen; see the package comment
			}
			call = s.make(halfOpen)
			_, err = call(true)
			assert.ErrorIs(t, err, errDown, "HalfOpen did not admit a trial call")
		})
	}
}

func TestGobreakerOnStateChange(t *testing.T) {
	before := gobreakerStateChanges.Load()
	call := gobreakerSubject(halfOpen)
	call(true)
	assert.Greater(t, gobreakerStateChanges.Load(), before)
}

// TestMetricsListeners checks that the listeners of breaker-time-prom and
// breaker-time-otel are attached and report the breaker's calls.
func TestMetricsListeners(t *testing.T) {
	t.Run("prom", func(t *testing.T) {
		m, reg := newPromListener()
		cfg := timeWindow
		cfg.Listeners = []breaker.Listener{m}
		b := mustNew(cfg)
		b.Execute(context.Background(), ok)

		families, err := reg.Gather()
		require.NoError(t, err)
		var successes float64
		for _, f := range families {
			if f.GetName() != "breaker_calls_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() == "success" {
						successes += m.GetCounter().GetValue()
					}
				}
			}
		}
		assert.Equal(t, 1.0, successes)
	})
	t.Run("otel", func(t *testing.T) {
		l, reader := newOtelListener()
		cfg := timeWindow
		cfg.Listeners = []breaker.Listener{l}
		b := mustNew(cfg)
		b.Execute(context.Background(), ok)

		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		var total int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "breaker.calls" {
					for _, p := range sum.DataPoints {
						total += p.Value
					}
				}
			}
		}
		assert.Equal(t, int64(1), total)
	})
}

func TestLatencies(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 1000, 20_000, 1e6, 1e9, 1 << 62, 1<<63 - 1} {
		i := bucket(v)
		require.Less(t, i, len(latencies{}.counts), "value %d", v)
		top := bucketTop(i)
		assert.GreaterOrEqual(t, top, v, "value %d", v)
		assert.LessOrEqual(t, float64(top-v), float64(v)/64, "value %d", v)
		if i > 0 {
			assert.Less(t, bucketTop(i-1), v, "value %d", v)
		}
	}

	var l latencies
	assert.Zero(t, l.quantile(0.999))
	for i := range 1000 {
		l.add(time.Duration(i+1) * time.Microsecond)
	}
	l.add(time.Second)
	assert.Equal(t, uint64(1001), l.n)
	assert.Equal(t, time.Second, l.max)
	assert.InDelta(t, float64(time.Millisecond), float64(l.quantile(0.999)), float64(time.Millisecond)/64)
	assert.Equal(t, time.Second, l.quantile(1))
}

func TestMeasure(t *testing.T) {
	var calls int
	r := measure(1, 20*time.Millisecond, func() { calls++ })
	assert.Equal(t, uint64(calls), r.lat.n)
	assert.GreaterOrEqual(t, r.elapsed, 20*time.Millisecond)
}

// TestFleetSubjects checks the fleets of the fleet benchmarks: calls from
// many goroutines at once go through; failing calls made in turn trip
// every instance after as many failures as the design allows (gobreaker's
// locked state after exactly 10, independent breakers after 10 each, and
// shared ones in between); and, for the fleets that share their state, a
// trip on one instance reaches another, whose probes the window leaves out.
func TestFleetSubjects(t *testing.T) {
	addr := startRedis(t)
	want := map[string][2]int{
		"breaker-shared":        {fleetConfig.MinimumCalls, fleetInstances * fleetConfig.MinimumCalls},
		"breaker-local":         {fleetInstances * fleetConfig.MinimumCalls, fleetInstances * fleetConfig.MinimumCalls},
		"gobreaker-distributed": {fleetConfig.MinimumCalls, fleetConfig.MinimumCalls},
	}
	for _, s := range fleetSubjects() {
		t.Run(s.name, func(t *testing.T) {
			f := s.make(t, addr, fleetName("test"), fleetConfig, 8)
			defer f.stop()
			var wg sync.WaitGroup
			for _, call := range f.calls {
				wg.Go(func() {
					for range 3 {
						assert.NoError(t, call(ok))
					}
				})
			}
			wg.Wait()

			f = s.make(t, addr, fleetName("test"), fleetConfig, fleetInstances)
			defer f.stop()
			r := untilAllRefuse(t, f.calls, 1)
			assert.Zero(t, r.gaveUp)
			assert.GreaterOrEqual(t, r.through, want[s.name][0])
			assert.LessOrEqual(t, r.through, want[s.name][1])

			f = s.make(t, addr, fleetName("test"), propagationConfig(), fleetInstances)
			defer f.stop()
			for range 20 {
				require.ErrorIs(t, f.calls[1](probe), errProbe, "a probe tripped the circuit")
			}
			require.ErrorIs(t, f.calls[0](bad), errDown)
			require.True(t, isRefusal(f.calls[0](ok)), "one failure did not trip the instance")
			if s.name == "breaker-local" {
				assert.ErrorIs(t, f.calls[1](probe), errProbe, "a local breaker heard of another's trip")
				return
			}
			assert.Eventually(t, func() bool { return isRefusal(f.calls[1](probe)) }, 5*time.Second, time.Millisecond,
				"the trip did not reach another instance")
		})
	}
	t.Run("breaker-shared-deaf", func(t *testing.T) {
		addDeafUser(t, addr)
		f := ourFleet(t, addr, fleetName("test"), propagationConfig(), fleetInstances, true, deafWatcher)
		defer f.stop()
		require.ErrorIs(t, f.calls[0](bad), errDown)
		assert.Eventually(t, func() bool { return isRefusal(f.calls[1](probe)) }, 5*time.Second, time.Millisecond,
			"the trip did not reach a deaf instance through its syncs")
	})
}
