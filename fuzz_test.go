package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

// FuzzBreaker runs random sequences of calls, clock moves and manual
// controls through a Breaker and through model, a plain reference written
// from the documented semantics, and checks that they agree after every
// step. The first bytes pick the configuration, each later byte one step.
//
// go test runs the seeds in testdata/fuzz/FuzzBreaker; to search further:
//
//	go test -run '^$' -fuzz FuzzBreaker -fuzztime 5m
func FuzzBreaker(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x00\x00" + "\x02\x02\x02\x02\x02\x07\x77\x00\x02"))
	f.Add([]byte("\x01\x02\x11\x05\x01" + "\x00\x02\x34\x45\x06\x17\x09\x09\x0a\x0b\x87\x00"))
	f.Add([]byte("\x0e\x03\x21\x0e\x02" + "\x09\x02\x03\x03\x88\x09\x09\x09\x0a\x0b\x0f\x0c\x87\x00\x0e\x0d\x03"))
	// HalfOpenMaxWait 15s: a trial taken and never done, then time passes.
	f.Add([]byte("\x00\x20\x00\x00\x00" + "\x02\xa7\x09\x00\xf7\x00\xf8\x09\x0a\x00"))
	// OpenFor: 3s, while closed and while open, then the trial.
	f.Add([]byte("\x02\x01\x01\x04\x01" + "\x3c\x00\x37\x00\x2c\x02\x27\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 5 {
			return
		}
		cfg := fuzzConfig(data[:5])
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		m := newModel(cfg, start)
		// Three breakers take every step: one with a listener of every
		// event, one with a listener of state changes only, and one without
		// listeners. The events of the first two are checked.
		rec, states := &recorder{}, &recorder{}
		var twins [3]*twin
		for i := range twins {
			tw := &twin{clk: &fakeClock{now: start}}
			c := cfg
			c.Clock = tw.clk
			switch i {
			case 0:
				c.Listeners = []breaker.Listener{rec}
			case 1:
				c.Listeners = []breaker.Listener{breaker.ListenerFor(breaker.StateEvents, states.OnEvent)}
			}
			var err error
			tw.b, err = breaker.New[int]("fuzz", c)
			require.NoError(t, err)
			twins[i] = tw
		}
		now := func() time.Time { return twins[0].clk.now }
		advance := func(d time.Duration) {
			for _, tw := range twins {
				tw.clk.now = tw.clk.now.Add(d)
			}
		}

		type pending struct {
			gen   int
			start time.Time
		}
		var open []pending
		finish := func(i int, err error) {
			if i < 0 || i >= len(open) {
				return
			}
			for _, tw := range twins {
				tw.finish(i, err)
			}
			m.complete(open[i].gen, open[i].start, now(), err)
			open = slices.Delete(open, i, i+1)
		}
		call := func(d time.Duration, err error) {
			gen, want := m.admit(now())
			start := now()
			for _, tw := range twins {
				got := tw.call(d, err)
				if want != nil {
					require.ErrorIs(t, got, want)
				} else {
					require.ErrorIs(t, got, err)
				}
			}
			if want == nil {
				m.complete(gen, start, now(), err)
			}
		}

		for i, op := range data[5:] {
			arg := time.Duration(op>>4) * time.Second
			switch op & 15 {
			case 0, 1:
				call(0, nil)
			case 2, 3:
				call(0, errBoom)
			case 4:
				call(arg, nil)
			case 5:
				call(arg, errBoom)
			case 6:
				call(0, context.Canceled)
			case 7:
				advance(arg)
			case 8:
				advance(7 * arg)
			case 9:
				gen, want := m.admit(now())
				for _, tw := range twins {
					err := tw.allow()
					if want != nil {
						require.ErrorIs(t, err, want)
					} else {
						require.NoError(t, err)
					}
				}
				if want == nil {
					open = append(open, pending{gen, now()})
				}
			case 10:
				finish(0, nil)
			case 11:
				finish(len(open)-1, errBoom)
			case 12: // ForceOpen, or OpenFor when the argument is not 0
				if arg == 0 {
					for _, tw := range twins {
						tw.b.ForceOpen()
					}
					m.force(breaker.StateForcedOpen, now())
					break
				}
				for _, tw := range twins {
					tw.b.OpenFor(arg)
				}
				m.openFor(arg, now())
			case 13:
				for _, tw := range twins {
					tw.b.Disable()
				}
				m.force(breaker.StateDisabled, now())
			case 14:
				for _, tw := range twins {
					tw.b.Reset()
				}
				m.reset(now())
			case 15:
				finish(0, context.Canceled)
			}
			want := m.metrics(now())
			for j, tw := range twins {
				require.Equal(t, want, tw.b.Metrics(), "step %d (op %#02x), breaker %d", i, op, j)
			}
			require.Equal(t, m.transitions, rec.transitions(), "step %d (op %#02x)", i, op)
			require.Equal(t, m.transitions, states.log(), "step %d (op %#02x)", i, op)
			require.Equal(t, m.events, len(rec.all())-len(m.transitions), "step %d (op %#02x): one event per call", i, op)
		}
	})
}

// twin is one of the breakers FuzzBreaker drives, with its own clock and
// its own calls in flight.
type twin struct {
	b     *breaker.Breaker[int]
	clk   *fakeClock
	dones []func(error)
}

// call makes a call that lasts d by the twin's clock and returns err.
func (tw *twin) call(d time.Duration, err error) error {
	_, got := tw.b.Execute(context.Background(), func(context.Context) (int, error) {
		tw.clk.now = tw.clk.now.Add(d)
		return 0, err
	})
	return got
}

// allow starts a call with Allow, keeping its done if admitted.
func (tw *twin) allow() error {
	done, err := tw.b.Allow()
	if err == nil {
		tw.dones = append(tw.dones, done)
	}
	return err
}

// finish ends the i-th call in flight with err.
func (tw *twin) finish(i int, err error) {
	done := tw.dones[i]
	tw.dones = slices.Delete(tw.dones, i, i+1)
	done(err)
}

// fuzzConfig decodes five bytes into a valid Config with small numbers, so
// that short sequences reach every state.
func fuzzConfig(p []byte) breaker.Config {
	cfg := breaker.Config{
		WindowSize:            1 + int(p[0]>>1)%8,
		WindowDuration:        10 * time.Second,
		BucketDuration:        []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 10 * time.Second}[p[4]%4],
		FailureRateThreshold:  []float64{0.25, 0.5, 0.75, 1}[p[2]%4],
		SlowCallRateThreshold: []float64{0.25, 0.5, 1}[(p[2]>>2)%3],
		ConsecutiveFailures:   int(p[2]>>4) % 4,
		OpenTimeout:           10 * time.Second,
		HalfOpenMaxCalls:      1 + int(p[3]>>2)%3,
	}
	if p[0]&1 == 1 {
		cfg.Window = breaker.TimeWindow
		cfg.MinimumCalls = 1 + int(p[1])%6
	} else {
		cfg.MinimumCalls = 1 + int(p[1])%cfg.WindowSize
	}
	if p[3]&1 == 1 {
		cfg.SlowCallDuration = 3 * time.Second
	}
	if p[3]&2 == 2 {
		cfg.MaxOpenTimeout = 35 * time.Second
	}
	cfg.HalfOpenMaxWait = []time.Duration{0, -1, 15 * time.Second, 40 * time.Second}[p[1]>>4%4]
	cfg.SuccessThreshold = 1 + int(p[3]>>4)%cfg.HalfOpenMaxCalls
	return cfg
}

// fakeClock is a Clock for one goroutine. *clock.Mock sleeps a millisecond
// on every move, which would make fuzzing crawl.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// model is the breaker's documented behaviour, written as plainly as
// possible: it keeps every recorded outcome in a list and recounts.
type model struct {
	cfg         breaker.Config
	base        time.Time
	state       breaker.State
	gen         int
	since       time.Time
	outcomes    []modelOutcome
	consecutive int
	openUntil   time.Time
	reopens     int
	life        breaker.Lifetime
	openedAt    time.Time // when the current open period began
	trialSince  time.Time // when the half-open period admitted its first trial
	events      int       // call events: one per admission refused or call completed
	trials      int
	successes   int
	transitions []string
}

type modelOutcome struct {
	at         time.Time
	fail, slow bool
}

func newModel(cfg breaker.Config, now time.Time) *model {
	if cfg.HalfOpenMaxWait == 0 {
		cfg.HalfOpenMaxWait = breaker.DefaultHalfOpenMaxWait
	}
	return &model{cfg: cfg, base: now, since: now}
}

func isOpen(s breaker.State) bool { return s == breaker.StateOpen || s == breaker.StateForcedOpen }

func (m *model) enter(s breaker.State, now time.Time) {
	if s != m.state {
		m.transitions = append(m.transitions, m.state.String()+"->"+s.String())
		m.since = now
		switch {
		case isOpen(s) && !isOpen(m.state):
			m.openedAt = now
		case isOpen(m.state) && !isOpen(s):
			m.life.OpenTime += now.Sub(m.openedAt)
		}
	}
	m.state = s
	m.gen++
	m.trials, m.successes = 0, 0
}

func (m *model) tick(now time.Time) {
	if m.state == breaker.StateOpen && !now.Before(m.openUntil) {
		m.enter(breaker.StateHalfOpen, now)
	}
	if w := m.cfg.HalfOpenMaxWait; m.state == breaker.StateHalfOpen && w > 0 && m.trials > 0 && !now.Before(m.trialSince.Add(w)) {
		m.reopens++ // undecided this long since its first trial: a failed trial
		m.trip(now)
	}
}

func (m *model) trip(now time.Time) {
	wait := m.cfg.OpenTimeout
	if m.cfg.MaxOpenTimeout > 0 {
		for range m.reopens {
			wait = min(2*wait, m.cfg.MaxOpenTimeout)
		}
	}
	m.openUntil = now.Add(wait)
	m.life.Opens++
	m.enter(breaker.StateOpen, now)
}

func (m *model) openFor(d time.Duration, now time.Time) {
	m.tick(now)
	if m.state != breaker.StateOpen {
		m.life.Opens++
	}
	m.openUntil = now.Add(d)
	m.enter(breaker.StateOpen, now)
}

func (m *model) reset(now time.Time) {
	m.outcomes, m.consecutive, m.reopens = nil, 0, 0
	m.enter(breaker.StateClosed, now)
}

func (m *model) force(s breaker.State, now time.Time) {
	if m.state != s {
		m.enter(s, now)
	}
}

// admit returns the generation of an admitted call, or the error a refused
// call matches.
func (m *model) admit(now time.Time) (int, error) {
	m.tick(now)
	switch m.state {
	case breaker.StateOpen, breaker.StateForcedOpen:
		m.life.RefusedOpen++
		m.events++
		return 0, breaker.ErrOpen
	case breaker.StateHalfOpen:
		if m.trials == m.cfg.HalfOpenMaxCalls {
			m.life.RefusedHalfOpen++
			m.events++
			return 0, breaker.ErrTooManyCalls
		}
		if m.trials == 0 {
			m.trialSince = now
		}
		m.trials++
	}
	return m.gen, nil
}

func (m *model) complete(gen int, start, now time.Time, err error) {
	ignored := errors.Is(err, context.Canceled)
	fail := err != nil && !ignored
	slow := m.cfg.SlowCallDuration > 0 && now.Sub(start) >= m.cfg.SlowCallDuration
	m.events++
	switch {
	case ignored:
		m.life.Ignored++
	case fail:
		m.life.Failures++
	default:
		m.life.Successes++
	}
	if slow && !ignored {
		m.life.SlowCalls++
	}
	m.tick(now) // a trial past HalfOpenMaxWait is late
	if gen != m.gen {
		return
	}
	switch m.state {
	case breaker.StateClosed, breaker.StateDisabled:
		if ignored {
			return
		}
		if fail {
			m.consecutive++
		} else {
			m.consecutive = 0
		}
		m.outcomes = append(m.outcomes, modelOutcome{now, fail, slow})
		if m.state == breaker.StateClosed && m.shouldTrip(now) {
			m.trip(now)
		}
	case breaker.StateHalfOpen:
		switch {
		case ignored:
			m.trials--
		case fail || slow:
			m.reopens++
			m.trip(now)
		default:
			m.successes++
			if m.successes >= m.cfg.SuccessThreshold {
				m.reset(now)
			}
		}
	}
}

// live returns the outcomes the window holds at now.
func (m *model) live(now time.Time) []modelOutcome {
	if m.cfg.Window == breaker.CountWindow {
		return m.outcomes[max(0, len(m.outcomes)-m.cfg.WindowSize):]
	}
	var out []modelOutcome
	for _, o := range m.outcomes {
		bucket := o.at.Sub(m.base) / m.cfg.BucketDuration
		end := m.base.Add((bucket + 1) * m.cfg.BucketDuration)
		if end.After(now.Add(-m.cfg.WindowDuration)) {
			out = append(out, o)
		}
	}
	return out
}

func (m *model) counts(now time.Time) (calls, fails, slows int) {
	for _, o := range m.live(now) {
		calls++
		if o.fail {
			fails++
		}
		if o.slow {
			slows++
		}
	}
	return calls, fails, slows
}

func (m *model) shouldTrip(now time.Time) bool {
	if m.cfg.ConsecutiveFailures > 0 && m.consecutive >= m.cfg.ConsecutiveFailures {
		return true
	}
	calls, fails, slows := m.counts(now)
	if calls < m.cfg.MinimumCalls {
		return false
	}
	return float64(fails)/float64(calls) >= m.cfg.FailureRateThreshold ||
		m.cfg.SlowCallDuration > 0 && float64(slows)/float64(calls) >= m.cfg.SlowCallRateThreshold
}

func (m *model) metrics(now time.Time) breaker.Metrics {
	m.tick(now)
	calls, fails, slows := m.counts(now)
	out := breaker.Metrics{
		State: m.state, Since: m.since,
		Calls: calls, Failures: fails, SlowCalls: slows,
		ConsecutiveFailures: m.consecutive,
		Lifetime:            m.life,
	}
	if isOpen(m.state) {
		out.Lifetime.OpenTime += now.Sub(m.openedAt)
	}
	if calls > 0 {
		out.FailureRate = float64(fails) / float64(calls)
		out.SlowCallRate = float64(slows) / float64(calls)
	}
	if m.state == breaker.StateHalfOpen {
		out.HalfOpenCalls, out.HalfOpenSuccesses = m.trials, m.successes
	}
	if m.state == breaker.StateOpen {
		out.RetryAfter = m.openUntil.Sub(now)
	}
	return out
}

func (m *model) String() string { return fmt.Sprintf("%+v", *m) }
