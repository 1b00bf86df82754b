package breakerslog_test

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/benbjohnson/clock"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakerslog"
)

func Example() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // for a steady Output below
			}
			return a
		},
	}))
	b, err := breaker.New[int]("payments", breaker.Config{
		ConsecutiveFailures: 3,
		Clock:               clock.NewMock(),
		Listeners:           []breaker.Listener{breakerslog.New(logger)},
	})
	if err != nil {
		panic(err)
	}
	for range 3 {
		b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errors.New("timeout") })
	}
	// Output:
	// level=WARN msg="circuit breaker state change" breaker=payments from=closed to=open reason="3 consecutive failures" reason_kind=consecutive-failures
}
