package breakerhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakerhttp"
)

// upstream is a test server that answers with status and counts requests.
type upstream struct {
	*httptest.Server
	hits   atomic.Int32
	status atomic.Int32
	body   string
}

func newUpstream(t *testing.T, body string) *upstream {
	t.Helper()
	u := &upstream{body: body}
	u.status.Store(http.StatusOK)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.WriteHeader(int(u.status.Load()))
		io.WriteString(w, u.body)
	}))
	t.Cleanup(u.Close)
	return u
}

func newRegistry(t *testing.T, cfg breaker.Config) (*breaker.Registry, *clock.Mock) {
	t.Helper()
	clk := clock.NewMock()
	cfg.Clock = clk
	reg, err := breaker.NewRegistry(cfg)
	require.NoError(t, err)
	return reg, clk
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	return c.Do(req)
}

func metricsOf(t *testing.T, reg *breaker.Registry, name string) breaker.Metrics {
	t.Helper()
	c, ok := reg.Circuit(name)
	require.True(t, ok, "no breaker %q", name)
	return c.Metrics()
}

var errBoom = errors.New("boom")

func TestTransportTripsOnServerErrors(t *testing.T) {
	up := newUpstream(t, "oops")
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 2})
	client := &http.Client{Transport: breakerhttp.Transport(nil, breakerhttp.WithRegistry(reg))}
	host := strings.TrimPrefix(up.URL, "http://")

	resp, err := get(t, client, up.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 1, metricsOf(t, reg, host).Calls, "one breaker, named after the host")
	assert.Zero(t, metricsOf(t, reg, host).Failures)

	up.status.Store(http.StatusBadGateway)
	resp, err = get(t, client, up.URL)
	require.NoError(t, err, "a 5xx is still a response")
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	m := metricsOf(t, reg, host)
	assert.Equal(t, breaker.StateOpen, m.State, "1 of 2 calls failed: 50%")

	_, err = get(t, client, up.URL)
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.EqualValues(t, 2, up.hits.Load(), "a refused request never reaches the network")
}

func TestTransportCountsTransportErrors(t *testing.T) {
	up := newUpstream(t, "")
	up.Close() // nothing listens any more
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 1})
	client := &http.Client{Transport: breakerhttp.Transport(nil, breakerhttp.WithRegistry(reg))}

	_, err := get(t, client, up.URL)
	require.Error(t, err)
	assert.NotErrorIs(t, err, breaker.ErrOpen)
	_, err = get(t, client, up.URL)
	assert.ErrorIs(t, err, breaker.ErrOpen)
}

func TestTransportLeavesTheBodyAlone(t *testing.T) {
	body := strings.Repeat("breaker ", 1<<16)
	up := newUpstream(t, body)
	reg, _ := newRegistry(t, breaker.Config{})
	client := &http.Client{Transport: breakerhttp.Transport(http.DefaultTransport, breakerhttp.WithRegistry(reg))}

	resp, err := get(t, client, up.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, 1, metricsOf(t, reg, strings.TrimPrefix(up.URL, "http://")).Calls,
		"recorded when the headers arrived, before the body is read")
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, body, string(got))
}

func TestTransportOneBreakerPerHost(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 1})
	client := &http.Client{Transport: breakerhttp.Transport(nil, breakerhttp.WithRegistry(reg))}
	a.status.Store(http.StatusInternalServerError)

	resp, err := get(t, client, a.URL)
	require.NoError(t, err)
	resp.Body.Close()
	_, err = get(t, client, a.URL)
	assert.ErrorIs(t, err, breaker.ErrOpen)

	resp, err = get(t, client, b.URL)
	require.NoError(t, err, "the other host has its own breaker")
	resp.Body.Close()
	assert.Len(t, reg.Circuits(), 2)
}

func TestTransportOptions(t *testing.T) {
	up := newUpstream(t, "")
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 1})
	client := &http.Client{Transport: breakerhttp.Transport(nil,
		breakerhttp.WithRegistry(reg),
		breakerhttp.WithKey(func(r *http.Request) string { return "api" + r.URL.Path }),
		breakerhttp.WithFailure(func(resp *http.Response, err error) bool {
			return err != nil || resp.StatusCode == http.StatusTooManyRequests
		}),
	)}

	up.status.Store(http.StatusInternalServerError)
	resp, err := get(t, client, up.URL+"/orders")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, breaker.StateClosed, metricsOf(t, reg, "api/orders").State, "a 500 is not a failure here")

	up.status.Store(http.StatusTooManyRequests)
	resp, err = get(t, client, up.URL+"/orders")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, breaker.StateOpen, metricsOf(t, reg, "api/orders").State)

	var se *breakerhttp.StatusError
	reg2, _ := newRegistry(t, breaker.Config{WindowSize: 1, IsFailure: func(err error) bool {
		return errors.As(err, &se) && se.Code == http.StatusServiceUnavailable
	}})
	client2 := &http.Client{Transport: breakerhttp.Transport(nil, breakerhttp.WithRegistry(reg2))}
	up.status.Store(http.StatusInternalServerError)
	resp, err = get(t, client2, up.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, breaker.StateClosed, metricsOf(t, reg2, strings.TrimPrefix(up.URL, "http://")).State,
		"the breaker's IsFailure sees a *StatusError")
	assert.Equal(t, "breakerhttp: status 500 Internal Server Error", se.Error())
}

func TestTransportIgnoresCancelledRequests(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 1})
	client := &http.Client{Transport: breakerhttp.Transport(nil, breakerhttp.WithRegistry(reg))}

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	go cancel()
	_, err = client.Do(req)
	require.ErrorIs(t, err, context.Canceled)
	m := metricsOf(t, reg, strings.TrimPrefix(srv.URL, "http://"))
	assert.Equal(t, breaker.StateClosed, m.State)
	assert.Zero(t, m.Calls, "the caller gave up: not the server's fault")
}

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closed atomic.Int32
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

func TestTransportClosesTheBodyOfARefusedRequest(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{})
	b, err := breaker.Get[*http.Response](reg, "example.test")
	require.NoError(t, err)
	b.ForceOpen()
	rt := breakerhttp.Transport(nil, breakerhttp.WithRegistry(reg))

	body := &closeCounter{Reader: strings.NewReader("payload")}
	req, err := http.NewRequest(http.MethodPost, "http://example.test/", body)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	assert.Nil(t, resp)
	assert.ErrorIs(t, err, breaker.ErrOpen)
	assert.EqualValues(t, 1, body.closed.Load())
}

func TestTransportReportsARegistryClash(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{})
	_, err := breaker.Get[string](reg, "example.test")
	require.NoError(t, err)
	rt := breakerhttp.Transport(nil, breakerhttp.WithRegistry(reg))
	req, err := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(req)
	assert.ErrorIs(t, err, breaker.ErrWrongType)
}

func TestTransportWithItsOwnRegistry(t *testing.T) {
	up := newUpstream(t, "ok")
	client := &http.Client{Transport: breakerhttp.Transport(nil)}
	resp, err := get(t, client, up.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTransportHostsAreBounded sends requests to 10,000 distinct hosts:
// the transport's own registry keeps at most DefaultMaxHosts breakers.
func TestTransportHostsAreBounded(t *testing.T) {
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	rt := breakerhttp.Transport(next)
	reg := breakerhttp.RegistryOf(rt)
	for i := range 10_000 {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://host-%d.example/", i), nil)
		require.NoError(t, err)
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.LessOrEqual(t, reg.Len(), breakerhttp.DefaultMaxHosts)
	}
	assert.GreaterOrEqual(t, reg.Len(), breakerhttp.DefaultMaxHosts*7/8, "evicted in batches of an eighth")
}

func TestTransportKeyByHostname(t *testing.T) {
	var seen []string
	reg, err := breaker.NewRegistry(breaker.Config{})
	require.NoError(t, err)
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	rt := breakerhttp.Transport(next, breakerhttp.WithRegistry(reg), breakerhttp.WithKey(breakerhttp.Hostname))
	for _, u := range []string{"http://api.example:8080/a", "http://api.example:9090/b", "http://api.example/c"} {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	for _, c := range reg.Circuits() {
		seen = append(seen, c.Name())
	}
	assert.Equal(t, []string{"api.example"}, seen, "every port of a host shares one breaker")
	req, _ := http.NewRequest(http.MethodGet, "http://api.example:8080/", nil)
	assert.Equal(t, "api.example:8080", breakerhttp.Host(req))
}

// TestTransportPanickingClassifierLeaksNothing has a WithFailure that reads
// resp.StatusCode, nil on a transport error, during a half-open trial: the
// trial is a failure and its place is not held.
func TestTransportPanickingClassifierLeaksNothing(t *testing.T) {
	clk := clock.NewMock()
	reg, err := breaker.NewRegistry(breaker.Config{WindowSize: 1, OpenTimeout: time.Second, Clock: clk})
	require.NoError(t, err)
	down := true
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if down {
			return nil, errors.New("connection refused")
		}
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	rt := breakerhttp.Transport(next, breakerhttp.WithRegistry(reg), breakerhttp.WithFailure(func(resp *http.Response, err error) bool {
		return resp.StatusCode >= 500 // the bug: resp is nil when err is not
	}))
	req, _ := http.NewRequest(http.MethodGet, "http://api.example/", nil)
	assert.Panics(t, func() { rt.RoundTrip(req) })
	b, err := breaker.Get[*http.Response](reg, "api.example")
	require.NoError(t, err)
	require.Equal(t, breaker.StateOpen, b.State(), "recorded as a failure")
	clk.Add(time.Second)
	assert.Panics(t, func() { rt.RoundTrip(req) }, "the trial goes ahead, and its classifier panics again")
	assert.Equal(t, breaker.StateOpen, b.State(), "the trial failed: its place is not held")
	down = false
	clk.Add(2 * time.Second)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, breaker.StateClosed, b.State())
}

func TestTransportNilOption(t *testing.T) {
	assert.NotPanics(t, func() { breakerhttp.Transport(nil, nil, breakerhttp.WithKey(nil), breakerhttp.WithFailure(nil)) })
}
