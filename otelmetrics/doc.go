// Package otelmetrics reports breaker metrics to OpenTelemetry.
//
// A Listener is a breaker.Listener to attach to breakers, or to a
// registry's default Config:
//
//	l, err := otelmetrics.New(otel.GetMeterProvider())
//	b, err := breaker.New[T]("db", breaker.Config{Listeners: []breaker.Listener{l}})
//
// It keeps the breakers it is attached to, without keeping them alive, and
// reads their Metrics when the MeterProvider collects. Per breaker name
// (attribute breaker.name; breakers of one name are added together) it
// reports:
//
//	breaker.calls            counter, {call}, by breaker.outcome: success, failure, ignored,
//	                         rejected_open (refused while open or forced open),
//	                         rejected_half_open (refused in half-open)
//	breaker.slow_calls       counter, {call}: calls that lasted at least SlowCallDuration
//	breaker.opens            counter, {open}: times the circuit opened, ForceOpen aside
//	breaker.open.time        counter, s: time spent open or forced open
//	breaker.state            gauge, {breaker}, by breaker.state: how many breakers are in each state
//	breaker.failure_rate     gauge, 1: failure rate of the calls in the window
//	breaker.slow_call_rate   gauge, 1: slow-call rate of the calls in the window
//	breaker.window.calls     gauge, {call}: recorded calls in the window
//	breaker.call.duration    histogram, s, by breaker.outcome: success, failure, ignored;
//	                         only with WithDurations
//
// Everything but the histogram is read at collection time: the counters
// are the breakers' Lifetime counts, which the breakers keep anyway, so
// the Listener hears no events and costs calls nothing. A collection calls
// each breaker's Metrics once, which holds its lock for a moment.
// WithDurations is the exception: it has every admitted call timed and
// recorded in the histogram, which costs each call two clock reads and a
// histogram record, but never the breaker's lock.
//
// The rates of breakers of one name are those of their windows taken
// together. A breaker the program drops leaves the metrics once the
// garbage collector takes it, and the counters of its name fall by its
// counts, as after a restart.
package otelmetrics
