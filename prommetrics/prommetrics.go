// Package prommetrics exposes breaker metrics to Prometheus.
//
// A Collector is both a breaker.Listener, to list in the Config of breakers
// (or of a registry, whose breakers then all report), and a
// prometheus.Collector, to register:
//
//	m := prommetrics.New(prommetrics.Opts{})
//	prometheus.MustRegister(m)
//	reg, _ := breaker.NewRegistry(breaker.Config{Listeners: []breaker.Listener{m}})
//
// The Collector is pulled, not pushed: it keeps the breakers it is attached
// to (without keeping them alive) and reads their Metrics when Prometheus
// scrapes it, so it costs calls nothing. Only Opts.Durations, which needs
// each call's duration, makes it hear calls.
//
// Per breaker (label "breaker", the breaker's name) it exposes, with the
// default namespace:
//
//	breaker_state{state}                     gauge: breakers in each state (closed, open, half-open, forced-open, disabled)
//	breaker_calls_total{outcome}             counter: calls by outcome: success, failure, ignored,
//	                                         rejected_open (ErrOpen), rejected_half_open (ErrTooManyCalls)
//	breaker_slow_calls_total                 counter: calls that lasted at least SlowCallDuration
//	breaker_opens_total                      counter: times the circuit opened, ForceOpen aside
//	breaker_open_seconds_total               counter: time spent open or forced open
//	breaker_failure_rate                     gauge: failure rate of the calls in the window
//	breaker_slow_call_rate                   gauge: slow-call rate of the calls in the window
//	breaker_window_calls                     gauge: calls in the window
//	breaker_call_duration_seconds{outcome}   histogram of admitted calls' durations, only with Opts.Durations
//
// Breakers of the same name (in two registries, say) are reported as one:
// their counters and window calls add up, the rates are those of their
// windows taken together, and breaker_state counts the breakers in each
// state, so it is 0 or 1 for a name that one breaker has.
//
// The counters are the breakers' Lifetime counts, so they start at zero
// with each breaker, and the open time is measured by the breaker's own
// Clock.
package prommetrics

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/seed18491788/breaker"
)

// Opts configures a Collector. The zero value of every field means its
// default.
type Opts struct {
	// Namespace prefixes every metric name. Default "breaker".
	Namespace string
	// Durations adds the breaker_call_duration_seconds histogram. It makes
	// the Collector hear each admitted call, which then costs two clock
	// reads and a histogram update (but never a trip through the breaker's
	// lock). A name's histogram series go once no live breaker has had
	// that name for two scrapes in a row. Default off.
	Durations bool
	// Buckets are the duration histogram's buckets, in seconds. Default
	// prometheus.DefBuckets.
	Buckets []float64
}

// Collector reports the breakers it is attached to. It is safe for
// concurrent use.
type Collector struct {
	circuits breaker.CircuitSet
	mask     breaker.EventMask
	duration *prometheus.HistogramVec // nil unless Opts.Durations

	mu    sync.Mutex      // one collection of durations at a time
	stale map[string]bool // names with durations but no live breaker at the last scrape

	state, calls, slow, opens, openTime *prometheus.Desc
	failureRate, slowRate, windowCalls  *prometheus.Desc
}

// New returns a Collector.
func New(opts Opts) *Collector {
	ns := opts.Namespace
	if ns == "" {
		ns = "breaker"
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help,
			append([]string{"breaker"}, labels...), nil)
	}
	c := &Collector{
		state: desc("state", "Breakers of the name in each state: for one breaker, 1 for the state it is in and 0 for the others.", "state"),
		calls: desc("calls_total", "Calls through the circuit breaker, by outcome: success, failure, ignored, rejected_open or rejected_half_open.", "outcome"),
		slow:  desc("slow_calls_total", "Calls that lasted at least the breaker's SlowCallDuration."),
		opens: desc("opens_total", "Times the circuit opened, ForceOpen aside."),

		openTime:    desc("open_seconds_total", "Time the circuit has spent open or forced open."),
		failureRate: desc("failure_rate", "Fraction of the calls in the window that failed."),
		slowRate:    desc("slow_call_rate", "Fraction of the calls in the window that were slow."),
		windowCalls: desc("window_calls", "Calls recorded in the window."),
	}
	if opts.Durations {
		buckets := opts.Buckets
		if buckets == nil {
			buckets = prometheus.DefBuckets
		}
		c.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "call_duration_seconds",
			Help:    "Duration of the calls the breaker admitted, by outcome: success, failure or ignored.",
			Buckets: buckets,
		}, []string{"breaker", "outcome"})
		c.mask = breaker.Mask(breaker.EventSuccess, breaker.EventFailure, breaker.EventIgnored)
	}
	return c
}

// Attach adds b to the breakers the Collector reports. New calls it for
// each breaker that lists the Collector in its Config.Listeners; the
// Collector does not keep b alive.
func (c *Collector) Attach(b breaker.Circuit) { c.circuits.Add(b) }

// EventMask returns the events the Collector hears: none, unless
// Opts.Durations is on, and then the outcomes of admitted calls.
func (c *Collector) EventMask() breaker.EventMask { return c.mask }

// OnEvent observes the duration of an admitted call, if Opts.Durations is
// on; it ignores other events.
func (c *Collector) OnEvent(e breaker.Event) {
	if c.duration == nil {
		return
	}
	switch e.Kind {
	case breaker.EventSuccess, breaker.EventFailure, breaker.EventIgnored:
		c.duration.WithLabelValues(labelValue(e.Breaker), e.Kind.String()).Observe(e.Duration.Seconds())
	}
}

// Describe sends the descriptions of the Collector's metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.calls, c.slow, c.opens, c.openTime, c.failureRate, c.slowRate, c.windowCalls} {
		ch <- d
	}
	if c.duration != nil {
		c.duration.Describe(ch)
	}
}

// states are the states a breaker_state has a series for; states[i] is
// State(i).
var states = [...]breaker.State{breaker.StateClosed, breaker.StateOpen, breaker.StateHalfOpen, breaker.StateForcedOpen, breaker.StateDisabled}

// sum is what the breakers of one name add up to.
type sum struct {
	states                        [len(states)]int
	calls, failures, slowInWindow int
	life                          breaker.Lifetime
}

func (s *sum) add(m breaker.Metrics) {
	if int(m.State) < len(s.states) {
		s.states[m.State]++
	}
	s.calls += m.Calls
	s.failures += m.Failures
	s.slowInWindow += m.SlowCalls
	l := &s.life
	l.Successes += m.Lifetime.Successes
	l.Failures += m.Lifetime.Failures
	l.Ignored += m.Lifetime.Ignored
	l.SlowCalls += m.Lifetime.SlowCalls
	l.RefusedOpen += m.Lifetime.RefusedOpen
	l.RefusedHalfOpen += m.Lifetime.RefusedHalfOpen
	l.Opens += m.Lifetime.Opens
	l.OpenTime += m.Lifetime.OpenTime
}

// Collect reads the Metrics of every live breaker the Collector is attached
// to and sends them, one set per name.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var names []string
	sums := map[string]*sum{}
	for _, b := range c.circuits.Circuits() {
		name := labelValue(b.Name())
		s := sums[name]
		if s == nil {
			s = new(sum)
			sums[name] = s
			names = append(names, name)
		}
		s.add(b.Metrics())
	}
	for _, name := range names {
		c.send(ch, name, sums[name])
	}
	if c.duration != nil {
		c.collectDurations(ch, sums)
	}
}

// collectDurations sends the duration histograms of the names in live, and
// of the names that were live at the last scrape; it deletes the others,
// so that the histogram does not grow with every name ever seen.
func (c *Collector) collectDurations(ch chan<- prometheus.Metric, live map[string]*sum) {
	c.mu.Lock()
	defer c.mu.Unlock()
	series := make(chan prometheus.Metric, 64)
	go func() {
		c.duration.Collect(series)
		close(series)
	}()
	stale := map[string]bool{}
	var gone []string
	for m := range series {
		var pb dto.Metric
		name := ""
		if m.Write(&pb) == nil {
			for _, l := range pb.GetLabel() {
				if l.GetName() == "breaker" {
					name = l.GetValue()
				}
			}
		}
		if live[name] == nil {
			if c.stale[name] {
				gone = append(gone, name)
				continue
			}
			stale[name] = true
		}
		ch <- m
	}
	for _, name := range gone {
		c.duration.DeletePartialMatch(prometheus.Labels{"breaker": name})
	}
	c.stale = stale
}

// send sends the metrics of the breakers named name.
func (c *Collector) send(ch chan<- prometheus.Metric, name string, s *sum) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{name}, labels...)...)
	}
	for i, st := range states {
		gauge(c.state, float64(s.states[i]), st.String())
	}
	l := s.life
	counter(c.calls, float64(l.Successes), "success")
	counter(c.calls, float64(l.Failures), "failure")
	counter(c.calls, float64(l.Ignored), "ignored")
	counter(c.calls, float64(l.RefusedOpen), "rejected_open")
	counter(c.calls, float64(l.RefusedHalfOpen), "rejected_half_open")
	counter(c.slow, float64(l.SlowCalls))
	counter(c.opens, float64(l.Opens))
	counter(c.openTime, l.OpenTime.Seconds())
	gauge(c.failureRate, rate(s.failures, s.calls))
	gauge(c.slowRate, rate(s.slowInWindow, s.calls))
	gauge(c.windowCalls, float64(s.calls))
}

// rate is part/whole, or 0 with no calls, as breaker.Metrics has it.
func rate(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// labelValue makes a breaker's name a valid label value: Prometheus takes
// only UTF-8, and a breaker's name may be any string.
func labelValue(name string) string { return strings.ToValidUTF8(name, "\uFFFD") }

var (
	_ breaker.MaskedListener = (*Collector)(nil)
	_ breaker.Attacher       = (*Collector)(nil)
	_ prometheus.Collector   = (*Collector)(nil)
)
