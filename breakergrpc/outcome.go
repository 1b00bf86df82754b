package breakergrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errPanicked is recorded for a call whose handler, invoker or streamer
// panicked (or ended its goroutine): a failure by the breaker's default
// IsFailure.
var errPanicked = errors.New("breakergrpc: call panicked")

// canceledError is what the breaker is given for a call that ended
// Canceled: the call's own error, made to match context.Canceled so that
// the breaker's default IsIgnored leaves it out.
type canceledError struct{ err error }

func (e *canceledError) Error() string   { return e.err.Error() }
func (e *canceledError) Unwrap() []error { return []error{e.err, context.Canceled} }

// codeOf returns the code of a call's error as gRPC would send it: a
// status error's code, Canceled or DeadlineExceeded for a context's
// errors, Unknown for any other.
func codeOf(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return status.FromContextError(err).Code()
}

// record passes done the outcome of a call that ended with err: nil for a
// success, so that the breaker's own IsFailure plays no part in the
// defaults; err itself for a failure; err matching context.Canceled for a
// call the breaker should leave out. done is called even if WithFailure's
// function panics, with err: the call is then a failure.
func (g *guard) record(done func(error), err error) {
	if err == nil {
		done(nil)
		return
	}
	outcome := err
	defer func() { done(outcome) }()
	outcome = g.judge(err)
}

// judge returns what the breaker is given for a call that ended with err,
// a non-nil error.
func (g *guard) judge(err error) error {
	code := codeOf(err)
	switch {
	case code == codes.Canceled:
		return &canceledError{err}
	case g.isFailure != nil:
		if g.isFailure(err) {
			return err
		}
		return nil
	case g.failures.has(code):
		return err
	}
	return nil
}
