// Command demo shows breakers guarding two downstreams, one of them flaky:
// it goes down twice, its breaker trips and stops sending it traffic,
// probes it now and then, and closes once it has recovered. Meanwhile a
// live dashboard of the circuits is served on a loopback port, with the
// history of the whole run and, with -actions, the operator's buttons.
//
//	go run ./examples/demo [-addr 127.0.0.1:0] [-linger 0s] [-actions]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakerhttp"
)

const (
	requests = 250
	interval = 40 * time.Millisecond
)

// outages are the spells when the payments downstream fails every call.
var outages = [][2]time.Duration{{1 * time.Second, 2500 * time.Millisecond}, {6 * time.Second, 7200 * time.Millisecond}}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "where to serve the dashboard")
	linger := flag.Duration("linger", 0, "how long to keep serving the dashboard after the run")
	actions := flag.Bool("actions", false, "show the operator's buttons on the dashboard (loopback -addr only)")
	flag.Parse()

	reg, err := newRegistry(os.Stdout, systemClock{})
	if err != nil {
		fail(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fail(err)
	}
	if *actions && !loopback(ln.Addr().String()) {
		fail(fmt.Errorf("-actions serves buttons that move the circuits: listen on a loopback -addr, not %s", ln.Addr()))
	}
	go http.Serve(ln, dashboard(reg, requests*interval+*linger, *actions))
	fmt.Printf("Dashboard: http://%s/dashboard   Health (JSON): http://%s/\n", ln.Addr(), ln.Addr())

	run(os.Stdout, reg, systemClock{}, time.Sleep)
	if *linger > 0 {
		fmt.Printf("Serving the dashboard for %v more.\n", *linger)
		time.Sleep(*linger)
	}
}

// dashboard returns the handler of the dashboard for a demo that lasts
// span: its history spans the whole of it, and with actions its buttons
// take requests from this machine, addressed to it, only.
func dashboard(reg *breaker.Registry, span time.Duration, actions bool) http.Handler {
	step := (span/breakerhttp.HistoryPoints + 99*time.Millisecond).Truncate(100 * time.Millisecond)
	opts := []breakerhttp.HandlerOption{breakerhttp.WithRefresh(500 * time.Millisecond), breakerhttp.WithHistoryStep(step)}
	if actions {
		opts = append(opts, breakerhttp.WithActions(breakerhttp.FromLoopback))
	}
	return breakerhttp.Handler(reg, opts...)
}

// loopback reports whether addr, a host and port, is on this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// newRegistry returns the demo's registry: breakers that trip at half their
// last 10 calls failing, and whose state changes are printed to out.
func newRegistry(out io.Writer, clk breaker.Clock) (*breaker.Registry, error) {
	start := clk.Now()
	var reg *breaker.Registry
	show := breaker.ListenerFor(breaker.Mask(breaker.EventStateChange), func(e breaker.Event) {
		c, _ := reg.Circuit(e.Breaker)
		m := c.Metrics()
		detail := ""
		switch {
		case e.To == breaker.StateOpen && e.From == breaker.StateHalfOpen:
			detail = fmt.Sprintf("  (the probe failed; next probe in %v)", m.RetryAfter.Round(time.Millisecond))
		case e.To == breaker.StateOpen:
			detail = fmt.Sprintf("  (%d of the last %d calls failed; next probe in %v)", m.Failures, m.Calls, m.RetryAfter.Round(time.Millisecond))
		case e.To == breaker.StateClosed:
			detail = "  (the probe succeeded)"
		}
		fmt.Fprintf(out, "%5.2fs  %s: %-9s -> %s%s\n", e.Time.Sub(start).Seconds(), e.Breaker, e.From, e.To, detail)
	})
	var err error
	reg, err = breaker.NewRegistry(breaker.Config{
		WindowSize:     10,
		MinimumCalls:   5,
		OpenTimeout:    300 * time.Millisecond,
		MaxOpenTimeout: 1200 * time.Millisecond,
		Clock:          clk,
		Listeners:      []breaker.Listener{show},
	})
	return reg, err
}

// downstream fails every call during its outages.
type downstream struct {
	clock   breaker.Clock
	start   time.Time
	outages [][2]time.Duration
	calls   int
}

var errUnavailable = errors.New("503 service unavailable")

func (d *downstream) down() bool {
	t := d.clock.Now().Sub(d.start)
	for _, o := range d.outages {
		if t >= o[0] && t < o[1] {
			return true
		}
	}
	return false
}

func (d *downstream) get(context.Context) (string, error) {
	d.calls++
	if d.down() {
		return "", errUnavailable
	}
	return "200 ok", nil
}

// run sends one request every interval to each downstream through its
// breaker from reg and prints what happens. Time comes from clk and passes
// through sleep.
func run(out io.Writer, reg *breaker.Registry, clk breaker.Clock, sleep func(time.Duration)) {
	start := clk.Now()
	payments := &downstream{clock: clk, start: start, outages: outages}
	inventory := &downstream{clock: clk, start: start}
	pb, err := breaker.Get[string](reg, "payments")
	if err != nil {
		fail(err)
	}
	ib, err := breaker.Get[string](reg, "inventory")
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(out, "One request every %v to each of inventory (healthy) and payments (down %v-%v and %v-%v).\n",
		interval, outages[0][0], outages[0][1], outages[1][0], outages[1][1])
	var ok, failed, refused int
	wasDown := false
	for range requests {
		if isDown := payments.down(); isDown != wasDown {
			wasDown = isDown
			fmt.Fprintf(out, "%5.2fs  payments downstream %s\n", clk.Now().Sub(start).Seconds(),
				map[bool]string{true: "goes down", false: "recovers"}[isDown])
		}
		ib.Execute(context.Background(), inventory.get)
		_, err := pb.Execute(context.Background(), payments.get)
		switch {
		case errors.Is(err, breaker.ErrOpen), errors.Is(err, breaker.ErrTooManyCalls):
			refused++
		case err != nil:
			failed++
		default:
			ok++
		}
		sleep(interval)
	}
	fmt.Fprintf(out, "payments: %d requests, %d succeeded, %d failed, %d refused by the breaker without reaching the downstream (it saw %d calls).\n",
		requests, ok, failed, refused, payments.calls)
}
