package breaker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

func TestReconfigureThresholds(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 10, MinimumCalls: 4})
	for _, step := range "SSSF" {
		h.do(byte(step))
	}
	require.Equal(t, breaker.StateClosed, h.State(), "1 in 4 is under 0.5")
	cfg := h.Config()
	cfg.FailureRateThreshold = 0.4
	require.NoError(t, h.Reconfigure(cfg))
	assert.Equal(t, 0.4, h.Config().FailureRateThreshold)
	h.do('F') // 2 in 5
	assert.Equal(t, breaker.StateOpen, h.State(), "the new threshold judges the next outcome")
}

func TestReconfigureRejectsBadConfig(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 10})
	before := h.Config()
	err := h.Reconfigure(breaker.Config{FailureRateThreshold: 1.5})
	assert.EqualError(t, err, "breaker: FailureRateThreshold 1.5 is outside (0, 1]")
	assert.ErrorIs(t, err, breaker.ErrInvalidConfig)
	after := h.Config()
	assert.Equal(t, before.WindowSize, after.WindowSize, "the old config stays in force")
	assert.Equal(t, before.FailureRateThreshold, after.FailureRateThreshold)
}

func TestReconfigureKeepsTheState(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 1, OpenTimeout: time.Minute})
	h.trip(t)
	h.clk.Add(20 * time.Second)
	require.NoError(t, h.Reconfigure(breaker.Config{WindowSize: 5, OpenTimeout: time.Hour}))
	m := h.Metrics()
	assert.Equal(t, breaker.StateOpen, m.State)
	assert.Equal(t, 40*time.Second, m.RetryAfter, "the open period goes on as it began")
	assert.Equal(t, []string{"closed->open"}, h.rec.transitions(), "no state change")
}

func TestReconfigureWindows(t *testing.T) {
	t.Run("a larger count window keeps all", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 4, FailureRateThreshold: 1})
		for _, step := range "FSSS" {
			h.do(byte(step))
		}
		require.NoError(t, h.Reconfigure(breaker.Config{WindowSize: 8, FailureRateThreshold: 1}))
		m := h.Metrics()
		assert.Equal(t, 4, m.Calls)
		assert.Equal(t, 1, m.Failures)
	})
	t.Run("a smaller count window keeps the newest", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 6, FailureRateThreshold: 1})
		for _, step := range "FFSSSF" {
			h.do(byte(step))
		}
		require.NoError(t, h.Reconfigure(breaker.Config{WindowSize: 3, FailureRateThreshold: 1}))
		m := h.Metrics()
		assert.Equal(t, 3, m.Calls)
		assert.Equal(t, 1, m.Failures, "S S F")
		h.do('S') // pushes out the oldest kept: an S
		h.do('S') // and the next S
		assert.Equal(t, 1, h.Metrics().Failures)
		h.do('S') // and the F
		assert.Equal(t, 0, h.Metrics().Failures)
	})
	t.Run("a time window is re-bucketed", func(t *testing.T) {
		h := newHarness(t, breaker.Config{Window: breaker.TimeWindow, WindowDuration: 10 * time.Second, BucketDuration: 2 * time.Second, FailureRateThreshold: 1})
		h.do('F')
		h.clk.Add(4 * time.Second)
		h.do('S')
		h.do('S')
		require.NoError(t, h.Reconfigure(breaker.Config{Window: breaker.TimeWindow, WindowDuration: 10 * time.Second, BucketDuration: time.Second, FailureRateThreshold: 1}))
		m := h.Metrics()
		assert.Equal(t, 3, m.Calls)
		assert.Equal(t, 1, m.Failures)
		h.clk.Add(6 * time.Second) // the failure is 10s old: its 1s bucket lasts 1s more
		assert.Equal(t, 1, h.Metrics().Failures)
		h.clk.Add(time.Second)
		m = h.Metrics()
		assert.Equal(t, 2, m.Calls)
		assert.Equal(t, 0, m.Failures, "the failure left with its new bucket")
		h.clk.Add(3 * time.Second)
		assert.Equal(t, 2, h.Metrics().Calls)
		h.clk.Add(time.Second)
		assert.Equal(t, 0, h.Metrics().Calls)
	})
	t.Run("another window type starts afresh", func(t *testing.T) {
		h := newHarness(t, breaker.Config{WindowSize: 10})
		h.do('F')
		require.NoError(t, h.Reconfigure(breaker.Config{Window: breaker.TimeWindow}))
		assert.Equal(t, 0, h.Metrics().Calls)
		assert.Equal(t, breaker.TimeWindow, h.Config().Window)
	})
}

func TestReconfigureShrinkingTimeWindowDropsOldOutcomes(t *testing.T) {
	cfg := breaker.Config{Window: breaker.TimeWindow, WindowDuration: time.Minute, BucketDuration: time.Second, MinimumCalls: 100, FailureRateThreshold: 1}
	h := newHarness(t, cfg)
	for range 50 {
		h.do('F')
	}
	h.clk.Add(50 * time.Second)
	for range 10 {
		h.do('S')
	}
	require.Equal(t, 60, h.Metrics().Calls)
	cfg.WindowDuration = 10 * time.Second
	require.NoError(t, h.Reconfigure(cfg))
	m := h.Metrics()
	assert.Equal(t, 10, m.Calls, "only the last 10s fit")
	assert.Zero(t, m.Failures, "the failures of 50s ago are outside")
}

// TestReconfigureFromConfig changes one field of Config() and keeps the
// other defaults following theirs: MinimumCalls, left at its default, is
// capped at the new, smaller WindowSize.
func TestReconfigureFromConfig(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 7})
	cfg := h.Config()
	assert.Zero(t, cfg.MinimumCalls, "as given")
	cfg.WindowSize = 3
	require.NoError(t, h.Reconfigure(cfg))
	for _, step := range "SFF" {
		h.do(byte(step))
	}
	assert.Equal(t, breaker.StateOpen, h.State(), "2 failures in 3, MinimumCalls 3")
}

func TestReconfigureHalfOpenTrials(t *testing.T) {
	h := newHarness(t, breaker.Config{WindowSize: 1, OpenTimeout: time.Second})
	h.halfOpen(t)
	_, err := h.Allow()
	require.NoError(t, err)
	assert.ErrorIs(t, h.do('S'), breaker.ErrTooManyCalls)
	require.NoError(t, h.Reconfigure(breaker.Config{WindowSize: 1, OpenTimeout: time.Second, HalfOpenMaxCalls: 3, SuccessThreshold: 1}))
	assert.NoError(t, h.do('S'), "room for more trials now")
	assert.Equal(t, breaker.StateClosed, h.State(), "and one success closes")
}

func TestReconfigureListenersAndClock(t *testing.T) {
	clk := clock.NewMock()
	old, next := &recorder{}, &recorder{}
	a := &attacher{}
	b, err := breaker.New[int]("dep", breaker.Config{WindowSize: 2, Clock: clk, Listeners: []breaker.Listener{old}})
	require.NoError(t, err)
	ok := func(context.Context) (int, error) { return 1, nil }
	b.Execute(context.Background(), ok)
	require.NoError(t, b.Reconfigure(breaker.Config{WindowSize: 2, Clock: clock.NewMock(), Listeners: []breaker.Listener{next, a}}))
	b.Execute(context.Background(), ok)
	assert.Equal(t, []string{"success"}, old.log())
	assert.Equal(t, []string{"success"}, next.log())
	assert.Equal(t, []string{"dep"}, a.names(), "a new Attacher is attached")
	assert.Same(t, clk, b.Config().Clock.(*clock.Mock), "the clock New was given stays")
	assert.Equal(t, clk.Now(), next.all()[0].Time)
}

// TestReconfigureUnderLoad flips between configs, listeners, windows and
// slow tracking while 32 goroutines call: every call must be counted once,
// and -race must find nothing.
func TestReconfigureUnderLoad(t *testing.T) {
	const goroutines, calls = 32, 500
	var heard atomic.Int64
	listener := breaker.ListenerFunc(func(e breaker.Event) {
		if breaker.CallEvents.Has(e.Kind) {
			heard.Add(1)
		}
	})
	configs := []breaker.Config{
		{WindowSize: 50, FailureRateThreshold: 1},
		{Window: breaker.TimeWindow, FailureRateThreshold: 1, SlowCallDuration: time.Hour},
		{WindowSize: 7, FailureRateThreshold: 1, Listeners: []breaker.Listener{listener}},
		{Window: breaker.TimeWindow, WindowDuration: time.Second, BucketDuration: 10 * time.Millisecond, FailureRateThreshold: 1,
			Listeners: []breaker.Listener{breaker.ListenerFor(breaker.StateEvents, listener.OnEvent)}},
	}
	b, err := breaker.New[int]("dep", configs[0])
	require.NoError(t, err)
	b.Disable() // records every outcome, never trips: counts stay exact
	errSoft := errors.New("soft")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var flips atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			require.NoError(t, b.Reconfigure(configs[i%len(configs)]))
			flips.Add(1)
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				var err error
				if (g+i)%5 == 0 {
					err = errSoft
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
	close(stop)
	l := b.Metrics().Lifetime
	assert.Equal(t, uint64(goroutines*calls), l.Successes+l.Failures, "every call counted once")
	assert.Equal(t, uint64(goroutines*calls/5), l.Failures)
	assert.Zero(t, l.Refused())
	assert.Equal(t, breaker.StateDisabled, b.State(), "the state outlives every Reconfigure")
	assert.Positive(t, flips.Load())
	assert.LessOrEqual(t, heard.Load(), int64(goroutines*calls))
}
