package breaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
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
	return newHarnessListening(t, cfg, true)
}

// newHarnessListening makes a harness whose breaker has the recorder as a
// listener, or no listener at all (which lets calls skip the lock).
func newHarnessListening(t *testing.T, cfg breaker.Config, listen bool) *harness {
	t.Helper()
	h := &harness{clk: clock.NewMock(), rec: &recorder{}}
	h.clk.Set(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	cfg.Clock = h.clk
	if listen {
		cfg.Listeners = append(cfg.Listeners, h.rec)
	}
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

func TestStateString(t *testing.T) {
	tests := []struct {
		s    breaker.State
		want string
	}{
		{breaker.StateClosed, "closed"},
		{breaker.StateOpen, "open"},
		{breaker.StateHalfOpen, "half-open"},
		{breaker.StateForcedOpen, "forced-open"},
		{breaker.StateDisabled, "disabled"},
		{breaker.State(9), "State(9)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.s.String())
		text, err := tt.s.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, tt.want, string(text))
		var back breaker.State
		if tt.s <= breaker.StateDisabled {
			require.NoError(t, back.UnmarshalText(text))
			assert.Equal(t, tt.s, back)
		} else {
			assert.EqualError(t, back.UnmarshalText(text), `breaker: unknown state "State(9)"`)
		}
	}
}

func TestKindStrings(t *testing.T) {
	assert.Equal(t, "success", breaker.EventSuccess.String())
	assert.Equal(t, "failure", breaker.EventFailure.String())
	assert.Equal(t, "ignored", breaker.EventIgnored.String())
	assert.Equal(t, "rejected", breaker.EventRejected.String())
	assert.Equal(t, "state-change", breaker.EventStateChange.String())
	assert.Equal(t, "EventKind(0)", breaker.EventKind(0).String())
	assert.Equal(t, "CountWindow", breaker.CountWindow.String())
	assert.Equal(t, "TimeWindow", breaker.TimeWindow.String())
	assert.Equal(t, "WindowType(-1)", breaker.WindowType(-1).String())
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   breaker.Config
		field string
		msg   string
	}{
		{"unknown window", breaker.Config{Window: 7}, "Window", "breaker: Window WindowType(7) is outside {CountWindow, TimeWindow}"},
		{"negative window size", breaker.Config{WindowSize: -1}, "WindowSize", "breaker: WindowSize -1 is outside [1, 1048576]"},
		{"huge window size", breaker.Config{WindowSize: math.MaxInt}, "WindowSize", "is outside [1, 1048576]"},
		{"negative window duration", breaker.Config{Window: breaker.TimeWindow, WindowDuration: -time.Second}, "WindowDuration", "breaker: WindowDuration -1s is outside (0, ∞)"},
		{"negative bucket", breaker.Config{BucketDuration: -1}, "BucketDuration", "breaker: BucketDuration -1ns is outside (0, WindowDuration 1m0s]"},
		{"bucket wider than window", breaker.Config{WindowDuration: time.Second, BucketDuration: 2 * time.Second}, "BucketDuration", "breaker: BucketDuration 2s is outside (0, WindowDuration 1s]"},
		{"too many buckets", breaker.Config{Window: breaker.TimeWindow, BucketDuration: time.Microsecond}, "BucketDuration", "breaker: BucketDuration 1µs is outside [915.528µs, 1m0s] (WindowDuration 1m0s in at most 65536 buckets)"},
		{"negative minimum calls", breaker.Config{MinimumCalls: -1}, "MinimumCalls", "breaker: MinimumCalls -1 is outside [1, ∞)"},
		{"minimum calls above window size", breaker.Config{WindowSize: 5, MinimumCalls: 6}, "MinimumCalls", "breaker: MinimumCalls 6 is outside [1, WindowSize 5]"},
		{"failure rate above 1", breaker.Config{FailureRateThreshold: 1.5}, "FailureRateThreshold", "breaker: FailureRateThreshold 1.5 is outside (0, 1]"},
		{"negative failure rate", breaker.Config{FailureRateThreshold: -0.5}, "FailureRateThreshold", "breaker: FailureRateThreshold -0.5 is outside (0, 1]"},
		{"NaN failure rate", breaker.Config{FailureRateThreshold: math.NaN()}, "FailureRateThreshold", "breaker: FailureRateThreshold NaN is outside (0, 1]"},
		{"negative consecutive failures", breaker.Config{ConsecutiveFailures: -2}, "ConsecutiveFailures", "breaker: ConsecutiveFailures -2 is outside [0, ∞) (0 turns it off)"},
		{"negative slow duration", breaker.Config{SlowCallDuration: -time.Millisecond}, "SlowCallDuration", "breaker: SlowCallDuration -1ms is outside [0, ∞) (0 turns it off)"},
		{"slow rate above 1", breaker.Config{SlowCallRateThreshold: 2}, "SlowCallRateThreshold", "breaker: SlowCallRateThreshold 2 is outside (0, 1]"},
		{"NaN slow rate", breaker.Config{SlowCallRateThreshold: math.NaN()}, "SlowCallRateThreshold", "NaN is outside (0, 1]"},
		{"negative open timeout", breaker.Config{OpenTimeout: -time.Second}, "OpenTimeout", "breaker: OpenTimeout -1s is outside (0, ∞)"},
		{"max open below open", breaker.Config{MaxOpenTimeout: 10 * time.Second}, "MaxOpenTimeout", "breaker: MaxOpenTimeout 10s is outside [OpenTimeout 30s, ∞) or 0 (no back-off)"},
		{"negative max open", breaker.Config{MaxOpenTimeout: -time.Second}, "MaxOpenTimeout", "MaxOpenTimeout -1s is outside"},
		{"jitter of 1", breaker.Config{OpenJitter: 1}, "OpenJitter", "breaker: OpenJitter 1 is outside [0, 1)"},
		{"negative jitter", breaker.Config{OpenJitter: -0.1}, "OpenJitter", "breaker: OpenJitter -0.1 is outside [0, 1)"},
		{"NaN jitter", breaker.Config{OpenJitter: math.NaN()}, "OpenJitter", "breaker: OpenJitter NaN is outside [0, 1)"},
		{"negative half-open calls", breaker.Config{HalfOpenMaxCalls: -1}, "HalfOpenMaxCalls", "breaker: HalfOpenMaxCalls -1 is outside [1, ∞)"},
		{"success threshold above half-open calls", breaker.Config{HalfOpenMaxCalls: 2, SuccessThreshold: 3}, "SuccessThreshold", "breaker: SuccessThreshold 3 is outside [1, HalfOpenMaxCalls 2]"},
		{"negative success threshold", breaker.Config{SuccessThreshold: -1}, "SuccessThreshold", "breaker: SuccessThreshold -1 is outside [1, HalfOpenMaxCalls 1]"},
		{"nil listener", breaker.Config{Listeners: []breaker.Listener{&recorder{}, nil}}, "Listeners[1]", "breaker: Listeners[1] is nil; want a non-nil Listener"},
		{"nil listener func", breaker.Config{Listeners: []breaker.Listener{breaker.ListenerFunc(nil)}}, "Listeners[0]", "breaker: Listeners[0] is nil; want a non-nil Listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := breaker.New[int]("dep", tt.cfg)
			assert.Nil(t, b)
			require.Error(t, err)
			assert.ErrorIs(t, err, breaker.ErrInvalidConfig)
			var ce *breaker.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
			assert.Contains(t, err.Error(), tt.msg)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestNewAcceptsEdgeValues(t *testing.T) {
	tests := []struct {
		name string
		cfg  breaker.Config
	}{
		{"zero config", breaker.Config{}},
		{"window of one", breaker.Config{WindowSize: 1, MinimumCalls: 1}},
		{"largest window", breaker.Config{WindowSize: breaker.MaxWindowSize, MinimumCalls: breaker.MaxWindowSize}},
		{"time window minimum above size", breaker.Config{Window: breaker.TimeWindow, WindowSize: 5, MinimumCalls: 500}},
		{"most buckets", breaker.Config{Window: breaker.TimeWindow, WindowDuration: breaker.MaxBuckets * time.Millisecond, BucketDuration: time.Millisecond}},
		{"tiny time window", breaker.Config{Window: breaker.TimeWindow, WindowDuration: 3}},
		{"huge time window", breaker.Config{Window: breaker.TimeWindow, WindowDuration: math.MaxInt64}},
		{"rates of 1", breaker.Config{FailureRateThreshold: 1, SlowCallRateThreshold: 1}},
		{"max open equal to open", breaker.Config{OpenTimeout: time.Second, MaxOpenTimeout: time.Second}},
		{"huge timeouts", breaker.Config{OpenTimeout: math.MaxInt64, MaxOpenTimeout: math.MaxInt64, OpenJitter: 0.99}},
		{"success threshold of 1 of many", breaker.Config{HalfOpenMaxCalls: 100, SuccessThreshold: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := breaker.New[string]("dep", tt.cfg)
			require.NoError(t, err)
			v, err := b.Execute(context.Background(), func(context.Context) (string, error) { return "ok", nil })
			assert.NoError(t, err)
			assert.Equal(t, "ok", v)
			assert.Equal(t, breaker.StateClosed, b.State())
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Run("minimum calls 10 and failure rate 0.5", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		for range 4 {
			h.do('S')
			h.do('F')
		}
		h.do('S')
		require.Equal(t, breaker.StateClosed, h.State(), "9 calls are below the minimum")
		h.do('F')
		assert.Equal(t, breaker.StateOpen, h.State(), "5 failures of 10 reach 0.5")
	})
	t.Run("window of 100 calls", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		for range 150 {
			h.do('S')
		}
		assert.Equal(t, 100, h.Metrics().Calls)
	})
	t.Run("minimum calls capped at a small window", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 3})
		h.do('F')
		h.do('F')
		require.Equal(t, breaker.StateClosed, h.State())
		h.do('F')
		assert.Equal(t, breaker.StateOpen, h.State())
	})
	t.Run("open timeout 30s", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		h.trip(t)
		h.clk.Add(30*time.Second - 1)
		require.Equal(t, breaker.StateOpen, h.State())
		h.clk.Add(1)
		assert.Equal(t, breaker.StateHalfOpen, h.State())
	})
	t.Run("one trial call closes", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		h.halfOpen(t)
		done, err := h.Allow()
		require.NoError(t, err)
		_, err = h.Allow()
		assert.ErrorIs(t, err, breaker.ErrTooManyCalls)
		done(nil)
		assert.Equal(t, breaker.StateClosed, h.State())
	})
	t.Run("time window of 60s in 6s buckets", func(t *testing.T) {
		h := newHarness(t, breaker.Config{Window: breaker.TimeWindow})
		h.do('S')
		h.clk.Add(66*time.Second - 1)
		require.Equal(t, 1, h.Metrics().Calls)
		h.clk.Add(1)
		assert.Equal(t, 0, h.Metrics().Calls)
	})
	t.Run("slow calls not tracked", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2})
		h.do('L')
		h.do('L')
		assert.Equal(t, 0, h.Metrics().SlowCalls)
		assert.Equal(t, breaker.StateClosed, h.State())
	})
	t.Run("context.Canceled ignored", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		assert.ErrorIs(t, h.do('I'), context.Canceled)
		h.run(0, fmt.Errorf("wrapped: %w", context.Canceled))
		h.run(0, context.DeadlineExceeded)
		m := h.Metrics()
		assert.Equal(t, 1, m.Calls)
		assert.Equal(t, 1, m.Failures, "a deadline is the dependency's failure")
		assert.Equal(t, []string{"ignored", "ignored", "failure"}, h.rec.log())
	})
}

func TestTripConditions(t *testing.T) {
	slow := time.Second
	tests := []struct {
		name   string
		cfg    breaker.Config
		steps  string
		openAt int // index of the step after which the circuit is open; -1: never
	}{
		{"rate reached at minimum calls", breaker.Config{WindowSize: 10, MinimumCalls: 4}, "SSFF", 3},
		{"rate below threshold", breaker.Config{WindowSize: 10, MinimumCalls: 4}, "SSSFSSSF", -1},
		{"too few calls", breaker.Config{WindowSize: 10, MinimumCalls: 5}, "FFFF", -1},
		{"threshold of 1 needs every call failing", breaker.Config{WindowSize: 4, FailureRateThreshold: 1}, "FFFSFFFF", 7},
		{"count window forgets the oldest", breaker.Config{WindowSize: 4, FailureRateThreshold: 0.75}, "FFSSSFFF", 7},
		{"consecutive failures", breaker.Config{WindowSize: 10, FailureRateThreshold: 1, ConsecutiveFailures: 3}, "FFSFFF", 5},
		{"consecutive failures before minimum calls", breaker.Config{MinimumCalls: 50, ConsecutiveFailures: 2}, "FF", 1},
		{"ignored calls neither count nor break a streak", breaker.Config{WindowSize: 10, FailureRateThreshold: 1, ConsecutiveFailures: 2}, "FIIF", 3},
		{"ignored calls are not recorded", breaker.Config{MinimumCalls: 2, WindowSize: 2}, "IIIIIF", -1},
		{"an error that is not a failure is a success", breaker.Config{WindowSize: 2, ConsecutiveFailures: 2, FailureRateThreshold: 1, IsFailure: isFailure}, "FNFNF", -1},
		{"slow rate", breaker.Config{WindowSize: 4, SlowCallDuration: slow, SlowCallRateThreshold: 0.5, FailureRateThreshold: 1}, "LSLS", 3},
		{"slow below threshold", breaker.Config{WindowSize: 4, SlowCallDuration: slow, SlowCallRateThreshold: 0.75, FailureRateThreshold: 1}, "LSLSLSLS", -1},
		{"just under slow duration", breaker.Config{WindowSize: 2, SlowCallDuration: slow, SlowCallRateThreshold: 0.5}, "llll", -1},
		{"a slow failure is slow", breaker.Config{WindowSize: 2, SlowCallDuration: slow, SlowCallRateThreshold: 0.5, FailureRateThreshold: 1}, "XS", 1},
		{"slow tracking off", breaker.Config{WindowSize: 2, SlowCallRateThreshold: 0.5}, "LLLL", -1},
		{"time window keeps the last 10s", breaker.Config{Window: breaker.TimeWindow, WindowDuration: 10 * time.Second, BucketDuration: time.Second, MinimumCalls: 5, FailureRateThreshold: 0.6}, "FFSS++F", 6},
		{"time window drops older calls", breaker.Config{Window: breaker.TimeWindow, WindowDuration: 10 * time.Second, BucketDuration: time.Second, MinimumCalls: 5, FailureRateThreshold: 0.6}, "FFSS+++F", -1},
		{"time window minimum calls", breaker.Config{Window: breaker.TimeWindow, WindowDuration: 10 * time.Second, MinimumCalls: 3}, "F++F++F", -1},
	}
	for _, tt := range tests {
		for _, listen := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/listener=%v", tt.name, listen), func(t *testing.T) {
				testSteps(t, newHarnessListening(t, tt.cfg, listen), tt.steps, tt.openAt)
			})
		}
	}
}

// testSteps takes steps (see harness.do) and checks that the circuit opens
// after step openAt, or never if openAt is negative.
func testSteps(t *testing.T, h *harness, steps string, openAt int) {
	t.Helper()
	for i := range len(steps) {
		h.do(steps[i])
		want := breaker.StateClosed
		if openAt >= 0 && i >= openAt {
			want = breaker.StateOpen
		}
		require.Equal(t, want, h.State(), "after step %d (%q) of %q", i, steps[i], steps)
		if want == breaker.StateOpen {
			return
		}
	}
}

func TestOpenRejects(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 2, OpenTimeout: 10 * time.Second})
	h.trip(t)
	trippedAt := h.clk.Now()
	h.rec.clear()

	called := false
	_, err := h.Execute(context.Background(), func(context.Context) (int, error) {
		called = true
		return 0, nil
	})
	assert.False(t, called, "fn must not run while open")
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.NotErrorIs(t, err, breaker.ErrTooManyCalls)
	assert.EqualError(t, err, `breaker "dep": circuit open`)
	var re *breaker.RejectedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "dep", re.Breaker)
	assert.Equal(t, breaker.StateOpen, re.State)
	assert.Equal(t, trippedAt.Add(10*time.Second), re.RetryAt)
	assert.Equal(t, 10*time.Second, re.RetryAfter())

	done, err := h.Allow()
	assert.ErrorIs(t, err, breaker.ErrOpen)
	require.NotNil(t, done)
	done(errBoom) // does nothing

	m := h.Metrics()
	assert.Equal(t, uint64(2), m.Lifetime.Refused())
	assert.Equal(t, 2, m.Calls, "rejections are not recorded")
	assert.Equal(t, 10*time.Second, m.RetryAfter)
	events := h.rec.all()
	require.Len(t, events, 2)
	for _, e := range events {
		assert.Equal(t, breaker.EventRejected, e.Kind)
		assert.ErrorIs(t, e.Err, breaker.ErrOpen)
		assert.Equal(t, "dep", e.Breaker)
	}

	h.clk.Add(4 * time.Second)
	assert.Equal(t, 6*time.Second, re.RetryAfter(), "counts down on the breaker's clock")
	assert.Equal(t, 6*time.Second, h.Metrics().RetryAfter)
	h.clk.Add(7 * time.Second)
	assert.Zero(t, re.RetryAfter(), "the time has come")
}

func TestOpenToHalfOpenIsLazy(t *testing.T) {
	triggers := map[string]func(h *harness){
		"State":   func(h *harness) { h.State() },
		"Metrics": func(h *harness) { h.Metrics() },
		"Execute": func(h *harness) { h.do('S') },
		"Allow": func(h *harness) {
			done, err := h.Allow()
			if err == nil {
				done(nil)
			}
		},
	}
	for name, trigger := range triggers {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, breaker.Config{WindowSize: 2, OpenTimeout: 10 * time.Second})
			h.trip(t)
			h.clk.Add(10*time.Second - 1)
			trigger(h)
			assert.Equal(t, []string{"closed->open"}, h.rec.transitions(), "still open 1ns before the timeout")

			h.clk.Add(1)
			assert.Equal(t, []string{"closed->open"}, h.rec.transitions(), "no timer moves the state")
			trigger(h)
			assert.Contains(t, h.rec.transitions(), "open->half-open")
		})
	}
}

func TestHalfOpen(t *testing.T) {
	t.Run("admits at most HalfOpenMaxCalls per period", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2, HalfOpenMaxCalls: 3})
		h.halfOpen(t)
		var dones []func(error)
		for range 3 {
			done, err := h.Allow()
			require.NoError(t, err)
			dones = append(dones, done)
		}
		_, err := h.Allow()
		assert.ErrorIs(t, err, breaker.ErrTooManyCalls)
		assert.NotErrorIs(t, err, breaker.ErrOpen)
		assert.EqualError(t, err, `breaker "dep": too many calls while half-open`)

		dones[0](nil)
		m := h.Metrics()
		assert.Equal(t, breaker.StateHalfOpen, m.State)
		assert.Equal(t, 3, m.HalfOpenCalls)
		assert.Equal(t, 1, m.HalfOpenSuccesses)
		_, err = h.Allow()
		assert.ErrorIs(t, err, breaker.ErrTooManyCalls, "a finished trial does not free a place")
		assert.Equal(t, uint64(2), h.Metrics().Lifetime.Refused())

		dones[1](nil)
		require.Equal(t, breaker.StateHalfOpen, h.State())
		dones[2](nil)
		m = h.Metrics()
		assert.Equal(t, breaker.StateClosed, m.State, "SuccessThreshold defaults to HalfOpenMaxCalls")
		assert.Zero(t, m.Calls, "the circuit closes with a fresh window")
		assert.Zero(t, m.ConsecutiveFailures)
		assert.Zero(t, m.HalfOpenCalls)
	})
	t.Run("SuccessThreshold successes close", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2, HalfOpenMaxCalls: 3, SuccessThreshold: 2, IsFailure: isFailure})
		h.halfOpen(t)
		h.do('S')
		require.Equal(t, breaker.StateHalfOpen, h.State())
		h.do('N') // an error that is not a failure is a success
		assert.Equal(t, breaker.StateClosed, h.State())
	})
	t.Run("a failure reopens", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2, HalfOpenMaxCalls: 3, OpenTimeout: 7 * time.Second})
		h.halfOpen(t)
		h.do('S')
		h.do('F')
		m := h.Metrics()
		assert.Equal(t, breaker.StateOpen, m.State)
		assert.Equal(t, 7*time.Second, m.RetryAfter)
		assert.Equal(t, uint64(2), m.Lifetime.Opens)
		assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->open"}, h.rec.transitions())
	})
	t.Run("a slow trial reopens", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2, SlowCallDuration: time.Second})
		h.halfOpen(t)
		h.do('L')
		assert.Equal(t, breaker.StateOpen, h.State())
	})
	t.Run("a long trial is fine with slow tracking off", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2})
		h.halfOpen(t)
		h.do('L')
		assert.Equal(t, breaker.StateClosed, h.State())
	})
	t.Run("an ignored trial returns its permit", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2})
		h.halfOpen(t)
		assert.ErrorIs(t, h.do('I'), context.Canceled)
		require.Equal(t, breaker.StateHalfOpen, h.State())
		done, err := h.Allow()
		require.NoError(t, err, "the ignored trial gave its place back")
		done(nil)
		assert.Equal(t, breaker.StateClosed, h.State())
	})
}

func TestBackoff(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 2, OpenTimeout: 10 * time.Second, MaxOpenTimeout: 35 * time.Second})
	h.trip(t)
	var waits []time.Duration
	for range 4 {
		wait := h.Metrics().RetryAfter
		waits = append(waits, wait)
		h.clk.Add(wait)
		h.do('F')
	}
	assert.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, 35 * time.Second, 35 * time.Second}, waits)

	h.clk.Add(35 * time.Second)
	h.do('S')
	require.Equal(t, breaker.StateClosed, h.State())
	h.trip(t)
	assert.Equal(t, 10*time.Second, h.Metrics().RetryAfter, "a close forgets the back-off")

	h.clk.Add(10 * time.Second)
	h.do('F')
	require.Equal(t, 20*time.Second, h.Metrics().RetryAfter)
	h.Reset()
	h.trip(t)
	assert.Equal(t, 10*time.Second, h.Metrics().RetryAfter, "Reset forgets the back-off")
}

func TestBackoffOffKeepsTheWaitFixed(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 2, OpenTimeout: 10 * time.Second})
	h.trip(t)
	for range 3 {
		require.Equal(t, 10*time.Second, h.Metrics().RetryAfter)
		h.clk.Add(10 * time.Second)
		h.do('F')
	}
	assert.Equal(t, uint64(4), h.Metrics().Lifetime.Opens)
}

func TestBackoffSaturates(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 2, OpenTimeout: math.MaxInt64 / 8, MaxOpenTimeout: math.MaxInt64})
	h.trip(t)
	var waits []time.Duration
	for range 3 {
		wait := h.Metrics().RetryAfter
		require.Positive(t, wait)
		waits = append(waits, wait)
		h.clk.Add(wait)
		h.do('F')
	}
	assert.Equal(t, 2*waits[0], waits[1])
	assert.Equal(t, 2*waits[1], waits[2])
	assert.Equal(t, breaker.StateOpen, h.State())
	assert.Positive(t, h.Metrics().RetryAfter, "doubling the wait again would overflow: it saturates")
}

func TestJitterNeverOverflows(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 1, OpenTimeout: math.MaxInt64, OpenJitter: 0.99})
	for range 50 {
		h.trip(t)
		wait := h.Metrics().RetryAfter
		require.Positive(t, wait)
		h.Reset()
	}
}

func TestJitterSpreadsTheWait(t *testing.T) {
	clk := clock.NewMock()
	const base = 100 * time.Second
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for range 400 {
		b, err := breaker.New[int]("dep", breaker.Config{WindowSize: 1, OpenTimeout: base, OpenJitter: 0.2, Clock: clk})
		require.NoError(t, err)
		b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
		wait := b.Metrics().RetryAfter
		require.GreaterOrEqual(t, wait, 80*time.Second)
		require.LessOrEqual(t, wait, 120*time.Second)
		lo, hi = min(lo, wait), max(hi, wait)
	}
	assert.Less(t, lo, 90*time.Second, "the wait should reach into the lower half of the spread")
	assert.Greater(t, hi, 110*time.Second, "the wait should reach into the upper half of the spread")
}

func TestLateOutcomesDoNotCount(t *testing.T) {
	t.Run("admitted closed, finished half-open", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2})
		late, err := h.Allow()
		require.NoError(t, err)
		h.halfOpen(t)
		late(errBoom)
		m := h.Metrics()
		assert.Equal(t, breaker.StateHalfOpen, m.State, "a failure from before the trip must not reopen")
		assert.Zero(t, m.HalfOpenCalls)
		assert.Equal(t, "failure", h.rec.log()[len(h.rec.log())-1], "its event is still delivered")
	})
	t.Run("admitted half-open, finished closed", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2, HalfOpenMaxCalls: 2, SuccessThreshold: 1})
		h.halfOpen(t)
		late, err := h.Allow()
		require.NoError(t, err)
		h.do('S')
		require.Equal(t, breaker.StateClosed, h.State())
		late(errBoom)
		assert.Zero(t, h.Metrics().Calls)
	})
	t.Run("admitted before Reset", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		late, err := h.Allow()
		require.NoError(t, err)
		h.Reset()
		late(errBoom)
		assert.Zero(t, h.Metrics().Calls)
	})
	t.Run("admitted half-open, finished after ForceOpen and Reset", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2})
		h.halfOpen(t)
		late, err := h.Allow()
		require.NoError(t, err)
		h.ForceOpen()
		h.Reset()
		late(nil)
		assert.Equal(t, breaker.StateClosed, h.State())
		assert.Zero(t, h.Metrics().Calls)
	})
}

func TestForceOpen(t *testing.T) {
	h := newHarness(t, breaker.Config{})
	h.do('S')
	h.ForceOpen()
	h.ForceOpen() // no second event
	require.Equal(t, breaker.StateForcedOpen, h.State())

	h.clk.Add(365 * 24 * time.Hour)
	_, err := h.Execute(context.Background(), func(context.Context) (int, error) {
		t.Error("fn called while forced open")
		return 0, nil
	})
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.EqualError(t, err, `breaker "dep": circuit forced open`)
	var re *breaker.RejectedError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.RetryAt.IsZero())
	assert.Zero(t, re.RetryAfter(), "no time known while forced open")
	assert.Zero(t, (&breaker.RejectedError{State: breaker.StateOpen}).RetryAfter(), "one made by hand")

	m := h.Metrics()
	assert.Equal(t, breaker.StateForcedOpen, m.State, "forced open never times out")
	assert.Equal(t, uint64(1), m.Lifetime.Refused())
	assert.Zero(t, m.RetryAfter)
	assert.Zero(t, m.Lifetime.Opens, "ForceOpen is not a trip")
	assert.Equal(t, 1, m.Calls, "the window is kept")

	h.Reset()
	assert.Equal(t, breaker.StateClosed, h.State())
	assert.Equal(t, []string{"closed->forced-open", "forced-open->closed"}, h.rec.transitions())

	h.trip(t)
	h.ForceOpen()
	h.clk.Add(time.Hour)
	assert.Equal(t, breaker.StateForcedOpen, h.State(), "forcing an open circuit stops its timeout")
}

func TestDisable(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 4, ConsecutiveFailures: 2, SlowCallDuration: time.Second})
	h.trip(t)
	h.Disable()
	h.Disable()
	for range 6 {
		require.NoError(t, h.do('S'))
		require.ErrorIs(t, h.do('X'), errBoom, "a disabled breaker admits every call")
	}
	m := h.Metrics()
	assert.Equal(t, breaker.StateDisabled, m.State, "a disabled breaker never trips")
	assert.Equal(t, 4, m.Calls, "it keeps recording")
	assert.Equal(t, 2, m.Failures)
	assert.Equal(t, 2, m.SlowCalls)
	assert.Equal(t, 0.5, m.FailureRate)

	h.do('F')
	h.do('F')
	assert.Equal(t, 3, h.Metrics().ConsecutiveFailures)
	assert.Equal(t, breaker.StateDisabled, h.State())

	h.Reset()
	m = h.Metrics()
	assert.Equal(t, breaker.StateClosed, m.State)
	assert.Zero(t, m.Calls)
	assert.Zero(t, m.ConsecutiveFailures)
	assert.Equal(t, []string{"closed->open", "open->disabled", "disabled->closed"}, h.rec.transitions())
}

func TestReset(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 10, ConsecutiveFailures: 3})
	h.do('F')
	h.do('F')
	since := h.Metrics().Since
	h.clk.Add(time.Minute)
	h.Reset()
	m := h.Metrics()
	assert.Zero(t, m.Calls)
	assert.Zero(t, m.ConsecutiveFailures)
	assert.Equal(t, since, m.Since, "the circuit stayed closed")
	assert.Empty(t, h.rec.transitions(), "closed to closed is no state change")

	h.do('F')
	h.do('F')
	assert.Equal(t, breaker.StateClosed, h.State(), "the streak started over")

	h.do('F')
	require.Equal(t, breaker.StateOpen, h.State())
	h.clk.Add(time.Second)
	h.Reset()
	m = h.Metrics()
	assert.Equal(t, breaker.StateClosed, m.State)
	assert.Equal(t, h.clk.Now(), m.Since)
}

func TestName(t *testing.T) {
	b, err := breaker.New[int]("payments-db", breaker.Config{})
	require.NoError(t, err)
	assert.Equal(t, "payments-db", b.Name())
}

func TestExecute(t *testing.T) {
	t.Run("returns fn's value and error untouched", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		wrapped := fmt.Errorf("ctx: %w", errBoom)
		v, err := h.Execute(context.Background(), func(context.Context) (int, error) { return 42, wrapped })
		assert.Equal(t, 42, v)
		assert.Same(t, wrapped, err)
	})
	t.Run("passes ctx to fn", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		type key struct{}
		ctx := context.WithValue(context.Background(), key{}, "v")
		var got any
		h.Execute(ctx, func(ctx context.Context) (int, error) {
			got = ctx.Value(key{})
			return 0, nil
		})
		assert.Equal(t, "v", got)
	})
	t.Run("nil fn", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		_, err := h.Execute(context.Background(), nil)
		assert.ErrorIs(t, err, breaker.ErrNilFunc)
		assert.Zero(t, h.Metrics().Calls)
		assert.Empty(t, h.rec.all())
	})
	t.Run("nil ctx", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		var nilCtx context.Context
		v, err := h.Execute(nilCtx, func(ctx context.Context) (int, error) {
			if ctx == nil {
				return 0, errors.New("fn got a nil ctx")
			}
			return 7, nil
		})
		require.NoError(t, err)
		assert.Equal(t, 7, v)
	})
	t.Run("done ctx", func(t *testing.T) {
		for name, ctx := range map[string]context.Context{
			"canceled": canceledCtx(),
			"expired":  expiredCtx(t),
		} {
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, breaker.Config{})
				h.trip(t)
				h.rec.clear()
				_, err := h.Execute(ctx, func(context.Context) (int, error) {
					t.Error("fn called with a done ctx")
					return 0, nil
				})
				assert.Equal(t, ctx.Err(), err)
				m := h.Metrics()
				assert.Zero(t, m.Lifetime.Refused(), "a done ctx is not a rejection")
				assert.Empty(t, h.rec.all())
			})
		}
	})
	t.Run("panic is recorded and re-raised", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2})
		assert.PanicsWithValue(t, "kaboom", func() {
			h.Execute(context.Background(), func(context.Context) (int, error) { panic("kaboom") })
		})
		assert.Equal(t, 1, h.Metrics().Failures)
		events := h.rec.all()
		require.Len(t, events, 1)
		assert.Equal(t, breaker.EventFailure, events[0].Kind)
		var pe *breaker.PanicError
		require.ErrorAs(t, events[0].Err, &pe)
		assert.Equal(t, "kaboom", pe.Value)
		assert.EqualError(t, pe, "breaker: call panicked: kaboom")

		assert.PanicsWithError(t, errBoom.Error(), func() {
			h.Execute(context.Background(), func(context.Context) (int, error) { panic(errBoom) })
		})
		assert.Equal(t, breaker.StateOpen, h.State())
		assert.ErrorIs(t, h.rec.all()[1].Err, errBoom, "PanicError unwraps an error value")
	})
	t.Run("panicking trial does not leak its permit", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2, OpenTimeout: time.Second})
		h.halfOpen(t)
		assert.Panics(t, func() {
			h.Execute(context.Background(), func(context.Context) (int, error) { panic("kaboom") })
		})
		require.Equal(t, breaker.StateOpen, h.State(), "the panic is a failed trial")
		h.clk.Add(time.Second)
		h.do('S')
		assert.Equal(t, breaker.StateClosed, h.State())
	})
	t.Run("Goexit is recorded", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2})
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.Execute(context.Background(), func(context.Context) (int, error) {
				runtime.Goexit()
				return 0, nil
			})
		}()
		<-done
		assert.Equal(t, 1, h.Metrics().Failures)
		assert.Equal(t, []string{"failure"}, h.rec.log())
	})
	t.Run("panicking IsFailure", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 2, IsFailure: func(err error) bool {
			if errors.Is(err, errBenign) {
				panic("bad predicate")
			}
			return true
		}})
		h.halfOpen(t)
		assert.PanicsWithValue(t, "bad predicate", func() { h.do('N') })
		assert.Equal(t, breaker.StateOpen, h.State(), "the call counts as a failed trial; the permit is not leaked")
	})
	t.Run("panicking IsIgnored", func(t *testing.T) {
		h := newHarness(t, breaker.Config{IsIgnored: func(error) bool { panic("bad predicate") }})
		assert.PanicsWithValue(t, "bad predicate", func() { h.do('F') })
		assert.NoError(t, h.do('S'), "successes never reach the predicates")
		assert.Equal(t, 2, h.Metrics().Calls)
		assert.Equal(t, 1, h.Metrics().Failures)
	})
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func expiredCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	t.Cleanup(cancel)
	return ctx
}

func TestAllow(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 10, SlowCallDuration: time.Second})
	done, err := h.Allow()
	require.NoError(t, err)
	h.clk.Add(time.Second)
	done(errBoom)
	done(nil) // a second call does nothing
	m := h.Metrics()
	assert.Equal(t, 1, m.Calls)
	assert.Equal(t, 1, m.Failures)
	assert.Equal(t, 1, m.SlowCalls, "the duration runs from Allow to done")

	done, err = h.Allow()
	require.NoError(t, err)
	done(context.Canceled)
	assert.Equal(t, 1, h.Metrics().Calls, "ignored")
	events := h.rec.all()
	require.Len(t, events, 2)
	assert.Equal(t, time.Second, events[0].Duration)
	assert.True(t, events[0].Slow)
	assert.Equal(t, breaker.EventIgnored, events[1].Kind)
}

func TestAllowLateDoneOfARecycledPermit(t *testing.T) {
	h := newHarnessListening(t, breaker.Config{}, false)
	first, err := h.Allow()
	require.NoError(t, err)
	first(nil)
	for range 100 { // permits are recycled: later ones may reuse first's
		done, err := h.Allow()
		require.NoError(t, err)
		first(errBoom) // late: does nothing, whichever permit it shares with
		done(nil)
		first(errBoom)
	}
	m := h.Metrics()
	assert.Equal(t, uint64(101), m.Lifetime.Successes)
	assert.Zero(t, m.Lifetime.Failures, "a done called again never counts")
}

func TestAllowAllocations(t *testing.T) {
	b, err := breaker.New[int]("dep", breaker.Config{})
	require.NoError(t, err)
	admitted := testing.AllocsPerRun(1000, func() {
		done, _ := b.Allow()
		done(nil)
	})
	assert.LessOrEqual(t, admitted, 1.0, "an admitted Allow and its done")
	b.ForceOpen()
	refused := testing.AllocsPerRun(1000, func() {
		done, _ := b.Allow()
		done(nil)
	})
	assert.Zero(t, refused, "a refused Allow")
}

// TestMemoryPerBreaker checks that a default breaker that no two
// goroutines contend for stays small however many processors there are:
// its striped counters grow only under contention.
func TestMemoryPerBreaker(t *testing.T) {
	const n = 10_000
	for _, procs := range []int{1, 16, 128} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			bs := make([]*breaker.Breaker[int], n)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range bs {
				bs[i], _ = breaker.New[int]("dep", breaker.Config{})
				bs[i].Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			per := float64(after.HeapAlloc-before.HeapAlloc) / n
			assert.LessOrEqual(t, per, 1024.0, "bytes per breaker")
			t.Logf("%.0f bytes per breaker", per)
			runtime.KeepAlive(bs)
		})
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, breaker.Config{
		Window: breaker.TimeWindow, WindowDuration: 10 * time.Second, BucketDuration: time.Second,
		MinimumCalls: 4, FailureRateThreshold: 0.9, SlowCallDuration: time.Second, SlowCallRateThreshold: 0.9, ConsecutiveFailures: 5,
		OpenTimeout: 20 * time.Second,
	})
	start := h.clk.Now()
	h.do('S')
	h.do('L')
	h.do('F')
	h.do('X')
	m := h.Metrics()
	assert.Equal(t, breaker.Metrics{
		State: breaker.StateClosed, Since: start,
		Calls: 4, Failures: 2, SlowCalls: 2, FailureRate: 0.5, SlowCallRate: 0.5,
		ConsecutiveFailures: 2,
		Lifetime:            breaker.Lifetime{Successes: 2, Failures: 2, SlowCalls: 2},
	}, m)
	require.Equal(t, breaker.StateClosed, m.State)

	h.clk.Add(12 * time.Second)
	m = h.Metrics()
	assert.Equal(t, 0, m.Calls, "expired buckets go when Metrics is read")
	assert.Zero(t, m.FailureRate)

	h.trip(t)
	trippedAt := h.clk.Now()
	h.clk.Add(5 * time.Second)
	h.do('S')
	m = h.Metrics()
	assert.Equal(t, breaker.StateOpen, m.State)
	assert.Equal(t, trippedAt, m.Since)
	assert.Equal(t, 15*time.Second, m.RetryAfter)
	assert.Equal(t, breaker.Lifetime{Successes: 2, Failures: 5, SlowCalls: 2, RefusedOpen: 1, Opens: 1, OpenTime: 5 * time.Second}, m.Lifetime)
	assert.Equal(t, 3, m.Calls)
	assert.Equal(t, 5, m.ConsecutiveFailures, "the streak outlives the window: 2 old failures and 3 new ones tripped it")
}

func TestLifetime(t *testing.T) {
	for _, listen := range []bool{false, true} {
		t.Run(fmt.Sprintf("listener=%v", listen), func(t *testing.T) {
			h := newHarnessListening(t, breaker.Config{
				WindowSize: 4, MinimumCalls: 4, HalfOpenMaxCalls: 2, SuccessThreshold: 2,
				SlowCallDuration: time.Second, OpenTimeout: 10 * time.Second,
			}, listen)
			for _, step := range "SSLSIFF" { // the last F makes 2 failures in 4: open
				h.do(byte(step))
			}
			require.Equal(t, breaker.StateOpen, h.State())
			h.do('S') // refused while open
			h.clk.Add(4 * time.Second)
			h.ForceOpen()
			h.do('S') // refused while forced open
			h.clk.Add(6 * time.Second)
			h.Reset()
			h.clk.Add(time.Hour)
			want := breaker.Lifetime{
				Successes: 4, Failures: 2, Ignored: 1, SlowCalls: 1,
				RefusedOpen: 2, Opens: 1, OpenTime: 10 * time.Second,
			}
			assert.Equal(t, want, h.Metrics().Lifetime, "Reset keeps the lifetime counts; closed time is not open time")

			h.trip(t)
			h.clk.Add(10 * time.Second)
			done, err := h.Allow() // the first trial
			require.NoError(t, err)
			_, err = h.Allow() // the second
			require.NoError(t, err)
			assert.ErrorIs(t, h.do('S'), breaker.ErrTooManyCalls)
			assert.ErrorIs(t, h.do('S'), breaker.ErrTooManyCalls)
			done(nil)
			got := h.Metrics().Lifetime
			assert.Equal(t, uint64(2), got.RefusedHalfOpen)
			assert.Equal(t, uint64(2), got.Opens)
			assert.Equal(t, 20*time.Second, got.OpenTime)
			assert.Equal(t, uint64(4), got.Refused())
		})
	}
}

func TestListenerEventsInOrder(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 2, SlowCallDuration: time.Second, OpenTimeout: 10 * time.Second})
	t0 := h.clk.Now()
	h.do('L')
	h.do('F')
	h.do('S')
	h.clk.Add(10 * time.Second)
	h.do('S')
	assert.Equal(t, []string{
		"success", "failure", "closed->open", "rejected",
		"open->half-open", "success", "half-open->closed",
	}, h.rec.log())

	events := h.rec.all()
	for _, e := range events {
		assert.Equal(t, "dep", e.Breaker)
	}
	assert.Equal(t, breaker.Event{Breaker: "dep", Kind: breaker.EventSuccess, Duration: time.Second, Slow: true, Time: t0.Add(time.Second)}, events[0])
	assert.Equal(t, breaker.Event{Breaker: "dep", Kind: breaker.EventFailure, Err: errBoom, Time: t0.Add(time.Second)}, events[1])
	assert.Equal(t, breaker.Event{Breaker: "dep", Kind: breaker.EventStateChange, From: breaker.StateClosed, To: breaker.StateOpen, Time: t0.Add(time.Second),
		Reason: breaker.Reason{Kind: breaker.ReasonFailureRate, Rate: 0.5, Threshold: 0.5, Calls: 2}}, events[2])
	assert.Equal(t, "failure rate 0.5 ≥ 0.5 over 2 calls", events[2].Reason.String())
	assert.Equal(t, t0.Add(11*time.Second), events[4].Time)
}

func TestListenerSeesOwnEventsBeforeReturn(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 3})
	want := []string{"success", "failure", "failure", "closed->open", "rejected", "rejected"}
	seen := []int{1, 2, 4, 5, 6} // events delivered when each step returns
	for i, step := range "SFFFS" {
		h.do(byte(step))
		assert.Equal(t, want[:seen[i]], h.rec.log(), "after step %d", i)
	}
}

func TestPanickingListener(t *testing.T) {
	var logged bytes.Buffer
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	after := &recorder{}
	h := newHarness(t, breaker.Config{WindowSize: 1, Listeners: []breaker.Listener{
		breaker.ListenerFunc(func(e breaker.Event) {
			if e.Kind == breaker.EventFailure {
				panic("listener bug")
			}
		}),
		after,
	}})
	assert.NotPanics(t, func() {
		assert.ErrorIs(t, h.do('F'), errBoom, "the call goes on")
	})
	assert.Equal(t, []string{"failure", "closed->open"}, h.rec.log(), "later events and listeners go on")
	assert.Equal(t, h.rec.log(), after.log())
	assert.Contains(t, logged.String(), `breaker "dep": listener panicked on failure event: listener bug`)
}

func TestListenerMayCallTheBreaker(t *testing.T) {
	var b *breaker.Breaker[int]
	nested := 0
	seen := &recorder{}
	cfg := breaker.Config{WindowSize: 1, Clock: clock.NewMock(), Listeners: []breaker.Listener{
		breaker.ListenerFunc(func(e breaker.Event) {
			switch {
			case e.Kind == breaker.EventStateChange && e.To == breaker.StateOpen:
				b.Metrics()
				b.Reset() // causes a new event while this one is delivered
			case e.Kind == breaker.EventSuccess && nested == 0:
				nested++
				b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
			}
		}),
		seen,
	}}
	var err error
	b, err = breaker.New[int]("dep", cfg)
	require.NoError(t, err)

	b.Execute(context.Background(), func(context.Context) (int, error) { return 0, nil })
	// The first listener hears the success first and makes the nested
	// call, which delivers its own failure and the trip it causes; Reset,
	// called while the trip is delivered, queues its state change for the
	// deliverer. Only then does the success reach the second listener.
	assert.Equal(t, []string{"failure", "closed->open", "open->closed", "success"}, seen.log())
	assert.Equal(t, breaker.StateClosed, b.State())
}

func TestListenersAreCopied(t *testing.T) {
	rec, other := &recorder{}, &recorder{}
	listeners := []breaker.Listener{rec}
	b, err := breaker.New[int]("dep", breaker.Config{Listeners: listeners})
	require.NoError(t, err)
	listeners[0] = other
	b.Execute(context.Background(), func(context.Context) (int, error) { return 0, nil })
	assert.Len(t, rec.all(), 1)
	assert.Empty(t, other.all())
}

// counter is a Listener that counts events by kind and checks that state
// changes arrive as an unbroken chain.
type counter struct {
	mu     sync.Mutex
	kinds  map[breaker.EventKind]int
	state  breaker.State
	broken []string
}

func (c *counter) OnEvent(e breaker.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kinds == nil {
		c.kinds = map[breaker.EventKind]int{}
	}
	c.kinds[e.Kind]++
	if e.Kind == breaker.EventStateChange {
		if e.From != c.state {
			c.broken = append(c.broken, fmt.Sprintf("%v->%v after %v", e.From, e.To, c.state))
		}
		c.state = e.To
	}
}

func TestConcurrentTotalsAreExact(t *testing.T) {
	for _, window := range []breaker.WindowType{breaker.CountWindow, breaker.TimeWindow} {
		for _, listen := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/listener=%v", window, listen), func(t *testing.T) {
				testConcurrentTotals(t, window, listen)
			})
		}
	}
}

func testConcurrentTotals(t *testing.T, window breaker.WindowType, listen bool) {
	const goroutines, calls = 256, 200
	cfg := breaker.Config{
		Window: window, WindowSize: breaker.MaxWindowSize, WindowDuration: time.Hour,
		FailureRateThreshold: 1, Clock: clock.NewMock(),
	}
	cnt := &counter{}
	if listen {
		cfg.Listeners = []breaker.Listener{cnt}
	}
	b, err := breaker.New[int]("dep", cfg)
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				var err error
				if i%4 == 3 { // never more than a quarter of the calls so far: no trip
					err = errBoom
				}
				if i%2 == 0 {
					b.Execute(context.Background(), func(context.Context) (int, error) { return 0, err })
				} else if done, aerr := b.Allow(); aerr == nil {
					done(err)
				}
			}
		}()
	}
	wg.Wait()

	m := b.Metrics()
	assert.Equal(t, breaker.StateClosed, m.State)
	assert.Equal(t, goroutines*calls, m.Calls)
	assert.Equal(t, goroutines*calls/4, m.Failures)
	if listen {
		assert.Equal(t, goroutines*calls*3/4, cnt.kinds[breaker.EventSuccess])
		assert.Equal(t, goroutines*calls/4, cnt.kinds[breaker.EventFailure])
	}
}

func TestConcurrentHalfOpenAdmitsAtMostMaxCalls(t *testing.T) {
	const goroutines, maxCalls = 300, 5
	clk := clock.NewMock()
	b, err := breaker.New[int]("dep", breaker.Config{WindowSize: 1, HalfOpenMaxCalls: maxCalls, OpenTimeout: time.Second, Clock: clk})
	require.NoError(t, err)

	for round := range 3 {
		b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
		require.Equal(t, breaker.StateOpen, b.State())
		clk.Add(time.Second)
		rejectedBefore := b.Metrics().Lifetime.Refused()

		var inFlight, peak atomic.Int32
		admitted, rejected := make(chan struct{}), make(chan error)
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.Execute(context.Background(), func(context.Context) (int, error) {
					n := inFlight.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					admitted <- struct{}{}
					<-release
					inFlight.Add(-1)
					return 0, nil
				})
				if err != nil {
					rejected <- err
				}
			}()
		}
		nAdmitted, nRejected := 0, 0
		for range goroutines {
			select {
			case <-admitted:
				nAdmitted++
			case err := <-rejected:
				require.ErrorIs(t, err, breaker.ErrTooManyCalls)
				nRejected++
			}
		}
		close(release)
		wg.Wait()

		assert.Equal(t, maxCalls, nAdmitted, "round %d", round)
		assert.LessOrEqual(t, peak.Load(), int32(maxCalls), "round %d", round)
		assert.Equal(t, goroutines-maxCalls, nRejected, "round %d", round)
		assert.Equal(t, rejectedBefore+uint64(goroutines-maxCalls), b.Metrics().Lifetime.Refused(), "round %d", round)
		assert.Equal(t, breaker.StateClosed, b.State(), "round %d", round)
	}
}

// TestConcurrentChurn mixes calls, trips, manual controls and clock moves,
// and checks that every call yields exactly one event, that state changes
// reach the listener as one unbroken chain, and that every refusal a
// caller saw is counted.
func TestConcurrentChurn(t *testing.T) {
	for _, listen := range []bool{true, false} {
		t.Run(fmt.Sprintf("listener=%v", listen), func(t *testing.T) { testChurn(t, listen) })
	}
}

func testChurn(t *testing.T, listen bool) {
	clk := clock.NewMock()
	cnt := &counter{}
	cfg := breaker.Config{
		WindowSize: 20, MinimumCalls: 5, HalfOpenMaxCalls: 3, OpenTimeout: time.Second,
		MaxOpenTimeout: 4 * time.Second, SlowCallDuration: time.Millisecond, Clock: clk,
	}
	if listen {
		cfg.Listeners = []breaker.Listener{cnt}
	}
	b, err := breaker.New[int]("dep", cfg)
	require.NoError(t, err)

	// The callers go on until the clock and the manual controls have done
	// their rounds, however fast the calls are.
	const goroutines, calls = 64, 300
	var refused, made atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls || !stop.Load(); i++ {
				err := []error{nil, nil, errBoom, context.Canceled}[(g*7+i)%4]
				_, got := b.Execute(context.Background(), func(context.Context) (int, error) { return 0, err })
				made.Add(1)
				if errors.Is(got, breaker.ErrOpen) || errors.Is(got, breaker.ErrTooManyCalls) {
					refused.Add(1)
				}
				if i%50 == 0 {
					b.Metrics()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stop.Store(true)
		for i := range 100 {
			clk.Set(clk.Now().Add(500 * time.Millisecond))
			switch i % 25 {
			case 10:
				b.ForceOpen()
			case 12:
				b.Disable()
			case 14:
				b.Reset()
			}
			b.State()
		}
	}()
	wg.Wait()

	state, m := b.State(), b.Metrics()
	assert.Equal(t, refused.Load(), m.Lifetime.Refused())
	assert.Positive(t, m.Lifetime.Refused())
	if !listen {
		return
	}
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	total := cnt.kinds[breaker.EventSuccess] + cnt.kinds[breaker.EventFailure] + cnt.kinds[breaker.EventIgnored] + cnt.kinds[breaker.EventRejected]
	assert.Equal(t, int(made.Load()), total, "one outcome or rejection event per call")
	assert.Empty(t, cnt.broken, "state changes must arrive in order")
	assert.Positive(t, cnt.kinds[breaker.EventStateChange])
	assert.Equal(t, state, cnt.state, "the last state change seen is the current state")
	assert.Equal(t, uint64(cnt.kinds[breaker.EventRejected]), m.Lifetime.Refused())
}

var sink int

func benchmarkExecute(b *testing.B, cfg breaker.Config, prepare func(*breaker.Breaker[int])) {
	br, err := breaker.New[int]("bench", cfg)
	require.NoError(b, err)
	if prepare != nil {
		prepare(br)
	}
	fn := func(context.Context) (int, error) { return 1, nil }
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, _ := br.Execute(ctx, fn)
			sink += v
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				br.Execute(ctx, fn)
			}
		})
	})
}

func BenchmarkExecute(b *testing.B) {
	trip := func(br *breaker.Breaker[int]) { br.ForceOpen() }
	b.Run("closed", func(b *testing.B) { benchmarkExecute(b, breaker.Config{}, nil) })
	b.Run("closed-slow-tracking", func(b *testing.B) {
		benchmarkExecute(b, breaker.Config{SlowCallDuration: time.Second}, nil)
	})
	b.Run("closed-time-window", func(b *testing.B) {
		benchmarkExecute(b, breaker.Config{Window: breaker.TimeWindow}, nil)
	})
	b.Run("forced-open", func(b *testing.B) { benchmarkExecute(b, breaker.Config{}, trip) })
	b.Run("open", func(b *testing.B) {
		benchmarkExecute(b, breaker.Config{WindowSize: 1, OpenTimeout: time.Hour}, func(br *breaker.Breaker[int]) {
			br.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
		})
	})
	b.Run("half-open", func(b *testing.B) {
		// Every trial succeeds and closes the circuit, every call after it
		// fails and reopens it with a timeout already over: a cycle of
		// half-open admissions and transitions.
		br, err := breaker.New[int]("bench", breaker.Config{WindowSize: 1, OpenTimeout: time.Nanosecond, Clock: &steppingClock{}})
		require.NoError(b, err)
		ok := func(context.Context) (int, error) { return 1, nil }
		bad := func(context.Context) (int, error) { return 0, errBoom }
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%2 == 0 {
				br.Execute(context.Background(), bad)
			} else {
				br.Execute(context.Background(), ok)
			}
		}
	})
	b.Run("with-listener", func(b *testing.B) {
		benchmarkExecute(b, breaker.Config{Listeners: []breaker.Listener{breaker.ListenerFunc(func(breaker.Event) {})}}, nil)
	})
	b.Run("with-state-listener", func(b *testing.B) {
		benchmarkExecute(b, breaker.Config{Listeners: []breaker.Listener{breaker.ListenerFor(breaker.StateEvents, func(breaker.Event) {})}}, nil)
	})
}

// steppingClock moves a nanosecond forward on every reading. (A
// *clock.Mock sleeps a millisecond on every move, too slow for a benchmark.)
type steppingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(1)
	return c.now
}

func BenchmarkAllow(b *testing.B) {
	for _, refused := range []bool{false, true} {
		name := "admitted"
		if refused {
			name = "refused"
		}
		b.Run(name, func(b *testing.B) {
			br, err := breaker.New[int]("bench", breaker.Config{})
			require.NoError(b, err)
			if refused {
				br.ForceOpen()
			}
			b.ReportAllocs()
			for b.Loop() {
				done, _ := br.Allow()
				done(nil)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	cases := []struct {
		name  string
		cfg   breaker.Config
		steps string
		want  []string // transition: reason
	}{
		{"failure rate", breaker.Config{WindowSize: 4, MinimumCalls: 4}, "SSFF",
			[]string{"closed->open: failure rate 0.5 ≥ 0.5 over 4 calls"}},
		{"slow-call rate", breaker.Config{WindowSize: 4, MinimumCalls: 4, SlowCallDuration: time.Second, SlowCallRateThreshold: 0.75}, "LLSL",
			[]string{"closed->open: slow-call rate 0.75 ≥ 0.75 over 4 calls"}},
		{"consecutive failures", breaker.Config{ConsecutiveFailures: 3}, "FFF",
			[]string{"closed->open: 3 consecutive failures"}},
		{"probe failed", breaker.Config{WindowSize: 1, OpenTimeout: 5 * time.Second}, "F+F",
			[]string{"closed->open: failure rate 1 ≥ 0.5 over 1 call", "open->half-open: open wait over", "half-open->open: trial call failed"}},
		{"probe slow", breaker.Config{WindowSize: 1, OpenTimeout: 5 * time.Second, SlowCallDuration: 2 * time.Second}, "F+L",
			[]string{"closed->open: failure rate 1 ≥ 0.5 over 1 call", "open->half-open: open wait over", "half-open->open: trial call slow"}},
		{"probes succeeded", breaker.Config{WindowSize: 1, OpenTimeout: 5 * time.Second, HalfOpenMaxCalls: 2}, "F+SS",
			[]string{"closed->open: failure rate 1 ≥ 0.5 over 1 call", "open->half-open: open wait over", "half-open->closed: trial 2 calls succeeded"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			for _, step := range tt.steps {
				h.do(byte(step))
			}
			assert.Equal(t, tt.want, reasons(h))
		})
	}
	t.Run("manual", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		h.ForceOpen()
		h.Reset()
		h.OpenFor(time.Minute)
		assert.Equal(t, []string{"closed->forced-open: manual", "forced-open->closed: manual", "closed->open: manual, for 1m0s"}, reasons(h))
	})
	t.Run("trip rule", func(t *testing.T) {
		h := newHarness(t, breaker.Config{TripRule: func(c breaker.Counts) bool { return c.Failures >= 2 }})
		h.do('F')
		h.do('F')
		assert.Equal(t, []string{"closed->open: trip rule: 2 calls, 2 failed, 0 slow, 2 failed in a row"}, reasons(h))
	})
	assert.Equal(t, "ReasonKind(99)", breaker.ReasonKind(99).String())
	assert.Equal(t, "half-open-max-wait", breaker.ReasonHalfOpenMaxWait.String())
}

// reasons renders h's state changes as "from->to: reason".
func reasons(h *harness) []string {
	var out []string
	for _, e := range h.rec.all() {
		if e.Kind == breaker.EventStateChange {
			out = append(out, fmt.Sprintf("%v->%v: %v", e.From, e.To, e.Reason))
		}
	}
	return out
}

// TestHalfOpenNeverSticks checks that under the default config a half-open
// period that nothing decides (a trial whose done is lost, a trial call
// that hangs) ends as a failed trial, and that the breaker then probes
// again as usual.
func TestHalfOpenNeverSticks(t *testing.T) {
	t.Run("leaked permit", func(t *testing.T) {
		h := newHarness(t, breaker.Config{MaxOpenTimeout: time.Hour})
		h.halfOpen(t)
		leaked, err := h.Allow() // never done
		require.NoError(t, err)
		h.clk.Add(breaker.DefaultHalfOpenMaxWait - time.Nanosecond)
		assert.ErrorIs(t, h.do('S'), breaker.ErrTooManyCalls, "the trial still has its time")
		h.clk.Add(time.Nanosecond)
		refused := 0 // refusals without the lock look at the clock every 16th time
		for errors.Is(h.do('S'), breaker.ErrTooManyCalls) {
			refused++
		}
		assert.Less(t, refused, 16, "its time is up: open again within 16 refusals")
		assert.ErrorIs(t, h.do('S'), breaker.ErrOpen)
		assert.Equal(t, 2*breaker.DefaultOpenTimeout, h.Metrics().RetryAfter, "open again, with back-off")
		h.clk.Add(2 * breaker.DefaultOpenTimeout)
		require.NoError(t, h.do('S'), "a new trial")
		assert.Equal(t, breaker.StateClosed, h.State())
		leaked(errBoom)
		assert.Equal(t, breaker.StateClosed, h.State(), "the late outcome is dropped")
		assert.Contains(t, reasons(h), "half-open->open: no trial decided within 1m0s")
	})
	t.Run("hanging probe", func(t *testing.T) {
		h := newHarness(t, breaker.Config{})
		h.halfOpen(t)
		started, release := make(chan struct{}), make(chan struct{})
		done := make(chan error)
		go func() {
			_, err := h.Execute(context.Background(), func(context.Context) (int, error) {
				close(started)
				<-release
				return 0, nil
			})
			done <- err
		}()
		<-started
		h.clk.Add(breaker.DefaultHalfOpenMaxWait)
		assert.Equal(t, breaker.StateOpen, h.State(), "State alone ends the period")
		h.clk.Add(breaker.DefaultOpenTimeout)
		require.NoError(t, h.do('S'))
		assert.Equal(t, breaker.StateClosed, h.State())
		close(release)
		assert.NoError(t, <-done)
		assert.Equal(t, 0, h.Metrics().Calls, "the hung trial's success counts nowhere")
	})
	t.Run("negative turns it off", func(t *testing.T) {
		h := newHarness(t, breaker.Config{HalfOpenMaxWait: -1})
		h.halfOpen(t)
		_, err := h.Allow()
		require.NoError(t, err)
		h.clk.Add(10 * 365 * 24 * time.Hour)
		assert.Equal(t, breaker.StateHalfOpen, h.State())
		assert.ErrorIs(t, h.do('S'), breaker.ErrTooManyCalls)
	})
	t.Run("a shorter wait", func(t *testing.T) {
		h := newHarness(t, breaker.Config{HalfOpenMaxWait: 3 * time.Second, HalfOpenMaxCalls: 2})
		h.halfOpen(t)
		_, err := h.Allow()
		require.NoError(t, err)
		h.clk.Add(3 * time.Second)
		assert.Equal(t, breaker.StateOpen, h.Metrics().State)
	})
}

func TestOpenFor(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 10})
	h.do('F')
	h.OpenFor(2 * time.Minute)
	m := h.Metrics()
	assert.Equal(t, breaker.StateOpen, m.State)
	assert.Equal(t, 2*time.Minute, m.RetryAfter)
	assert.Equal(t, uint64(1), m.Lifetime.Opens)
	var re *breaker.RejectedError
	require.ErrorAs(t, h.do('S'), &re)
	assert.Equal(t, h.clk.Now().Add(2*time.Minute), re.RetryAt)

	h.OpenFor(time.Minute) // while open: the new period replaces the old
	assert.Equal(t, time.Minute, h.Metrics().RetryAfter)
	h.clk.Add(time.Minute)
	assert.Equal(t, breaker.StateHalfOpen, h.State())
	require.NoError(t, h.do('S'))
	assert.Equal(t, breaker.StateClosed, h.State())

	h.OpenFor(-time.Second)
	assert.Equal(t, breaker.StateHalfOpen, h.State(), "0 or less: the next use finds it half-open")
	assert.Contains(t, reasons(h), "closed->open: manual")
}

// response is what an HTTP-like call returns.
type response struct{ status int }

func TestFailOn(t *testing.T) {
	clk := clock.NewMock()
	serverError := func(r *response, err error) bool { return err != nil || r != nil && r.status >= 500 }
	b, err := breaker.New[*response]("api", breaker.Config{WindowSize: 2, Clock: clk}, breaker.FailOn(serverError))
	require.NoError(t, err)
	call := func(r *response, err error) (*response, error) {
		return b.Execute(context.Background(), func(context.Context) (*response, error) { return r, err })
	}
	got, err := call(&response{200}, nil)
	assert.NoError(t, err)
	assert.Equal(t, 200, got.status)
	got, err = call(&response{503}, nil)
	assert.NoError(t, err, "the result and error come back untouched")
	assert.Equal(t, 503, got.status)
	assert.Equal(t, breaker.StateOpen, b.State(), "a 503 is a failure: 1 in 2")
	assert.Equal(t, uint64(1), b.Metrics().Lifetime.Failures)

	b.Reset()
	_, err = call(nil, context.Canceled)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, uint64(1), b.Metrics().Lifetime.Ignored, "IsIgnored comes first")

	done, err := b.Allow()
	require.NoError(t, err)
	done(errBoom) // FailOn sees the zero result and the error
	assert.Equal(t, uint64(2), b.Metrics().Lifetime.Failures)

	panicky, err := breaker.New[int]("p", breaker.Config{}, breaker.FailOn(func(int, error) bool { panic("classifier bug") }))
	require.NoError(t, err)
	assert.PanicsWithValue(t, "classifier bug", func() {
		panicky.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	})
	assert.Equal(t, uint64(1), panicky.Metrics().Lifetime.Failures, "recorded as a failure first")

	nilOpt, err := breaker.New[int]("n", breaker.Config{}, nil)
	require.NoError(t, err, "a nil option is ignored")
	_, err = nilOpt.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	assert.NoError(t, err)
}

func TestFailOnAllocatesNothing(t *testing.T) {
	b, err := breaker.New[int]("dep", breaker.Config{}, breaker.FailOn(func(v int, err error) bool { return err != nil || v < 0 }))
	require.NoError(t, err)
	fn := func(context.Context) (int, error) { return 1, nil }
	assert.Zero(t, testing.AllocsPerRun(1000, func() { b.Execute(context.Background(), fn) }))
}

func TestTripRule(t *testing.T) {
	asked := 0
	h := newHarness(t, breaker.Config{WindowSize: 10, TripRule: func(c breaker.Counts) bool {
		asked++
		return c.Calls >= 3 && float64(c.Failures)/float64(c.Calls) >= 0.6 // gobreaker's ReadyToTrip example
	}})
	for _, step := range "SSS" {
		h.do(byte(step))
	}
	assert.Zero(t, asked, "successes never ask the rule")
	h.do('F')
	h.do('F')
	assert.Equal(t, 2, asked)
	assert.Equal(t, breaker.StateClosed, h.State(), "2 failures in 5: 0.4")
	h.do('F')
	h.do('F')
	assert.Equal(t, breaker.StateClosed, h.State(), "4 in 7: 0.57")
	h.do('F')
	assert.Equal(t, breaker.StateOpen, h.State(), "5 in 8: 0.625")
	assert.Equal(t, 5, asked, "asked after each failure")

	t.Run("panicking rule trips nothing", func(t *testing.T) {
		var logged bytes.Buffer
		log.SetOutput(&logged)
		t.Cleanup(func() { log.SetOutput(os.Stderr) })
		h := newHarness(t, breaker.Config{TripRule: func(breaker.Counts) bool { panic("rule bug") }})
		assert.NotPanics(t, func() { h.do('F') })
		assert.Equal(t, breaker.StateClosed, h.State())
		assert.Contains(t, logged.String(), `breaker "dep": TripRule panicked (logged once): rule bug`)
	})
}

// TestHalfOpenMaxWaitFromTheFirstTrial checks that the wait runs from the
// period's first trial: a half-open breaker that nobody calls, however
// often it is read (a metrics scrape every 15s), stays half-open, with no
// reopening and no back-off.
func TestHalfOpenMaxWaitFromTheFirstTrial(t *testing.T) {
	h := newHarness(t, breaker.Config{MaxOpenTimeout: time.Hour})
	h.trip(t)
	for range 40 { // ten idle minutes
		h.clk.Add(15 * time.Second)
		h.Metrics()
	}
	assert.Equal(t, breaker.StateHalfOpen, h.State())
	assert.Equal(t, uint64(1), h.Metrics().Lifetime.Opens)
	assert.Equal(t, []string{"closed->open", "open->half-open"}, h.rec.transitions())

	done, err := h.Allow() // the first trial, ten minutes into the period: it has the whole wait
	require.NoError(t, err)
	h.clk.Add(breaker.DefaultHalfOpenMaxWait - time.Second)
	assert.Equal(t, breaker.StateHalfOpen, h.State())
	done(nil)
	assert.Equal(t, breaker.StateClosed, h.State())
}

// TestLateTrialIsDropped returns a trial after HalfOpenMaxWait, with
// nothing reading the breaker in between: the period has ended as a failed
// trial, and the late outcome decides nothing.
func TestLateTrialIsDropped(t *testing.T) {
	for _, read := range []bool{true, false} {
		t.Run(fmt.Sprintf("read=%v", read), func(t *testing.T) {
			h := newHarness(t, breaker.Config{})
			h.halfOpen(t)
			done, err := h.Allow()
			require.NoError(t, err)
			h.clk.Add(breaker.DefaultHalfOpenMaxWait + time.Second)
			if read {
				h.State()
			}
			done(nil) // a late success
			assert.Equal(t, breaker.StateOpen, h.State())
			assert.Contains(t, reasons(h), "half-open->open: no trial decided within 1m0s")
		})
	}
}

// TestCallKeepsItsSettings admits a call, turns slow tracking on while it
// runs, and ends it: the call is judged by the settings it was admitted
// with, whole.
func TestCallKeepsItsSettings(t *testing.T) {
	h := newHarnessListening(t, breaker.Config{WindowSize: 10}, false)
	done, err := h.Allow() // not timed: no slow tracking, no listener
	require.NoError(t, err)
	require.NoError(t, h.Reconfigure(breaker.Config{WindowSize: 10, SlowCallDuration: time.Nanosecond}))
	h.clk.Add(time.Hour)
	done(nil)
	m := h.Metrics()
	assert.Zero(t, m.SlowCalls, "it had no start time: not slow")
	assert.Equal(t, uint64(1), m.Lifetime.Successes)
}
