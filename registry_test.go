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

	// A live breaker is reconfigured at once.
	require.NoError(t, r.Configure("orders", func(c *breaker.Config) { c.WindowSize = 1 }))
	assert.Equal(t, 1, o.Config().WindowSize)
	fail(o)
	assert.Equal(t, breaker.StateOpen, o.State(), "orders trips as a window of 1 says")
	err = r.Configure("orders", func(c *breaker.Config) { c.MinimumCalls = -1 })
	assert.ErrorIs(t, err, breaker.ErrInvalidConfig)
	assert.Equal(t, 1, o.Config().WindowSize, "a bad edit changes nothing")
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

func ok[T any](b *breaker.Breaker[T]) error {
	_, err := b.Execute(context.Background(), func(context.Context) (T, error) {
		var zero T
		return zero, nil
	})
	return err
}

func TestRegistryRemove(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{WindowSize: 1})
	b, err := breaker.Get[int](r, "db")
	require.NoError(t, err)
	fail(b)
	assert.True(t, r.Remove("db"))
	assert.False(t, r.Remove("db"))
	assert.Zero(t, r.Len())
	_, held := r.Circuit("db")
	assert.False(t, held)
	assert.ErrorIs(t, ok(b), breaker.ErrOpen, "the holder keeps a working breaker")
	again, err := breaker.Get[int](r, "db")
	require.NoError(t, err)
	assert.NotSame(t, b, again, "a new one")
	assert.Equal(t, breaker.StateClosed, again.State())
}

func TestRegistryRemoveLeavesTheFleet(t *testing.T) {
	store := &fakeStore{}
	r, err := breaker.NewRegistry(breaker.Config{Shared: store})
	require.NoError(t, err)
	b, err := breaker.Get[int](r, "db")
	require.NoError(t, err)
	r.Remove("db")
	assert.Equal(t, 1, store.left)
	b.ForceOpen()
	assert.Empty(t, store.changes, "a breaker that left tells its store nothing")
}

// TestRegistryBound makes breakers for 10,000 names past a bound of 100:
// the registry never holds more, and keeps the ones in use.
func TestRegistryBound(t *testing.T) {
	r, err := breaker.NewRegistry(breaker.Config{}, breaker.WithMaxCircuits(100))
	require.NoError(t, err)
	hot, err := breaker.Get[int](r, "hot")
	require.NoError(t, err)
	for i := range 10_000 {
		b, err := breaker.Get[int](r, fmt.Sprintf("host-%d", i))
		require.NoError(t, err)
		ok(b)
		ok(hot) // used all along, though Get never returns it again
		require.LessOrEqual(t, r.Len(), 100)
	}
	c, held := r.Circuit("hot")
	assert.True(t, held, "a breaker in use is not evicted")
	assert.Same(t, hot, c)
	assert.Len(t, r.Circuits(), r.Len())
}

func TestRegistryIdleTimeout(t *testing.T) {
	clk := clock.NewMock()
	r, err := breaker.NewRegistry(breaker.Config{Clock: clk}, breaker.WithIdleTimeout(time.Minute))
	require.NoError(t, err)
	idle, _ := breaker.Get[int](r, "idle")
	busy, _ := breaker.Get[int](r, "busy")
	ok(idle)
	for range 6 {
		clk.Add(20 * time.Second)
		ok(busy)
		r.Circuits() // a listing looks for idle breakers
	}
	_, held := r.Circuit("idle")
	assert.False(t, held, "idle for two minutes: evicted")
	_, held = r.Circuit("busy")
	assert.True(t, held)
	assert.Equal(t, 1, r.Len())
}

func TestRegistryModes(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{})
	rec := &recorder{}
	require.NoError(t, r.Configure("search", func(c *breaker.Config) { c.Listeners = append(c.Listeners, rec) }))
	b, err := breaker.Get[int](r, "search")
	require.NoError(t, err)

	require.NoError(t, r.Load([]byte(`{"circuits": {"search": {"mode": "forced-open"}}}`)))
	assert.Equal(t, breaker.StateForcedOpen, b.State())
	assert.ErrorIs(t, ok(b), breaker.ErrOpen)
	require.NoError(t, r.Load([]byte(`{"circuits": {"search": {"mode": "forced-open"}}}`)))
	b.Reset() // an operator's Reset holds: the mode did not change
	require.NoError(t, r.Load([]byte(`{"circuits": {"search": {"mode": "forced-open", "openTimeout": "5s"}}}`)))
	assert.Equal(t, breaker.StateClosed, b.State())
	require.NoError(t, r.Load([]byte(`{"circuits": {"search": {"mode": "disabled"}}}`)))
	assert.Equal(t, breaker.StateDisabled, b.State())
	require.NoError(t, r.Load([]byte(`{}`)))
	assert.Equal(t, breaker.StateClosed, b.State(), "back to auto")
	assert.Equal(t, []string{
		"closed->forced-open: reconfigured", "forced-open->closed: manual",
		"closed->disabled: reconfigured", "disabled->closed: reconfigured",
	}, reasons(&harness{rec: rec}))

	require.NoError(t, r.Load([]byte(`{"circuits": {"later": {"mode": "disabled"}}}`)))
	l, err := breaker.Get[int](r, "later")
	require.NoError(t, err)
	assert.Equal(t, breaker.StateDisabled, l.State(), "a breaker made later starts in its mode")
}

func TestRegistryLoad(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{WindowSize: 20})
	p, err := breaker.Get[int](r, "payments")
	require.NoError(t, err)
	o, err := breaker.Get[int](r, "orders")
	require.NoError(t, err)
	require.NoError(t, r.Load([]byte(`{
		"defaults": {"openTimeout": "10s", "minimumCalls": 5},
		"circuits": {"payments": {"failureRateThreshold": 0.2, "window": "time", "windowDuration": "30s"}}
	}`)))
	pc, oc := p.Config(), o.Config()
	assert.Equal(t, 0.2, pc.FailureRateThreshold)
	assert.Equal(t, breaker.TimeWindow, pc.Window)
	assert.Equal(t, 30*time.Second, pc.WindowDuration)
	assert.Equal(t, 10*time.Second, pc.OpenTimeout, "the document's defaults")
	assert.Equal(t, 10*time.Second, oc.OpenTimeout)
	assert.Equal(t, 5, oc.MinimumCalls)
	assert.Equal(t, 20, oc.WindowSize, "NewRegistry's defaults below")
	assert.Zero(t, oc.FailureRateThreshold, "left at its default, as given")

	// A later document replaces the earlier one.
	require.NoError(t, r.Load([]byte(`{"defaults": {"openTimeout": "1m"}}`)))
	assert.Equal(t, time.Minute, p.Config().OpenTimeout)
	assert.Zero(t, p.Config().FailureRateThreshold, "back to its default")
	assert.Equal(t, breaker.CountWindow, p.Config().Window)
}

func TestRegistryLoadReportsEveryBadField(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{})
	p, err := breaker.Get[int](r, "payments")
	require.NoError(t, err)
	err = r.Load([]byte(`{
		"defaults": {"openTimeout": "-5s"},
		"circuits": {
			"payments": {"failureRateThreshold": 1.5, "windowSize": "ten"},
			"search": {"mode": "sometimes", "slowCallDuration": "2x"},
			"orders": {"halfOpenMaxCalls": 2, "successThreshold": 3}
		}
	}`))
	var de *breaker.DocumentError
	require.ErrorAs(t, err, &de)
	assert.ErrorIs(t, err, breaker.ErrInvalidConfig)
	var msgs []string
	for _, f := range de.Fields {
		msgs = append(msgs, f.Error())
	}
	assert.Equal(t, []string{
		`circuits.payments.windowSize: want a whole number`,
		`circuits.search.mode: "sometimes" is not a mode (auto, disabled, forced-open)`,
		`circuits.search.slowCallDuration: "2x" is not a duration (such as "30s", "1m30s", "250ms")`,
	}, msgs, "form first: nothing else is judged until the document reads")

	err = r.Load([]byte(`{
		"defaults": {"openTimeout": "-5s"},
		"circuits": {
			"payments": {"failureRateThreshold": 1.5},
			"orders": {"halfOpenMaxCalls": 2, "successThreshold": 3}
		}
	}`))
	require.ErrorAs(t, err, &de)
	msgs = nil
	for _, f := range de.Fields {
		msgs = append(msgs, f.Error())
	}
	assert.Equal(t, []string{
		`defaults.openTimeout: -5s is outside (0, ∞)`,
		`circuits.orders.successThreshold: 3 is outside [1, HalfOpenMaxCalls 2]`,
		`circuits.payments.failureRateThreshold: 1.5 is outside (0, 1]`,
	}, msgs)
	assert.Zero(t, p.Config().FailureRateThreshold, "nothing changed")
	assert.Zero(t, p.Config().OpenTimeout)

	for doc, want := range map[string]string{
		`{"default": {}}`:                        `default: unknown key: a document has "defaults" and "circuits"`,
		`{"Circuits": {}}`:                       `Circuits: unknown key: a document has "defaults" and "circuits"`,
		`{"defaults": {"failureRate": 0.5}}`:     `defaults.failureRate: unknown field`,
		`{"defaults": {"mode": "disabled"}}`:     `defaults.mode: a mode is per circuit`,
		`{"circuits": {"a": 1}}`:                 `circuits: json: cannot unmarshal number into Go value of type map[string]json.RawMessage`,
		`null`:                                   `document: not a document of defaults and circuits: null`,
		`{} {}`:                                  `document: not a document of defaults and circuits: data after the document`,
		`{"defaults": {"openTimeout": "1e400"}}`: `defaults.openTimeout: "1e400" is not a duration (such as "30s", "1m30s", "250ms")`,
		`{"defaults": {"openJitter": 1e400}}`:    `defaults.openJitter: want a number`,
	} {
		assert.EqualError(t, r.Load([]byte(doc)), "breaker: invalid config: "+want, doc)
	}
}

func TestRegistryLoadEnv(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{})
	p, err := breaker.Get[int](r, "payments-eu")
	require.NoError(t, err)
	require.NoError(t, r.Load([]byte(`{"circuits": {"payments-eu": {"failureRateThreshold": 0.3, "windowSize": 50}}}`)))
	require.NoError(t, r.LoadEnv("BREAKER", []string{
		"HOME=/root",
		"BREAKER_DEFAULTS_OPEN_TIMEOUT=10s",
		"BREAKER_DEFAULTS_MAX_OPEN_TIMEOUT=2m",
		"BREAKER_PAYMENTS_EU_FAILURE_RATE_THRESHOLD=0.2",
		"BREAKER_PAYMENTS_EU_WINDOW=time",
	}))
	c := p.Config()
	assert.Equal(t, 0.2, c.FailureRateThreshold, "the environment overrides the document")
	assert.Equal(t, 50, c.WindowSize, "and keeps what it does not set")
	assert.Equal(t, breaker.TimeWindow, c.Window)
	assert.Equal(t, 10*time.Second, c.OpenTimeout)
	assert.Equal(t, 2*time.Minute, c.MaxOpenTimeout, "the longest field name wins")

	require.NoError(t, r.LoadEnv("BREAKER", []string{"BREAKER_PAYMENTS_EU_MODE=forced-open"}))
	assert.Equal(t, breaker.StateForcedOpen, p.State())
	assert.Zero(t, p.Config().OpenTimeout, "a new environment replaces the old")

	err = r.LoadEnv("BREAKER", []string{
		"BREAKER_PAYMENTS_EU_FAILURE_RATE_THRESHOLD=2",
		"BREAKER_PAYMENTS_EU_WINDOW_SIZE=many",
		"BREAKER_DEFAULTS_COLOUR=blue",
	})
	var de *breaker.DocumentError
	require.ErrorAs(t, err, &de)
	require.Len(t, de.Fields, 2)
	assert.EqualError(t, de.Fields[0], `BREAKER_PAYMENTS_EU_WINDOW_SIZE: "many" is not a whole number`)
	assert.EqualError(t, de.Fields[1], `BREAKER_DEFAULTS_COLOUR: names no field (PREFIX_NAME_FIELD)`)
	err = r.LoadEnv("BREAKER", []string{"BREAKER_PAYMENTS_EU_FAILURE_RATE_THRESHOLD=2"})
	assert.EqualError(t, err, "breaker: invalid config: BREAKER_PAYMENTS_EU_FAILURE_RATE_THRESHOLD: 2 is outside (0, 1]")
}

func TestRegistryConfigureEditThatPanics(t *testing.T) {
	r, _ := newRegistry(t, breaker.Config{})
	err := r.Configure("db", func(*breaker.Config) { panic("edit bug") })
	assert.EqualError(t, err, `breaker: the edit of "db" panicked: edit bug`)
	b, err := breaker.Get[int](r, "db")
	require.NoError(t, err, "the edit was not kept")
	assert.Equal(t, 1, r.Len(), "and the registry still works")

	calls := 0
	require.NoError(t, r.Configure("later", func(*breaker.Config) {
		if calls++; calls > 1 {
			panic("edit bug on its second call")
		}
	}))
	_, err = breaker.Get[int](r, "later")
	assert.EqualError(t, err, `breaker: the edit of "later" panicked: edit bug on its second call`)
	assert.True(t, r.Remove("db"))
	assert.NoError(t, ok(b))
}

// TestRegistryKeepsTheBusyBreaker fills a bound of 2 with a breaker held
// and called a thousand times and one never called: making a third evicts
// the idle one.
func TestRegistryKeepsTheBusyBreaker(t *testing.T) {
	r, err := breaker.NewRegistry(breaker.Config{Clock: clock.NewMock()}, breaker.WithMaxCircuits(2))
	require.NoError(t, err)
	busy, err := breaker.Get[int](r, "a-payments")
	require.NoError(t, err)
	_, err = breaker.Get[int](r, "b-unused")
	require.NoError(t, err)
	for range 1000 {
		ok(busy)
	}
	_, err = breaker.Get[int](r, "c-new")
	require.NoError(t, err)
	_, held := r.Circuit("a-payments")
	assert.True(t, held)
	_, held = r.Circuit("b-unused")
	assert.False(t, held)
	require.NoError(t, r.Load([]byte(`{"circuits": {"a-payments": {"openTimeout": "5s"}}}`)))
	assert.Equal(t, 5*time.Second, busy.Config().OpenTimeout, "the held breaker follows the document")
}

func TestRegistryIdleTimeoutAloneSweepsOnMake(t *testing.T) {
	clk := clock.NewMock()
	r, err := breaker.NewRegistry(breaker.Config{Clock: clk}, breaker.WithIdleTimeout(time.Minute))
	require.NoError(t, err)
	for i := range 100 {
		_, err := breaker.Get[int](r, fmt.Sprintf("h%d", i))
		require.NoError(t, err)
		clk.Add(2 * time.Minute)
	}
	assert.LessOrEqual(t, r.Len(), 2, "every breaker but the newest is two minutes idle")
}

// attachHook is an Attacher that runs hook on each Attach.
type attachHook struct{ hook func(breaker.Circuit) }

func (a *attachHook) OnEvent(breaker.Event)        {}
func (a *attachHook) EventMask() breaker.EventMask { return 0 }
func (a *attachHook) Attach(c breaker.Circuit)     { a.hook(c) }

// TestRegistryModeOfARemovedBreaker removes a breaker while Load applies
// its mode: the next breaker of the name still starts in the document's
// mode.
func TestRegistryModeOfARemovedBreaker(t *testing.T) {
	var r *breaker.Registry
	arm := false
	hook := &attachHook{hook: func(c breaker.Circuit) {
		if arm && c.Name() == "x" {
			arm = false
			r.Remove("x") // as an idle sweep of a Get would, meanwhile
		}
	}}
	var err error
	r, err = breaker.NewRegistry(breaker.Config{Clock: clock.NewMock(), Listeners: []breaker.Listener{hook}})
	require.NoError(t, err)
	_, err = breaker.Get[int](r, "x")
	require.NoError(t, err)
	arm = true
	require.NoError(t, r.Load([]byte(`{"circuits": {"x": {"mode": "forced-open"}}}`)))
	b, err := breaker.Get[int](r, "x")
	require.NoError(t, err)
	assert.Equal(t, breaker.StateForcedOpen, b.State())
}

// TestRegistryMakesABreakerInItsMode gets a breaker whose document says
// forced-open: it refuses from its first call, and no listener hears of a
// change, since it never was anything else.
func TestRegistryMakesABreakerInItsMode(t *testing.T) {
	rec := &recorder{}
	r, err := breaker.NewRegistry(breaker.Config{Clock: clock.NewMock(), Listeners: []breaker.Listener{rec}})
	require.NoError(t, err)
	require.NoError(t, r.Load([]byte(`{"circuits": {"x": {"mode": "forced-open"}, "y": {"mode": "disabled"}}}`)))
	x, err := breaker.Get[int](r, "x")
	require.NoError(t, err)
	assert.ErrorIs(t, ok(x), breaker.ErrOpen)
	y, err := breaker.Get[int](r, "y")
	require.NoError(t, err)
	assert.Equal(t, breaker.StateDisabled, y.State())
	assert.Empty(t, rec.transitions())
	require.NoError(t, r.Load([]byte(`{}`)))
	assert.Equal(t, breaker.StateClosed, x.State(), "back to auto")
	assert.ElementsMatch(t, []string{"forced-open->closed", "disabled->closed"}, rec.transitions())
}

// TestRegistryConcurrent gets, removes, loads and configures at once, with
// bounds: -race must find nothing, and the bound holds.
func TestRegistryConcurrent(t *testing.T) {
	clk := clock.NewMock()
	r, err := breaker.NewRegistry(breaker.Config{Clock: clk}, breaker.WithMaxCircuits(8), breaker.WithIdleTimeout(time.Second))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				name := fmt.Sprintf("n%d", (g*7+i)%20)
				switch i % 6 {
				case 0:
					r.Remove(name)
				case 1:
					assert.NoError(t, r.Load([]byte(fmt.Sprintf(`{"circuits": {%q: {"mode": "forced-open"}}}`, name))))
				case 2:
					assert.NoError(t, r.Configure(name, func(c *breaker.Config) { c.WindowSize = 1 + i%3 }))
				case 3:
					r.Circuits()
				default:
					b, err := breaker.Get[int](r, name)
					if assert.NoError(t, err) {
						ok(b)
					}
				}
				assert.LessOrEqual(t, r.Len(), 8)
			}
		}()
	}
	wg.Wait()
}

func TestRegistryClockAndStatus(t *testing.T) {
	r, clk := newRegistry(t, breaker.Config{WindowSize: 2})
	assert.Same(t, clk, r.Clock(), "the defaults' clock")
	plain, err := breaker.NewRegistry(breaker.Config{})
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), plain.Clock().Now(), time.Minute, "the system clock without one")

	_, ok := r.Status("db")
	assert.False(t, ok)
	b, err := breaker.Get[int](r, "db")
	require.NoError(t, err)
	fail(b)
	fail(b)
	s, ok := r.Status("db")
	require.True(t, ok)
	assert.Equal(t, "db", s.Name)
	assert.Equal(t, breaker.StateOpen, s.State)
	require.Len(t, s.History, 1)
	assert.Equal(t, breaker.ReasonFailureRate, s.History[0].Reason.Kind)
}
