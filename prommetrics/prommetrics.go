// Package prommetrics exposes breaker metrics to Prometheus.
//
// A Collector is both a breaker.Listener, to attach to breakers (or to a
// registry's default Config), and a prometheus.Collector, to register:
//
//	m := prommetrics.New(prommetrics.Opts{})
//	prometheus.MustRegister(m)
//	reg, _ := breaker.NewRegistry(breaker.Config{Listeners: []breaker.Listener{m}})
//
// Per breaker (label "breaker") it exposes, with the default namespace:
//
//	breaker_state{state}                     1 for the current state, 0 for the others
//	breaker_calls_total{outcome}             calls by outcome: success, failure, ignored, rejected
//	breaker_slow_calls_total                 calls that lasted at least SlowCallDuration
//	breaker_call_duration_seconds{outcome}   histogram of call durations
//	breaker_transitions_total{from,to}       state changes
//	breaker_open_seconds_total               time spent open or forced open
//
// A listener costs every call a trip through the breaker's lock; see the
// breaker package's documentation.
package prommetrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed18491788/breaker"
)

// Opts configures a Collector. The zero value of every field means its
// default.
type Opts struct {
	// Namespace prefixes every metric name. Default "breaker".
	Namespace string
	// Buckets are the call duration histogram's buckets, in seconds.
	// Default prometheus.DefBuckets.
	Buckets []float64
	// Now tells the time when metrics are collected, to add the time a
	// circuit has been open so far. Default time.Now; give the breakers'
	// Clock's Now if they have one.
	Now func() time.Time
}

// Collector keeps the metrics of every breaker it listens to. It is safe
// for concurrent use.
type Collector struct {
	now         func() time.Time
	calls       *prometheus.CounterVec
	slow        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	transitions *prometheus.CounterVec
	stateDesc   *prometheus.Desc
	openDesc    *prometheus.Desc

	mu       sync.Mutex
	circuits map[string]*circuit
}

// circuit is what the Collector keeps of one breaker beyond its counters.
type circuit struct {
	state     breaker.State
	openSince time.Time     // when it last opened, while open
	openTotal time.Duration // time spent open before that
}

// New returns a Collector.
func New(opts Opts) *Collector {
	ns := opts.Namespace
	if ns == "" {
		ns = "breaker"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Buckets == nil {
		opts.Buckets = prometheus.DefBuckets
	}
	return &Collector{
		now: opts.Now,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "calls_total",
			Help: "Calls through the circuit breaker, by outcome: success, failure, ignored or rejected.",
		}, []string{"breaker", "outcome"}),
		slow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "slow_calls_total",
			Help: "Calls that lasted at least the breaker's SlowCallDuration.",
		}, []string{"breaker"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "call_duration_seconds",
			Help:    "Duration of the calls the breaker admitted, by outcome.",
			Buckets: opts.Buckets,
		}, []string{"breaker", "outcome"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "transitions_total",
			Help: "State changes of the circuit.",
		}, []string{"breaker", "from", "to"}),
		stateDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "state"),
			"Current state of the circuit: 1 for the state it is in, 0 for the others.",
			[]string{"breaker", "state"}, nil),
		openDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "open_seconds_total"),
			"Time the circuit has spent open or forced open.",
			[]string{"breaker"}, nil),
		circuits: map[string]*circuit{},
	}
}

var states = []breaker.State{breaker.StateClosed, breaker.StateOpen, breaker.StateHalfOpen, breaker.StateForcedOpen, breaker.StateDisabled}

func isOpen(s breaker.State) bool { return s == breaker.StateOpen || s == breaker.StateForcedOpen }

// OnEvent records e. It makes the Collector a breaker.Listener.
func (c *Collector) OnEvent(e breaker.Event) {
	switch e.Kind {
	case breaker.EventSuccess, breaker.EventFailure, breaker.EventIgnored:
		outcome := e.Kind.String()
		c.calls.WithLabelValues(e.Breaker, outcome).Inc()
		c.duration.WithLabelValues(e.Breaker, outcome).Observe(e.Duration.Seconds())
		if e.Slow {
			c.slow.WithLabelValues(e.Breaker).Inc()
		}
	case breaker.EventRejected:
		c.calls.WithLabelValues(e.Breaker, "rejected").Inc()
	case breaker.EventStateChange:
		c.transitions.WithLabelValues(e.Breaker, e.From.String(), e.To.String()).Inc()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := c.circuits[e.Breaker]
	if ci == nil {
		ci = &circuit{}
		c.circuits[e.Breaker] = ci
		if e.Kind == breaker.EventStateChange {
			ci.state = e.From
		}
	}
	if e.Kind != breaker.EventStateChange {
		return
	}
	if isOpen(ci.state) && !ci.openSince.IsZero() {
		ci.openTotal += e.Time.Sub(ci.openSince)
	}
	ci.state = e.To
	ci.openSince = time.Time{}
	if isOpen(e.To) {
		ci.openSince = e.Time
	}
}

// Describe sends the descriptions of the Collector's metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.calls.Describe(ch)
	c.slow.Describe(ch)
	c.duration.Describe(ch)
	c.transitions.Describe(ch)
	ch <- c.stateDesc
	ch <- c.openDesc
}

// Collect sends the Collector's metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.calls.Collect(ch)
	c.slow.Collect(ch)
	c.duration.Collect(ch)
	c.transitions.Collect(ch)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, ci := range c.circuits {
		for _, s := range states {
			v := 0.0
			if s == ci.state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.stateDesc, prometheus.GaugeValue, v, name, s.String())
		}
		open := ci.openTotal
		if !ci.openSince.IsZero() {
			open += max(now.Sub(ci.openSince), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.openDesc, prometheus.CounterValue, open.Seconds(), name)
	}
}

var (
	_ breaker.Listener     = (*Collector)(nil)
	_ prometheus.Collector = (*Collector)(nil)
)
