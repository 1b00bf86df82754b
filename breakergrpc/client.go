package breakergrpc

import (
	"context"
	"io"
	"log"
	"runtime/debug"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/seed18491788/breaker"
)

// UnaryClientInterceptor guards each unary call with a breaker from reg
// (nil: a registry of its own, with breaker.Config{}, bounded to
// DefaultMaxCircuits breakers). A refused call is not sent: it fails with
// code Unavailable and an error that matches breaker.ErrOpen or
// breaker.ErrTooManyCalls, and, while the circuit is open, carries the
// time until its next trial call as a RetryInfo detail and in the
// grpc-retry-pushback-ms of the trailer asked for with grpc.Trailer. A call whose
// context is already done goes to the invoker without the breaker, which
// learns nothing from it.
func UnaryClientInterceptor(reg *breaker.Registry, opts ...Option) grpc.UnaryClientInterceptor {
	g := newGuard(reg, opts)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		if ctx.Err() != nil {
			return invoker(ctx, method, req, reply, cc, callOpts...)
		}
		done, err := g.allowClient(ctx, cc, method, callOpts)
		if err != nil {
			return err
		}
		returned := false
		defer func() {
			if !returned {
				done(errPanicked)
			}
		}()
		err = invoker(ctx, method, req, reply, cc, callOpts...)
		returned = true
		g.record(done, err)
		return err
	}
}

// StreamClientInterceptor guards each stream with a breaker from reg, as
// UnaryClientInterceptor guards unary calls. A stream that fails to start
// is recorded at once; one that starts is recorded when it ends: a success
// when RecvMsg returns io.EOF (or, for a stream without server streaming,
// its response), else by the code of the first error of RecvMsg or
// SendMsg. A stream whose context is done first is recorded then: left
// out if it was cancelled, by code DeadlineExceeded if its deadline
// passed. A stream that the caller neither reads to the end nor cancels
// holds its place in the breaker until the breaker's HalfOpenMaxWait, as
// it holds gRPC's resources (see grpc.ClientConn.NewStream).
func StreamClientInterceptor(reg *breaker.Registry, opts ...Option) grpc.StreamClientInterceptor {
	g := newGuard(reg, opts)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		if ctx.Err() != nil {
			return streamer(ctx, desc, cc, method, callOpts...)
		}
		done, err := g.allowClient(ctx, cc, method, callOpts)
		if err != nil {
			return nil, err
		}
		returned := false
		defer func() {
			if !returned {
				done(errPanicked)
			}
		}()
		cs, err := streamer(ctx, desc, cc, method, callOpts...)
		returned = true
		if err != nil {
			g.record(done, err)
			return nil, err
		}
		s := &clientStream{ClientStream: cs, g: g, done: done, serverStreams: desc.ServerStreams}
		s.stop = context.AfterFunc(ctx, func() { s.abandoned(ctx) })
		return s, nil
	}
}

// allowClient returns the done of the call's breaker, or the error the
// call fails with. A refusal whose delay is known sets it, as a server's
// refusal would, in the trailer that callOpts ask for with grpc.Trailer.
func (g *guard) allowClient(ctx context.Context, cc *grpc.ClientConn, method string, callOpts []grpc.CallOption) (func(error), error) {
	target := ""
	if cc != nil {
		target = cc.Target()
	}
	b, err := g.breaker(ctx, target, method)
	if err != nil {
		return nil, &clientError{st: g.failedGet(err, false), cause: err}
	}
	done, err := b.Allow()
	if err != nil {
		st, delay, known := g.refusal(err)
		if known {
			for _, o := range callOpts {
				if t, ok := o.(grpc.TrailerCallOption); ok && t.TrailerAddr != nil {
					*t.TrailerAddr = pushback(delay)
				}
			}
		}
		return nil, &clientError{st: st, cause: err}
	}
	return done, nil
}

// clientStream records the end of the stream it wraps, once.
type clientStream struct {
	grpc.ClientStream
	g             *guard
	done          func(error)
	serverStreams bool
	stop          func() bool // stops the context's AfterFunc
	ended         atomic.Bool
}

func (s *clientStream) RecvMsg(m any) error {
	defer s.endIfPanicking()
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == io.EOF:
		s.end(nil, true)
	case err != nil:
		s.end(err, true)
	case !s.serverStreams: // the one response: gRPC has read the status
		s.end(nil, true)
	}
	return err
}

func (s *clientStream) SendMsg(m any) error {
	defer s.endIfPanicking()
	err := s.ClientStream.SendMsg(m)
	if err != nil && err != io.EOF { // io.EOF: the status is for RecvMsg to tell
		s.end(err, true)
	}
	return err
}

// endIfPanicking records a failure for a stream whose RecvMsg or SendMsg
// panics (a codec's, say), and lets the panic go on.
func (s *clientStream) endIfPanicking() {
	if r := recover(); r != nil {
		s.end(errPanicked, true)
		panic(r)
	}
}

// abandoned records the stream whose context ctx is done, if nothing was
// recorded yet. It runs on a goroutine of its own, where no caller could
// recover a panic of WithFailure's function: such a panic is logged, the
// stream recorded as a failure.
func (s *clientStream) abandoned(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("breakergrpc: the WithFailure function panicked on a stream's end: %v\n%s", r, debug.Stack())
		}
	}()
	s.end(status.FromContextError(ctx.Err()).Err(), false)
}

// end records the stream's end with err, if nothing was recorded yet.
// stop says whether to stop the context's AfterFunc: not from the
// AfterFunc itself, which may run before s.stop is set.
func (s *clientStream) end(err error, stop bool) {
	if s.ended.Swap(true) {
		return
	}
	if stop {
		s.stop()
	}
	s.g.record(s.done, err)
}
