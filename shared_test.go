package breaker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

// fakeStore is a SharedState that keeps what breakers tell it.
type fakeStore struct {
	mu      sync.Mutex
	name    string
	cfg     breaker.Config
	local   *breaker.Local
	changes []breaker.Change
	trials  []string
	asked   int
	permit  func() bool
	err     error
	left    int
}

func (f *fakeStore) Join(name string, cfg breaker.Config, local *breaker.Local) (breaker.Peer, error) {
	f.name, f.cfg, f.local = name, cfg, local
	return f, f.err
}

func (f *fakeStore) Changed(c breaker.Change) {
	f.mu.Lock()
	f.changes = append(f.changes, c)
	f.mu.Unlock()
}

func (f *fakeStore) Permit() bool {
	f.mu.Lock()
	f.asked++
	permit := f.permit
	f.mu.Unlock()
	return permit == nil || permit()
}

func (f *fakeStore) Leave() {
	f.mu.Lock()
	f.left++
	f.mu.Unlock()
}

func (f *fakeStore) TrialDone(kind breaker.EventKind, slow bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := kind.String()
	if slow {
		s += "+slow"
	}
	f.trials = append(f.trials, s)
}

func newShared(t *testing.T, cfg breaker.Config, listen bool) (*harness, *fakeStore) {
	t.Helper()
	store := &fakeStore{}
	cfg.Shared = store
	return newHarnessListening(t, cfg, listen), store
}

func TestSharedJoin(t *testing.T) {
	h, store := newShared(t, breaker.Config{WindowSize: 7}, true)
	assert.Equal(t, "dep", store.name)
	assert.Equal(t, 7, store.cfg.WindowSize)
	assert.Equal(t, 7, store.cfg.MinimumCalls, "Join gets the Config with its defaults filled in")
	assert.Equal(t, "dep", store.local.Name())
	assert.Equal(t, breaker.StateClosed, store.local.State())
	assert.NotNil(t, h.Breaker)

	failing := &fakeStore{err: errors.New("no store")}
	b, err := breaker.New[int]("dep", breaker.Config{Shared: failing})
	assert.Nil(t, b)
	assert.EqualError(t, err, "no store")
}

func TestSharedHearsOfChangesTheBreakerMakes(t *testing.T) {
	h, store := newShared(t, breaker.Config{WindowSize: 2, OpenTimeout: 7 * time.Second}, true)
	h.trip(t)
	h.clk.Add(7 * time.Second)
	h.do('S') // a trial that closes the circuit: told as a trial, not a change
	h.ForceOpen()
	h.Disable()
	h.Reset()
	h.Reset()
	store.local.Apply(breaker.StateOpen, time.Second) // the fleet's decision: not told back

	two := breaker.Totals{Calls: 2, Failures: 2}
	assert.Equal(t, []breaker.Change{
		{From: breaker.StateClosed, To: breaker.StateOpen, Wait: 7 * time.Second, Totals: two},
		{From: breaker.StateClosed, To: breaker.StateForcedOpen, Manual: true, Totals: two},
		{From: breaker.StateForcedOpen, To: breaker.StateDisabled, Manual: true, Totals: two},
		{From: breaker.StateDisabled, To: breaker.StateClosed, Manual: true, Totals: two},
		{From: breaker.StateClosed, To: breaker.StateClosed, Manual: true, Totals: two},
	}, store.changes)
	assert.Equal(t, []string{"success"}, store.trials)
}

func TestSharedTrials(t *testing.T) {
	h, store := newShared(t, breaker.Config{WindowSize: 2, HalfOpenMaxCalls: 3, SlowCallDuration: time.Second, OpenTimeout: time.Second}, true)
	h.halfOpen(t)
	h.do('I')
	h.do('S')
	h.do('L') // slow: reopens
	assert.Equal(t, []string{"ignored", "success", "success+slow"}, store.trials)
	assert.Equal(t, 3, store.asked, "every trial asked for a permit")
	assert.Equal(t, breaker.StateOpen, h.State())
}

func TestSharedPermitRefused(t *testing.T) {
	for _, listen := range []bool{true, false} {
		h, store := newShared(t, breaker.Config{WindowSize: 2, HalfOpenMaxCalls: 2, OpenTimeout: time.Second}, listen)
		var b *breaker.Breaker[int] = h.Breaker
		store.permit = func() bool {
			b.Metrics() // Permit runs outside the breaker's lock
			return false
		}
		h.halfOpen(t)
		_, err := h.Execute(context.Background(), func(context.Context) (int, error) {
			t.Error("a call the fleet refused ran")
			return 0, nil
		})
		assert.ErrorIs(t, err, breaker.ErrTooManyCalls)
		_, err = h.Allow()
		assert.ErrorIs(t, err, breaker.ErrTooManyCalls)
		assert.Equal(t, 1, store.asked, "refused once, the breaker stops asking for this half-open period")
		m := h.Metrics()
		assert.Equal(t, uint64(2), m.Lifetime.Refused())
		assert.Zero(t, m.HalfOpenCalls, "the refused call gave its place back")

		store.local.Apply(breaker.StateOpen, time.Second)
		h.clk.Add(time.Second)
		store.permit = nil
		assert.NoError(t, h.do('S'), "a new half-open period asks again")
		assert.Equal(t, 2, store.asked)
		if listen {
			assert.Equal(t, []string{"rejected", "rejected"}, kinds(h.rec.all(), breaker.EventRejected))
		}
	}
}

func kinds(events []breaker.Event, only breaker.EventKind) []string {
	var out []string
	for _, e := range events {
		if e.Kind == only {
			out = append(out, e.Kind.String())
		}
	}
	return out
}

func TestSharedApply(t *testing.T) {
	h, store := newShared(t, breaker.Config{WindowSize: 10}, true)
	h.do('F')
	late, err := h.Allow()
	require.NoError(t, err)

	store.local.Apply(breaker.StateOpen, 12*time.Second)
	m := h.Metrics()
	assert.Equal(t, breaker.StateOpen, m.State)
	assert.Equal(t, 12*time.Second, m.RetryAfter)
	assert.Equal(t, uint64(1), m.Lifetime.Opens)
	late(errBoom)
	assert.Equal(t, 1, h.Metrics().Calls, "a call admitted before the fleet's decision does not count")

	store.local.Apply(breaker.StateOpen, 3*time.Second)
	assert.Equal(t, 3*time.Second, h.Metrics().RetryAfter, "the fleet's wait wins")
	store.local.Apply(breaker.StateHalfOpen, 0)
	assert.Equal(t, breaker.StateHalfOpen, h.State())
	trial, err := h.Allow()
	require.NoError(t, err)
	store.local.Apply(breaker.StateHalfOpen, 0)
	assert.Zero(t, h.Metrics().HalfOpenCalls, "a new fleet half-open period starts afresh")
	trial(nil)
	assert.Equal(t, breaker.StateHalfOpen, h.State(), "a trial of the previous period does not count")
	store.local.Apply(breaker.StateClosed, 0)
	h.do('F')
	store.local.Apply(breaker.StateClosed, 0)
	assert.Zero(t, h.Metrics().Calls, "closed again: a Reset elsewhere empties the window")
	store.local.Apply(breaker.StateForcedOpen, 0)
	assert.Equal(t, breaker.StateForcedOpen, h.State())
	store.local.Apply(breaker.StateDisabled, 0)
	assert.Equal(t, breaker.StateDisabled, h.State())

	assert.Equal(t, []string{
		"closed->open", "open->half-open", "half-open->closed", "closed->forced-open", "forced-open->disabled",
	}, h.rec.transitions())
	assert.Empty(t, store.changes)
}

func TestSharedApplyIgnoresWhatIsNoState(t *testing.T) {
	h, store := newShared(t, breaker.Config{}, true)
	for _, s := range []breaker.State{5, 7, 130, 255} {
		store.local.Apply(s, time.Hour)
		assert.Equal(t, breaker.StateClosed, h.State(), "Apply(%v)", s)
		assert.NoError(t, h.do('S'))
	}
	assert.Empty(t, h.rec.transitions())
}

func TestSharedPanickingPermitDoesNotLeakTheTrial(t *testing.T) {
	h, store := newShared(t, breaker.Config{WindowSize: 1, OpenTimeout: time.Second}, false)
	asked := 0
	store.permit = func() bool {
		if asked++; asked == 1 {
			panic("store bug")
		}
		return true
	}
	h.halfOpen(t)
	assert.PanicsWithValue(t, "store bug", func() { h.do('S') })
	assert.Zero(t, h.Metrics().HalfOpenCalls, "the place went back")
	assert.NoError(t, h.do('S'), "the next trial goes ahead")
	assert.Equal(t, breaker.StateClosed, h.State())
}

func TestSharedCounts(t *testing.T) {
	for _, listen := range []bool{true, false} {
		h, store := newShared(t, breaker.Config{WindowSize: 10, SlowCallDuration: time.Second, FailureRateThreshold: 1}, listen)
		for range 20 {
			h.do('S') // without listeners, many of these take the lock-free path
		}
		h.do('F')
		h.do('L')
		h.do('I')
		assert.Equal(t, breaker.Totals{Calls: 22, Failures: 1, SlowCalls: 1}, store.local.Counts(), "listener=%v", listen)
	}
}

func TestSharedNotify(t *testing.T) {
	h, store := newShared(t, breaker.Config{}, true)
	down := errors.New("connection refused")
	store.local.Notify(breaker.EventDetached, down)
	store.local.Notify(breaker.EventAttached, nil)
	events := h.rec.all()
	require.Len(t, events, 2)
	assert.Equal(t, breaker.EventDetached, events[0].Kind)
	assert.Same(t, down, events[0].Err)
	assert.Equal(t, "dep", events[0].Breaker)
	assert.Equal(t, breaker.EventAttached, events[1].Kind)
	assert.Equal(t, "detached", breaker.EventDetached.String())
	assert.Equal(t, "attached", breaker.EventAttached.String())
}

func TestSharedStoreMayUseTheBreakerDuringJoin(t *testing.T) {
	store := &eagerStore{}
	b, err := breaker.New[int]("dep", breaker.Config{Shared: store, Clock: clock.NewMock()})
	require.NoError(t, err)
	<-store.done
	assert.Equal(t, breaker.StateOpen, b.State())
}

// eagerStore applies a state from a goroutine as soon as a breaker joins.
type eagerStore struct{ done chan struct{} }

func (s *eagerStore) Join(_ string, _ breaker.Config, l *breaker.Local) (breaker.Peer, error) {
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		l.Apply(breaker.StateOpen, time.Hour)
	}()
	return &fakeStore{}, nil
}
