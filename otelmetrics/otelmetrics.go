// Package otelmetrics records breaker metrics with OpenTelemetry.
//
// A Listener is a breaker.Listener that records, for every breaker it
// hears from (attribute breaker.name):
//
//	breaker.calls            counter, {call}, by breaker.outcome: success, failure, ignored, rejected
//	breaker.slow_calls       counter, {call}: calls that lasted at least SlowCallDuration
//	breaker.call.duration    histogram, s, by breaker.outcome
//	breaker.transitions      counter, {transition}, by breaker.from and breaker.to
//	breaker.state            gauge: 1 for the state the circuit is in (breaker.state), 0 for the others
//	breaker.open.time        counter, s: time spent open or forced open
//
// Use it with any MeterProvider:
//
//	l, err := otelmetrics.New(otel.GetMeterProvider())
//	b, err := breaker.New[T]("db", breaker.Config{Listeners: []breaker.Listener{l}})
//
// A listener costs every call a trip through the breaker's lock; see the
// breaker package's documentation.
package otelmetrics

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/seed18491788/breaker"
)

// ScopeName is the instrumentation scope of the Listener's meter.
const ScopeName = "github.com/seed18491788/breaker/otelmetrics"

// DefaultBuckets are the call duration histogram's bucket boundaries, in
// seconds, as OpenTelemetry's semantic conventions advise for request
// durations.
var DefaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// Option configures New.
type Option func(*Listener)

// WithBuckets sets the call duration histogram's bucket boundaries, in
// seconds.
func WithBuckets(bounds ...float64) Option {
	return func(l *Listener) { l.buckets = bounds }
}

// WithNow sets the clock that measures the time a circuit has been open so
// far, when metrics are collected: give the breakers' Clock's Now if they
// have one. By default time.Now.
func WithNow(now func() time.Time) Option {
	return func(l *Listener) { l.now = now }
}

// Listener records breaker events as OpenTelemetry metrics. It is safe for
// concurrent use.
type Listener struct {
	buckets     []float64
	now         func() time.Time
	calls       metric.Int64Counter
	slow        metric.Int64Counter
	duration    metric.Float64Histogram
	transitions metric.Int64Counter
	registered  metric.Registration

	mu       sync.Mutex
	circuits map[string]*circuit
}

// circuit is what the Listener keeps of one breaker.
type circuit struct {
	name      attribute.KeyValue
	outcomes  map[breaker.EventKind]metric.MeasurementOption // attribute sets, made once
	state     breaker.State
	openSince time.Time
	openTotal time.Duration
}

// New returns a Listener whose instruments come from mp.
func New(mp metric.MeterProvider, opts ...Option) (*Listener, error) {
	l := &Listener{buckets: DefaultBuckets, now: time.Now, circuits: map[string]*circuit{}}
	for _, o := range opts {
		o(l)
	}
	m := mp.Meter(ScopeName)
	var err error
	if l.calls, err = m.Int64Counter("breaker.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls through the circuit breaker, by outcome: success, failure, ignored or rejected.")); err != nil {
		return nil, err
	}
	if l.slow, err = m.Int64Counter("breaker.slow_calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls that lasted at least the breaker's SlowCallDuration.")); err != nil {
		return nil, err
	}
	if l.duration, err = m.Float64Histogram("breaker.call.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of the calls the breaker admitted, by outcome."),
		metric.WithExplicitBucketBoundaries(l.buckets...)); err != nil {
		return nil, err
	}
	if l.transitions, err = m.Int64Counter("breaker.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("State changes of the circuit.")); err != nil {
		return nil, err
	}
	state, err := m.Int64ObservableGauge("breaker.state",
		metric.WithDescription("Current state of the circuit: 1 for the state it is in, 0 for the others."))
	if err != nil {
		return nil, err
	}
	open, err := m.Float64ObservableCounter("breaker.open.time", metric.WithUnit("s"),
		metric.WithDescription("Time the circuit has spent open or forced open."))
	if err != nil {
		return nil, err
	}
	l.registered, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		l.observe(o, state, open)
		return nil
	}, state, open)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Close stops the Listener's observable instruments.
func (l *Listener) Close() error { return l.registered.Unregister() }

var states = []breaker.State{breaker.StateClosed, breaker.StateOpen, breaker.StateHalfOpen, breaker.StateForcedOpen, breaker.StateDisabled}

func isOpen(s breaker.State) bool { return s == breaker.StateOpen || s == breaker.StateForcedOpen }

// circuit returns what l keeps of the named breaker. It requires l.mu held.
func (l *Listener) circuit(name string, initial breaker.State) *circuit {
	c := l.circuits[name]
	if c == nil {
		c = &circuit{name: attribute.String("breaker.name", name), outcomes: map[breaker.EventKind]metric.MeasurementOption{}, state: initial}
		l.circuits[name] = c
	}
	return c
}

// OnEvent records e. It makes the Listener a breaker.Listener.
func (l *Listener) OnEvent(e breaker.Event) {
	ctx := context.Background()
	l.mu.Lock()
	c := l.circuit(e.Breaker, e.From)
	var attrs metric.MeasurementOption
	if e.Kind != breaker.EventStateChange {
		attrs = c.outcomes[e.Kind]
		if attrs == nil {
			outcome := e.Kind.String()
			if e.Kind == breaker.EventRejected {
				outcome = "rejected"
			}
			attrs = metric.WithAttributeSet(attribute.NewSet(c.name, attribute.String("breaker.outcome", outcome)))
			c.outcomes[e.Kind] = attrs
		}
	} else {
		if isOpen(c.state) && !c.openSince.IsZero() {
			c.openTotal += e.Time.Sub(c.openSince)
		}
		c.state, c.openSince = e.To, time.Time{}
		if isOpen(e.To) {
			c.openSince = e.Time
		}
	}
	name := c.name
	l.mu.Unlock()

	switch e.Kind {
	case breaker.EventSuccess, breaker.EventFailure, breaker.EventIgnored:
		l.calls.Add(ctx, 1, attrs)
		l.duration.Record(ctx, e.Duration.Seconds(), attrs)
		if e.Slow {
			l.slow.Add(ctx, 1, metric.WithAttributes(name))
		}
	case breaker.EventRejected:
		l.calls.Add(ctx, 1, attrs)
	case breaker.EventStateChange:
		l.transitions.Add(ctx, 1, metric.WithAttributes(name,
			attribute.String("breaker.from", e.From.String()), attribute.String("breaker.to", e.To.String())))
	}
}

func (l *Listener) observe(o metric.Observer, state metric.Int64ObservableGauge, open metric.Float64ObservableCounter) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.circuits {
		for _, s := range states {
			v := int64(0)
			if s == c.state {
				v = 1
			}
			o.ObserveInt64(state, v, metric.WithAttributes(c.name, attribute.String("breaker.state", s.String())))
		}
		total := c.openTotal
		if !c.openSince.IsZero() {
			total += max(now.Sub(c.openSince), 0)
		}
		o.ObserveFloat64(open, total.Seconds(), metric.WithAttributes(c.name))
	}
}

var _ breaker.Listener = (*Listener)(nil)
