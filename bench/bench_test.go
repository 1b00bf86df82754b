// Package bench measures breaker against the best-known Go circuit breakers
// on the same scenarios, side by side. It holds benchmarks only; bench/run
// runs them all and prints the tables of BENCHMARKS.md.
//
// # Call-path benchmarks
//
// BenchmarkClosed, BenchmarkFailing10, BenchmarkOpen and BenchmarkHalfOpen
// are named Benchmark<Scenario>/mode=<mode>/lib=<subject>, so that
// benchstat -table .name -row /lib -col /mode puts the subjects side by
// side. Scenarios:
//
//   - Closed: every call succeeds.
//   - Failing10: every tenth call fails; the circuit never trips.
//   - Open: every call is refused.
//   - HalfOpen: every call finds the open wait over and is a trial call
//     that fails and reopens the circuit: two state changes per call.
//
// Each runs serial (mode=serial) and under b.RunParallel (mode=parallel).
// The wrapped call returns 1, nil (or 0 and an error). The subjects and
// how they are configured, as close to one another as their APIs allow
// (trip at a 50% failure rate once 10 calls are recorded, a 30s open wait):
//
//   - breaker-time: breaker with a time window of 60s in 6s buckets
//     (Config{Window: TimeWindow}, its defaults) and no listener. It reads
//     the monotonic clock once per call, as gobreaker's rolling window reads
//     the clock; it is the like-for-like subject for gobreaker.
//   - breaker-time-prom: breaker-time with a prommetrics.Collector attached
//     as the README shows, prommetrics.New(prommetrics.Opts{}) registered
//     in a registry of its own (prometheus.NewRegistry) and listed in
//     Config.Listeners. It reads the breakers' counts when scraped, so it
//     hears no events.
//   - breaker-time-otel: breaker-time with an otelmetrics.Listener attached,
//     made from an OpenTelemetry SDK MeterProvider with a ManualReader.
//   - breaker-time-slow: breaker-time with slow-call tracking on
//     (SlowCallDuration 1s): two clock reads per call.
//   - breaker-count, breaker-count-slow: breaker with its default count
//     window of the last 100 calls, slow-call tracking off and on. With
//     tracking off a closed call reads no clock at all, which no time
//     window can match: these are not comparable with a time window (nor
//     with gobreaker's rolling one), only with their floors.
//   - gobreaker: sony/gobreaker v2 with its rolling window of 60s in 6s
//     buckets (Interval, BucketPeriod), ReadyToTrip at 50% of at least 10
//     requests, and an OnStateChange callback that bumps a counter, as
//     users set one (gobreaker calls it with its mutex held). It has no
//     count window and no slow-call tracking.
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
// The floors (Closed only) are what any breaker must at least cost:
// floor-call calls the function and nothing else; floor-mono-1 and
// floor-mono-2 add one and two reads of the monotonic clock (time.Since),
// the clock breaker reads. A count window with slow tracking off needs no
// clock read, a time window one, slow tracking two.
//
// # Other benchmarks
//
//   - BenchmarkTimeWindowRate: a time window's cost per call and its memory
//     do not grow with the number of calls it holds.
//   - BenchmarkMemoryPerBreaker/procs=<GOMAXPROCS>/lib=<subject>: heap bytes
//     per breaker (B/breaker) of 10,000 breakers, each used for one
//     successful call, under GOMAXPROCS 1, 16 and 128: breaker-count
//     (Config{}), breaker-time (Config{Window: TimeWindow}) and gobreaker
//     (the settings above). It does its work once, whatever b.N: run it with
//     -benchtime 1x.
//   - BenchmarkSlowListener/lib=<breaker|floor>: 8 goroutines call a trivial
//     function through a time-window breaker whose ListenerFunc spins for
//     20µs on every event, for 3s (flag -delivery-time). It reports the
//     slowest Execute (slowest-ms), the 99.9th percentile (p999-us), the peak
//     growth of HeapAlloc sampled every 50ms (heap-MB, 10^6 bytes), the calls
//     whose event was not delivered (events-lost) and calls-per-second.
//     lib=floor runs the same loop calling the listener's function directly,
//     without a breaker: what the scheduler alone makes of 8 busy goroutines
//     on this machine. It too ignores b.N: run it with -benchtime 1x.
//
// fleet_test.go holds the benchmarks of breakers that share their state
// through Redis.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
	gobreaker "github.com/sony/gobreaker/v2"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/otelmetrics"
	"github.com/seed18491788/breaker/prommetrics"
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

var timeWindow = breaker.Config{Window: breaker.TimeWindow}

func subjects() []subject {
	timeSlow := timeWindow
	timeSlow.SlowCallDuration = time.Second
	return []subject{
		{"breaker-count", ours(breaker.Config{})},
		{"breaker-count-slow", ours(breaker.Config{SlowCallDuration: time.Second})},
		{"breaker-time", ours(timeWindow)},
		{"breaker-time-prom", ours(timeWindow, promListener)},
		{"breaker-time-otel", ours(timeWindow, otelListener)},
		{"breaker-time-slow", ours(timeSlow)},
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
	base := time.Now()
	withClock := func(reads int) func(scenario) caller {
		return func(sc scenario) caller {
			call := plain(sc)
			return func(fail bool) (int, error) {
				t := time.Since(base)
				v, err := call(fail)
				if reads == 2 {
					t = time.Since(base) - t
				}
				if t == 42 { // never: keeps the reads from being optimized away
					sink.Add(int64(t))
				}
				return v, err
			}
		}
	}
	return []subject{
		{"floor-call", plain},
		{"floor-mono-1", withClock(1)},
		{"floor-mono-2", withClock(2)},
	}
}

// ours returns a subject of breaker with cfg and, for each breaker it
// makes, a new listener from each of listeners.
func ours(cfg breaker.Config, listeners ...func() breaker.Listener) func(scenario) caller {
	return func(sc scenario) caller {
		cfg := cfg
		cfg.Listeners = nil
		for _, l := range listeners {
			cfg.Listeners = append(cfg.Listeners, l())
		}
		switch sc {
		case open:
			cfg.WindowSize, cfg.MinimumCalls, cfg.OpenTimeout = 1, 1, time.Hour
		case halfOpen:
			cfg.WindowSize, cfg.MinimumCalls, cfg.OpenTimeout = 1, 1, time.Nanosecond
		}
		b := mustNew(cfg)
		call := func(fail bool) (int, error) {
			if fail {
				return b.Execute(context.Background(), bad)
			}
			return b.Execute(context.Background(), ok)
		}
		return prepare(sc, call)
	}
}

func mustNew(cfg breaker.Config) *breaker.Breaker[int] {
	b, err := breaker.New[int]("bench", cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// newPromListener returns a prommetrics.Collector with the default Opts,
// registered in a registry of its own, and that registry.
func newPromListener() (*prommetrics.Collector, *prometheus.Registry) {
	m := prommetrics.New(prommetrics.Opts{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	return m, reg
}

func promListener() breaker.Listener {
	m, _ := newPromListener()
	return m
}

// newOtelListener returns an otelmetrics.Listener on an SDK MeterProvider,
// and the ManualReader that collects from it.
func newOtelListener() (*otelmetrics.Listener, *sdkmetric.ManualReader) {
	reader := sdkmetric.NewManualReader()
	l, err := otelmetrics.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		panic(err)
	}
	return l, reader
}

func otelListener() breaker.Listener {
	l, _ := newOtelListener()
	return l
}

// gobreakerStateChanges counts the state changes that the gobreaker
// subjects' OnStateChange hears.
var gobreakerStateChanges atomic.Int64

func gobreakerSettings(sc scenario) gobreaker.Settings {
	st := gobreaker.Settings{
		Name:         "bench",
		Interval:     60 * time.Second,
		BucketPeriod: 6 * time.Second,
		Timeout:      30 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= 10 && float64(c.TotalFailures) >= 0.5*float64(c.Requests)
		},
		OnStateChange: func(string, gobreaker.State, gobreaker.State) { gobreakerStateChanges.Add(1) },
	}
	switch sc {
	case open, halfOpen:
		st.ReadyToTrip = func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }
		st.Timeout = time.Hour
		if sc == halfOpen {
			st.Timeout = time.Nanosecond
		}
	}
	return st
}

func gobreakerSubject(sc scenario) caller {
	cb := gobreaker.NewCircuitBreaker[int](gobreakerSettings(sc))
	return prepare(sc, func(fail bool) (int, error) {
		if fail {
			return cb.Execute(badPlain)
		}
		return cb.Execute(okPlain)
	})
}

func okPlain() (int, error)  { return ok(context.Background()) }
func badPlain() (int, error) { return bad(context.Background()) }

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
	return prepare(sc, func(fail bool) (int, error) {
		if fail {
			return exec.Get(badPlain)
		}
		return exec.Get(okPlain)
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

// memorySubjects make one breaker each, used for one successful call.
var memorySubjects = []struct {
	name string
	make func() any
}{
	{"breaker-count", func() any {
		b := mustNew(breaker.Config{})
		b.Execute(context.Background(), ok)
		return b
	}},
	{"breaker-time", func() any {
		b := mustNew(timeWindow)
		b.Execute(context.Background(), ok)
		return b
	}},
	{"gobreaker", func() any {
		cb := gobreaker.NewCircuitBreaker[int](gobreakerSettings(closed))
		cb.Execute(okPlain)
		return cb
	}},
}

// BenchmarkMemoryPerBreaker reports the heap that a breaker takes, with
// GOMAXPROCS set to procs: the garbage-collected heap's growth over 10,000
// breakers, divided by 10,000. It ignores b.N.
func BenchmarkMemoryPerBreaker(b *testing.B) {
	const n = 10_000
	for _, procs := range []int{1, 16, 128} {
		for _, s := range memorySubjects {
			b.Run(fmt.Sprintf("procs=%d/lib=%s", procs, s.name), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				keep := make([]any, n) // before the first reading: not counted
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := range keep {
					keep[i] = s.make()
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/n, "B/breaker")
				runtime.KeepAlive(keep)
			})
		}
	}
}

var deliveryTime = flag.Duration("delivery-time", 3*time.Second, "how long BenchmarkSlowListener runs each subject")

// BenchmarkSlowListener measures what a slow listener does to the calls
// that deliver its events; see the package comment. It ignores b.N.
func BenchmarkSlowListener(b *testing.B) {
	const goroutines = 8
	for _, lib := range []string{"breaker", "floor"} {
		b.Run("lib="+lib, func(b *testing.B) {
			var delivered atomic.Int64
			listen := func(breaker.Event) {
				for s := time.Now(); time.Since(s) < 20*time.Microsecond; {
				}
				delivered.Add(1)
			}
			call := func() { listen(breaker.Event{Kind: breaker.EventSuccess}) }
			if lib == "breaker" {
				cfg := timeWindow
				cfg.Listeners = []breaker.Listener{breaker.ListenerFunc(listen)}
				br := mustNew(cfg)
				call = func() { br.Execute(context.Background(), ok) }
			}
			r := measure(goroutines, *deliveryTime, call)
			b.ReportMetric(float64(r.lat.max)/1e6, "slowest-ms")
			b.ReportMetric(float64(r.lat.quantile(0.999))/1e3, "p999-us")
			b.ReportMetric(float64(r.heapGrowth)/1e6, "heap-MB")
			b.ReportMetric(float64(int64(r.lat.n)-delivered.Load()), "events-lost")
			b.ReportMetric(float64(r.lat.n)/r.elapsed.Seconds(), "calls-per-second")
		})
	}
}

// result is what measure saw.
type result struct {
	lat        *latencies // of every call
	heapGrowth uint64     // the peak of HeapAlloc over its value at the start
	elapsed    time.Duration
}

// measure runs call in a loop on each of goroutines goroutines for d,
// timing every call and sampling HeapAlloc every 50ms.
func measure(goroutines int, d time.Duration, call func()) result {
	lats := make([]latencies, goroutines) // before the first reading: not counted
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak := base
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	}()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range lats {
		wg.Go(func() {
			for {
				t0 := time.Now()
				call()
				t1 := time.Now()
				lats[i].add(t1.Sub(t0))
				if t1.After(deadline) {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	all := &latencies{}
	for i := range lats {
		all.merge(&lats[i])
	}
	return result{lat: all, heapGrowth: peak - base, elapsed: elapsed}
}

// subBits sets a latencies' precision: 1<<subBits buckets per power of
// two, so a bucket is at most 1/64 wider than the values it holds.
const subBits = 6

// latencies is a histogram of durations in fixed memory, however many it
// holds, with their count and maximum. It is for one goroutine.
type latencies struct {
	counts [(64 - subBits) << subBits]uint64
	n      uint64
	max    time.Duration
}

// bucket returns the index of the bucket that holds v.
func bucket(v uint64) int {
	if v < 2<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return shift<<subBits + int(v>>shift)
}

// bucketTop returns the largest value that bucket i holds.
func bucketTop(i int) uint64 {
	if i < 2<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	mant := uint64(i&(1<<subBits-1) | 1<<subBits)
	return (mant+1)<<shift - 1
}

func (l *latencies) add(d time.Duration) {
	d = max(d, 0)
	l.counts[bucket(uint64(d))]++
	l.n++
	l.max = max(l.max, d)
}

func (l *latencies) merge(o *latencies) {
	for i, c := range o.counts {
		l.counts[i] += c
	}
	l.n += o.n
	l.max = max(l.max, o.max)
}

// quantile returns the q-quantile of the durations, rounded up to the top
// of its bucket but never above the maximum; 0 if there are none.
func (l *latencies) quantile(q float64) time.Duration {
	rank := uint64(math.Ceil(q * float64(l.n)))
	var seen uint64
	for i, c := range l.counts {
		if seen += c; seen >= rank && c > 0 {
			return min(time.Duration(bucketTop(i)), l.max)
		}
	}
	return l.max
}
