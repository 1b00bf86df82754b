// Command fleethelper is a breaker in a process of its own, for the
// redisstate tests: it joins a fleet through Redis and takes commands, one
// per line, on standard input, answering each with one line.
//
//	fail N     make N failing calls                         ok
//	hold N     start N calls that wait for release          admitted K (once each call is admitted or refused)
//	release    let the held calls succeed, and wait for them ok
//	wait S     wait until the breaker is in state S          ok, or timeout after 10s
//	quit
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

func main() {
	addr := flag.String("addr", "", "Redis address")
	name := flag.String("name", "orders", "breaker name")
	syncEvery := flag.Duration("sync", 20*time.Millisecond, "SyncInterval")
	open := flag.Duration("open", 300*time.Millisecond, "OpenTimeout")
	trials := flag.Int("trials", 2, "HalfOpenMaxCalls")
	minimum := flag.Int("min", 8, "MinimumCalls")
	flag.Parse()

	store, err := redisstate.New(&redis.UniversalOptions{Addrs: []string{*addr}}, redisstate.Options{SyncInterval: *syncEvery})
	if err != nil {
		fail(err)
	}
	defer store.Close()
	changed := make(chan struct{}, 1)
	b, err := breaker.New[int](*name, breaker.Config{
		Window: breaker.TimeWindow, WindowDuration: 10 * time.Second, MinimumCalls: *minimum,
		OpenTimeout: *open, HalfOpenMaxCalls: *trials, Shared: store,
		Listeners: []breaker.Listener{breaker.ListenerFunc(func(e breaker.Event) {
			if e.Kind == breaker.EventStateChange {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		})},
	})
	if err != nil {
		fail(err)
	}

	release := make(chan struct{})
	var held sync.WaitGroup
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		arg := ""
		if len(f) > 1 {
			arg = f[1]
		}
		switch f[0] {
		case "fail":
			n, _ := strconv.Atoi(arg)
			for range n {
				b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errors.New("down") })
			}
			fmt.Println("ok")
		case "hold":
			n, _ := strconv.Atoi(arg)
			results := make(chan bool, n)
			for range n {
				held.Add(1)
				go func() {
					defer held.Done()
					_, err := b.Execute(context.Background(), func(context.Context) (int, error) {
						results <- true
						<-release
						return 1, nil
					})
					if err != nil {
						results <- false
					}
				}()
			}
			admitted := 0
			for range n {
				if <-results {
					admitted++
				}
			}
			fmt.Println("admitted", admitted)
		case "release":
			close(release)
			held.Wait()
			release = make(chan struct{})
			fmt.Println("ok")
		case "wait":
			fmt.Println(wait(b, arg, changed))
		case "quit":
			return
		default:
			fmt.Println("unknown command", f[0])
		}
	}
}

// wait waits until b is in the state named want.
func wait(b *breaker.Breaker[int], want string, changed <-chan struct{}) string {
	timeout := time.After(10 * time.Second)
	for b.State().String() != want {
		select {
		case <-changed:
		case <-timeout:
			return "timeout"
		}
	}
	return "ok"
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleethelper:", err)
	os.Exit(1)
}
