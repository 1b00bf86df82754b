package breakergrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakergrpc"
)

// inventory is a health service that answers Unavailable while it is down.
type inventory struct {
	healthpb.UnimplementedHealthServer
	down atomic.Bool
	hits atomic.Int32
}

func (s *inventory) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.hits.Add(1)
	if s.down.Load() {
		return nil, status.Error(codes.Unavailable, "inventory is down")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// inProcess serves svc in memory and returns a connection to it, and a
// function that closes both.
func inProcess(svc healthpb.HealthServer, srvOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) (*grpc.ClientConn, func()) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(srvOpts...)
	healthpb.RegisterHealthServer(srv, svc)
	go srv.Serve(lis)
	dialOpts = append(dialOpts,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient("passthrough:///inventory", dialOpts...)
	if err != nil {
		panic(err)
	}
	return cc, func() {
		cc.Close()
		srv.Stop()
	}
}

// A client's breaker trips on Unavailable, refuses calls without sending
// them while open, and closes again when a trial call succeeds. The mock
// clock stands in for time.
func Example() {
	clk := clock.NewMock()
	reg, err := breaker.NewRegistry(breaker.Config{WindowSize: 2, OpenTimeout: 10 * time.Second, Clock: clk})
	if err != nil {
		panic(err)
	}
	svc := &inventory{}
	svc.down.Store(true)
	cc, stop := inProcess(svc, nil, grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)))
	defer stop()
	client := healthpb.NewHealthClient(cc)
	ctx := context.Background()

	for range 2 {
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		fmt.Println(status.Code(err))
	}
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(status.Code(err), errors.Is(err, breaker.ErrOpen), svc.hits.Load())
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			fmt.Println("retry in", ri.GetRetryDelay().AsDuration())
		}
	}

	svc.down.Store(false)
	clk.Add(10 * time.Second)
	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
	// Output:
	// Unavailable
	// Unavailable
	// Unavailable true 2
	// retry in 10s
	// SERVING <nil>
}

// A server's breaker sheds load while its handlers fail, telling clients
// when to come back in the trailer grpc-retry-pushback-ms.
func ExampleUnaryServerInterceptor() {
	clk := clock.NewMock()
	reg, err := breaker.NewRegistry(breaker.Config{WindowSize: 2, OpenTimeout: 10 * time.Second, Clock: clk})
	if err != nil {
		panic(err)
	}
	svc := &inventory{}
	svc.down.Store(true)
	cc, stop := inProcess(svc, []grpc.ServerOption{
		grpc.UnaryInterceptor(breakergrpc.UnaryServerInterceptor(reg)),
		grpc.StreamInterceptor(breakergrpc.StreamServerInterceptor(reg)),
	})
	defer stop()
	client := healthpb.NewHealthClient(cc)

	for range 3 {
		var trailer metadata.MD
		_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
		fmt.Printf("%s %q %v\n", status.Code(err), status.Convert(err).Message(), trailer.Get(breakergrpc.PushbackTrailer))
	}
	// Output:
	// Unavailable "inventory is down" []
	// Unavailable "inventory is down" []
	// Unavailable "breakergrpc: circuit open" [10000]
}
