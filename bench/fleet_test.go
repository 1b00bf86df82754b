package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	gobreaker "github.com/sony/gobreaker/v2"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

// BenchmarkFleet runs a fleet of 4 instances of one breaker, each wrapped
// call sleeping 1ms, called from 4 and from 64 goroutines at once, against
// a Redis on loopback. Subjects:
//
//   - breaker-shared: 4 breakers, each with a redisstate.Store of its own,
//     as 4 processes would have.
//   - breaker-local: 4 breakers that share nothing, for the overhead of
//     sharing.
//   - gobreaker-distributed: 4 sony/gobreaker v2 DistributedCircuitBreakers
//     on the go-redis store below. Each call takes a Redis lock for the
//     breaker's name, so the fleet runs one call at a time; a call that
//     cannot get the lock within gobreaker's 5s gives up with an error.
//
// Metrics: calls-per-second counts the wrapped calls that ran to the end,
// over the wall time; failed-calls counts calls refused or given up.
func BenchmarkFleet(b *testing.B) {
	addr := startRedis(b)
	for _, goroutines := range []int{4, 64} {
		for _, s := range fleetSubjects(addr) {
			b.Run(fmt.Sprintf("goroutines=%d/lib=%s", goroutines, s.name), func(b *testing.B) {
				instances := s.make(b)
				var next, done, failed atomic.Int64
				b.SetParallelism(goroutines / runtime.GOMAXPROCS(0))
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					call := instances[next.Add(1)%int64(len(instances))]
					for pb.Next() {
						if call(sleep1ms) != nil {
							failed.Add(1)
						} else {
							done.Add(1)
						}
					}
				})
				b.ReportMetric(float64(done.Load())/time.Since(start).Seconds(), "calls-per-second")
				b.ReportMetric(float64(failed.Load()), "failed-calls")
			})
		}
	}
}

// BenchmarkSharedOverhead measures what sharing adds to a call that
// returns at once: the closed path of a breaker with a redisstate.Store
// against one without.
func BenchmarkSharedOverhead(b *testing.B) {
	addr := startRedis(b)
	for _, mode := range []string{"serial", "parallel"} {
		for _, s := range fleetSubjects(addr)[:2] {
			b.Run("mode="+mode+"/lib="+s.name, func(b *testing.B) {
				call := s.make(b)[0]
				b.ReportAllocs()
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

type fleetSubject struct {
	name string
	make func(b *testing.B) []func(fn func(context.Context) (int, error)) error
}

func fleetSubjects(addr string) []fleetSubject {
	return []fleetSubject{
		{"breaker-shared", func(b *testing.B) []func(func(context.Context) (int, error)) error { return ourFleet(b, addr, true) }},
		{"breaker-local", func(b *testing.B) []func(func(context.Context) (int, error)) error { return ourFleet(b, addr, false) }},
		{"gobreaker-distributed", func(b *testing.B) []func(func(context.Context) (int, error)) error { return gobreakerFleet(b, addr) }},
	}
}

func sleep1ms(context.Context) (int, error) {
	time.Sleep(time.Millisecond)
	return 1, nil
}

func ourFleet(b *testing.B, addr string, shared bool) []func(func(context.Context) (int, error)) error {
	var calls []func(func(context.Context) (int, error)) error
	for range 4 {
		cfg := breaker.Config{}
		if shared {
			s, err := redisstate.New(&redis.UniversalOptions{Addrs: []string{addr}}, redisstate.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			cfg.Shared = s
		}
		br, err := breaker.New[int]("fleet-bench", cfg)
		if err != nil {
			b.Fatal(err)
		}
		calls = append(calls, func(fn func(context.Context) (int, error)) error {
			_, err := br.Execute(context.Background(), fn)
			return err
		})
	}
	return calls
}

func gobreakerFleet(b *testing.B, addr string) []func(func(context.Context) (int, error)) error {
	var calls []func(func(context.Context) (int, error)) error
	for range 4 {
		client := redis.NewClient(&redis.Options{Addr: addr})
		b.Cleanup(func() { client.Close() })
		cb, err := gobreaker.NewDistributedCircuitBreaker[int](&redisStore{client: client}, gobreaker.Settings{
			Name: "fleet-bench", Interval: 60 * time.Second, BucketPeriod: 6 * time.Second, Timeout: 30 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.Requests >= 10 && float64(c.TotalFailures) >= 0.5*float64(c.Requests)
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		calls = append(calls, func(fn func(context.Context) (int, error)) error {
			_, err := cb.Execute(func() (int, error) { return fn(context.Background()) })
			return err
		})
	}
	return calls
}

// redisStore is a gobreaker.SharedDataStore on go-redis: a lock by SET NX
// with an expiry and a token, released only by its holder.
type redisStore struct {
	client *redis.Client
	tokens map[string]string
}

var errLocked = errors.New("locked")

var unlockScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

func (s *redisStore) Lock(name string) error {
	var t [16]byte
	rand.Read(t[:])
	token := hex.EncodeToString(t[:])
	ok, err := s.client.SetNX(context.Background(), name, token, 5*time.Second).Result()
	if err != nil {
		return err
	}
	if !ok {
		return errLocked
	}
	if s.tokens == nil {
		s.tokens = map[string]string{}
	}
	s.tokens[name] = token // the lock is held: no other goroutine of this instance is here
	return nil
}

func (s *redisStore) Unlock(name string) error {
	token := s.tokens[name]
	delete(s.tokens, name)
	return unlockScript.Run(context.Background(), s.client, []string{name}, token).Err()
}

func (s *redisStore) GetData(name string) ([]byte, error) {
	data, err := s.client.Get(context.Background(), name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return data, err
}

func (s *redisStore) SetData(name string, data []byte) error {
	return s.client.Set(context.Background(), name, data, 0).Err()
}

// startRedis starts a redis-server of the benchmark's own on a free
// loopback port, or skips the benchmark without one.
func startRedis(b *testing.B) string {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		b.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", b.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		b.Fatal("redis-server did not start")
	}
	return addr
}
