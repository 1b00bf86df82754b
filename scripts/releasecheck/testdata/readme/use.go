package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/seed18491788/breaker"
)

// use is the section "Use".
func use(ctx context.Context, url string) error {
	// readme:begin
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
		return err // names the bad field and the values allowed
	}
	resp, err := cb.Execute(ctx, func(ctx context.Context) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		return http.DefaultClient.Do(req)
	})
	if errors.Is(err, breaker.ErrOpen) {
		// refused without touching the network: serve a fallback
	}
	// readme:end
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// registry is the section "Operating it live".
func registry() *breaker.Registry {
	// readme:begin
	reg, _ := breaker.NewRegistry(breaker.Config{OpenTimeout: 10 * time.Second},
		breaker.WithMaxCircuits(1000), breaker.WithIdleTimeout(time.Hour)) // bounded
	reg.Configure("payments", func(c *breaker.Config) { c.FailureRateThreshold = 0.2 })
	payments, _ := breaker.Get[*Receipt](reg, "payments")
	// readme:end
	_ = payments
	return reg
}

// load is the section "Operating it live", on config as data.
func load(reg *breaker.Registry) error {
	// readme:begin
	err := reg.Load([]byte(`{
	  "defaults": {"window": "time", "windowDuration": "60s", "openTimeout": "10s"},
	  "circuits": {
	    "payments": {"failureRateThreshold": 0.2, "halfOpenMaxWait": "30s"},
	    "search":   {"mode": "disabled"}
	  }
	}`))
	err = reg.LoadEnv("BREAKER", os.Environ()) // BREAKER_PAYMENTS_OPEN_TIMEOUT=5s, BREAKER_SEARCH_MODE=forced-open
	// readme:end
	return err
}

// fallback is the section "Fallback and retry".
func fallback(ctx context.Context, cb *breaker.Breaker[Quote]) (Quote, error) {
	// readme:begin
	quote, err := cb.Execute(ctx, func(ctx context.Context) (Quote, error) {
		return retry(ctx, 3, fetchQuote) // your retry loop, with back-off
	})
	if errors.Is(err, breaker.ErrOpen) || errors.Is(err, breaker.ErrTooManyCalls) {
		quote, err = cache.Last(), nil // refused: serve the last good value
	}
	// readme:end
	return quote, err
}
