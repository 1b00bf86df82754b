package redisstate_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

// BenchmarkPropagation measures, at the default SyncInterval, the time from
// a trip on one instance to the first refusal on another: through the
// published message, and through syncs alone (the message lost). It
// reports the median and the slowest of the b.N trips.
func BenchmarkPropagation(b *testing.B) {
	for _, heard := range []string{"published", "synced"} {
		b.Run("via="+heard, func(b *testing.B) {
			r := startRedis(b)
			a, err := redisstate.New(redisOptions(r.addr), redisstate.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			z, err := redisstate.New(redisOptions(r.addr), redisstate.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer z.Close()
			// One failure trips the tripper and, pushed at once, the fleet.
			// The watcher's probes are left out of the windows, so that
			// they do not outweigh the failure.
			errProbe := errors.New("probe")
			cfg := breaker.Config{Window: breaker.TimeWindow, MinimumCalls: 1, OpenTimeout: time.Hour,
				IsIgnored: func(err error) bool { return errors.Is(err, errProbe) }}
			probe := func(b *breaker.Breaker[int]) error {
				_, err := b.Execute(bg, func(context.Context) (int, error) { return 0, errProbe })
				return err
			}
			cfg.Shared = a
			tripper, _ := breaker.New[int]("propagation", cfg)
			cfg.Shared = z
			watcher, _ := breaker.New[int]("propagation", cfg)
			if heard == "synced" {
				if err := redisstate.Deaf(z); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(3 * redisstate.DefaultSyncInterval) // both have joined

			var took []time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				tripper.Execute(bg, fail) // trips the tripper, whose failure trips the fleet
				for deadline := start.Add(10 * time.Second); !errors.Is(probe(watcher), breaker.ErrOpen); {
					if time.Now().After(deadline) {
						b.Fatalf("the trip has not reached the watcher in 10s: tripper %v, watcher %v", tripper.State(), watcher.State())
					}
				}
				took = append(took, time.Since(start))
				b.StopTimer()
				tripper.Reset()
				for watcher.State() != breaker.StateClosed {
					time.Sleep(time.Millisecond)
				}
				// Start the next trip at a random point of the watcher's sync cycle.
				time.Sleep(rand.N(redisstate.DefaultSyncInterval))
				b.StartTimer()
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "median-µs")
			b.ReportMetric(float64(took[len(took)-1].Microseconds()), "max-µs")
		})
	}
}

// BenchmarkSyncRound measures one Store's sync of n breakers, of which
// the active ones were called once since the last sync (all of them, or one
// in ten): the time a round takes, the Redis commands and bytes it costs,
// and the CPU it takes per breaker, in this process and in Redis.
func BenchmarkSyncRound(b *testing.B) {
	for _, shape := range []struct{ n, active int }{{1000, 1000}, {10_000, 10_000}, {10_000, 1000}} {
		n := shape.n
		b.Run("names="+strconv.Itoa(n)+"/active="+strconv.Itoa(shape.active), func(b *testing.B) {
			r := startRedis(b)
			c := r.client()
			s, err := redisstate.New(redisOptions(r.addr), redisstate.Options{SyncInterval: time.Hour}) // rounds run by hand
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			cfg := breaker.Config{Window: breaker.TimeWindow, Shared: s}
			bs := make([]*breaker.Breaker[int], n)
			for i := range bs {
				if bs[i], err = breaker.New[int]("host-"+strconv.Itoa(i), cfg); err != nil {
					b.Fatal(err)
				}
			}
			redisstate.SyncNow(s)
			stats := func() (cmds, bytes, cpu float64) {
				info := c.Info(bg, "stats", "commandstats", "cpu").Val()
				field := func(name string) float64 {
					i := strings.Index(info, name)
					if i < 0 {
						return 0
					}
					v := info[i+len(name):]
					v = v[:strings.IndexAny(v, ",\r\n")]
					f, _ := strconv.ParseFloat(v, 64)
					return f
				}
				return field("cmdstat_evalsha:calls="), field("total_net_input_bytes:") + field("total_net_output_bytes:"),
					field("used_cpu_user:") + field("used_cpu_sys:")
			}
			cmds0, bytes0, cpu0 := stats()
			own0 := processCPU()
			var took time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for _, bb := range bs[:shape.active] {
					call(bb)
				}
				b.StartTimer()
				start := time.Now()
				redisstate.SyncNow(s)
				took += time.Since(start)
			}
			b.StopTimer()
			cmds1, bytes1, cpu1 := stats()
			own := processCPU() - own0
			rounds := float64(b.N)
			b.ReportMetric(float64(took.Milliseconds())/rounds, "ms/round")
			b.ReportMetric((cmds1-cmds0)/rounds, "commands/round")
			b.ReportMetric((bytes1-bytes0)/rounds/float64(n), "bytes/name")
			b.ReportMetric((cpu1-cpu0)*1e6/rounds/float64(n), "redis-cpu-µs/name")
			b.ReportMetric(own.Seconds()*1e6/rounds/float64(n), "cpu-µs/name")
			if d := redisstate.Detached(s); d > 0 {
				b.Fatalf("%d breakers cut off", d)
			}
		})
	}
}

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var u syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
