package otelmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"slices"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/otelmetrics"
)

func Example() {
	reader := sdkmetric.NewManualReader() // in production, a periodic reader and an exporter
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	l, err := otelmetrics.New(mp)
	if err != nil {
		panic(err)
	}
	defer l.Close()
	b, err := breaker.New[string]("db", breaker.Config{Listeners: []breaker.Listener{l}})
	if err != nil {
		panic(err)
	}
	b.Execute(context.Background(), func(context.Context) (string, error) { return "ok", nil })
	b.Execute(context.Background(), func(context.Context) (string, error) { return "", errors.New("down") })

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	var lines []string
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name != "breaker.calls" {
			continue
		}
		for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
			name, _ := p.Attributes.Value("breaker.name")
			outcome, _ := p.Attributes.Value("breaker.outcome")
			lines = append(lines, fmt.Sprintf("%s %s %d", name.AsString(), outcome.AsString(), p.Value))
		}
	}
	slices.Sort(lines)
	for _, line := range lines {
		fmt.Println(line)
	}
	// Output:
	// db failure 1
	// db ignored 0
	// db rejected_half_open 0
	// db rejected_open 0
	// db success 1
}
