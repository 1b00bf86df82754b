package otelmetrics

import (
	"context"
	"sync"

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

// WithDurations adds the breaker.call.duration histogram: the Listener
// hears every admitted call's outcome and records how long it took. That
// costs each call two clock reads and a histogram record, but never the
// breaker's lock. Default off.
func WithDurations() Option {
	return func(l *Listener) { l.mask = durationEvents }
}

// WithBuckets sets the call duration histogram's bucket boundaries, in
// seconds. Default DefaultBuckets. It matters only with WithDurations.
func WithBuckets(bounds ...float64) Option {
	return func(l *Listener) { l.buckets = bounds }
}

// durationEvents are the events that carry a call's duration.
var durationEvents = breaker.Mask(breaker.EventSuccess, breaker.EventFailure, breaker.EventIgnored)

// Listener reports the Metrics of the breakers it is attached to as
// OpenTelemetry metrics, read when they are collected. It is safe for
// concurrent use.
type Listener struct {
	mask     breaker.EventMask
	buckets  []float64
	circuits breaker.CircuitSet

	calls        metric.Int64ObservableCounter
	slowCalls    metric.Int64ObservableCounter
	opens        metric.Int64ObservableCounter
	openTime     metric.Float64ObservableCounter
	state        metric.Int64ObservableGauge
	failureRate  metric.Float64ObservableGauge
	slowCallRate metric.Float64ObservableGauge
	windowCalls  metric.Int64ObservableGauge
	registration metric.Registration

	duration metric.Float64Histogram // nil without WithDurations
	// recordOpts holds, by outcomeKey, the options that OnEvent passes
	// Record: made once each, so that recording allocates nothing. Each
	// collection drops those of names no live breaker has, so that the
	// cache does not grow with every name ever seen.
	recordOpts sync.Map
}

// outcomeKey names a call outcome of a breaker.
type outcomeKey struct {
	name string
	kind breaker.EventKind
}

// New returns a Listener whose instruments come from mp.
func New(mp metric.MeterProvider, opts ...Option) (*Listener, error) {
	l := &Listener{buckets: DefaultBuckets}
	for _, o := range opts {
		o(l)
	}
	m := mp.Meter(ScopeName)
	var err error
	if l.calls, err = m.Int64ObservableCounter("breaker.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls to the circuit breaker, by outcome: success, failure, ignored, rejected_open or rejected_half_open.")); err != nil {
		return nil, err
	}
	if l.slowCalls, err = m.Int64ObservableCounter("breaker.slow_calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls that lasted at least the breaker's SlowCallDuration.")); err != nil {
		return nil, err
	}
	if l.opens, err = m.Int64ObservableCounter("breaker.opens", metric.WithUnit("{open}"),
		metric.WithDescription("Times the circuit opened, ForceOpen aside.")); err != nil {
		return nil, err
	}
	if l.openTime, err = m.Float64ObservableCounter("breaker.open.time", metric.WithUnit("s"),
		metric.WithDescription("Time the circuit has spent open or forced open.")); err != nil {
		return nil, err
	}
	if l.state, err = m.Int64ObservableGauge("breaker.state", metric.WithUnit("{breaker}"),
		metric.WithDescription("Breakers in each state: 1 for the state a breaker is in, 0 for the others.")); err != nil {
		return nil, err
	}
	if l.failureRate, err = m.Float64ObservableGauge("breaker.failure_rate", metric.WithUnit("1"),
		metric.WithDescription("Share of the calls in the breaker's window that failed.")); err != nil {
		return nil, err
	}
	if l.slowCallRate, err = m.Float64ObservableGauge("breaker.slow_call_rate", metric.WithUnit("1"),
		metric.WithDescription("Share of the calls in the breaker's window that were slow.")); err != nil {
		return nil, err
	}
	if l.windowCalls, err = m.Int64ObservableGauge("breaker.window.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Recorded calls in the breaker's window.")); err != nil {
		return nil, err
	}
	if l.mask != 0 {
		if l.duration, err = m.Float64Histogram("breaker.call.duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of the calls the breaker admitted, by outcome."),
			metric.WithExplicitBucketBoundaries(l.buckets...)); err != nil {
			return nil, err
		}
	}
	if l.registration, err = m.RegisterCallback(l.observe, l.calls, l.slowCalls, l.opens, l.openTime,
		l.state, l.failureRate, l.slowCallRate, l.windowCalls); err != nil {
		return nil, err
	}
	return l, nil
}

// Close stops the Listener's observations. The histogram of WithDurations
// goes on recording.
func (l *Listener) Close() error { return l.registration.Unregister() }

// Attach adds c to the breakers whose metrics l reports. New calls it for
// every breaker that lists l in its Config.Listeners; it makes the Listener
// a breaker.Attacher.
func (l *Listener) Attach(c breaker.Circuit) { l.circuits.Add(c) }

// EventMask returns the events l hears: none, or with WithDurations the
// outcomes of admitted calls. It makes the Listener a
// breaker.MaskedListener.
func (l *Listener) EventMask() breaker.EventMask { return l.mask }

// OnEvent records the duration of a call, with WithDurations. It makes the
// Listener a breaker.Listener.
func (l *Listener) OnEvent(e breaker.Event) {
	if l.duration == nil || !durationEvents.Has(e.Kind) {
		return
	}
	l.duration.Record(context.Background(), e.Duration.Seconds(), l.outcome(e.Breaker, e.Kind)...)
}

// outcome returns the Record options of the calls of the named breaker
// that end as kind.
func (l *Listener) outcome(name string, kind breaker.EventKind) []metric.RecordOption {
	k := outcomeKey{name, kind}
	if v, ok := l.recordOpts.Load(k); ok {
		return v.([]metric.RecordOption)
	}
	set := attribute.NewSet(attribute.String("breaker.name", name), attribute.String("breaker.outcome", kind.String()))
	v, _ := l.recordOpts.LoadOrStore(k, []metric.RecordOption{metric.WithAttributeSet(set)})
	return v.([]metric.RecordOption)
}

// states are the states that breaker.state reports, by their value.
var states = [...]breaker.State{breaker.StateClosed, breaker.StateOpen, breaker.StateHalfOpen, breaker.StateForcedOpen, breaker.StateDisabled}

// total is the Metrics of the breakers of one name, added together.
type total struct {
	life                  breaker.Lifetime
	states                [len(states)]int64
	calls, failures, slow int
}

func (t *total) add(m breaker.Metrics) {
	t.life.Successes += m.Lifetime.Successes
	t.life.Failures += m.Lifetime.Failures
	t.life.Ignored += m.Lifetime.Ignored
	t.life.SlowCalls += m.Lifetime.SlowCalls
	t.life.RefusedOpen += m.Lifetime.RefusedOpen
	t.life.RefusedHalfOpen += m.Lifetime.RefusedHalfOpen
	t.life.Opens += m.Lifetime.Opens
	t.life.OpenTime += m.Lifetime.OpenTime
	if int(m.State) < len(states) {
		t.states[m.State]++
	}
	t.calls += m.Calls
	t.failures += m.Failures
	t.slow += m.SlowCalls
}

// observe is the Listener's callback: it reads every live breaker's
// Metrics and observes those of each name together, since a callback may
// observe an instrument only once per attribute set.
func (l *Listener) observe(_ context.Context, o metric.Observer) error {
	var names []string
	totals := map[string]*total{}
	for _, c := range l.circuits.Circuits() {
		t := totals[c.Name()]
		if t == nil {
			t = new(total)
			totals[c.Name()] = t
			names = append(names, c.Name())
		}
		t.add(c.Metrics())
	}
	l.recordOpts.Range(func(k, _ any) bool {
		if totals[k.(outcomeKey).name] == nil {
			l.recordOpts.Delete(k)
		}
		return true
	})
	for _, name := range names {
		t := totals[name]
		n := attribute.String("breaker.name", name)
		all := metric.WithAttributes(n)
		by := func(key, value string) metric.ObserveOption {
			return metric.WithAttributes(n, attribute.String(key, value))
		}
		o.ObserveInt64(l.calls, int64(t.life.Successes), by("breaker.outcome", "success"))
		o.ObserveInt64(l.calls, int64(t.life.Failures), by("breaker.outcome", "failure"))
		o.ObserveInt64(l.calls, int64(t.life.Ignored), by("breaker.outcome", "ignored"))
		o.ObserveInt64(l.calls, int64(t.life.RefusedOpen), by("breaker.outcome", "rejected_open"))
		o.ObserveInt64(l.calls, int64(t.life.RefusedHalfOpen), by("breaker.outcome", "rejected_half_open"))
		o.ObserveInt64(l.slowCalls, int64(t.life.SlowCalls), all)
		o.ObserveInt64(l.opens, int64(t.life.Opens), all)
		o.ObserveFloat64(l.openTime, t.life.OpenTime.Seconds(), all)
		for i, s := range states {
			o.ObserveInt64(l.state, t.states[i], by("breaker.state", s.String()))
		}
		o.ObserveFloat64(l.failureRate, rate(t.failures, t.calls), all)
		o.ObserveFloat64(l.slowCallRate, rate(t.slow, t.calls), all)
		o.ObserveInt64(l.windowCalls, int64(t.calls), all)
	}
	return nil
}

// rate is part/whole, 0 with no calls, as breaker.Metrics has it.
func rate(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

var (
	_ breaker.MaskedListener = (*Listener)(nil)
	_ breaker.Attacher       = (*Listener)(nil)
)
