package redisstate_test

import (
	"errors"
	"math/rand/v2"
	"sort"
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
			cfg := breaker.Config{ConsecutiveFailures: 1, OpenTimeout: time.Hour}
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
				tripper.Execute(bg, fail) // trips the tripper, which tells the fleet
				for deadline := start.Add(10 * time.Second); !errors.Is(call(watcher), breaker.ErrOpen); {
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
