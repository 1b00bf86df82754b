package breakergrpc

import (
	"errors"
	"math"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/seed18491788/breaker"
)

// PushbackTrailer is the trailer in which a server's refusal tells the
// client's retry policy how many milliseconds to wait before it retries.
const PushbackTrailer = "grpc-retry-pushback-ms"

// maxPushback bounds the delay a refusal gives: gRPC implementations read
// the pushback as a 32-bit count of milliseconds.
const maxPushback = math.MaxInt32 * time.Millisecond

// refusal describes a refused call as a status with code Unavailable and,
// when the time of the next trial call is known, its delay as a RetryInfo
// detail. The delay is given in whole milliseconds, rounded up, and at
// most maxPushback; known reports whether there is one.
func (g *guard) refusal(err error) (st *status.Status, delay time.Duration, known bool) {
	var rej *breaker.RejectedError
	errors.As(err, &rej)
	st = status.New(codes.Unavailable, g.message(rej, err))
	if rej == nil || rej.RetryAt.IsZero() {
		return st, 0, false
	}
	// RetryAt is on the breaker's clock, which may not be the system's:
	// the error tells the time left by it, without the breaker's lock.
	delay = min(rej.RetryAfter(), maxPushback)
	delay = (delay + time.Millisecond - 1).Truncate(time.Millisecond)
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); err == nil {
		st = withInfo
	}
	return st, delay, true
}

// message is a refused call's status message.
func (g *guard) message(rej *breaker.RejectedError, err error) string {
	if g.showName {
		return "breakergrpc: " + err.Error()
	}
	switch {
	case errors.Is(err, breaker.ErrTooManyCalls):
		return "breakergrpc: circuit half-open, too many calls"
	case rej != nil && rej.State == breaker.StateForcedOpen:
		return "breakergrpc: circuit forced open"
	}
	return "breakergrpc: circuit open"
}

// pushback returns the trailer that gives the client's retry policy
// delay.
func pushback(delay time.Duration) metadata.MD {
	return metadata.Pairs(PushbackTrailer, strconv.FormatInt(delay.Milliseconds(), 10))
}

// failedGet describes a call for which the registry could not give a
// breaker, as a status with code Internal. The server's message is
// generic, unless WithNameInMessage, as the registry's error names the
// breaker.
func (g *guard) failedGet(err error, server bool) *status.Status {
	if server && !g.showName {
		return status.New(codes.Internal, "breakergrpc: no breaker for the call")
	}
	return status.New(codes.Internal, "breakergrpc: "+err.Error())
}

// clientError is the error of a call that the client interceptor did not
// send: a status error that also wraps the breaker's error, so that
// errors.Is(err, breaker.ErrOpen) tells a refusal from an Unavailable that
// a server sent.
type clientError struct {
	st    *status.Status
	cause error
}

func (e *clientError) Error() string {
	return "rpc error: code = " + e.st.Code().String() + " desc = " + e.st.Message()
}

// GRPCStatus returns the status, for status.FromError and status.Code.
func (e *clientError) GRPCStatus() *status.Status { return e.st }

// Unwrap returns the breaker's or the registry's error.
func (e *clientError) Unwrap() error { return e.cause }
