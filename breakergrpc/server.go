package breakergrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/seed18491788/breaker"
)

// UnaryServerInterceptor guards each unary handler with a breaker from reg
// (nil: a registry of its own, with breaker.Config{}, bounded to
// DefaultMaxCircuits breakers), keyed by the call's full method (the
// target KeyFunc sees is empty). The error the handler returns decides the
// outcome, judged by its code as gRPC sends it, unless the client went
// away (the call's context cancelled): then the call is left out. A
// handler that panics is a failure, and its panic goes on up.
//
// A refused call never reaches the handler: it fails with code Unavailable
// and a generic message (see WithNameInMessage). While the circuit is
// open, the refusal gives the milliseconds until its next trial call
// (rounded up, at most math.MaxInt32) in the trailer
// grpc-retry-pushback-ms, which a client's retry policy honours, and as a
// RetryInfo detail. Forced open or half-open, no time is known: the
// refusal has neither, and the client's own back-off applies.
func UnaryServerInterceptor(reg *breaker.Registry, opts ...Option) grpc.UnaryServerInterceptor {
	g := newGuard(reg, opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		done, trailer, err := g.allowServer(ctx, info.FullMethod)
		if err != nil {
			if trailer != nil {
				_ = grpc.SetTrailer(ctx, trailer)
			}
			return nil, err
		}
		returned := false
		defer func() {
			if !returned {
				done(errPanicked)
			}
		}()
		resp, err := handler(ctx, req)
		returned = true
		g.recordServer(ctx, done, err)
		return resp, err
	}
}

// StreamServerInterceptor guards each stream handler with a breaker from
// reg, as UnaryServerInterceptor guards unary ones: the error the handler
// returns decides the outcome of the whole stream.
func StreamServerInterceptor(reg *breaker.Registry, opts ...Option) grpc.StreamServerInterceptor {
	g := newGuard(reg, opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		done, trailer, err := g.allowServer(ss.Context(), info.FullMethod)
		if err != nil {
			if trailer != nil {
				ss.SetTrailer(trailer)
			}
			return err
		}
		returned := false
		defer func() {
			if !returned {
				done(errPanicked)
			}
		}()
		err = handler(srv, ss)
		returned = true
		g.recordServer(ss.Context(), done, err)
		return err
	}
}

// recordServer records a handler's end, as record does, except for a
// call whose client went away: its context cancelled, the call is left
// out whatever the handler made of it (an Internal wrapping the
// cancellation, say). A deadline that passed is judged by the code, as
// any end.
func (g *guard) recordServer(ctx context.Context, done func(error), err error) {
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		done(&canceledError{err})
		return
	}
	g.record(done, err)
}

// allowServer returns the done of the call's breaker, or the error the
// call fails with and, for a refusal whose delay is known, the trailer to
// set.
func (g *guard) allowServer(ctx context.Context, method string) (func(error), metadata.MD, error) {
	b, err := g.breaker(ctx, "", method)
	if err != nil {
		return nil, nil, g.failedGet(err, true).Err()
	}
	done, err := b.Allow()
	if err != nil {
		st, delay, known := g.refusal(err)
		if !known {
			return nil, nil, st.Err()
		}
		return nil, pushback(delay), st.Err()
	}
	return done, nil, nil
}
