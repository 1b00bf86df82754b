package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/seed18491788/breaker"
)

// A breaker trips after failures, refuses calls while open, and closes
// again when a trial call succeeds. The mock clock stands in for time.
func Example() {
	clk := clock.NewMock()
	b, err := breaker.New[string]("inventory", breaker.Config{
		WindowSize:  4,
		OpenTimeout: 10 * time.Second,
		Clock:       clk,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	refused := errors.New("connection refused")

	for range 4 {
		b.Execute(ctx, func(context.Context) (string, error) { return "", refused })
	}
	fmt.Println(b.State())

	_, err = b.Execute(ctx, func(context.Context) (string, error) { return "never called", nil })
	fmt.Println(err, errors.Is(err, breaker.ErrOpen))

	clk.Add(10 * time.Second)
	v, err := b.Execute(ctx, func(context.Context) (string, error) { return "42 in stock", nil })
	fmt.Println(v, err, b.State())
	// Output:
	// open
	// breaker "inventory": circuit open true
	// 42 in stock <nil> closed
}

func ExampleBreaker_Execute() {
	b, err := breaker.New[int]("pricing", breaker.Config{})
	if err != nil {
		panic(err)
	}
	price, err := b.Execute(context.Background(), func(ctx context.Context) (int, error) {
		return 1999, nil // call the dependency here, passing ctx on
	})
	switch {
	case errors.Is(err, breaker.ErrOpen), errors.Is(err, breaker.ErrTooManyCalls):
		fmt.Println("refused by the breaker; serve a fallback")
	case err != nil:
		fmt.Println("the call failed:", err)
	default:
		fmt.Println("price:", price)
	}
	// Output: price: 1999
}

// Allow suits code that cannot wrap the call in a function, such as
// middleware: ask first, then report the outcome through done.
func ExampleBreaker_Allow() {
	b, err := breaker.New[struct{}]("search", breaker.Config{WindowSize: 2})
	if err != nil {
		panic(err)
	}
	for _, outcome := range []error{nil, errors.New("502"), errors.New("503"), nil} {
		done, err := b.Allow()
		if err != nil {
			fmt.Println("refused:", err)
			continue
		}
		done(outcome)
		fmt.Println("done:", outcome, "->", b.State())
	}
	// Output:
	// done: <nil> -> closed
	// done: 502 -> open
	// refused: breaker "search": circuit open
	// refused: breaker "search": circuit open
}

// A time window judges the calls of the last minute; here slow calls trip
// the circuit even though none fails.
func ExampleConfig() {
	clk := clock.NewMock()
	b, err := breaker.New[string]("reports", breaker.Config{
		Window:                breaker.TimeWindow,
		WindowDuration:        time.Minute,
		MinimumCalls:          3,
		SlowCallDuration:      2 * time.Second,
		SlowCallRateThreshold: 0.6,
		Clock:                 clk,
	})
	if err != nil {
		panic(err)
	}
	call := func(took time.Duration) {
		b.Execute(context.Background(), func(context.Context) (string, error) {
			clk.Add(took)
			return "report", nil
		})
		m := b.Metrics()
		fmt.Printf("%v: %d calls, %d slow (%.0f%%)\n", m.State, m.Calls, m.SlowCalls, 100*m.SlowCallRate)
	}
	call(100 * time.Millisecond)
	call(3 * time.Second)
	call(5 * time.Second)
	// Output:
	// closed: 1 calls, 0 slow (0%)
	// closed: 2 calls, 1 slow (50%)
	// open: 3 calls, 2 slow (67%)
}

// The README's first example: a breaker for HTTP calls, where a 5xx
// response, which comes back with a nil error, counts as a failure too.
func ExampleFailOn() {
	payments := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError) // the dependency is failing
	}))
	defer payments.Close()
	url, ctx := payments.URL, context.Background()

	cb, err := breaker.New[*http.Response]("payments", breaker.Config{
		Window:               breaker.TimeWindow, // judge the calls of the last minute
		FailureRateThreshold: 0.5,                // trip when half the calls fail...
		MinimumCalls:         20,                 // ...once 20 calls are in the window
		SlowCallDuration:     2 * time.Second,    // a call this long counts as slow
		OpenTimeout:          10 * time.Second,   // then probe again after 10s
	}, breaker.FailOn(func(resp *http.Response, err error) bool {
		return err != nil || resp != nil && resp.StatusCode >= 500 // a 5xx is a failure too
	}))
	if err != nil {
		panic(err) // names the bad field and the values allowed
	}
	for range 21 {
		resp, err := cb.Execute(ctx, func(ctx context.Context) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			return http.DefaultClient.Do(req)
		})
		if errors.Is(err, breaker.ErrOpen) {
			fmt.Println("refused without touching the network:", cb.State())
			continue
		}
		resp.Body.Close()
	}
	// Output:
	// refused without touching the network: open
}

// A TripRule decides in place of the thresholds: here gobreaker's
// ReadyToTrip example, ported: trip once at least 3 calls are in the window
// and 60% of them failed.
func ExampleConfig_tripRule() {
	b, err := breaker.New[int]("reports", breaker.Config{
		Clock: clock.NewMock(),
		TripRule: func(c breaker.Counts) bool {
			return c.Calls >= 3 && float64(c.Failures)/float64(c.Calls) >= 0.6
		},
		Listeners: []breaker.Listener{breaker.ListenerFor(breaker.StateEvents, func(e breaker.Event) {
			fmt.Printf("%v -> %v: %v\n", e.From, e.To, e.Reason)
		})},
	})
	if err != nil {
		panic(err)
	}
	for _, fail := range []bool{false, true, false, true, true} {
		b.Execute(context.Background(), func(context.Context) (int, error) {
			if fail {
				return 0, errors.New("timeout")
			}
			return 1, nil
		})
	}
	// Output:
	// closed -> open: trip rule: 5 calls, 3 failed, 0 slow, 2 failed in a row
}

// A ListenerFunc hears every outcome, rejection and state change, outside
// the breaker's lock: each call delivers its own event, so a listener of
// calls must be safe for concurrent use.
func ExampleListenerFunc() {
	log := breaker.ListenerFunc(func(e breaker.Event) {
		switch e.Kind {
		case breaker.EventStateChange:
			fmt.Printf("%s: %v -> %v\n", e.Breaker, e.From, e.To)
		default:
			fmt.Printf("%s: %v %v\n", e.Breaker, e.Kind, e.Err)
		}
	})
	b, err := breaker.New[int]("ledger", breaker.Config{
		WindowSize: 1,
		Clock:      clock.NewMock(),
		Listeners:  []breaker.Listener{log},
	})
	if err != nil {
		panic(err)
	}
	b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errors.New("timeout") })
	b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	b.Reset()
	// Output:
	// ledger: failure timeout
	// ledger: closed -> open
	// ledger: rejected breaker "ledger": circuit open
	// ledger: open -> closed
}

// A listener that wants state changes only, such as one that alerts,
// costs the calls nothing: no event is made for them.
func ExampleListenerFor() {
	alert := breaker.ListenerFor(breaker.Mask(breaker.EventStateChange), func(e breaker.Event) {
		fmt.Printf("ALERT %s: %v -> %v\n", e.Breaker, e.From, e.To)
	})
	b, err := breaker.New[int]("ledger", breaker.Config{WindowSize: 1, Clock: clock.NewMock(), Listeners: []breaker.Listener{alert}})
	if err != nil {
		panic(err)
	}
	b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errors.New("timeout") })
	b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	fmt.Println("refused so far:", b.Metrics().Lifetime.RefusedOpen)
	// Output:
	// ALERT ledger: closed -> open
	// refused so far: 1
}

// Lifetime counts grow from New on, Reset or not, so a metrics system can
// read them as counters whenever it collects.
func ExampleLifetime() {
	clk := clock.NewMock()
	b, err := breaker.New[int]("search", breaker.Config{WindowSize: 2, OpenTimeout: 10 * time.Second, Clock: clk})
	if err != nil {
		panic(err)
	}
	b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errors.New("timeout") })
	b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	clk.Add(4 * time.Second)
	b.Reset()
	l := b.Metrics().Lifetime
	fmt.Printf("%d successes, %d failures, %d refused, %d opens, %v open\n",
		l.Successes, l.Failures, l.Refused(), l.Opens, l.OpenTime)
	// Output:
	// 1 successes, 1 failures, 1 refused, 1 opens, 4s open
}

// Retries belong inside the breaker, so that one exhausted round of retries
// counts as one failure; a fallback belongs outside, answering the calls the
// breaker refuses.
func Example_fallbackAndRetry() {
	b, err := breaker.New[string]("quotes", breaker.Config{WindowSize: 2, Clock: clock.NewMock()})
	if err != nil {
		panic(err)
	}
	tries := 0
	fetch := func(context.Context) (string, error) { // the dependency, down
		tries++
		return "", errors.New("503 from quotes")
	}
	withRetries := func(ctx context.Context) (string, error) {
		var err error
		for range 3 { // in real code, with a back-off between tries
			var quote string
			if quote, err = fetch(ctx); err == nil {
				return quote, nil
			}
		}
		return "", err
	}
	lastGood := "EUR/USD 1.08"
	quote := func() string {
		q, err := b.Execute(context.Background(), withRetries)
		switch {
		case errors.Is(err, breaker.ErrOpen), errors.Is(err, breaker.ErrTooManyCalls):
			return lastGood + " (cached)"
		case err != nil:
			return "error: " + err.Error()
		}
		lastGood = q
		return q
	}
	for range 3 {
		fmt.Printf("%s, %d tries so far\n", quote(), tries)
	}
	// Output:
	// error: 503 from quotes, 3 tries so far
	// error: 503 from quotes, 6 tries so far
	// EUR/USD 1.08 (cached), 6 tries so far
}
