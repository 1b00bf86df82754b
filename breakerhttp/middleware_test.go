package breakerhttp_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakerhttp"
)

func newBreaker(t *testing.T, cfg breaker.Config) (*breaker.Breaker[struct{}], *clock.Mock) {
	t.Helper()
	clk := clock.NewMock()
	cfg.Clock = clk
	b, err := breaker.New[struct{}]("api", cfg)
	require.NoError(t, err)
	return b, clk
}

// statusHandler answers every request with the status in *code.
func statusHandler(code *int, hits *int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*hits++
		w.WriteHeader(*code)
	})
}

func serve(h http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec
}

func TestMiddlewareRefusesWithRetryAfter(t *testing.T) {
	b, clk := newBreaker(t, breaker.Config{WindowSize: 2, OpenTimeout: 10 * time.Second})
	code, hits := http.StatusOK, 0
	h := breakerhttp.Middleware(b)(statusHandler(&code, &hits))

	assert.Equal(t, http.StatusOK, serve(h).Code)
	code = http.StatusInternalServerError
	assert.Equal(t, http.StatusInternalServerError, serve(h).Code)
	require.Equal(t, breaker.StateOpen, b.State(), "one 500 in two calls")

	rec := serve(h)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "10", rec.Header().Get("Retry-After"))
	assert.Equal(t, "Service Unavailable\n", rec.Body.String(), "the body does not name the breaker")
	assert.Equal(t, 2, hits, "a refused request never reaches the handler")

	clk.Add(3500 * time.Millisecond)
	assert.Equal(t, "7", serve(h).Header().Get("Retry-After"), "6.5s, rounded up")

	clk.Add(6500 * time.Millisecond)
	code = http.StatusOK
	assert.Equal(t, http.StatusOK, serve(h).Code, "the trial call")
	assert.Equal(t, breaker.StateClosed, b.State())
}

func TestMiddlewareRetryAfterWhenNotOpen(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{})
	h := breakerhttp.Middleware(b)(http.NotFoundHandler())

	b.ForceOpen()
	rec := serve(h)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Empty(t, rec.Header().Get("Retry-After"), "forced open: no time is known")

	hb, clk := newBreaker(t, breaker.Config{WindowSize: 1, OpenTimeout: time.Second})
	hb.Execute(context.Background(), func(context.Context) (struct{}, error) { return struct{}{}, errBoom })
	clk.Add(time.Second)
	trial, err := hb.Allow() // takes the one half-open place
	require.NoError(t, err)
	rec = serve(breakerhttp.Middleware(hb)(http.NotFoundHandler()))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	trial(nil)
}

func TestMiddlewareCountsPanicsAndRepanics(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{WindowSize: 1})
	h := breakerhttp.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("handler bug")
	}))
	assert.PanicsWithValue(t, "handler bug", func() { serve(h) })
	assert.Equal(t, breaker.StateOpen, b.State())
}

func TestMiddlewareRefusalDetail(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{})
	b.ForceOpen()
	rec := serve(breakerhttp.Middleware(b, breakerhttp.WithRefusalDetail())(http.NotFoundHandler()))
	assert.Equal(t, "Service Unavailable: breaker \"api\": circuit forced open\n", rec.Body.String())
}

// TestMiddlewareClientThatLeftIsNoFailure has handlers give up on clients
// that went away, as httputil.ReverseProxy does by panicking with
// http.ErrAbortHandler: five of them must not open the breaker.
// failingWriter is a ResponseWriter whose client is gone: writes fail.
type failingWriter struct{ *httptest.ResponseRecorder }

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("write: broken pipe") }

func TestMiddlewareClientThatLeftIsNoFailure(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{WindowSize: 5, MinimumCalls: 1})
	// ReverseProxy's way: its write to the client fails, and it aborts.
	aborting := breakerhttp.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := w.Write([]byte("part")); err != nil {
			panic(http.ErrAbortHandler)
		}
	}))
	for range 5 {
		assert.PanicsWithValue(t, http.ErrAbortHandler, func() {
			aborting.ServeHTTP(failingWriter{httptest.NewRecorder()}, httptest.NewRequest(http.MethodGet, "/", nil))
		}, "the panic goes on, for the server")
	}
	assert.Equal(t, breaker.StateClosed, b.State())
	l := b.Metrics().Lifetime
	assert.Equal(t, uint64(5), l.Ignored)
	assert.Zero(t, l.Failures)

	// A handler that answers 500 once its client is gone: ignored too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gone := breakerhttp.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	gone.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
	assert.Equal(t, uint64(6), b.Metrics().Lifetime.Ignored)

	// An abort with the client still there: the handler broke off.
	broke := breakerhttp.Middleware(b)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	assert.Panics(t, func() { serve(broke) })
	assert.Equal(t, uint64(1), b.Metrics().Lifetime.Failures, "an abort is a failure unless the client left")
}

// TestMiddlewareBackendThatBreaksOffIsAFailure runs a ReverseProxy whose
// backend dies in the middle of a body: the proxy aborts as it does for a
// client that left, but the client is there, and the breaker counts it.
func TestMiddlewareBackendThatBreaksOffIsAFailure(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("first part"))
		w.(http.Flusher).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close() // 90 bytes short
		}
	}))
	defer backend.Close()
	target, err := url.Parse(backend.URL)
	require.NoError(t, err)
	b, _ := newBreaker(t, breaker.Config{WindowSize: 5, MinimumCalls: 5})
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxy.FlushInterval = -1
	served := make(chan struct{}, 5)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { served <- struct{}{} }()
		breakerhttp.Middleware(b)(proxy).ServeHTTP(w, r)
	}))
	front.Config.ErrorLog = log.New(io.Discard, "", 0)
	defer front.Close()
	for range 5 {
		resp, err := http.Get(front.URL)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body) // the client stays to the end
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		resp.Body.Close()
		<-served
	}
	l := b.Metrics().Lifetime
	assert.Equal(t, uint64(5), l.Failures, "truncated responses from a dying backend")
	assert.Zero(t, l.Ignored)
	assert.Equal(t, breaker.StateOpen, b.State())
}

// TestMiddlewareServerTimeoutIsAFailure: a deadline of the server's own
// (chi's middleware.Timeout, say) ends a slow handler: that is slowness,
// not a client that left.
func TestMiddlewareServerTimeoutIsAFailure(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{WindowSize: 2, MinimumCalls: 2})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		http.Error(w, "upstream too slow", http.StatusGatewayTimeout)
	})
	h := breakerhttp.Middleware(b)(slow)
	for range 2 {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now()) // already past
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		cancel()
	}
	l := b.Metrics().Lifetime
	assert.Equal(t, uint64(2), l.Failures)
	assert.Zero(t, l.Ignored)
	assert.Equal(t, breaker.StateOpen, b.State())
}

// TestMiddlewareClientLeavesAReverseProxy runs a real httputil.ReverseProxy
// behind the middleware: clients that hang up mid-stream, five of them, do
// not open the breaker.
func TestMiddlewareClientLeavesAReverseProxy(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first part"))
		w.(http.Flusher).Flush()
		select { // then stalls until the test ends
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer backend.Close()
	defer close(release)
	target, err := url.Parse(backend.URL)
	require.NoError(t, err)
	b, _ := newBreaker(t, breaker.Config{WindowSize: 5, MinimumCalls: 1})
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	served := make(chan struct{}, 5)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { served <- struct{}{} }()
		breakerhttp.Middleware(b)(proxy).ServeHTTP(w, r)
	}))
	defer front.Close()
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		buf := make([]byte, len("first part"))
		_, err = io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		cancel() // the client leaves mid-stream
		resp.Body.Close()
		<-served
	}
	assert.Equal(t, breaker.StateClosed, b.State())
	assert.Zero(t, b.Metrics().Lifetime.Failures)
}

// TestMiddlewarePanickingClassifierLeaksNothing panics in the status
// classifier of a half-open breaker's trial: the trial is recorded as a
// failure, and the next probe goes ahead after the open wait.
func TestMiddlewarePanickingClassifierLeaksNothing(t *testing.T) {
	b, clk := newBreaker(t, breaker.Config{WindowSize: 1, OpenTimeout: time.Second})
	boom := true
	h := breakerhttp.Middleware(b, breakerhttp.WithStatusFailure(func(code int) bool {
		if boom {
			panic("classifier bug")
		}
		return code >= 500
	}))(http.NotFoundHandler())
	b.ForceOpen()
	b.Reset()
	b.OpenFor(0) // half-open at once
	require.Equal(t, breaker.StateHalfOpen, b.State())
	assert.PanicsWithValue(t, "classifier bug", func() { serve(h) })
	assert.Equal(t, breaker.StateOpen, b.State(), "the trial failed; its place is not held")
	boom = false
	clk.Add(time.Second)
	assert.Equal(t, http.StatusNotFound, serve(h).Code, "the next probe")
	assert.Equal(t, breaker.StateClosed, b.State())
}

// TestMiddlewareFailedHijack has a handler try to hijack over a writer
// that cannot (as HTTP/2's), then answer 500: a failure, not a 101.
func TestMiddlewareFailedHijack(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{WindowSize: 1})
	h := breakerhttp.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, err := http.NewResponseController(w).Hijack()
		require.Error(t, err, "a ResponseRecorder cannot be hijacked")
		w.WriteHeader(http.StatusInternalServerError)
	}))
	serve(h)
	assert.Equal(t, breaker.StateOpen, b.State())
}

func TestMiddlewareNilOptions(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{WindowSize: 1})
	h := breakerhttp.Middleware(b, nil, breakerhttp.WithStatusFailure(nil))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	assert.NotPanics(t, func() { serve(h) })
	assert.Equal(t, breaker.StateOpen, b.State(), "the default: a 5xx is a failure")
}

func TestMiddlewareStatusFailure(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{WindowSize: 1})
	code, hits := http.StatusInternalServerError, 0
	h := breakerhttp.Middleware(b, breakerhttp.WithStatusFailure(func(code int) bool {
		return code == http.StatusTooManyRequests
	}))(statusHandler(&code, &hits))
	serve(h)
	assert.Equal(t, breaker.StateClosed, b.State(), "a 500 is not a failure here")
	code = http.StatusTooManyRequests
	serve(h)
	assert.Equal(t, breaker.StateOpen, b.State())
}

func TestMiddlewareStatusOfAHandlerThatOnlyWrites(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{WindowSize: 1})
	h := breakerhttp.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints) // not the final status
		w.Write([]byte("hello"))
	}))
	serve(h)
	assert.Equal(t, 1, b.Metrics().Calls)
	assert.Zero(t, b.Metrics().Failures, "an implicit 200")
}

func TestMiddlewareIgnoresClientsThatLeft(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{WindowSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	h := breakerhttp.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
	assert.Zero(t, b.Metrics().Calls)
	assert.Equal(t, breaker.StateClosed, b.State())
}

func TestMiddlewareKeepsFlusher(t *testing.T) {
	b, _ := newBreaker(t, breaker.Config{})
	flushed := false
	h := breakerhttp.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		require.True(t, ok, "the wrapped writer is still a Flusher")
		w.Write([]byte("part"))
		f.Flush()
		flushed = true
		require.NoError(t, http.NewResponseController(w).SetWriteDeadline(time.Time{}) /* unwraps */)
	}))
	served := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(served) // the client may read the flushed part before the call is recorded
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body) // to the end: a client that hangs up early is not counted
	resp.Body.Close()
	require.NoError(t, err)
	<-served
	assert.Equal(t, "part", string(body))
	assert.True(t, flushed)
	assert.Equal(t, 1, b.Metrics().Calls)
}
