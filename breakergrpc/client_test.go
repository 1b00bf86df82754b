package breakergrpc_test

import (
	"context"
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

func TestUnaryClientTripsRefusesAndRecovers(t *testing.T) {
	svc := &service{}
	svc.fail(codes.Unavailable)
	reg, clk := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))

	for range 2 {
		assert.Equal(t, codes.Unavailable, status.Code(check(client)))
	}
	require.Equal(t, int32(2), svc.hits.Load())
	require.Equal(t, breaker.StateOpen, metricsOf(t, reg, checkMethod).State, "one breaker per full method")

	err := check(client)
	assert.Equal(t, int32(2), svc.hits.Load(), "a refused call does not reach the server")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, "breakergrpc: circuit open", status.Convert(err).Message())
	assert.ErrorIs(t, err, breaker.ErrOpen, "a refusal tells itself from a server's Unavailable")
	var rej *breaker.RejectedError
	require.ErrorAs(t, err, &rej)
	assert.Equal(t, checkMethod, rej.Breaker)
	assert.Equal(t, openTimeout, retryDelay(t, err))

	clk.Add(4 * time.Second)
	var trailer metadata.MD
	err = check(client, grpc.Trailer(&trailer))
	assert.Equal(t, openTimeout-4*time.Second, retryDelay(t, err), "the delay counts down on the breaker's clock")
	assert.Equal(t, []string{"6000"}, trailer.Get(breakergrpc.PushbackTrailer), "the pushback a server's refusal would send")
	assert.Equal(t, int32(2), svc.hits.Load())

	svc.fail(codes.OK)
	clk.Add(openTimeout - 4*time.Second)
	require.NoError(t, check(client), "the trial call reaches the recovered server")
	assert.Equal(t, int32(3), svc.hits.Load())
	assert.Equal(t, breaker.StateClosed, metricsOf(t, reg, checkMethod).State)
}

func TestUnaryClientDefaultCodes(t *testing.T) {
	svc := &service{}
	addr := serve(t, svc)
	failures := map[codes.Code]bool{
		codes.Unavailable: true, codes.DeadlineExceeded: true, codes.ResourceExhausted: true,
		codes.Internal: true, codes.Unknown: true,
	}
	assert.ElementsMatch(t, breakergrpc.DefaultFailureCodes(), []codes.Code{
		codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Unknown,
	})
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		t.Run(c.String(), func(t *testing.T) {
			reg, _ := newRegistry(t, breaker.Config{})
			client, _ := dial(t, addr, grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))
			svc.fail(c)
			err := check(client)
			require.Equal(t, c, status.Code(err), "the server's error comes back untouched")
			life := metricsOf(t, reg, checkMethod).Lifetime
			switch {
			case c == codes.Canceled:
				assert.Equal(t, uint64(1), life.Ignored, "Canceled is left out")
				assert.Zero(t, life.Failures+life.Successes)
			case failures[c]:
				assert.Equal(t, uint64(1), life.Failures)
				assert.Zero(t, life.Successes+life.Ignored)
			default:
				assert.Equal(t, uint64(1), life.Successes)
				assert.Zero(t, life.Failures+life.Ignored)
			}
		})
	}
}

func TestUnaryClientCallerCancelIsIgnored(t *testing.T) {
	entered := make(chan struct{})
	svc := &service{wait: func(ctx context.Context) {
		entered <- struct{}{}
		<-ctx.Done()
	}}
	reg, _ := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))

	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-entered
			cancel()
		}()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		require.Equal(t, codes.Canceled, status.Code(err))
	}
	m := metricsOf(t, reg, checkMethod)
	assert.Equal(t, uint64(3), m.Lifetime.Ignored)
	assert.Zero(t, m.Lifetime.Failures)
	assert.Equal(t, breaker.StateClosed, m.State)
}

func TestUnaryClientDoneContextSkipsBreaker(t *testing.T) {
	svc := &service{}
	reg, _ := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()

	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "gRPC's own error")
	_, ok := reg.Circuit(checkMethod)
	assert.False(t, ok, "a call dead before it starts tells the breaker nothing")
}

func TestUnaryClientFailureOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  breakergrpc.Option
		code codes.Code
		fail bool
	}{
		{"codes: listed", breakergrpc.WithFailureCodes(codes.NotFound), codes.NotFound, true},
		{"codes: default no longer", breakergrpc.WithFailureCodes(codes.NotFound), codes.Unavailable, false},
		{"codes: none", breakergrpc.WithFailureCodes(), codes.Internal, false},
		{"codes: only invalid ones mean none", breakergrpc.WithFailureCodes(codes.Code(99), codes.OK), codes.Unavailable, false},
		{"codes: invalid ones dropped", breakergrpc.WithFailureCodes(codes.Code(99), codes.NotFound), codes.NotFound, true},
		{"codes: a code beyond the canonical ones", breakergrpc.WithFailureCodes(codes.Code(99)), codes.Code(99), false},
		{"func: true", breakergrpc.WithFailure(func(err error) bool { return status.Code(err) == codes.Aborted }), codes.Aborted, true},
		{"func: false", breakergrpc.WithFailure(func(err error) bool { return status.Code(err) == codes.Aborted }), codes.Unavailable, false},
		{"func: nil restores the defaults", breakergrpc.WithFailure(nil), codes.Unavailable, true},
		{"nil option", nil, codes.Unavailable, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &service{}
			svc.fail(tc.code)
			reg, _ := newRegistry(t, breaker.Config{})
			client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg, tc.opt)))
			require.Equal(t, tc.code, status.Code(check(client)))
			life := metricsOf(t, reg, checkMethod).Lifetime
			if tc.fail {
				assert.Equal(t, uint64(1), life.Failures)
			} else {
				assert.Equal(t, uint64(1), life.Successes)
			}
		})
	}
}

func TestUnaryClientCanceledStaysIgnoredWithOptions(t *testing.T) {
	for name, opt := range map[string]breakergrpc.Option{
		"codes": breakergrpc.WithFailureCodes(codes.Canceled, codes.Unavailable),
		"func":  breakergrpc.WithFailure(func(error) bool { return true }),
	} {
		t.Run(name, func(t *testing.T) {
			svc := &service{}
			svc.fail(codes.Canceled)
			reg, _ := newRegistry(t, breaker.Config{})
			client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg, opt)))
			require.Equal(t, codes.Canceled, status.Code(check(client)))
			life := metricsOf(t, reg, checkMethod).Lifetime
			assert.Equal(t, uint64(1), life.Ignored)
			assert.Zero(t, life.Failures)
		})
	}
}

func TestUnaryClientPanickingClassifierFreesTrial(t *testing.T) {
	svc := &service{}
	svc.fail(codes.Unavailable)
	reg, clk := newRegistry(t, tripConfig)
	classify := func(error) bool { panic("classifier bug") }
	client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg, breakergrpc.WithFailure(classify))))

	for range 2 {
		assert.PanicsWithValue(t, "classifier bug", func() { check(client) })
	}
	require.Equal(t, breaker.StateOpen, metricsOf(t, reg, checkMethod).State, "a panicking classifier makes failures")
	clk.Add(openTimeout)
	assert.PanicsWithValue(t, "classifier bug", func() { check(client) })
	m := metricsOf(t, reg, checkMethod)
	assert.Equal(t, breaker.StateOpen, m.State, "the trial call was recorded, as a failure: not left half-open")
	assert.Equal(t, uint64(3), m.Lifetime.Failures)
	assert.Equal(t, int32(3), svc.hits.Load())
}

func TestUnaryClientPanickingInvokerIsFailure(t *testing.T) {
	reg, _ := newRegistry(t, tripConfig)
	intercept := breakergrpc.UnaryClientInterceptor(reg)
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		panic("invoker bug")
	}
	assert.PanicsWithValue(t, "invoker bug", func() {
		intercept(context.Background(), checkMethod, nil, nil, nil, invoker)
	})
	assert.Equal(t, uint64(1), metricsOf(t, reg, checkMethod).Lifetime.Failures)
}

func TestUnaryClientKeys(t *testing.T) {
	t.Run("default per method", func(t *testing.T) {
		svc := &service{}
		svc.fail(codes.Unavailable)
		reg, _ := newRegistry(t, tripConfig)
		client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))
		for range 2 {
			check(client)
		}
		_, err := client.List(context.Background(), &healthpb.HealthListRequest{})
		assert.Equal(t, int32(3), svc.hits.Load(), "List has a breaker of its own")
		assert.Equal(t, codes.Unavailable, status.Code(err))
		assert.NotErrorIs(t, err, breaker.ErrOpen)
		assert.Equal(t, breaker.StateOpen, metricsOf(t, reg, checkMethod).State)
		assert.Equal(t, breaker.StateClosed, metricsOf(t, reg, listMethod).State)
	})

	t.Run("per target", func(t *testing.T) {
		down, up := &service{}, &service{}
		down.fail(codes.Unavailable)
		reg, _ := newRegistry(t, tripConfig)
		intercept := grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg, breakergrpc.WithKey(breakergrpc.Target)))
		downClient, downCC := dial(t, serve(t, down), intercept)
		upClient, upCC := dial(t, serve(t, up), intercept)

		check(downClient)
		_, err := downClient.List(context.Background(), &healthpb.HealthListRequest{})
		require.Equal(t, codes.Unavailable, status.Code(err))
		assert.Equal(t, breaker.StateOpen, metricsOf(t, reg, downCC.Target()).State, "Check and List share the target's breaker")

		assert.ErrorIs(t, check(downClient), breaker.ErrOpen)
		assert.Equal(t, int32(2), down.hits.Load())
		assert.NoError(t, check(upClient), "another target has a breaker of its own")
		assert.Equal(t, breaker.StateClosed, metricsOf(t, reg, upCC.Target()).State)
		assert.Equal(t, 2, reg.Len())
	})

	t.Run("custom", func(t *testing.T) {
		reg, _ := newRegistry(t, tripConfig)
		key := func(_ context.Context, _, method string) string { return "svc" + method }
		client, _ := dial(t, serve(t, &service{}), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg, breakergrpc.WithKey(key))))
		require.NoError(t, check(client))
		assert.Equal(t, 1, metricsOf(t, reg, "svc"+checkMethod).Calls)
	})

	t.Run("nil restores the default", func(t *testing.T) {
		reg, _ := newRegistry(t, tripConfig)
		client, _ := dial(t, serve(t, &service{}), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg, breakergrpc.WithKey(nil))))
		require.NoError(t, check(client))
		assert.Equal(t, 1, metricsOf(t, reg, checkMethod).Calls)
	})
}

func TestUnaryClientNilRegistry(t *testing.T) {
	svc := &service{}
	svc.fail(codes.Internal)
	client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(nil)))
	for range breaker.DefaultMinimumCalls {
		require.Equal(t, codes.Internal, status.Code(check(client)))
	}
	err := check(client)
	assert.ErrorIs(t, err, breaker.ErrOpen, "a registry of its own, with the default Config")
	assert.Equal(t, int32(breaker.DefaultMinimumCalls), svc.hits.Load())
	delay := retryDelay(t, err)
	assert.LessOrEqual(t, delay, breaker.DefaultOpenTimeout, "on the system clock")
	assert.Greater(t, delay, breaker.DefaultOpenTimeout-5*time.Second)
	assert.Zero(t, delay%time.Millisecond, "in whole milliseconds")
}

func TestUnaryClientNameInMessage(t *testing.T) {
	svc := &service{}
	svc.fail(codes.Unavailable)
	reg, _ := newRegistry(t, tripConfig)
	client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg, breakergrpc.WithNameInMessage())))
	for range 2 {
		check(client)
	}
	err := check(client)
	assert.Equal(t, `breakergrpc: breaker "`+checkMethod+`": circuit open`, status.Convert(err).Message())
	assert.Equal(t, `rpc error: code = Unavailable desc = breakergrpc: breaker "`+checkMethod+`": circuit open`, err.Error())
}

func TestUnaryClientRefusalStates(t *testing.T) {
	t.Run("forced open", func(t *testing.T) {
		reg, _ := newRegistry(t, tripConfig)
		b, err := breaker.Get[struct{}](reg, checkMethod)
		require.NoError(t, err)
		b.ForceOpen()
		svc := &service{}
		client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))
		err = check(client)
		assert.Equal(t, codes.Unavailable, status.Code(err))
		assert.Equal(t, "breakergrpc: circuit forced open", status.Convert(err).Message())
		assert.ErrorIs(t, err, breaker.ErrOpen)
		assert.False(t, hasRetryInfo(err), "no time is known")
		assert.Zero(t, svc.hits.Load())
	})

	t.Run("half-open, trial under way", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		svc := &service{wait: func(context.Context) {
			entered <- struct{}{}
			<-release
		}}
		reg, _ := newRegistry(t, tripConfig)
		b, err := breaker.Get[struct{}](reg, checkMethod)
		require.NoError(t, err)
		b.OpenFor(0) // half-open at the next call
		client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))
		trial := make(chan error, 1)
		go func() { trial <- check(client) }()
		<-entered

		err = check(client)
		assert.Equal(t, codes.Unavailable, status.Code(err))
		assert.Equal(t, "breakergrpc: circuit half-open, too many calls", status.Convert(err).Message())
		assert.ErrorIs(t, err, breaker.ErrTooManyCalls)
		assert.False(t, hasRetryInfo(err), "no time is known")
		close(release)
		require.NoError(t, <-trial)
		assert.Equal(t, breaker.StateClosed, b.State())
		assert.Equal(t, int32(1), svc.hits.Load())
	})
}

func TestUnaryClientWrongTypeFailsInternal(t *testing.T) {
	reg, _ := newRegistry(t, tripConfig)
	_, err := breaker.Get[int](reg, checkMethod)
	require.NoError(t, err)
	svc := &service{}
	client, _ := dial(t, serve(t, svc), grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))
	err = check(client)
	assert.Equal(t, codes.Internal, status.Code(err))
	assert.ErrorIs(t, err, breaker.ErrWrongType)
	assert.Zero(t, svc.hits.Load())
}
