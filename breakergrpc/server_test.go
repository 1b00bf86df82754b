package breakergrpc_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakergrpc"
)

func TestUnaryServerTripsAndRefuses(t *testing.T) {
	svc := &service{}
	svc.fail(codes.Unavailable)
	reg, clk := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, svc, grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg))))

	for range 2 {
		var trailer metadata.MD
		require.Equal(t, codes.Unavailable, status.Code(check(client, grpc.Trailer(&trailer))))
		assert.Empty(t, trailer.Get(breakergrpc.PushbackTrailer), "the handler's own errors carry no pushback")
	}
	require.Equal(t, breaker.StateOpen, metricsOf(t, reg, checkMethod).State)

	var trailer metadata.MD
	err := check(client, grpc.Trailer(&trailer))
	assert.Equal(t, int32(2), svc.hits.Load(), "a refused call does not reach the handler")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, "breakergrpc: circuit open", status.Convert(err).Message())
	assert.NotContains(t, err.Error(), "Health", "the generic message does not name the breaker")
	assert.Equal(t, []string{"10000"}, trailer.Get(breakergrpc.PushbackTrailer))
	assert.Equal(t, openTimeout, retryDelay(t, err))

	clk.Add(3*time.Second + 500*time.Microsecond)
	err = check(client, grpc.Trailer(&trailer))
	assert.Equal(t, []string{"7000"}, trailer.Get(breakergrpc.PushbackTrailer), "6999.5 ms, rounded up")
	assert.Equal(t, 7*time.Second, retryDelay(t, err))

	svc.fail(codes.OK)
	clk.Add(openTimeout)
	require.NoError(t, check(client), "the trial call reaches the recovered handler")
	assert.Equal(t, int32(3), svc.hits.Load())
	assert.Equal(t, breaker.StateClosed, metricsOf(t, reg, checkMethod).State)
}

func TestUnaryServerPushbackDrivesRetryPolicy(t *testing.T) {
	reg, clk := newRegistry(t, tripConfig)
	b, err := breaker.Get[struct{}](reg, checkMethod)
	require.NoError(t, err)
	b.OpenFor(openTimeout)
	clk.Add(openTimeout - time.Millisecond) // the pushback is 1 ms
	svc := &service{}
	// Without the pushback, gRPC would wait a random time of up to 100 s
	// before the retry.
	const retry = `{"methodConfig": [{
		"name": [{"service": "grpc.health.v1.Health"}],
		"retryPolicy": {"maxAttempts": 3, "initialBackoff": "100s", "maxBackoff": "100s",
			"backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}
	}]}`
	client, _ := dial(t, serve(t, svc, grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg))),
		grpc.WithDefaultServiceConfig(retry))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err), "every attempt refused: the mock clock stands still")
	assert.Equal(t, uint64(3), b.Metrics().Lifetime.RefusedOpen, "the client retried at the pushback")
	assert.Zero(t, svc.hits.Load())
}

func TestUnaryServerCanceledIsIgnored(t *testing.T) {
	entered := make(chan struct{})
	svc := &service{wait: func(ctx context.Context) {
		entered <- struct{}{}
		<-ctx.Done()
	}}
	l, ended := events(breaker.Mask(breaker.EventIgnored) | breaker.Mask(breaker.EventFailure) | breaker.Mask(breaker.EventSuccess))
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 2, Listeners: []breaker.Listener{l}})
	client, _ := dial(t, serve(t, svc, grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg))))

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	require.Equal(t, codes.Canceled, status.Code(err))
	e := next(t, ended) // the handler returns once it sees the cancel
	assert.Equal(t, breaker.EventIgnored, e.Kind, "the handler's context.Canceled is left out")
	assert.ErrorIs(t, e.Err, context.Canceled)

	canceled := &service{}
	canceled.fail(codes.Canceled)
	client, _ = dial(t, serve(t, canceled, grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg))))
	require.Equal(t, codes.Canceled, status.Code(check(client)))
	assert.Equal(t, breaker.EventIgnored, next(t, ended).Kind, "so is a status with code Canceled")
	m := metricsOf(t, reg, checkMethod)
	assert.Equal(t, uint64(2), m.Lifetime.Ignored)
	assert.Equal(t, breaker.StateClosed, m.State)
}

func TestUnaryServerHalfOpenRefusalHasNoPushback(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	svc := &service{wait: func(context.Context) {
		entered <- struct{}{}
		<-release
	}}
	reg, _ := newRegistry(t, tripConfig)
	b, err := breaker.Get[struct{}](reg, checkMethod)
	require.NoError(t, err)
	b.OpenFor(0)
	client, _ := dial(t, serve(t, svc, grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg))))
	trial := make(chan error, 1)
	go func() { trial <- check(client) }()
	<-entered

	var trailer metadata.MD
	err = check(client, grpc.Trailer(&trailer))
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, "breakergrpc: circuit half-open, too many calls", status.Convert(err).Message())
	assert.Empty(t, trailer.Get(breakergrpc.PushbackTrailer), "no time is known: the client's own back-off applies")
	assert.False(t, hasRetryInfo(err))
	close(release)
	require.NoError(t, <-trial)
	assert.Equal(t, breaker.StateClosed, b.State())
}

func TestUnaryServerNameInMessage(t *testing.T) {
	reg, _ := newRegistry(t, tripConfig)
	b, err := breaker.Get[struct{}](reg, checkMethod)
	require.NoError(t, err)
	b.ForceOpen()
	client, _ := dial(t, serve(t, &service{}, grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg, breakergrpc.WithNameInMessage()))))
	err = check(client)
	assert.Equal(t, `breakergrpc: breaker "`+checkMethod+`": circuit forced open`, status.Convert(err).Message())
}

func TestUnaryServerWrongTypeFailsInternal(t *testing.T) {
	reg, _ := newRegistry(t, tripConfig)
	_, err := breaker.Get[string](reg, checkMethod)
	require.NoError(t, err)
	svc := &service{}
	client, _ := dial(t, serve(t, svc, grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg))))
	err = check(client)
	assert.Equal(t, codes.Internal, status.Code(err))
	assert.Equal(t, "breakergrpc: no breaker for the call", status.Convert(err).Message(), "generic: the registry's error names the breaker")
	assert.Zero(t, svc.hits.Load())
}

// recoverer is an outer interceptor that turns a handler's panic into an
// Internal status and passes the panic's value on.
type recoverer chan any

func (r recoverer) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			r <- p
			err = status.Error(codes.Internal, "panic")
		}
	}()
	return handler(ctx, req)
}

func (r recoverer) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r <- p
			err = status.Error(codes.Internal, "panic")
		}
	}()
	return handler(srv, ss)
}

func TestServerPanicIsFailure(t *testing.T) {
	for _, tc := range []struct {
		method string
		call   func(healthpb.HealthClient) error
	}{
		{checkMethod, func(c healthpb.HealthClient) error { return check(c) }},
		{watchMethod, func(c healthpb.HealthClient) error {
			s, err := c.Watch(context.Background(), &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err != nil {
					return err
				}
			}
		}},
	} {
		t.Run(tc.method[strings.LastIndex(tc.method, "/")+1:], func(t *testing.T) {
			svc := &service{panicWith: "handler bug"}
			reg, _ := newRegistry(t, breaker.Config{})
			rec := make(recoverer, 1)
			client, _ := dial(t, serve(t, svc,
				grpc.ChainUnaryInterceptor(rec.unary, breakergrpc.UnaryServerInterceptor(reg)),
				grpc.ChainStreamInterceptor(rec.stream, breakergrpc.StreamServerInterceptor(reg))))

			assert.Equal(t, codes.Internal, status.Code(tc.call(client)))
			assert.Equal(t, "handler bug", <-rec, "the panic goes on up, its value untouched")
			m := metricsOf(t, reg, tc.method)
			assert.Equal(t, uint64(1), m.Lifetime.Failures)
			assert.Zero(t, m.Lifetime.Successes+m.Lifetime.Ignored)
		})
	}
}

func TestServerTargetKeysByMethod(t *testing.T) {
	svc := &service{}
	svc.fail(codes.Unavailable)
	reg, _ := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, svc, grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg, breakergrpc.WithKey(breakergrpc.Target)))))
	for range 2 {
		check(client)
	}
	assert.Equal(t, breaker.StateOpen, metricsOf(t, reg, checkMethod).State, "no target on a server: one breaker per method")
	_, err := client.List(context.Background(), &healthpb.HealthListRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, int32(3), svc.hits.Load(), "List has a breaker of its own, still closed")
	_, ok := reg.Circuit("")
	assert.False(t, ok)
}

// dbService maps its store's errors to Internal, as handlers commonly do;
// the store fails with the context's error when the client leaves.
type dbService struct {
	healthpb.UnimplementedHealthServer
	entered chan struct{}
}

func (s *dbService) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.entered <- struct{}{}
	<-ctx.Done() // the query, cut short
	return nil, status.Errorf(codes.Internal, "query: %v", ctx.Err())
}

func TestUnaryServerClientThatLeftIsIgnoredWhateverTheHandlerSays(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 2})
	svc := &dbService{entered: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer(grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg)))
	healthpb.RegisterHealthServer(s, svc)
	go s.Serve(lis)
	defer s.Stop()
	client, _ := dial(t, lis.Addr().String())
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-svc.entered; cancel() }()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		require.Equal(t, codes.Canceled, status.Code(err))
	}
	s.GracefulStop() // let the handlers finish and record
	m := metricsOf(t, reg, checkMethod)
	assert.Equal(t, breaker.StateClosed, m.State, "two clients that hung up do not open the server's breaker")
	assert.Equal(t, uint64(2), m.Lifetime.Ignored, "though the handler said Internal")
	assert.Zero(t, m.Lifetime.Failures)
}
