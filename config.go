package breaker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultWindowSize            = 100
	DefaultWindowDuration        = 60 * time.Second
	DefaultBuckets               = 10 // a TimeWindow's buckets when BucketDuration is 0
	DefaultMinimumCalls          = 10
	DefaultFailureRateThreshold  = 0.5
	DefaultSlowCallRateThreshold = 1.0
	DefaultOpenTimeout           = 30 * time.Second
	DefaultHalfOpenMaxCalls      = 1
	DefaultHalfOpenMaxWait       = time.Minute
)

// Limits that keep a window's memory bounded.
const (
	MaxWindowSize = 1 << 20 // largest WindowSize of a CountWindow
	MaxBuckets    = 1 << 16 // most buckets in a TimeWindow (WindowDuration / BucketDuration)
)

// WindowType selects how a breaker remembers recent calls.
type WindowType int

const (
	// CountWindow judges the last WindowSize recorded calls.
	CountWindow WindowType = iota
	// TimeWindow judges the calls recorded in the last WindowDuration.
	TimeWindow
)

// MarshalText encodes w by name: "count" or "time".
func (w WindowType) MarshalText() ([]byte, error) {
	switch w {
	case CountWindow:
		return []byte("count"), nil
	case TimeWindow:
		return []byte("time"), nil
	}
	return nil, fmt.Errorf("breaker: %v has no name", w)
}

// UnmarshalText decodes a window type's name: "count" or "time" (or
// "CountWindow", "TimeWindow"), in any case.
func (w *WindowType) UnmarshalText(text []byte) error {
	switch strings.ToLower(string(text)) {
	case "count", "countwindow":
		*w = CountWindow
	case "time", "timewindow":
		*w = TimeWindow
	default:
		return fmt.Errorf("%q is not a window type (count, time)", text)
	}
	return nil
}

func (w WindowType) String() string {
	switch w {
	case CountWindow:
		return "CountWindow"
	case TimeWindow:
		return "TimeWindow"
	}
	return fmt.Sprintf("WindowType(%d)", int(w))
}

// Clock tells the time. *clock.Mock from github.com/benbjohnson/clock
// satisfies it, which makes every transition testable without waiting.
type Clock interface {
	Now() time.Time
}

// Config tunes a Breaker. The zero value of every field means its default,
// so Config{} is a working configuration.
type Config struct {
	// Window selects a CountWindow (the default) or a TimeWindow.
	Window WindowType

	// WindowSize is the number of recorded calls a CountWindow judges.
	// Default DefaultWindowSize; at most MaxWindowSize.
	WindowSize int

	// WindowDuration is how far back a TimeWindow looks. Default
	// DefaultWindowDuration.
	WindowDuration time.Duration

	// BucketDuration is the width of one TimeWindow bucket: an outcome counts
	// while it is younger than WindowDuration and is dropped at most one
	// bucket later. Default WindowDuration/DefaultBuckets; at most
	// WindowDuration, and at most MaxBuckets buckets per window.
	BucketDuration time.Duration

	// MinimumCalls is how many recorded calls the window must hold before its
	// rates are judged. Default DefaultMinimumCalls, capped at WindowSize for
	// a CountWindow.
	MinimumCalls int

	// FailureRateThreshold trips the circuit when the failure rate is at or
	// above it, in (0, 1]. Default DefaultFailureRateThreshold.
	FailureRateThreshold float64

	// ConsecutiveFailures, if positive, also trips the circuit after that
	// many failures in a row, whatever the window holds. Default 0 (off).
	ConsecutiveFailures int

	// SlowCallDuration marks a call lasting at least this long as slow,
	// whether it failed or not. Default 0: slow calls are not tracked.
	SlowCallDuration time.Duration

	// SlowCallRateThreshold trips the circuit when the slow-call rate is at
	// or above it, in (0, 1]. Default DefaultSlowCallRateThreshold.
	SlowCallRateThreshold float64

	// OpenTimeout is how long the circuit stays open before it admits trial
	// calls. Default DefaultOpenTimeout.
	OpenTimeout time.Duration

	// MaxOpenTimeout, if set, turns on exponential back-off: each reopening
	// from half-open without a close in between doubles the open wait, up
	// to MaxOpenTimeout. It must be at least OpenTimeout. Default 0: every
	// open wait is OpenTimeout.
	MaxOpenTimeout time.Duration

	// OpenJitter spreads each open wait evenly within plus or minus this
	// fraction of it, in [0, 1), so that many instances do not probe in
	// step. Default 0.
	OpenJitter float64

	// HalfOpenMaxCalls is how many trial calls one half-open period admits.
	// Default DefaultHalfOpenMaxCalls.
	HalfOpenMaxCalls int

	// SuccessThreshold is how many trial successes close the circuit, in
	// [1, HalfOpenMaxCalls]. Default HalfOpenMaxCalls.
	SuccessThreshold int

	// HalfOpenMaxWait bounds a half-open period: one that has gone this
	// long without a decision (a trial whose done was never called, a trial
	// call that hangs) counts as a failed trial, and the circuit opens
	// again, with back-off; late outcomes of its trials are dropped. The
	// wait runs from the period's first trial, and is checked when the
	// breaker is next read (State, Metrics) or takes its lock; calls refused
	// without the lock, while the trials are taken, look at the clock every
	// 16th refusal. There is no timer. Default DefaultHalfOpenMaxWait; a
	// negative value turns it off.
	HalfOpenMaxWait time.Duration

	// TripRule, if set, decides when the circuit trips, in place of
	// MinimumCalls, the rate thresholds and ConsecutiveFailures: it is asked
	// with the window's counts after each failure or slow call in closed
	// state (successes never trip then), as gobreaker asks ReadyToTrip. It
	// runs under the breaker's lock, so it must be quick and must not call
	// the breaker; a panic in it is recovered and logged, and trips nothing.
	// Default nil.
	TripRule func(Counts) bool

	// IsFailure reports whether a non-nil error counts as a failure. Default
	// nil: every non-nil error does. An error that is not a failure counts
	// as a success.
	IsFailure func(error) bool

	// IsIgnored reports whether a call that returned err is left out of the
	// record altogether; it is asked before IsFailure. Default nil:
	// errors.Is(err, context.Canceled), so calls the caller gave up on do
	// not count against the dependency.
	IsIgnored func(error) bool

	// Clock tells the breaker the time. Default nil: the system clock.
	Clock Clock

	// Listeners receive the breaker's events outside its lock: each call's
	// own event from that call, state changes one at a time and in order
	// (see Listener). A MaskedListener hears only the kinds it asks for, an
	// Attacher learns the breaker. Default none.
	Listeners []Listener

	// Shared, if set, makes this breaker one of a fleet that shares its
	// name through a store; see SharedState. Default nil: the breaker acts
	// alone.
	Shared SharedState
}

func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }

// Counts are what a TripRule decides on: the window's recorded calls,
// failures and slow calls, and the failures in a row up to now.
type Counts struct {
	Calls, Failures, SlowCalls, ConsecutiveFailures int
}

// normalize returns c with its defaults filled in, or the first invalid
// field as a *ConfigError.
func (c Config) normalize() (Config, error) {
	n, errs := c.check()
	if len(errs) > 0 {
		return Config{}, errs[0]
	}
	return n, nil
}

// check returns c with its defaults filled in, and every invalid field, in
// the order of Config's fields. An invalid field is taken at its default
// to check the fields that depend on it.
func (c Config) check() (Config, []*ConfigError) {
	var errs []*ConfigError
	bad := func(field string, value any, allowed string) {
		errs = append(errs, &ConfigError{Field: field, Value: value, Allowed: allowed})
	}
	unit := func(x float64) bool { return x > 0 && x <= 1 } // false for NaN

	switch c.Window {
	case CountWindow, TimeWindow:
	default:
		bad("Window", c.Window, "{CountWindow, TimeWindow}")
		c.Window = CountWindow
	}
	if c.WindowSize == 0 {
		c.WindowSize = DefaultWindowSize
	}
	if c.WindowSize < 1 || c.WindowSize > MaxWindowSize {
		bad("WindowSize", c.WindowSize, fmt.Sprintf("[1, %d]", MaxWindowSize))
		c.WindowSize = DefaultWindowSize
	}
	if c.WindowDuration == 0 {
		c.WindowDuration = DefaultWindowDuration
	}
	if c.WindowDuration < 0 {
		bad("WindowDuration", c.WindowDuration, "(0, ∞)")
		c.WindowDuration = DefaultWindowDuration
	}
	if c.BucketDuration == 0 {
		c.BucketDuration = ceilDiv(c.WindowDuration, DefaultBuckets)
	}
	switch {
	case c.BucketDuration < 0 || c.BucketDuration > c.WindowDuration:
		bad("BucketDuration", c.BucketDuration, fmt.Sprintf("(0, WindowDuration %v]", c.WindowDuration))
		c.BucketDuration = ceilDiv(c.WindowDuration, DefaultBuckets)
	case ceilDiv(c.WindowDuration, c.BucketDuration) > MaxBuckets:
		bad("BucketDuration", c.BucketDuration,
			fmt.Sprintf("[%v, %v] (WindowDuration %v in at most %d buckets)",
				ceilDiv(c.WindowDuration, MaxBuckets), c.WindowDuration, c.WindowDuration, MaxBuckets))
		c.BucketDuration = ceilDiv(c.WindowDuration, DefaultBuckets)
	}
	if c.MinimumCalls == 0 {
		c.MinimumCalls = DefaultMinimumCalls
		if c.Window == CountWindow {
			c.MinimumCalls = min(c.MinimumCalls, c.WindowSize)
		}
	}
	switch {
	case c.MinimumCalls < 1:
		bad("MinimumCalls", c.MinimumCalls, "[1, ∞)")
		c.MinimumCalls = 1
	case c.Window == CountWindow && c.MinimumCalls > c.WindowSize:
		bad("MinimumCalls", c.MinimumCalls, fmt.Sprintf("[1, WindowSize %d]", c.WindowSize))
		c.MinimumCalls = 1
	}
	if c.FailureRateThreshold == 0 {
		c.FailureRateThreshold = DefaultFailureRateThreshold
	}
	if !unit(c.FailureRateThreshold) {
		bad("FailureRateThreshold", c.FailureRateThreshold, "(0, 1]")
		c.FailureRateThreshold = DefaultFailureRateThreshold
	}
	if c.ConsecutiveFailures < 0 {
		bad("ConsecutiveFailures", c.ConsecutiveFailures, "[0, ∞) (0 turns it off)")
		c.ConsecutiveFailures = 0
	}
	if c.SlowCallDuration < 0 {
		bad("SlowCallDuration", c.SlowCallDuration, "[0, ∞) (0 turns it off)")
		c.SlowCallDuration = 0
	}
	if c.SlowCallRateThreshold == 0 {
		c.SlowCallRateThreshold = DefaultSlowCallRateThreshold
	}
	if !unit(c.SlowCallRateThreshold) {
		bad("SlowCallRateThreshold", c.SlowCallRateThreshold, "(0, 1]")
		c.SlowCallRateThreshold = DefaultSlowCallRateThreshold
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.OpenTimeout < 0 {
		bad("OpenTimeout", c.OpenTimeout, "(0, ∞)")
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.MaxOpenTimeout != 0 && c.MaxOpenTimeout < c.OpenTimeout {
		bad("MaxOpenTimeout", c.MaxOpenTimeout, fmt.Sprintf("[OpenTimeout %v, ∞) or 0 (no back-off)", c.OpenTimeout))
		c.MaxOpenTimeout = 0
	}
	if !(c.OpenJitter >= 0 && c.OpenJitter < 1) {
		bad("OpenJitter", c.OpenJitter, "[0, 1)")
		c.OpenJitter = 0
	}
	if c.HalfOpenMaxCalls == 0 {
		c.HalfOpenMaxCalls = DefaultHalfOpenMaxCalls
	}
	if c.HalfOpenMaxCalls < 1 {
		bad("HalfOpenMaxCalls", c.HalfOpenMaxCalls, "[1, ∞)")
		c.HalfOpenMaxCalls = DefaultHalfOpenMaxCalls
	}
	if c.SuccessThreshold == 0 {
		c.SuccessThreshold = c.HalfOpenMaxCalls
	}
	if c.SuccessThreshold < 1 || c.SuccessThreshold > c.HalfOpenMaxCalls {
		bad("SuccessThreshold", c.SuccessThreshold, fmt.Sprintf("[1, HalfOpenMaxCalls %d]", c.HalfOpenMaxCalls))
		c.SuccessThreshold = c.HalfOpenMaxCalls
	}
	if c.HalfOpenMaxWait == 0 {
		c.HalfOpenMaxWait = DefaultHalfOpenMaxWait
	}
	for i, l := range c.Listeners {
		if f, ok := l.(ListenerFunc); l == nil || ok && f == nil {
			bad(fmt.Sprintf("Listeners[%d]", i), nil, "a non-nil Listener")
		}
	}
	if c.IsFailure == nil {
		c.IsFailure = func(error) bool { return true }
	}
	if c.IsIgnored == nil {
		c.IsIgnored = isCanceled
	}
	c.Listeners = append([]Listener(nil), c.Listeners...) // the caller may reuse its slice
	return c, errs
}

// ceilDiv is a/b rounded up, for positive a and b, without overflow.
func ceilDiv(a, b time.Duration) time.Duration {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}
