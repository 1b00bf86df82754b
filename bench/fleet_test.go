package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	gobreaker "github.com/sony/gobreaker/v2"

	"github.com/seed18491788/breaker"
	gbredis "github.com/seed18491788/breaker/bench/internal/gobreakerredis"
	"github.com/seed18491788/breaker/redisstate"
)

// fleetInstances is the size of every fleet: 4 instances of one breaker,
// as 4 processes would run, on one Redis on loopback.
const fleetInstances = 4

// fleetConfig is the breakers' Config in the fleet benchmarks: a 60s time
// window of 6s buckets that trips at a failure rate of 0.5 over at least
// 10 calls, and an open wait of 30s. fleetSettings gives gobreaker the same
// rule.
var fleetConfig = breaker.Config{
	Window: breaker.TimeWindow, WindowDuration: 60 * time.Second, BucketDuration: 6 * time.Second,
	MinimumCalls: 10, FailureRateThreshold: 0.5, OpenTimeout: 30 * time.Second,
}

// fleetSettings is gobreaker's equivalent of cfg for a breaker named name:
// the same window, rule and open wait, and IsIgnored as IsExcluded.
func fleetSettings(name string, cfg breaker.Config) gobreaker.Settings {
	return gobreaker.Settings{
		Name: name, Interval: cfg.WindowDuration, BucketPeriod: cfg.BucketDuration, Timeout: cfg.OpenTimeout,
		IsExcluded: cfg.IsIgnored,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if cfg.ConsecutiveFailures > 0 && c.ConsecutiveFailures >= uint32(cfg.ConsecutiveFailures) {
				return true
			}
			calls := c.Requests - min(c.TotalExclusions, c.Requests) // Requests counts the excluded too
			return calls >= uint32(cfg.MinimumCalls) &&
				float64(c.TotalFailures) >= cfg.FailureRateThreshold*float64(calls)
		},
	}
}

// BenchmarkFleet runs a fleet of 4 instances of one breaker, each wrapped
// call sleeping 1ms, called from 4, 16 and 64 goroutines at once (goroutine
// g calling instance g%4). Subjects:
//
//   - breaker-shared: 4 breakers, each with a redisstate.Store of its own
//     (default Options).
//   - breaker-local: 4 breakers that share nothing, for the overhead of
//     sharing.
//   - gobreaker-distributed: sony/gobreaker v2's DistributedCircuitBreaker
//     on gobreaker's own Redis store (internal/gobreakerredis, redsync),
//     one go-redis client per instance. Every call, refused ones included,
//     holds a Redis lock for the breaker's name, so the fleet runs one call
//     at a time; a caller that finds the lock taken polls every 50-250ms
//     (redsync's defaults) and gives up with an error after redsync's 32
//     tries (about 5s).
//
// Metrics: calls-per-second is the rate under steady load: the wrapped
// calls that ran to the end before the first goroutine found no more to
// do, over that time. It leaves out the drain at the end, which a service
// under steady load does not see: for gobreaker, the last callers' polls
// for the lock, up to 250ms each. drained-calls-per-second counts every
// call over the whole run, drain included. failed-calls counts the calls
// that returned an error (refused, or given up waiting for the lock);
// p99-call-ms and max-call-ms are the 99th percentile and the slowest of
// the calls' times, waiting included.
func BenchmarkFleet(b *testing.B) {
	addr := startRedis(b)
	for _, goroutines := range []int{4, 16, 64} {
		for _, s := range fleetSubjects() {
			b.Run(fmt.Sprintf("goroutines=%d/lib=%s", goroutines, s.name), func(b *testing.B) {
				f := s.make(b, addr, fleetName("fleet"), fleetConfig, goroutines)
				defer f.stop()
				var left, ran, failed atomic.Int64
				left.Store(int64(b.N))
				sleep := func(context.Context) (int, error) {
					time.Sleep(time.Millisecond)
					ran.Add(1)
					return 1, nil
				}
				lats := make([]latencies, len(f.calls))
				var steady sync.Once
				var elapsed time.Duration
				var done int64
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for g, call := range f.calls {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							t := time.Now()
							err := call(sleep)
							lats[g].add(time.Since(t))
							if err != nil {
								failed.Add(1)
							}
						}
						steady.Do(func() { elapsed, done = time.Since(start), ran.Load() })
					})
				}
				wg.Wait()
				wall := time.Since(start)
				b.StopTimer()
				all := &latencies{}
				for g := range lats {
					all.merge(&lats[g])
				}
				b.ReportMetric(float64(done)/elapsed.Seconds(), "calls-per-second")
				b.ReportMetric(float64(ran.Load())/wall.Seconds(), "drained-calls-per-second")
				b.ReportMetric(float64(failed.Load()), "failed-calls")
				b.ReportMetric(float64(all.quantile(0.99).Microseconds())/1000, "p99-call-ms")
				b.ReportMetric(float64(all.max.Microseconds())/1000, "max-call-ms")
			})
		}
	}
}

// BenchmarkFleetConsistency counts the failing calls a fleet lets through
// before every instance refuses. Each op starts a fresh fleet, all closed,
// and makes failing calls (each sleeping 1ms) until every instance has
// refused one: with callers=1 one goroutine goes round-robin over the 4
// instances, skipping those that have refused; with more, goroutine g
// calls instance g%4 until it is refused. The rule is fleetConfig's: trip
// at a failure rate of 0.5 over at least 10 calls, so a single breaker
// would let 10 through.
//
// A breaker-shared instance trips on its own window, which protects it
// alone, and every instance opens when the fleet trips: when a sync (each
// store's every SyncInterval, and an instance's as soon as it trips) finds
// the rule met by the fleet's aggregate.
//
// Metrics, over the ops: failures-before-all-refuse (the mean),
// min-failures, max-failures, median-ms-to-all-refuse (from the first
// call), gave-up,
// the calls that neither ran nor were refused (gobreaker's lock wait
// running out), and for breaker-shared fleet-opened, the mean number of
// instances (of 4) that the fleet's trip opened before their own window
// did.
func BenchmarkFleetConsistency(b *testing.B) {
	addr := startRedis(b)
	for _, callers := range []int{1, 4, 16} {
		for _, s := range fleetSubjects() {
			b.Run(fmt.Sprintf("callers=%d/lib=%s", callers, s.name), func(b *testing.B) {
				var through []int
				var took []time.Duration
				gaveUp, byFleet := 0, 0
				for range b.N {
					b.StopTimer()
					f := s.make(b, addr, fleetName("consistency"), fleetConfig, max(callers, fleetInstances))
					b.StartTimer()
					r := untilAllRefuse(b, f.calls, callers)
					b.StopTimer()
					f.stop() // after this, every state change has reached byFleet's listeners
					b.StartTimer()
					through = append(through, r.through)
					took = append(took, r.took)
					gaveUp += r.gaveUp
					byFleet += int(f.byFleet.Load())
				}
				sum := 0
				for _, n := range through {
					sum += n
				}
				b.ReportMetric(float64(sum)/float64(len(through)), "failures-before-all-refuse")
				b.ReportMetric(float64(slices.Min(through)), "min-failures")
				b.ReportMetric(float64(slices.Max(through)), "max-failures")
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms-to-all-refuse")
				b.ReportMetric(float64(gaveUp), "gave-up")
				if s.name == "breaker-shared" {
					b.ReportMetric(float64(byFleet)/float64(b.N), "fleet-opened")
				}
			})
		}
	}
}

// refusals is what untilAllRefuse saw.
type refusals struct {
	through int           // failing calls that ran
	gaveUp  int           // calls that returned neither the call's error nor a refusal
	took    time.Duration // from the first call until every instance had refused
}

// untilAllRefuse makes failing calls through calls (one per goroutine,
// goroutine g on instance g%fleetInstances) until every one of them has
// been refused: from one goroutine in turn with callers 1, else from one
// goroutine each.
func untilAllRefuse(tb testing.TB, calls []fleetCall, callers int) refusals {
	const limit = 10000 // calls per goroutine; a fleet that never refuses fails the benchmark
	var r refusals
	start := time.Now()
	if callers == 1 {
		refused := make([]bool, len(calls))
		for i, left := 0, len(calls); left > 0; i++ {
			g := i % len(calls)
			if refused[g] {
				continue
			}
			if i >= limit*len(calls) {
				tb.Fatalf("%d calls and still %d instances admit calls", i, left)
			}
			switch err := calls[g](fail1ms); {
			case errors.Is(err, errDown):
				r.through++
			case isRefusal(err):
				refused[g] = true
				left--
			default:
				r.gaveUp++
			}
		}
		r.took = time.Since(start)
		return r
	}
	var through, gaveUp, stuck atomic.Int64
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() {
			for range limit {
				switch err := call(fail1ms); {
				case errors.Is(err, errDown):
					through.Add(1)
				case isRefusal(err):
					return
				default:
					gaveUp.Add(1)
				}
			}
			stuck.Add(1)
		})
	}
	wg.Wait()
	if stuck.Load() > 0 {
		tb.Fatalf("%d goroutines made %d calls each and were never refused", stuck.Load(), limit)
	}
	return refusals{through: int(through.Load()), gaveUp: int(gaveUp.Load()), took: time.Since(start)}
}

// propagationConfig is fleetConfig made to trip on one failure, the
// fleet's aggregate as well as each instance's own window, and to leave
// out the watcher's probes (errProbe).
func propagationConfig() breaker.Config {
	cfg := fleetConfig
	cfg.MinimumCalls = 1
	cfg.IsIgnored = func(err error) bool { return errors.Is(err, errProbe) }
	return cfg
}

// BenchmarkFleetPropagation measures the time from a trip on one instance
// to the first refusal on another, for the fleets that share their state.
// Each op starts a fresh fleet (propagationConfig: one failure trips it),
// makes a failing call on instance 0, then probes instance 1 until it
// refuses. The probes return an error that both breakers leave out
// (IsIgnored, gobreaker's IsExcluded), so that they do not dilute the
// fleet's window.
//
// breaker-shared: instance 0, tripped, pushes its counts at once, the sync
// script trips the fleet and publishes the change, and instance 1's store,
// hinted, reads the fleet's state (via=published); or, with instance 1's
// store logged in as a Redis user that may not subscribe (deafUser), as if
// every message were lost, its next sync reads it (via=synced).
// gobreaker-distributed reads the state from Redis at the start of every
// call, so instance 1's first call after the trip refuses. It reports the
// median and the slowest of the b.N trips.
func BenchmarkFleetPropagation(b *testing.B) {
	addr := startRedis(b)
	addDeafUser(b, addr)
	cfg := propagationConfig()
	subjects := []fleetSubject{
		{"breaker-shared/via=published", fleetSubjects()[0].make},
		{"breaker-shared/via=synced", func(tb testing.TB, addr, name string, cfg breaker.Config, goroutines int) *fleet {
			return ourFleet(tb, addr, name, cfg, goroutines, true, deafWatcher)
		}},
		fleetSubjects()[2],
	}
	for _, s := range subjects {
		b.Run("lib="+s.name, func(b *testing.B) {
			var took []time.Duration
			for range b.N {
				b.StopTimer()
				f := s.make(b, addr, fleetName("propagation"), cfg, fleetInstances)
				tripper, watcher := f.calls[0], f.calls[1]
				b.StartTimer()
				start := time.Now()
				if err := tripper(bad); !errors.Is(err, errDown) {
					b.Fatalf("the tripping call returned %v", err)
				}
				for deadline := start.Add(10 * time.Second); ; {
					err := watcher(probe)
					if isRefusal(err) {
						break
					}
					if !errors.Is(err, errProbe) {
						b.Fatalf("a probe returned %v", err)
					}
					if time.Now().After(deadline) {
						b.Fatal("the trip has not reached the watcher in 10s")
					}
				}
				took = append(took, time.Since(start))
				b.StopTimer()
				f.stop()
				b.StartTimer()
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "median-µs")
			b.ReportMetric(float64(took[len(took)-1].Microseconds()), "max-µs")
		})
	}
}

// deafUser is a Redis user, with the password deafUser, that may run every
// command on every key but use no channel: a store logged in as it hears
// no published change. (go-redis logs in only with a password.)
const deafUser = "deaf"

// deafWatcher logs instance 1 in as deafUser, the others as the default
// user. (A deaf instance that changed the fleet's state would fail: its
// script may not publish.)
func deafWatcher(instance int) string {
	if instance == 1 {
		return deafUser
	}
	return ""
}

// addDeafUser adds deafUser to the Redis at addr.
func addDeafUser(tb testing.TB, addr string) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	err := c.Do(context.Background(), "ACL", "SETUSER", deafUser, "reset", "on", ">"+deafUser, "~*", "resetchannels", "+@all").Err()
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkSharedOverhead measures what sharing adds to a call that
// returns at once: the closed path of a breaker with a redisstate.Store
// against one without.
func BenchmarkSharedOverhead(b *testing.B) {
	addr := startRedis(b)
	for _, mode := range []string{"serial", "parallel"} {
		for _, s := range fleetSubjects()[:2] {
			b.Run("mode="+mode+"/lib="+s.name, func(b *testing.B) {
				f := s.make(b, addr, fleetName("overhead"), fleetConfig, 1)
				defer f.stop()
				call := f.calls[0]
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
					for b.Loop() {
						call(ok)
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						call(ok)
					}
				})
			})
		}
	}
}

// fleetCall makes one call of fn through one instance of a fleet.
type fleetCall func(fn func(context.Context) (int, error)) error

// fleet is a running fleet of fleetInstances instances of one breaker.
type fleet struct {
	calls []fleetCall // one per goroutine, the gth on instance g%fleetInstances
	stop  func()
	// byFleet counts, for breaker-shared, the instances whose circuit the
	// fleet's trip opened before their own window did.
	byFleet atomic.Int64
}

type fleetSubject struct {
	name string
	// make starts a fleet of a breaker named name, tuned by cfg, on the
	// Redis at addr, with a fleetCall for each of goroutines goroutines.
	make func(tb testing.TB, addr, name string, cfg breaker.Config, goroutines int) *fleet
}

func fleetSubjects() []fleetSubject {
	return []fleetSubject{
		{"breaker-shared", func(tb testing.TB, addr, name string, cfg breaker.Config, goroutines int) *fleet {
			return ourFleet(tb, addr, name, cfg, goroutines, true, nil)
		}},
		{"breaker-local", func(tb testing.TB, addr, name string, cfg breaker.Config, goroutines int) *fleet {
			return ourFleet(tb, addr, name, cfg, goroutines, false, nil)
		}},
		{"gobreaker-distributed", gobreakerFleet},
	}
}

// fleetNames numbers the breaker names, so that no fleet meets the state
// an earlier one left in Redis.
var fleetNames atomic.Int64

func fleetName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, fleetNames.Add(1)) }

func fail1ms(context.Context) (int, error) {
	time.Sleep(time.Millisecond)
	return 0, errDown
}

// errProbe is the error of the propagation benchmark's probes, which the
// breakers leave out of their windows.
var errProbe = errors.New("probe")

func probe(context.Context) (int, error) { return 0, errProbe }

// isRefusal reports whether err is a breaker's refusal, ours or gobreaker's.
func isRefusal(err error) bool {
	return errors.Is(err, breaker.ErrOpen) || errors.Is(err, breaker.ErrTooManyCalls) ||
		errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}

// ourFleet makes 4 of our breakers, with a redisstate.Store each if
// shared; the ith store logs in to Redis as user(i), whose password is its
// name, if user is not nil. The
// stores are made at random moments of a SyncInterval apart, as a fleet's
// processes start, so that their syncs do not come at once, and the fleet
// is returned once they have joined it.
func ourFleet(tb testing.TB, addr, name string, cfg breaker.Config, goroutines int, shared bool, user func(int) string) *fleet {
	f := &fleet{}
	var stores []*redisstate.Store
	f.stop = func() {
		for _, s := range stores {
			s.Close()
		}
	}
	var instances []fleetCall
	for i := range fleetInstances {
		c := cfg
		if shared {
			time.Sleep(rand.N(redisstate.DefaultSyncInterval))
			opts := &redis.UniversalOptions{Addrs: []string{addr}}
			if user != nil {
				opts.Username = user(i)
				opts.Password = opts.Username
			}
			s, err := redisstate.New(opts, redisstate.Options{})
			if err != nil {
				f.stop()
				tb.Fatal(err)
			}
			stores = append(stores, s)
			c.Shared = s
			var opened atomic.Bool
			c.Listeners = append(slices.Clip(cfg.Listeners), breaker.ListenerFor(breaker.Mask(breaker.EventStateChange), func(e breaker.Event) {
				if e.To == breaker.StateOpen && opened.CompareAndSwap(false, true) && e.Reason.Kind == breaker.ReasonFleet {
					f.byFleet.Add(1)
				}
			}))
		}
		br, err := breaker.New[int](name, c)
		if err != nil {
			f.stop()
			tb.Fatal(err)
		}
		instances = append(instances, func(fn func(context.Context) (int, error)) error {
			_, err := br.Execute(context.Background(), fn)
			return err
		})
	}
	if shared {
		time.Sleep(20 * time.Millisecond) // the last store's first sync
	}
	f.calls = make([]fleetCall, goroutines)
	for g := range f.calls {
		f.calls[g] = instances[g%fleetInstances]
	}
	return f
}

// gobreakerFleet makes 4 instances of gobreaker's DistributedCircuitBreaker
// on gobreaker's own Redis store, one go-redis client each. That store is
// not safe for concurrent use (an unguarded map of redsync mutexes), so
// every goroutine gets a store and a breaker of its own on its instance's
// client. A DistributedCircuitBreaker loads its whole state from Redis at
// the start of every call, so one breaker per goroutine acts as one per
// instance would.
func gobreakerFleet(tb testing.TB, addr, name string, cfg breaker.Config, goroutines int) *fleet {
	clients := make([]*redis.Client, fleetInstances)
	for i := range clients {
		clients[i] = redis.NewClient(&redis.Options{Addr: addr})
	}
	f := &fleet{stop: func() {
		for _, c := range clients {
			c.Close()
		}
	}}
	f.calls = make([]fleetCall, goroutines)
	for g := range f.calls {
		store := gbredis.NewStoreFromClient(clients[g%fleetInstances])
		cb, err := gobreaker.NewDistributedCircuitBreaker[int](store, fleetSettings(name, cfg))
		if err != nil {
			f.stop()
			tb.Fatal(err)
		}
		f.calls[g] = func(fn func(context.Context) (int, error)) error {
			_, err := cb.Execute(func() (int, error) { return fn(context.Background()) })
			return err
		}
	}
	return f
}

// startRedis starts a redis-server of the benchmark's own on a free
// loopback port. Without redis-server it skips when run by hand, and fails
// in CI (CI=true), which installs it.
func startRedis(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("redis-server is not installed; .ci/run installs it")
		}
		tb.Skip("redis-server is not installed (apt-get install redis-server): skipping the fleet benchmarks")
	}
	dir := tb.TempDir()
	for attempt := 0; ; attempt++ {
		if addr, ok := tryRedis(tb, bin, dir); ok {
			return addr
		}
		if attempt == 4 {
			tb.Fatal("redis-server would not start")
		}
	}
}

// tryRedis starts redis-server on a port that was free a moment ago, and
// reports whether it came up: another process may have taken the port.
func tryRedis(tb testing.TB, bin, dir string) (string, bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		up := false
		for sc.Scan() {
			if !up && strings.Contains(sc.Text(), "Ready to accept connections") {
				up = true
				ready <- true
			}
		}
		if !up {
			ready <- false // it exited without coming up
		}
	}()
	select {
	case up := <-ready:
		if !up {
			cmd.Wait()
			return "", false
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		tb.Fatal("redis-server did not start")
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return addr, true
}
