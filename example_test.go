package breaker_test

import (
	"context"
	"errors"
	"fmt"
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
