package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

var (
	errBoom   = errors.New("boom")   // a failure
	errBenign = errors.New("benign") // not a failure where IsFailure says so
)

// recorder is a Listener that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []breaker.Event
}

func (r *recorder) OnEvent(e breaker.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) all() []breaker.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]breaker.Event(nil), r.events...)
}

// log renders the events as "success", "failure", "closed->open", ...
func (r *recorder) log() []string {
	var out []string
	for _, e := range r.all() {
		if e.Kind == breaker.EventStateChange {
			out = append(out, e.From.String()+"->"+e.To.String())
		} else {
			out = append(out, e.Kind.String())
		}
	}
	return out
}

func (r *recorder) transitions() []string {
	var out []string
	for _, e := range r.all() {
		if e.Kind == breaker.EventStateChange {
			out = append(out, e.From.String()+"->"+e.To.String())
		}
	}
	return out
}

func (r *recorder) clear() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// harness is a breaker driven by a mock clock, with a recorder attached.
type harness struct {
	*breaker.Breaker[int]
	clk *clock.Mock
	rec *recorder
	cfg breaker.Config
}

func newHarness(t *testing.T, cfg breaker.Config) *harness {
	t.Helper()
	h := &harness{clk: clock.NewMock(), rec: &recorder{}}
	h.clk.Set(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	cfg.Clock = h.clk
	cfg.Listeners = append(cfg.Listeners, h.rec)
	b, err := breaker.New[int]("dep", cfg)
	require.NoError(t, err)
	h.Breaker, h.cfg = b, cfg
	return h
}

// run executes a call that takes d by the mock clock and returns err.
func (h *harness) run(d time.Duration, err error) error {
	_, got := h.Execute(context.Background(), func(context.Context) (int, error) {
		if d > 0 {
			h.clk.Add(d)
		}
		return 1, err
	})
	return got
}

// slowDuration is how long a slow call in do lasts.
func (h *harness) slowDuration() time.Duration {
	if h.cfg.SlowCallDuration > 0 {
		return h.cfg.SlowCallDuration
	}
	return 5 * time.Second
}

// do performs one step named by a letter:
//
//	S success, F failure, L slow success, X slow failure,
//	l success just under SlowCallDuration, I ignored (context.Canceled),
//	N errBenign, + advance the clock 5s.
func (h *harness) do(op byte) error {
	switch op {
	case 'S':
		return h.run(0, nil)
	case 'F':
		return h.run(0, errBoom)
	case 'L':
		return h.run(h.slowDuration(), nil)
	case 'X':
		return h.run(h.slowDuration(), errBoom)
	case 'l':
		return h.run(h.slowDuration()-1, nil)
	case 'I':
		return h.run(0, context.Canceled)
	case 'N':
		return h.run(0, errBenign)
	case '+':
		h.clk.Add(5 * time.Second)
		return nil
	}
	panic(fmt.Sprintf("unknown step %q", op))
}

// trip opens the circuit with consecutive failures.
func (h *harness) trip(t *testing.T) {
	t.Helper()
	for i := 0; h.State() == breaker.StateClosed; i++ {
		require.Less(t, i, 1000, "the breaker does not trip")
		h.run(0, errBoom)
	}
	require.Equal(t, breaker.StateOpen, h.State())
}

// halfOpen trips the circuit and waits out the open timeout.
func (h *harness) halfOpen(t *testing.T) {
	t.Helper()
	h.trip(t)
	h.clk.Add(h.Metrics().RetryAfter)
	require.Equal(t, breaker.StateHalfOpen, h.State())
}

func isFailure(err error) bool { return errors.Is(err, errBoom) }
