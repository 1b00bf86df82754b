package breakerhttp

import (
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/seed18491788/breaker"
)

// The history a Handler keeps: for each circuit, HistoryPoints points, one
// per step of DefaultHistoryStep unless WithHistoryStep says otherwise:
// the last 15 minutes.
const (
	HistoryPoints      = 90
	DefaultHistoryStep = 10 * time.Second
	// MinHistoryStep and MaxHistoryStep bound WithHistoryStep.
	MinHistoryStep = 100 * time.Millisecond
	MaxHistoryStep = time.Hour

	// DefaultHistoryCircuits is how many circuits a Handler keeps history
	// for unless WithHistoryCircuits says otherwise.
	DefaultHistoryCircuits = 1000
)

// WithHistoryCircuits sets how many circuits the Handler keeps history for,
// DefaultHistoryCircuits by default; the dashboard shows the others without
// plots. Each costs about 4 KB. n <= 0 keeps no history and samples
// nothing.
func WithHistoryCircuits(n int) HandlerOption {
	return func(h *handler) { h.historyCircuits = max(n, 0) }
}

// WithHistoryStep sets the time each point of the history covers, and so
// the time it spans: HistoryPoints steps. A step out of [MinHistoryStep,
// MaxHistoryStep] is raised or lowered to the nearest bound.
func WithHistoryStep(d time.Duration) HandlerOption {
	return func(h *handler) { h.historyStep = min(max(d, MinHistoryStep), MaxHistoryStep) }
}

// History is the JSON body of GET /history: what each circuit did over
// the last HistoryPoints steps, one point per step, oldest first.
type History struct {
	Now           time.Time        `json:"now"` // by the registry's clock
	StepSeconds   float64          `json:"step_seconds"`
	LengthSeconds float64          `json:"length_seconds"` // HistoryPoints steps
	Circuits      []CircuitHistory `json:"circuits"`
}

// CircuitHistory is one circuit in a History. Point i covers the step that
// starts i steps after Start. Calls counts the admitted calls, ignored
// ones included; Failures the failed ones; Refusals the calls refused;
// OpenSeconds the time spent open or forced open; States the state at the
// end of the step.
type CircuitHistory struct {
	Name        string          `json:"name"`
	Start       time.Time       `json:"start"`
	Calls       []uint64        `json:"calls"`
	Failures    []uint64        `json:"failures"`
	Refusals    []uint64        `json:"refusals"`
	OpenSeconds []float64       `json:"open_seconds"`
	States      []breaker.State `json:"states"`
}

// history samples the lifetime totals of a registry's circuits once a
// step, on one timer for them all, and keeps the differences. A sample is
// also taken before each answer that shows history, so that it is up to
// date whatever the timer does; taking one twice in a step changes
// nothing.
type history struct {
	reg   *breaker.Registry
	clock breaker.Clock
	limit int
	step  time.Duration

	sampling chan struct{} // holds a token while a sample runs

	mu      sync.Mutex
	started bool
	at      int64 // the step the latest sample fell in
	whole   bool  // the latest sample had room for every circuit
	series  map[string]*series
	timer   *time.Timer
	stopped bool
}

// series is one circuit's points: the one for step k, for
// end-n <= k < end, is points[slot(k)].
type series struct {
	c      breaker.Circuit
	seen   breaker.Lifetime // at the latest sample
	end    int64
	n      int
	points [HistoryPoints]point
}

type point struct {
	calls, failures, refusals uint64
	open                      time.Duration
	state                     breaker.State
}

func newHistory(reg *breaker.Registry, limit int, step time.Duration) *history {
	h := &history{reg: reg, clock: reg.Clock(), limit: limit, step: step, series: map[string]*series{}, sampling: make(chan struct{}, 1)}
	h.sample()
	h.mu.Lock()
	h.timer = time.AfterFunc(h.wait(), h.tick)
	h.mu.Unlock()
	return h
}

// wait returns the time until just after the next step begins.
func (h *history) wait() time.Duration {
	into := time.Duration(mod(h.clock.Now().UnixNano(), int64(h.step)))
	return h.step - into + min(h.step/100, 10*time.Millisecond)
}

func (h *history) tick() {
	h.sample()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stopped {
		h.timer.Reset(h.wait())
	}
}

// stop ends the sampling; the Handler calls it once it is unreachable.
func (h *history) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.timer.Stop()
}

// stepOf returns the step t falls in, counted from the Unix epoch.
func (h *history) stepOf(t time.Time) int64 {
	n, d := t.UnixNano(), int64(h.step)
	return (n - mod(n, d)) / d
}

// mod returns n modulo d, in [0, d) whatever the sign of n.
func mod(n, d int64) int64 { return (n%d + d) % d }

// slot returns where the point of step k goes in series.points.
func slot(k int64) int64 { return mod(k, HistoryPoints) }

// due returns the step now falls in, and whether it is another than the
// latest sample's: later, or earlier where the clock went back. It
// requires mu held.
func (h *history) due() (int64, bool) {
	k := h.stepOf(h.clock.Now())
	return k, !h.started || k != h.at
}

// sampleWait bounds how long a sample waits for another to end: a sample
// reads the breakers' metrics, which may run their listeners, and one of
// them may be waiting on this very history.
const sampleWait = 100 * time.Millisecond

// sample closes the steps that ended since the latest sample: what each
// circuit did since then goes to the last of them. One sample runs at a
// time; the breakers are read without mu, so that their listeners never
// run under it.
func (h *history) sample() {
	select {
	case h.sampling <- struct{}{}:
	default:
		t := time.NewTimer(sampleWait)
		defer t.Stop()
		select {
		case h.sampling <- struct{}{}:
		case <-t.C:
			return // the history shows what it has
		}
	}
	defer func() { <-h.sampling }()

	h.mu.Lock()
	k, due := h.due()
	h.mu.Unlock()
	if !due {
		return // the cheap way out, for the timer's and the pages' calls
	}
	circuits := h.reg.Circuits() // outside mu: it may evict

	h.mu.Lock()
	if h.started && k < h.at { // the clock went back: start again
		h.started, h.series = false, map[string]*series{}
	}
	first := !h.started
	live := make(map[string]bool, len(circuits))
	for _, c := range circuits {
		live[c.Name()] = true
	}
	for name := range h.series {
		if !live[name] {
			delete(h.series, name) // removed or evicted from the registry
		}
	}
	var chosen []breaker.Circuit
	whole, room := true, h.limit-len(h.series)
	for _, c := range circuits {
		if _, ok := h.series[c.Name()]; ok {
			chosen = append(chosen, c)
		} else if room > 0 {
			chosen = append(chosen, c)
			room--
		} else {
			whole = false
		}
	}
	h.mu.Unlock()

	read := make([]breaker.Metrics, len(chosen))
	for i, c := range chosen {
		read[i] = c.Metrics()
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range chosen {
		m := read[i]
		s, ok := h.series[c.Name()]
		if !ok {
			s = &series{c: c, end: k - 1}
			h.series[c.Name()] = s
			if first || !h.whole {
				// It may have been working for long: from now on.
				s.seen, s.end = m.Lifetime, k
				continue
			}
			// It is new since the latest sample: all it did is news.
		}
		if s.c != c { // the registry made a new breaker of that name
			s.c, s.seen = c, breaker.Lifetime{}
		}
		s.record(k, m.State, diff(m.Lifetime, s.seen))
		s.seen = m.Lifetime
	}
	h.started, h.at, h.whole = true, k, whole
}

// diff returns what happened between two readings of a breaker's totals.
func diff(now, was breaker.Lifetime) point {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return point{
		calls:    sub(now.Successes+now.Failures+now.Ignored, was.Successes+was.Failures+was.Ignored),
		failures: sub(now.Failures, was.Failures),
		refusals: sub(now.Refused(), was.Refused()),
		open:     max(now.OpenTime-was.OpenTime, 0),
	}
}

// record closes the steps from s.end up to k: p goes to the last of them,
// the others (missed by the timer) get nothing but the state.
func (s *series) record(k int64, state breaker.State, p point) {
	if k <= s.end {
		return
	}
	from := max(s.end, k-HistoryPoints)
	for step := from; step < k-1; step++ {
		s.points[slot(step)] = point{state: state}
	}
	p.state = state
	s.points[slot(k-1)] = p
	s.n = int(min(int64(s.n)+k-s.end, HistoryPoints))
	s.end = k
}

// report returns the history as JSON shows it, by circuit name.
func (h *history) report() History {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := History{Now: h.clock.Now(), StepSeconds: h.step.Seconds(), LengthSeconds: (HistoryPoints * h.step).Seconds(), Circuits: []CircuitHistory{}}
	for _, name := range slices.Sorted(maps.Keys(h.series)) {
		s := h.series[name]
		ch := CircuitHistory{
			Name:        name,
			Start:       time.Unix(0, (s.end-int64(s.n))*int64(h.step)).In(out.Now.Location()),
			Calls:       make([]uint64, s.n),
			Failures:    make([]uint64, s.n),
			Refusals:    make([]uint64, s.n),
			OpenSeconds: make([]float64, s.n),
			States:      make([]breaker.State, s.n),
		}
		for i := range s.n {
			p := s.points[slot(s.end-int64(s.n)+int64(i))]
			ch.Calls[i], ch.Failures[i], ch.Refusals[i] = p.calls, p.failures, p.refusals
			ch.OpenSeconds[i] = math.Round(p.open.Seconds()*1000) / 1000
			ch.States[i] = p.state
		}
		out.Circuits = append(out.Circuits, ch)
	}
	return out
}
