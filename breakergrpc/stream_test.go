package breakergrpc_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakergrpc"
)

// watch starts a Watch stream and reads it to its end: it returns the
// responses read and the stream's error, nil for io.EOF.
func watch(ctx context.Context, c healthpb.HealthClient) (int, error) {
	s, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		if _, err := s.Recv(); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
	}
}

// callEnds is the event mask of the outcomes of admitted calls.
const callEnds = breaker.EventMask(1<<breaker.EventSuccess | 1<<breaker.EventFailure | 1<<breaker.EventIgnored)

func TestStreamClientTripsRefusesAndRecovers(t *testing.T) {
	svc := &service{}
	svc.fail(codes.Unavailable)
	reg, clk := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, svc), grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(reg)))

	for range 2 {
		n, err := watch(context.Background(), client)
		assert.Equal(t, 1, n)
		assert.Equal(t, codes.Unavailable, status.Code(err), "the final status decides")
	}
	require.Equal(t, breaker.StateOpen, metricsOf(t, reg, watchMethod).State)

	_, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	assert.Equal(t, int32(2), svc.hits.Load(), "a refused stream does not reach the server")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.Equal(t, openTimeout, retryDelay(t, err))

	svc.fail(codes.OK)
	clk.Add(openTimeout)
	n, err := watch(context.Background(), client)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, int32(3), svc.hits.Load())
	assert.Equal(t, breaker.StateClosed, metricsOf(t, reg, watchMethod).State, "a stream read to io.EOF is a success")
}

func TestStreamClientRecordsOnce(t *testing.T) {
	reg, _ := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, &service{}), grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(reg)))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = s.Recv()
	require.NoError(t, err)
	_, err = s.Recv()
	require.Equal(t, io.EOF, err)
	_, err = s.Recv()
	require.Error(t, err)
	cancel() // after the end: the context's hook is gone

	life := metricsOf(t, reg, watchMethod).Lifetime
	assert.Equal(t, uint64(1), life.Successes)
	assert.Zero(t, life.Failures+life.Ignored)
}

func TestStreamClientAbandonedStreamFreesTrial(t *testing.T) {
	svc := &service{wait: func(ctx context.Context) { <-ctx.Done() }}
	l, ended := events(callEnds)
	reg, _ := newRegistry(t, breaker.Config{Listeners: []breaker.Listener{l}})
	b, err := breaker.Get[struct{}](reg, watchMethod)
	require.NoError(t, err)
	b.OpenFor(0) // half-open at the next call, which is its one trial
	client, _ := dial(t, serve(t, svc), grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(reg)))

	ctx, cancel := context.WithCancel(context.Background())
	s, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = s.Recv()
	require.NoError(t, err)
	_, err = client.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	require.ErrorIs(t, err, breaker.ErrTooManyCalls, "the stream holds the trial")

	cancel() // and is abandoned, unread
	e := next(t, ended)
	assert.Equal(t, breaker.EventIgnored, e.Kind)
	assert.ErrorIs(t, e.Err, context.Canceled)

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	s, err = client.Watch(ctx2, &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "the trial's place is free again")
	_, err = s.Recv()
	require.NoError(t, err)
	assert.Equal(t, int32(2), svc.hits.Load())
	assert.Equal(t, uint64(1), b.Metrics().Lifetime.RefusedHalfOpen)
}

func TestStreamClientAbandonedPastDeadlineIsFailure(t *testing.T) {
	svc := &service{wait: func(ctx context.Context) { <-ctx.Done() }}
	l, ended := events(callEnds)
	reg, _ := newRegistry(t, breaker.Config{Listeners: []breaker.Listener{l}})
	client, _ := dial(t, serve(t, svc), grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(reg)))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = s.Recv()
	require.NoError(t, err)
	// Abandoned, unread, until its deadline passes.
	e := next(t, ended)
	assert.Equal(t, breaker.EventFailure, e.Kind, "DeadlineExceeded is a failure")
	assert.Equal(t, codes.DeadlineExceeded, status.Code(e.Err))
}

func TestStreamClientPanickingClassifierOnAbandonedStream(t *testing.T) {
	svc := &service{wait: func(ctx context.Context) { <-ctx.Done() }}
	l, ended := events(callEnds)
	reg, _ := newRegistry(t, breaker.Config{Listeners: []breaker.Listener{l}})
	classify := breakergrpc.WithFailure(func(error) bool { panic("classifier bug") })
	client, _ := dial(t, serve(t, svc), grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(reg, classify)))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = s.Recv()
	require.NoError(t, err)
	// The deadline's hook asks the classifier, which panics on a goroutine
	// of the hook's own: logged, not a crash of the program.
	e := next(t, ended)
	assert.Equal(t, breaker.EventFailure, e.Kind)
	assert.Equal(t, codes.DeadlineExceeded, status.Code(e.Err))
}

func TestStreamClientSendMsgError(t *testing.T) {
	reg, _ := newRegistry(t, tripConfig)
	svc := &service{}
	_, cc := dial(t, serve(t, svc), grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(reg)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, watchMethod)
	require.NoError(t, err)

	err = s.SendMsg("not a proto message")
	require.Equal(t, codes.Internal, status.Code(err))
	life := metricsOf(t, reg, watchMethod).Lifetime
	assert.Equal(t, uint64(1), life.Failures, "SendMsg's own error ends the stream")
	assert.Zero(t, svc.hits.Load())
}

func TestStreamClientWithoutServerStreaming(t *testing.T) {
	// Check is unary; as a stream it is one without server streaming,
	// which ends with its one response.
	for _, tc := range []struct {
		code codes.Code
		kind breaker.EventKind
	}{
		{codes.OK, breaker.EventSuccess},
		{codes.Unavailable, breaker.EventFailure},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			svc := &service{}
			svc.fail(tc.code)
			reg, _ := newRegistry(t, tripConfig)
			_, cc := dial(t, serve(t, svc), grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(reg)))
			s, err := cc.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true}, checkMethod)
			require.NoError(t, err)
			require.NoError(t, s.SendMsg(&healthpb.HealthCheckRequest{}))
			require.NoError(t, s.CloseSend())
			err = s.RecvMsg(new(healthpb.HealthCheckResponse))
			require.Equal(t, tc.code, status.Code(err))

			life := metricsOf(t, reg, checkMethod).Lifetime
			if tc.kind == breaker.EventSuccess {
				assert.Equal(t, uint64(1), life.Successes, "recorded at the response, without waiting for io.EOF")
			} else {
				assert.Equal(t, uint64(1), life.Failures)
			}
		})
	}
}

func TestStreamClientStreamerFailsOrPanics(t *testing.T) {
	reg, _ := newRegistry(t, tripConfig)
	intercept := breakergrpc.StreamClientInterceptor(reg)
	desc := &grpc.StreamDesc{ServerStreams: true}
	failing := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		return nil, status.Error(codes.Unavailable, "no connection")
	}
	_, err := intercept(context.Background(), desc, nil, watchMethod, failing)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, uint64(1), metricsOf(t, reg, watchMethod).Lifetime.Failures, "a failed NewStream is an outcome")

	panicking := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		panic("streamer bug")
	}
	assert.PanicsWithValue(t, "streamer bug", func() { intercept(context.Background(), desc, nil, watchMethod, panicking) })
	assert.Equal(t, uint64(2), metricsOf(t, reg, watchMethod).Lifetime.Failures)
	assert.Equal(t, breaker.StateOpen, metricsOf(t, reg, watchMethod).State)
}

func TestStreamServerTripsRefusesAndRecovers(t *testing.T) {
	svc := &service{}
	svc.fail(codes.ResourceExhausted)
	reg, clk := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, svc, grpc.StreamInterceptor(breakergrpc.StreamServerInterceptor(reg))))

	for range 2 {
		_, err := watch(context.Background(), client)
		assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	}
	require.Equal(t, breaker.StateOpen, metricsOf(t, reg, watchMethod).State, "the handler's error decides")

	s, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "the server refuses the stream once it has it")
	_, err = s.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, "breakergrpc: circuit open", status.Convert(err).Message())
	assert.Equal(t, []string{"10000"}, s.Trailer().Get(breakergrpc.PushbackTrailer))
	assert.Equal(t, openTimeout, retryDelay(t, err))
	assert.Equal(t, int32(2), svc.hits.Load(), "a refused stream does not reach the handler")

	svc.fail(codes.OK)
	clk.Add(openTimeout)
	n, err := watch(context.Background(), client)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, breaker.StateClosed, metricsOf(t, reg, watchMethod).State)
}

func TestStreamServerClientCancelIsIgnored(t *testing.T) {
	svc := &service{wait: func(ctx context.Context) { <-ctx.Done() }}
	l, ended := events(callEnds)
	reg, _ := newRegistry(t, breaker.Config{Listeners: []breaker.Listener{l}})
	client, _ := dial(t, serve(t, svc, grpc.StreamInterceptor(breakergrpc.StreamServerInterceptor(reg))))

	ctx, cancel := context.WithCancel(context.Background())
	s, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = s.Recv()
	require.NoError(t, err)
	cancel()
	e := next(t, ended)
	assert.Equal(t, breaker.EventIgnored, e.Kind, "%v", e.Err)
	assert.ErrorIs(t, e.Err, context.Canceled, "the handler's own error, as the breaker sees it")
}

// panickyStream is a ClientStream whose RecvMsg panics, as a codec may.
type panickyStream struct{ grpc.ClientStream }

func (panickyStream) RecvMsg(any) error { panic("codec bug") }

func TestStreamClientPanickingRecvMsgFreesTrial(t *testing.T) {
	reg, clk := newRegistry(t, tripConfig)
	b, err := breaker.Get[struct{}](reg, watchMethod)
	require.NoError(t, err)
	b.OpenFor(time.Second)
	clk.Add(time.Second) // half-open: one trial call
	intercept := breakergrpc.StreamClientInterceptor(reg)
	streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		return panickyStream{}, nil
	}
	cs, err := intercept(context.Background(), &grpc.StreamDesc{ServerStreams: true}, nil, watchMethod, streamer)
	require.NoError(t, err)
	assert.PanicsWithValue(t, "codec bug", func() { cs.RecvMsg(new(healthpb.HealthCheckResponse)) })
	assert.Equal(t, breaker.StateOpen, b.State(), "the trial failed, and its place is free")
	assert.Equal(t, uint64(1), b.Metrics().Lifetime.Failures)
}
