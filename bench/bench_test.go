// Package bench measures breaker against the best-known Go circuit breakers
// on the same scenarios, side by side. It holds benchmarks only; see
// BENCHMARKS.md at the repository root for how to run them and the figures.
//
// Every benchmark is named Benchmark<Scenario>/mode=<mode>/lib=<subject>, so
// that benchstat -table .name -row /lib -col /mode puts the subjects side by
// side. Scenarios:
//
//   - Closed: every call succeeds.
//   - Failing10: every tenth call fails; the circuit never trips.
//   - Open: every call is refused.
//   - HalfOpen: every call finds the open wait over and is a trial call
//     that fails and reopens the circuit.
//
// Each runs serial and under b.RunParallel. The wrapped call returns 1, nil
// (or 0 and an error). The subjects and how they are configured, as close to
// breaker's defaults as their APIs allow (trip at a 50% failure rate once
// 10 calls are recorded, a 30s open wait):
//
//   - breaker-count: breaker with its default count window of 100 calls.
//   - breaker-count-slow: the same with slow-call tracking on (two clock
//     reads per call).
//   - breaker-time: breaker with a 60s time window in 6s buckets.
//   - breaker-time-slow: the same with slow-call tracking on.
//   - gobreaker: sony/gobreaker v2, rolling window of 60s in 6s buckets
//     (Interval, BucketPeriod), ReadyToTrip at 50% of at least 10 requests.
//     It has no count window and no slow-call tracking.
//   - failsafe: failsafe-go, count-based ratio of 50 failures in the last
//     100 executions (it has no minimum-calls setting), run through
//     failsafe.With(cb).Get. No slow-call tracking.
//   - hystrix: afex/hystrix-go, error percentage 50 over at least 10
//     requests in its fixed 10s rolling window, 1000 ms timeout, concurrency
//     limit raised out of the way. It runs every call on a goroutine of its
//     own. Its shortest open wait is 1 ms, so in HalfOpen most of its calls
//     are refusals, not trials: its figure there understates a probe's cost.
//
// For HalfOpen every subject trips on one failure, admits one trial call
// and waits 1ns (hystrix: 1 ms) before the next. For Open the circuit is
// tripped by failures with an hour's wait.
//
// The floor subjects are what any breaker must at least cost: floor-call
// calls the function and nothing else; floor-now-1 and floor-now-2 add one
// and two time.Now reads, floor-mono-1 and floor-mono-2 one and two reads of
// the monotonic clock alone (time.Since), the cheapest clock Go offers. A
// count window with slow tracking off needs no clock read, a time window
// one, slow tracking two.
package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	gobreaker "github.com/sony/gobreaker/v2"

	"github.com/seed18491788/breaker"
)

type scenario int

const (
	closed scenario = iota
	failing10
	open
	halfOpen
)

var errDown = errors.New("downstream failed")

func ok(context.Context) (int, error)  { return 1, nil }
func bad(context.Context) (int, error) { return 0, errDown }

// caller makes one call through a subject; fail says whether the wrapped
// call fails.
type caller func(fail bool) (int, error)

type subject struct {
	name string
	make func(scenario) caller
}

func subjects() []subject {
	return []subject{
		{"breaker-count", ours(breaker.Config{})},
		{"breaker-count-slow", ours(breaker.Config{SlowCallDuration: time.Second})},
		{"breaker-time", ours(breaker.Config{Window: breaker.TimeWindow})},
		{"breaker-time-slow", ours(breaker.Config{Window: breaker.TimeWindow, SlowCallDuration: time.Second})},
		{"gobreaker", gobreakerSubject},
		{"failsafe", failsafeSubject},
		{"hystrix", hystrixSubject},
	}
}

func floors() []subject {
	plain := func(scenario) caller {
		return func(fail bool) (int, error) {
			if fail {
				return bad(context.Background())
			}
			return ok(context.Background())
		}
	}
	var sink atomic.Int64
	withClock := func(read func() int64, n int) func(scenario) caller {
		return func(sc scenario) caller {
			call := plain(sc)
			return func(fail bool) (int, error) {
				t := read()
				v, err := call(fail)
				if n == 2 {
					t = read() - t
				}
				if t == 42 { // never: keeps the reads from being optimized away
					sink.Add(t)
				}
				return v, err
			}
		}
	}
	base := time.Now()
	now := func() int64 { return time.Now().UnixNano() }
	mono := func() int64 { return int64(time.Since(base)) }
	return []subject{
		{"floor-call", plain},
		{"floor-now-1", withClock(now, 1)},
		{"floor-now-2", withClock(now, 2)},
		{"floor-mono-1", withClock(mono, 1)},
		{"floor-mono-2", withClock(mono, 2)},
	}
}

func ours(cfg breaker.Config) func(scenario) caller {
	return func(sc scenario) caller {
		switch sc {
		case open:
			cfg.WindowSize, cfg.MinimumCalls, cfg.OpenTimeout = 1, 1, time.Hour
		case halfOpen:
			cfg.WindowSize, cfg.MinimumCalls, cfg.OpenTimeout = 1, 1, time.Nanosecond
		}
		b, err := breaker.New[int]("bench", cfg)
		if err != nil {
			panic(err)
		}
		call := func(fail bool) (int, error) {
			if fail {
				return b.Execute(context.Background(), bad)
			}
			return b.Execute(context.Background(), ok)
		}
		return prepare(sc, call)
	}
}

func gobreakerSubject(sc scenario) caller {
	st := gobreaker.Settings{
		Name:         "bench",
		Interval:     60 * time.Second,
		BucketPeriod: 6 * time.Second,
		Timeout:      30 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= 10 && float64(c.TotalFailures) >= 0.5*float64(c.Requests)
		},
	}
	switch sc {
	case open, halfOpen:
		st.ReadyToTrip = func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }
		st.Timeout = time.Hour
		if sc == halfOpen {
			st.Timeout = time.Nanosecond
		}
	}
	cb := gobreaker.NewCircuitBreaker[int](st)
	okFn := func() (int, error) { return ok(context.Background()) }
	badFn := func() (int, error) { return bad(context.Background()) }
	return prepare(sc, func(fail bool) (int, error) {
		if fail {
			return cb.Execute(badFn)
		}
		return cb.Execute(okFn)
	})
}

func failsafeSubject(sc scenario) caller {
	builder := circuitbreaker.NewBuilder[int]().
		WithFailureThresholdRatio(50, 100).
		WithDelay(30 * time.Second)
	switch sc {
	case open:
		builder = circuitbreaker.NewBuilder[int]().WithDelay(time.Hour)
	case halfOpen:
		builder = circuitbreaker.NewBuilder[int]().WithDelay(time.Nanosecond)
	}
	exec := failsafe.With[int](builder.Build())
	okFn := func() (int, error) { return ok(context.Background()) }
	badFn := func() (int, error) { return bad(context.Background()) }
	return prepare(sc, func(fail bool) (int, error) {
		if fail {
			return exec.Get(badFn)
		}
		return exec.Get(okFn)
	})
}

// hystrixCallers holds one command per scenario: every hystrix-go command
// keeps goroutines and tickers of its own for good, which would slow down
// every later benchmark if each run made a new one.
var hystrixCallers sync.Map

func hystrixSubject(sc scenario) caller {
	if c, ok := hystrixCallers.Load(sc); ok {
		return c.(caller)
	}
	c := newHystrixCaller(sc)
	hystrixCallers.Store(sc, c)
	return c
}

func newHystrixCaller(sc scenario) caller {
	name := fmt.Sprintf("bench-%d", sc)
	cfg := hystrix.CommandConfig{
		Timeout:                1000,
		MaxConcurrentRequests:  1 << 20,
		RequestVolumeThreshold: 10,
		SleepWindow:            30_000,
		ErrorPercentThreshold:  50,
	}
	switch sc {
	case open:
		cfg.SleepWindow = 3_600_000
	case halfOpen:
		cfg.SleepWindow = 1
	}
	hystrix.ConfigureCommand(name, cfg)
	circuit, _, err := hystrix.GetCircuit(name)
	if err != nil {
		panic(err)
	}
	call := func(fail bool) (int, error) {
		var v int
		err := hystrix.Do(name, func() error {
			var err error
			if fail {
				v, err = bad(context.Background())
			} else {
				v, err = ok(context.Background())
			}
			return err
		}, nil)
		return v, err
	}
	if sc == open || sc == halfOpen {
		// hystrix-go counts outcomes on a goroutine of its own, so the
		// circuit opens a little after the failures.
		for deadline := time.Now().Add(5 * time.Second); !circuit.IsOpen(); {
			if time.Now().After(deadline) {
				panic("hystrix: the circuit did not open")
			}
			call(true)
			time.Sleep(time.Millisecond)
		}
	}
	return prepare(sc, call)
}

// prepare trips the circuit for the scenarios that start open.
func prepare(sc scenario, call caller) caller {
	if sc == open || sc == halfOpen {
		for range 20 {
			call(true)
		}
		if _, err := call(false); err == nil && sc == open {
			panic("the circuit did not open")
		}
	}
	return call
}

// run benchmarks each subject on sc, serial and parallel.
func run(b *testing.B, sc scenario, subs []subject) {
	for _, mode := range []string{"serial", "parallel"} {
		for _, s := range subs {
			b.Run("mode="+mode+"/lib="+s.name, func(b *testing.B) {
				call := s.make(sc)
				b.ReportAllocs()
				if mode == "serial" {
					for i := 0; b.Loop(); i++ {
						call(fails(sc, i))
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						call(fails(sc, i))
					}
				})
			})
		}
	}
}

// fails says whether call i of scenario sc fails.
func fails(sc scenario, i int) bool {
	switch sc {
	case failing10:
		return i%10 == 9
	case halfOpen:
		return true
	}
	return false
}

func BenchmarkClosed(b *testing.B)    { run(b, closed, append(subjects(), floors()...)) }
func BenchmarkFailing10(b *testing.B) { run(b, failing10, subjects()) }
func BenchmarkOpen(b *testing.B)      { run(b, open, subjects()) }
func BenchmarkHalfOpen(b *testing.B)  { run(b, halfOpen, subjects()) }

// stepClock moves forward by step on every reading. It is for one
// goroutine.
type stepClock struct {
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.now = c.now.Add(c.step)
	return c.now
}

// BenchmarkTimeWindowRate shows that a time window's cost per call and its
// memory do not grow with the number of calls it holds: the clock moves so
// that a 1s window holds from a thousand to ten million calls.
func BenchmarkTimeWindowRate(b *testing.B) {
	for _, perWindow := range []int{1e3, 1e4, 1e5, 1e6, 1e7} {
		b.Run(fmt.Sprintf("calls-per-window=%d", perWindow), func(b *testing.B) {
			clk := &stepClock{now: time.Unix(0, 0), step: time.Second / time.Duration(perWindow)}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			br, err := breaker.New[int]("bench", breaker.Config{Window: breaker.TimeWindow, WindowDuration: time.Second, Clock: clk})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				br.Execute(context.Background(), ok)
			}
			b.StopTimer()
			if m := br.Metrics(); m.Calls < perWindow*9/10 && b.N > 2*perWindow {
				b.Fatalf("the window holds %d calls, want about %d", m.Calls, perWindow)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "heap-B")
			runtime.KeepAlive(br)
		})
	}
}
