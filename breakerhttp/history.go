package breakerhttp

import (
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/seed18491788/breaker"
)

// The history a Handler keeps: for each circuit, one point every
// HistoryStep over the last HistoryLength.
const (
	HistoryStep   = 10 * time.Second
	HistoryLength = 15 * time.Minute

	// DefaultHistoryCircuits is how many circuits a Handler keeps history
	// for unless WithHistoryCircuits says otherwise.
	DefaultHistoryCircuits = 1000
)

const historyPoints = int(HistoryLength / HistoryStep)

// WithHistoryCircuits sets how many circuits the Handler keeps history for,
// DefaultHistoryCircuits by default; the dashboard shows the others without
// plots. Each costs about 2 KB. n <= 0 keeps no history and samples
// nothing.
func WithHistoryCircuits(n int) HandlerOption {
	return func(h *handler) { h.historyCircuits = max(n, 0) }
}

// History is the JSON body of GET /history: what each circuit did over
// the last HistoryLength, one point per HistoryStep, oldest first.
type History struct {
	Now         time.Time        `json:"now"` // by the registry's clock
	StepSeconds float64          `json:"step_seconds"`
	Circuits    []CircuitHistory `json:"circuits"`
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

	mu      sync.Mutex
	started bool
	step    int64 // the step the latest sample fell in
	whole   bool  // the latest sample had room for every circuit
	series  map[string]*series
	timer   *time.Timer
	stopped bool
}

// series is one circuit's points: the one for step k, for
// end-n <= k < end, is points[k%historyPoints].
type series struct {
	c      breaker.Circuit
	seen   breaker.Lifetime // at the latest sample
	end    int64
	n      int
	points [historyPoints]point
}

type point struct {
	calls, failures, refusals uint64
	open                      time.Duration
	state                     breaker.State
}

func newHistory(reg *breaker.Registry, limit int) *history {
	h := &history{reg: reg, clock: reg.Clock(), limit: limit, series: map[string]*series{}}
	h.sample()
	h.mu.Lock()
	h.timer = time.AfterFunc(h.wait(), h.tick)
	h.mu.Unlock()
	return h
}

// wait returns the time until just after the next step begins.
func (h *history) wait() time.Duration {
	into := time.Duration(h.clock.Now().UnixNano() % int64(HistoryStep))
	if into < 0 {
		into += HistoryStep
	}
	return HistoryStep - into + 10*time.Millisecond
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
func stepOf(t time.Time) int64 {
	n, d := t.UnixNano(), int64(HistoryStep)
	if n < 0 && n%d != 0 {
		return n/d - 1
	}
	return n / d
}

// sample closes the steps that ended since the latest sample: what each
// circuit did since then goes to the last of them.
func (h *history) sample() {
	circuits := h.reg.Circuits() // outside mu: it may evict
	h.mu.Lock()
	defer h.mu.Unlock()
	k := stepOf(h.clock.Now())
	if h.started && k <= h.step {
		return
	}
	first := !h.started
	h.started, h.step = true, k

	live := make(map[string]bool, len(circuits))
	for _, c := range circuits {
		live[c.Name()] = true
	}
	for name := range h.series {
		if !live[name] {
			delete(h.series, name) // removed or evicted from the registry
		}
	}
	whole := true
	for _, c := range circuits {
		s, ok := h.series[c.Name()]
		if !ok {
			if len(h.series) >= h.limit {
				whole = false
				continue
			}
			s = &series{c: c, end: k - 1}
			h.series[c.Name()] = s
			if first || !h.whole {
				// It may have been working for long: from now on.
				s.seen, s.end = c.Metrics().Lifetime, k
				continue
			}
			// It is new since the latest sample: all it did is news.
		}
		if s.c != c { // the registry made a new breaker of that name
			s.c, s.seen = c, breaker.Lifetime{}
		}
		m := c.Metrics()
		s.record(k, m.State, diff(m.Lifetime, s.seen))
		s.seen = m.Lifetime
	}
	h.whole = whole
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
	from := max(s.end, k-int64(historyPoints))
	for step := from; step < k-1; step++ {
		s.points[step%int64(historyPoints)] = point{state: state}
	}
	p.state = state
	s.points[(k-1)%int64(historyPoints)] = p
	s.n = int(min(int64(s.n)+k-s.end, int64(historyPoints)))
	s.end = k
}

// report returns the history as JSON shows it, by circuit name.
func (h *history) report() History {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := History{Now: h.clock.Now(), StepSeconds: HistoryStep.Seconds(), Circuits: []CircuitHistory{}}
	for _, name := range slices.Sorted(maps.Keys(h.series)) {
		s := h.series[name]
		ch := CircuitHistory{
			Name:        name,
			Start:       time.Unix(0, (s.end-int64(s.n))*int64(HistoryStep)).In(out.Now.Location()),
			Calls:       make([]uint64, s.n),
			Failures:    make([]uint64, s.n),
			Refusals:    make([]uint64, s.n),
			OpenSeconds: make([]float64, s.n),
			States:      make([]breaker.State, s.n),
		}
		for i := range s.n {
			p := s.points[(s.end-int64(s.n)+int64(i))%int64(historyPoints)]
			ch.Calls[i], ch.Failures[i], ch.Refusals[i] = p.calls, p.failures, p.refusals
			ch.OpenSeconds[i] = math.Round(p.open.Seconds()*1000) / 1000
			ch.States[i] = p.state
		}
		out.Circuits = append(out.Circuits, ch)
	}
	return out
}
