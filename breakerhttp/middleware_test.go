package breakerhttp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
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
	assert.Contains(t, rec.Body.String(), `circuit open`)
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
		panic(http.ErrAbortHandler)
	}))
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() { serve(h) })
	assert.Equal(t, breaker.StateOpen, b.State())
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
	resp.Body.Close()
	<-served
	assert.True(t, flushed)
	assert.Equal(t, 1, b.Metrics().Calls)
}
