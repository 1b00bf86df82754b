package breakerhttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakerhttp"
)

// circuits fills reg with "payments", open after 3 failures in 5 calls, and
// "inventory", closed after 4 successes.
func circuits(t *testing.T, reg *breaker.Registry) {
	t.Helper()
	p, err := breaker.Get[int](reg, "payments")
	require.NoError(t, err)
	for i := range 5 {
		p.Execute(context.Background(), func(context.Context) (int, error) {
			if i%2 == 0 {
				return 0, errBoom
			}
			return 1, nil
		})
	}
	require.Equal(t, breaker.StateOpen, p.State())
	inv, err := breaker.Get[string](reg, "inventory")
	require.NoError(t, err)
	for range 4 {
		inv.Execute(context.Background(), func(context.Context) (string, error) { return "ok", nil })
	}
}

func getReport(t *testing.T, h http.Handler, path string) (*httptest.ResponseRecorder, breakerhttp.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var rep breakerhttp.Report
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &rep), rec.Body.String())
	return rec, rep
}

func TestHandlerReport(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{WindowSize: 5, OpenTimeout: 30 * time.Second})
	start := clk.Now().UTC()
	h := breakerhttp.Handler(reg)

	rec, rep := getReport(t, h, "/")
	assert.Equal(t, http.StatusOK, rec.Code, "no circuits, nothing unhealthy")
	assert.True(t, rep.Healthy)
	assert.Empty(t, rep.Circuits)

	circuits(t, reg)
	clk.Add(10 * time.Second)
	rec, rep = getReport(t, h, "/")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.False(t, rep.Healthy)
	assert.Equal(t, []string{"payments"}, rep.Unhealthy)
	require.Len(t, rep.Circuits, 2)
	assert.Equal(t, breakerhttp.Circuit{
		Name: "inventory", State: breaker.StateClosed, Since: start, Calls: 4,
		History: []breakerhttp.Transition{},
	}, normalize(rep.Circuits[0]))
	assert.Equal(t, breakerhttp.Circuit{
		Name: "payments", State: breaker.StateOpen, Since: start, Calls: 5, Failures: 3,
		FailureRate: 0.6, ConsecutiveFailures: 1, Opens: 1, OpenSeconds: 10, RetryAfterSeconds: 20,
		History: []breakerhttp.Transition{{From: breaker.StateClosed, To: breaker.StateOpen, Time: start, Reason: "failure rate 0.6 ≥ 0.5 over 5 calls"}},
	}, normalize(rep.Circuits[1]))
	assert.Contains(t, rec.Body.String(), `"state": "open"`, "states are named in JSON")

	reg.ResetAll()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.URL.Path = "" // as http.StripPrefix leaves a request for the bare prefix
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code, "all closed again")
}

// normalize makes times comparable with ==.
func normalize(c breakerhttp.Circuit) breakerhttp.Circuit {
	c.Since = c.Since.UTC()
	for i := range c.History {
		c.History[i].Time = c.History[i].Time.UTC()
	}
	return c
}

func TestHandlerWithUnhealthy(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	h := breakerhttp.Handler(reg, breakerhttp.WithUnhealthy(func(s breaker.Status) bool {
		return s.Name == "inventory"
	}))
	rec, rep := getReport(t, h, "/")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, []string{"inventory"}, rep.Unhealthy)
}

func TestHandlerRoutes(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	mux := http.NewServeMux()
	mux.Handle("/circuits/", http.StripPrefix("/circuits", breakerhttp.Handler(reg, breakerhttp.WithRefresh(750*time.Millisecond))))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/circuits/dashboard", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	page := rec.Body.String()
	assert.Contains(t, page, `"name":"payments"`, "the page starts with the figures in it")
	assert.Regexp(t, `const refreshMS = +750 *;`, page)
	assert.NotContains(t, page, "http://", "no external assets")
	assert.NotContains(t, page, "https://", "no external assets")

	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/circuits/", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)

	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/circuits/nope", nil))
	assert.Equal(t, http.StatusNotFound, rec.Code)

	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/circuits/", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
}

func TestDashboardEscapesNames(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{})
	_, err := breaker.Get[int](reg, "</script><script>alert(1)</script>")
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	breakerhttp.Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard", nil))
	assert.NotContains(t, rec.Body.String(), "<script>alert(1)")
	assert.Equal(t, 1, strings.Count(rec.Body.String(), "<script"), "only the page's own script")
}

func TestHandlerRefreshIsClamped(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{})
	for _, every := range []time.Duration{0, -time.Second, time.Millisecond} {
		h := breakerhttp.Handler(reg, breakerhttp.WithRefresh(every))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard", nil))
		assert.Regexp(t, `const refreshMS = +500 *;`, rec.Body.String(), "WithRefresh(%v) is raised to MinRefresh", every)
	}
}
