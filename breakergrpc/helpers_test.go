package breakergrpc_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/seed18491788/breaker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The full methods of the health service.
const (
	checkMethod = "/grpc.health.v1.Health/Check"
	listMethod  = "/grpc.health.v1.Health/List"
	watchMethod = "/grpc.health.v1.Health/Watch"
)

// openTimeout is how long tripConfig keeps a circuit open.
const openTimeout = 10 * time.Second

// tripConfig trips after two failures in a row of two calls and stays open
// for openTimeout; one trial call success closes it again.
var tripConfig = breaker.Config{WindowSize: 2, OpenTimeout: openTimeout}

// service is a health service that counts its calls and ends each with
// the code it is set to. Set wait and panicWith before serving it.
type service struct {
	healthpb.UnimplementedHealthServer
	hits atomic.Int32
	code atomic.Uint32 // codes.OK: the calls succeed

	// wait, if set, is called by each call once it has been counted (and,
	// for Watch, has sent its first response), with the call's context.
	wait func(context.Context)
	// panicWith, if not nil, makes each call panic with it.
	panicWith any
}

func (s *service) fail(c codes.Code) { s.code.Store(uint32(c)) }

func (s *service) end() error {
	if s.panicWith != nil {
		panic(s.panicWith)
	}
	if c := codes.Code(s.code.Load()); c != codes.OK {
		return status.Error(c, "service says "+c.String())
	}
	return nil
}

func (s *service) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.hits.Add(1)
	if s.wait != nil {
		s.wait(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (s *service) List(ctx context.Context, _ *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	s.hits.Add(1)
	if err := s.end(); err != nil {
		return nil, err
	}
	return &healthpb.HealthListResponse{}, nil
}

func (s *service) Watch(_ *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	s.hits.Add(1)
	if err := stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
		return err
	}
	if s.wait != nil {
		s.wait(stream.Context())
		if err := stream.Context().Err(); err != nil {
			return err
		}
	}
	return s.end()
}

// serve serves svc on a loopback TCP port until the test ends, and
// returns its address.
func serve(t *testing.T, svc *service, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s, svc)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// dial returns a client of the health service at addr, closed when the
// test ends.
func dial(t *testing.T, addr string, opts ...grpc.DialOption) (healthpb.HealthClient, *grpc.ClientConn) {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc), cc
}

// newRegistry returns a registry whose breakers use cfg and a mock clock.
func newRegistry(t *testing.T, cfg breaker.Config) (*breaker.Registry, *clock.Mock) {
	t.Helper()
	clk := clock.NewMock()
	cfg.Clock = clk
	reg, err := breaker.NewRegistry(cfg)
	require.NoError(t, err)
	return reg, clk
}

func metricsOf(t *testing.T, reg *breaker.Registry, name string) breaker.Metrics {
	t.Helper()
	c, ok := reg.Circuit(name)
	require.True(t, ok, "no breaker %q", name)
	return c.Metrics()
}

func check(c healthpb.HealthClient, opts ...grpc.CallOption) error {
	_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}, opts...)
	return err
}

// retryDelay returns the delay of err's RetryInfo detail, failing the
// test if it has none.
func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	require.Fail(t, "no RetryInfo detail", "error: %v", err)
	return 0
}

// hasRetryInfo reports whether err carries a RetryInfo detail.
func hasRetryInfo(err error) bool {
	for _, d := range status.Convert(err).Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			return true
		}
	}
	return false
}

// events returns a listener that passes on the events of the kinds in m,
// and the channel it passes them on.
func events(m breaker.EventMask) (breaker.Listener, <-chan breaker.Event) {
	ch := make(chan breaker.Event, 64)
	return breaker.ListenerFor(m, func(e breaker.Event) { ch <- e }), ch
}

// next returns the next event from ch, failing the test if none comes
// within a generous bound: the event is made by another goroutine.
func next(t *testing.T, ch <-chan breaker.Event) breaker.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no event")
		return breaker.Event{}
	}
}
