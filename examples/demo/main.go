// Command demo shows a breaker guarding a flaky downstream: the downstream
// goes down for a while, the breaker trips and stops sending it traffic,
// probes it now and then, and closes once it has recovered.
//
//	go run ./examples/demo
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/seed18491788/breaker"
)

const (
	requests = 100
	interval = 40 * time.Millisecond
	downFrom = 1 * time.Second
	downTo   = 2500 * time.Millisecond
)

func main() {
	if err := run(os.Stdout, systemClock{}, time.Sleep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// downstream fails every call between downFrom and downTo after start.
type downstream struct {
	clock breaker.Clock
	start time.Time
	calls int
}

var errUnavailable = errors.New("503 service unavailable")

func (d *downstream) get(context.Context) (string, error) {
	d.calls++
	if t := d.clock.Now().Sub(d.start); t >= downFrom && t < downTo {
		return "", errUnavailable
	}
	return "200 ok", nil
}

// run sends one request every interval through a breaker and prints what
// the breaker does. Time comes from clk and passes through sleep.
func run(out io.Writer, clk breaker.Clock, sleep func(time.Duration)) error {
	start := clk.Now()
	elapsed := func() string { return fmt.Sprintf("%5.2fs", clk.Now().Sub(start).Seconds()) }
	var b *breaker.Breaker[string]
	show := breaker.ListenerFunc(func(e breaker.Event) {
		if e.Kind != breaker.EventStateChange {
			return
		}
		m := b.Metrics()
		detail := ""
		switch e.To {
		case breaker.StateOpen:
			detail = fmt.Sprintf("  (%d of the last %d calls failed; next probe in %v)", m.Failures, m.Calls, m.RetryAfter.Round(time.Millisecond))
			if e.From == breaker.StateHalfOpen {
				detail = fmt.Sprintf("  (the probe failed; next probe in %v)", m.RetryAfter.Round(time.Millisecond))
			}
		case breaker.StateClosed:
			detail = "  (the probe succeeded)"
		}
		fmt.Fprintf(out, "%s  breaker %-9s -> %s%s\n", elapsed(), e.From, e.To, detail)
	})
	var err error
	b, err = breaker.New[string]("downstream", breaker.Config{
		WindowSize:     10,
		MinimumCalls:   5,
		OpenTimeout:    300 * time.Millisecond,
		MaxOpenTimeout: 1200 * time.Millisecond,
		Clock:          clk,
		Listeners:      []breaker.Listener{show},
	})
	if err != nil {
		return err
	}

	d := &downstream{clock: clk, start: start}
	fmt.Fprintf(out, "One request every %v; the downstream is down from %v to %v.\n", interval, downFrom, downTo)
	var ok, failed, rejected int
	wasDown := false
	for range requests {
		if isDown := clk.Now().Sub(start) >= downFrom && clk.Now().Sub(start) < downTo; isDown != wasDown {
			wasDown = isDown
			fmt.Fprintf(out, "%s  downstream %s\n", elapsed(), map[bool]string{true: "goes down", false: "recovers"}[isDown])
		}
		_, err := b.Execute(context.Background(), d.get)
		switch {
		case errors.Is(err, breaker.ErrOpen), errors.Is(err, breaker.ErrTooManyCalls):
			rejected++
		case err != nil:
			failed++
		default:
			ok++
		}
		sleep(interval)
	}
	fmt.Fprintf(out, "%d requests: %d succeeded, %d failed, %d refused by the breaker without reaching the downstream (it saw %d calls).\n",
		requests, ok, failed, rejected, d.calls)
	return nil
}
