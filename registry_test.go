package breaker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

func newRegistry(t *testing.T, defaults breaker.Config) (*breaker.Registry, *clock.Mock) {
	t.Helper()
	clk := clock.NewMock()
	defaults.Clock = clk
	r, err := breaker.NewRegistry(defaults)
	require.NoError(t, err)
	return r, clk
}

func fail[T any](b *breaker.Breaker[T]) error {
	_, err := b.Execute(context.Background(), func(context.Context) (T, error) {
		var zero T
		return zero, errBoom
	})
	return err
}

func TestRegistryGetMakesOnce(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{WindowSize: 1})
	a, err := breaker.Get[int](r, "db")
	require.NoError(t, err)
	again, err := breaker.Get[int](r, "db")
	require.NoError(t, err)
	assert.Same(t, a, again)
	assert.Equal(t, "db", a.Name())

	s, err := breaker.Get[string](r, "cache")
	require.NoError(t, err, "another result type under another name")
	fail(s)
	assert.Equal(t, breaker.StateOpen, s.State(), "the defaults apply: a window of one call")
	assert.Equal(t, breaker.StateClosed, a.State(), "breakers are independent")

	_, err = breaker.Get[string](r, "db")
	assert.ErrorIs(t, err, breaker.ErrWrongType)
	assert.EqualError(t, err, `breaker: registry holds the breaker with another result type: "db" is a Breaker[int], not a Breaker[string]`)
}

func TestRegistryGetConcurrently(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{})
	const goroutines = 64
	got := make([]*breaker.Breaker[int], goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := breaker.Get[int](r, fmt.Sprintf("b%d", i%4))
			assert.NoError(t, err)
			got[i] = b
		}()
	}
	wg.Wait()
	for i := range goroutines {
		assert.Same(t, got[i%4], got[i], "one breaker per name")
	}
	assert.Len(t, r.Circuits(), 4)
}

func TestRegistryConfigure(t *testing.T) {
	shared := &recorder{}
	r, _ := newRegistry(t, breaker.Config{WindowSize: 10, Listeners: []breaker.Listener{shared}})
	own := &recorder{}
	require.NoError(t, r.Configure("payments", func(c *breaker.Config) {
		c.WindowSize = 1
		c.Listeners = append(c.Listeners, own)
	}))

	p, err := breaker.Get[int](r, "payments")
	require.NoError(t, err)
	o, err := breaker.Get[int](r, "orders")
	require.NoError(t, err)
	fail(p)
	fail(o)
	assert.Equal(t, breaker.StateOpen, p.State(), "the edit applies to payments")
	assert.Equal(t, breaker.StateClosed, o.State(), "and not to orders")
	assert.Len(t, own.all(), 2, "payments' own listener hears payments only")
	assert.Len(t, shared.all(), 3, "the default listener hears both")

	err = r.Configure("bad", func(c *breaker.Config) { c.FailureRateThreshold = 2 })
	assert.ErrorIs(t, err, breaker.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "FailureRateThreshold 2")

	err = r.Configure("orders", func(c *breaker.Config) {})
	assert.EqualError(t, err, `breaker: registry already holds "orders"; configure it before its first use`)
}

func TestNewRegistryRejectsInvalidDefaults(t *testing.T) {
	r, err := breaker.NewRegistry(breaker.Config{OpenJitter: 2})
	assert.Nil(t, r)
	assert.ErrorIs(t, err, breaker.ErrInvalidConfig)
}

func TestRegistrySnapshotAndReset(t *testing.T) {
	r, clk := newRegistry(t, breaker.Config{WindowSize: 1, OpenTimeout: 10 * time.Second})
	b, err := breaker.Get[int](r, "b")
	require.NoError(t, err)
	a, err := breaker.Get[string](r, "a")
	require.NoError(t, err)
	start := clk.Now()
	fail(b)
	clk.Add(10 * time.Second)
	fail(b) // a failed trial: open again

	names := []string{}
	for _, c := range r.Circuits() {
		names = append(names, c.Name())
	}
	assert.Equal(t, []string{"a", "b"}, names)

	snap := r.Snapshot()
	require.Len(t, snap, 2)
	assert.Equal(t, "a", snap[0].Name)
	assert.Equal(t, breaker.StateClosed, snap[0].State)
	assert.Empty(t, snap[0].History)
	assert.Equal(t, "b", snap[1].Name)
	assert.Equal(t, breaker.StateOpen, snap[1].State)
	assert.Equal(t, 10*time.Second, snap[1].RetryAfter)
	assert.Equal(t, []breaker.Transition{
		{From: breaker.StateClosed, To: breaker.StateOpen, Time: start,
			Reason: breaker.Reason{Kind: breaker.ReasonFailureRate, Rate: 1, Threshold: 0.5, Calls: 1}},
		{From: breaker.StateOpen, To: breaker.StateHalfOpen, Time: start.Add(10 * time.Second),
			Reason: breaker.Reason{Kind: breaker.ReasonOpenWaitOver}},
		{From: breaker.StateHalfOpen, To: breaker.StateOpen, Time: start.Add(10 * time.Second),
			Reason: breaker.Reason{Kind: breaker.ReasonTrialFailed}},
	}, snap[1].History)

	c, ok := r.Circuit("b")
	require.True(t, ok)
	assert.Same(t, b, c)
	_, ok = r.Circuit("nope")
	assert.False(t, ok)

	assert.True(t, r.Reset("b"))
	assert.False(t, r.Reset("nope"))
	assert.Equal(t, breaker.StateClosed, b.State())

	fail(a)
	fail(b)
	r.ResetAll()
	assert.Equal(t, breaker.StateClosed, a.State())
	assert.Equal(t, breaker.StateClosed, b.State())
}

func TestHistoryKeepsTheLatest(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{WindowSize: 1})
	b, err := breaker.Get[int](r, "b")
	require.NoError(t, err)
	for range 10 {
		fail(b)   // closed -> open
		b.Reset() // open -> closed
	}
	h := r.Snapshot()[0].History
	require.Len(t, h, 16)
	assert.Equal(t, breaker.StateClosed, h[0].From, "the oldest kept is a trip")
	assert.Equal(t, breaker.StateClosed, h[15].To, "the newest is the last Reset")
}
