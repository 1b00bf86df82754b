package breakergrpc_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakergrpc"
)

// BenchmarkUnaryClient measures the client interceptor on the closed path
// against the same call without it, in memory (bufconn).
func BenchmarkUnaryClient(b *testing.B) {
	reg, err := breaker.NewRegistry(breaker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		opts []grpc.DialOption
	}{
		{"bare", nil},
		{"breaker", []grpc.DialOption{grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cc, stop := inProcess(&inventory{}, nil, bc.opts...)
			defer stop()
			client := healthpb.NewHealthClient(cc)
			ctx, req := context.Background(), &healthpb.HealthCheckRequest{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnaryClientInterceptor measures the interceptor alone, around
// an invoker that does nothing: what it adds to every call, closed and
// open.
func BenchmarkUnaryClientInterceptor(b *testing.B) {
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for _, bc := range []struct {
		name string
		open bool
	}{{"closed", false}, {"open", true}} {
		b.Run(bc.name, func(b *testing.B) {
			reg, err := breaker.NewRegistry(breaker.Config{})
			if err != nil {
				b.Fatal(err)
			}
			if bc.open {
				br, err := breaker.Get[struct{}](reg, checkMethod)
				if err != nil {
					b.Fatal(err)
				}
				br.OpenFor(breaker.DefaultOpenTimeout)
			}
			intercept := breakergrpc.UnaryClientInterceptor(reg)
			ctx := context.Background()
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_ = intercept(ctx, checkMethod, nil, nil, nil, invoker)
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						_ = intercept(ctx, checkMethod, nil, nil, nil, invoker)
					}
				})
			})
		})
	}
}
