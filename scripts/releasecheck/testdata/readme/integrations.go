package main

import (
	"crypto/subtle"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakergrpc"
	"github.com/seed18491788/breaker/breakerhttp"
	"github.com/seed18491788/breaker/breakerslog"
	"github.com/seed18491788/breaker/otelmetrics"
	"github.com/seed18491788/breaker/prommetrics"
	"github.com/seed18491788/breaker/redisstate"
)

// The functions below are the section "Integrations", in its order.

func httpClient(reg *breaker.Registry) *http.Client {
	// readme:begin
	client := &http.Client{Transport: breakerhttp.Transport(http.DefaultTransport, breakerhttp.WithRegistry(reg))}
	// readme:end
	return client
}

func httpServer(reg *breaker.Registry) {
	// readme:begin
	api, _ := breaker.Get[struct{}](reg, "api")
	http.Handle("/api/", breakerhttp.Middleware(api)(apiHandler))
	// readme:end
}

func grpcClientAndServer(reg *breaker.Registry, target string, creds credentials.TransportCredentials, recovery grpc.UnaryServerInterceptor) (*grpc.ClientConn, *grpc.Server) {
	// readme:begin
	cc, _ := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(reg)),
		grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(reg)))

	srv := grpc.NewServer( // recovery: your panic handler, outside the breaker's
		grpc.ChainUnaryInterceptor(recovery, breakergrpc.UnaryServerInterceptor(reg)),
		grpc.ChainStreamInterceptor(breakergrpc.StreamServerInterceptor(reg)))
	// readme:end
	return cc, srv
}

func dashboard(reg *breaker.Registry) {
	// readme:begin
	http.Handle("/circuits/", http.StripPrefix("/circuits", breakerhttp.Handler(reg)))
	// readme:end
}

func operatorActions(reg *breaker.Registry, token string) http.Handler {
	// readme:begin
	admin := breakerhttp.Handler(reg, breakerhttp.WithActions(func(r *http.Request) bool {
		return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) == 1
	}))
	// readme:end
	return admin
}

func withPrometheus() *breaker.Registry {
	// readme:begin
	m := prommetrics.New(prommetrics.Opts{})
	prometheus.MustRegister(m)
	reg, _ := breaker.NewRegistry(breaker.Config{Listeners: []breaker.Listener{m}})
	// readme:end
	return reg
}

func withOpenTelemetry() *breaker.Registry {
	// readme:begin
	l, _ := otelmetrics.New(otel.GetMeterProvider())
	reg, _ := breaker.NewRegistry(breaker.Config{Listeners: []breaker.Listener{l}})
	// readme:end
	return reg
}

func withSlog() *breaker.Registry {
	// readme:begin
	l := breakerslog.New(slog.Default(), breakerslog.WithRefusals(100))
	reg, _ := breaker.NewRegistry(breaker.Config{Listeners: []breaker.Listener{l}})
	// readme:end
	return reg
}

func withRedis() *breaker.Registry {
	// readme:begin
	store, _ := redisstate.New(&redis.UniversalOptions{Addrs: []string{"redis:6379"}}, redisstate.Options{})
	defer store.Close()
	reg, _ := breaker.NewRegistry(breaker.Config{Shared: store})
	// readme:end
	return reg
}
