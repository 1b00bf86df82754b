package breaker

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrOpen matches (with errors.Is) the error returned for a call refused
	// because the circuit is open or forced open.
	ErrOpen = errors.New("breaker: circuit open")

	// ErrTooManyCalls matches the error returned for a call refused because
	// the half-open state has already admitted HalfOpenMaxCalls trial calls.
	ErrTooManyCalls = errors.New("breaker: too many calls while half-open")

	// ErrNilFunc is returned by Execute when fn is nil.
	ErrNilFunc = errors.New("breaker: nil function")

	// ErrInvalidConfig matches every *ConfigError returned by New.
	ErrInvalidConfig = errors.New("breaker: invalid config")

	// ErrWrongType matches the error of Get when the registry holds the
	// name with another result type.
	ErrWrongType = errors.New("breaker: registry holds the breaker with another result type")
)

// RejectedError is the error returned for a refused call. It names the
// breaker and answers errors.Is for ErrOpen (open or forced open) or
// ErrTooManyCalls (half-open).
type RejectedError struct {
	Breaker string
	State   State
	// RetryAt is when the open circuit admits its next trial call. It is zero
	// where no such time is known: forced open and half-open.
	RetryAt time.Time

	until int64 // RetryAt on the breaker's own clock
	c     *core // the breaker, whose clock RetryAfter reads
}

// RetryAfter returns the time left, by the breaker's clock, until the open
// circuit admits its next trial call: the wait to tell a caller (a
// Retry-After header, a gRPC pushback). It is zero where no such time is
// known (forced open, half-open) and once the time has come. It takes no
// lock.
func (e *RejectedError) RetryAfter() time.Duration {
	if e.c == nil || e.State != StateOpen {
		return 0
	}
	return max(time.Duration(e.until)-e.c.elapsed(), 0)
}

func (e *RejectedError) Error() string {
	switch e.State {
	case StateHalfOpen:
		return fmt.Sprintf("breaker %q: too many calls while half-open", e.Breaker)
	case StateForcedOpen:
		return fmt.Sprintf("breaker %q: circuit forced open", e.Breaker)
	default:
		return fmt.Sprintf("breaker %q: circuit open", e.Breaker)
	}
}

// Unwrap returns ErrTooManyCalls for a half-open rejection and ErrOpen
// otherwise, so that errors.Is matches the sentinel.
func (e *RejectedError) Unwrap() error {
	if e.State == StateHalfOpen {
		return ErrTooManyCalls
	}
	return ErrOpen
}

// PanicError is the error that listeners see (Event.Err) for a call whose
// function panicked. The panic itself is re-raised to the caller unchanged.
type PanicError struct {
	Value any
}

func (e *PanicError) Error() string { return fmt.Sprintf("breaker: call panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// errGoexit is recorded for a call whose function ended its goroutine with
// runtime.Goexit (t.FailNow in a test, for instance).
var errGoexit = errors.New("breaker: call ended its goroutine (runtime.Goexit)")

// ConfigError reports an invalid Config field. It matches ErrInvalidConfig.
type ConfigError struct {
	Field   string // the Config field, such as "FailureRateThreshold" or "Listeners[2]"
	Value   any    // the value given
	Allowed string // the values allowed, such as "(0, 1]"
}

func (e *ConfigError) Error() string {
	if _, ok := e.Value.(error); ok {
		return fmt.Sprintf("breaker: %s: %s", e.Field, e.problem())
	}
	return fmt.Sprintf("breaker: %s %s", e.Field, e.problem())
}

// problem says what is wrong with the value, without naming the field.
func (e *ConfigError) problem() string {
	if err, ok := e.Value.(error); ok {
		return fmt.Sprintf("%v; want %s", err, e.Allowed)
	}
	if e.Value == nil {
		return fmt.Sprintf("is nil; want %s", e.Allowed)
	}
	return fmt.Sprintf("%v is outside %s", e.Value, e.Allowed)
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// FieldError is an invalid field of a Registry's document or environment,
// at Path: "circuits.payments.failureRateThreshold", or the name of an
// environment variable.
type FieldError struct {
	Path string
	Err  error // a *ConfigError, or what is wrong with the value's form
}

func (e *FieldError) Error() string {
	var ce *ConfigError
	if errors.As(e.Err, &ce) {
		return e.Path + ": " + ce.problem()
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// DocumentError lists every invalid field of a document that a Registry
// refused; the Registry keeps the configs it had. It matches
// ErrInvalidConfig.
type DocumentError struct {
	Fields []*FieldError
}

func (e *DocumentError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return "breaker: invalid config: " + strings.Join(msgs, "; ")
}

// Unwrap returns ErrInvalidConfig.
func (e *DocumentError) Unwrap() error { return ErrInvalidConfig }
