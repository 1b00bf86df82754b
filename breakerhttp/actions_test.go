package breakerhttp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakerhttp"
)

// act sends an action request as the dashboard does, changed by edit.
func act(h http.Handler, method, target string, edit func(*http.Request)) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.Header.Set(breakerhttp.ActionHeader, "1")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", "http://"+req.Host)
	if edit != nil {
		edit(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func allowAll(*http.Request) bool { return true }

func TestActionsAreOffByDefault(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	for _, h := range []http.Handler{breakerhttp.Handler(reg), breakerhttp.Handler(reg, breakerhttp.WithActions(nil))} {
		rec := act(h, http.MethodPost, "/actions/reset?circuit=payments", nil)
		assert.Equal(t, http.StatusNotFound, rec.Code)
		assert.Equal(t, breaker.StateOpen, state(t, reg, "payments"))
	}
}

func state(t *testing.T, reg *breaker.Registry, name string) breaker.State {
	t.Helper()
	c, ok := reg.Circuit(name)
	require.True(t, ok)
	return c.State()
}

func TestActionsRefuse(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	authorized := false
	h := breakerhttp.Handler(reg, breakerhttp.WithActions(func(r *http.Request) bool {
		return authorized && r.Header.Get("Authorization") == "Bearer secret"
	}))
	withToken := func(r *http.Request) { r.Header.Set("Authorization", "Bearer secret") }
	for _, tc := range []struct {
		name   string
		method string
		edit   func(*http.Request)
		code   int
	}{
		{"unauthorised", http.MethodPost, nil, http.StatusForbidden},
		{"GET", http.MethodGet, withToken, http.StatusMethodNotAllowed},
		{"cross-site", http.MethodPost, func(r *http.Request) { withToken(r); r.Header.Set("Sec-Fetch-Site", "cross-site") }, http.StatusForbidden},
		{"same-site, another origin", http.MethodPost, func(r *http.Request) { withToken(r); r.Header.Set("Sec-Fetch-Site", "same-site") }, http.StatusForbidden},
		{"foreign Origin", http.MethodPost, func(r *http.Request) {
			withToken(r)
			r.Header.Del("Sec-Fetch-Site") // an older browser
			r.Header.Set("Origin", "https://evil.example")
		}, http.StatusForbidden},
		{"no action header", http.MethodPost, func(r *http.Request) { withToken(r); r.Header.Del(breakerhttp.ActionHeader) }, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			authorized = true
			rec := act(h, tc.method, "/actions/force-open?circuit=inventory", tc.edit)
			assert.Equal(t, tc.code, rec.Code, rec.Body.String())
			assert.Equal(t, breaker.StateClosed, state(t, reg, "inventory"), "nothing changed")
		})
	}
	authorized = false
	rec := act(h, http.MethodPost, "/actions/force-open?circuit=inventory", withToken)
	assert.Equal(t, http.StatusForbidden, rec.Code, "authorize said no")
	assert.Equal(t, breaker.StateClosed, state(t, reg, "inventory"))
}

func TestActionsAuthorizeThatPanicsRefuses(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	h := breakerhttp.Handler(reg, breakerhttp.WithActions(func(*http.Request) bool { panic("no session store") }))
	rec := act(h, http.MethodPost, "/actions/disable?circuit=inventory", nil)
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Equal(t, breaker.StateClosed, state(t, reg, "inventory"))
}

func TestActionsChangeTheState(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	h := breakerhttp.Handler(reg, breakerhttp.WithActions(allowAll))
	do := func(target string) breakerhttp.Circuit {
		t.Helper()
		rec := act(h, http.MethodPost, target, nil)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		var c breakerhttp.Circuit
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &c))
		return c
	}
	last := func(c breakerhttp.Circuit) breakerhttp.Transition {
		t.Helper()
		require.NotEmpty(t, c.History)
		return c.History[len(c.History)-1]
	}

	c := do("/actions/force-open?circuit=inventory")
	assert.Equal(t, breaker.StateForcedOpen, c.State)
	assert.Equal(t, breakerhttp.Transition{From: breaker.StateClosed, To: breaker.StateForcedOpen, Time: c.Since, Reason: "manual"}, last(c))

	c = do("/actions/disable?circuit=inventory")
	assert.Equal(t, breaker.StateDisabled, c.State)
	assert.Equal(t, "manual", last(c).Reason)

	c = do("/actions/reset?circuit=payments")
	assert.Equal(t, breaker.StateClosed, c.State)
	assert.Equal(t, breakerhttp.Transition{From: breaker.StateOpen, To: breaker.StateClosed, Time: c.Since, Reason: "manual"}, last(c))
	assert.Zero(t, c.Calls, "a fresh window")

	c = do("/actions/open-for?circuit=payments&for=90s")
	assert.Equal(t, breaker.StateOpen, c.State)
	assert.Equal(t, 90.0, c.RetryAfterSeconds)
	assert.Equal(t, "manual, for 1m30s", last(c).Reason)

	do("/actions/reset?circuit=payments")
	assert.Equal(t, breaker.StateClosed, state(t, reg, "payments"), "reset ends an open-for early")
}

func TestActionsCheckTheirArguments(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	h := breakerhttp.Handler(reg, breakerhttp.WithActions(allowAll))
	for target, code := range map[string]int{
		"/actions/explode?circuit=inventory":               http.StatusNotFound,
		"/actions/reset?circuit=nope":                      http.StatusNotFound,
		"/actions/reset":                                   http.StatusNotFound,
		"/actions/open-for?circuit=inventory":              http.StatusBadRequest,
		"/actions/open-for?circuit=inventory&for=soon":     http.StatusBadRequest,
		"/actions/open-for?circuit=inventory&for=0s":       http.StatusBadRequest,
		"/actions/open-for?circuit=inventory&for=-1m":      http.StatusBadRequest,
		"/actions/open-for?circuit=inventory&for=25h":      http.StatusBadRequest,
		"/actions/open-for?circuit=nope&for=1m":            http.StatusNotFound,
		"/actions/force-open?circuit=inventory%2Fmissing":  http.StatusNotFound,
		"/actions/open-for?circuit=inventory&for=24h0m01s": http.StatusBadRequest,
	} {
		rec := act(h, http.MethodPost, target, nil)
		assert.Equal(t, code, rec.Code, "%s: %s", target, rec.Body.String())
	}
	assert.Equal(t, breaker.StateClosed, state(t, reg, "inventory"), "nothing changed")
	assert.Equal(t, 2, reg.Len(), "no action makes a breaker")

	rec := act(h, http.MethodPost, "/actions/open-for?circuit=inventory&for=24h", nil)
	assert.Equal(t, http.StatusOK, rec.Code, "MaxOpenFor itself is taken")
	c, _ := reg.Circuit("inventory")
	assert.Equal(t, breakerhttp.MaxOpenFor, c.Metrics().RetryAfter.Round(time.Second))
}

func TestActionsFromTools(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	h := breakerhttp.Handler(reg, breakerhttp.WithActions(allowAll))
	rec := act(h, http.MethodPost, "/actions/force-open?circuit=inventory", func(r *http.Request) {
		r.Header.Del("Sec-Fetch-Site") // curl sends neither
		r.Header.Del("Origin")
	})
	assert.Equal(t, http.StatusOK, rec.Code, "a tool that is no browser, with the header")
	assert.Equal(t, breaker.StateForcedOpen, state(t, reg, "inventory"))
}

func TestActionsBehindAHostRewritingProxy(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{WindowSize: 5})
	circuits(t, reg)
	h := breakerhttp.Handler(reg, breakerhttp.WithActions(allowAll))
	rec := act(h, http.MethodPost, "/actions/force-open?circuit=inventory", func(r *http.Request) {
		r.Host = "127.0.0.1:9000" // as nginx's proxy_pass sends it
		r.Header.Set("Origin", "https://ops.example.com")
	})
	assert.Equal(t, http.StatusOK, rec.Code, "the browser said same-origin: Origin is not compared with a rewritten Host")
	assert.Equal(t, breaker.StateForcedOpen, state(t, reg, "inventory"))
}

func TestFromLoopback(t *testing.T) {
	for _, tc := range []struct {
		remote, host string
		ok           bool
	}{
		{"127.0.0.1:5000", "127.0.0.1:8080", true},
		{"127.0.0.1:5000", "localhost:8080", true},
		{"127.0.0.1:5000", "LOCALHOST", true},
		{"[::1]:5000", "[::1]:8080", true},
		{"127.0.0.1:5000", "127.0.0.2", true},
		{"192.0.2.7:5000", "127.0.0.1:8080", false},                // another machine
		{"127.0.0.1:5000", "rebind.example:8080", false},           // DNS rebinding
		{"127.0.0.1:5000", "localhost.rebind.example:8080", false}, // not localhost itself
		{"127.0.0.1:5000", "", false},
		{"not an address", "localhost", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/actions/reset", nil)
		r.RemoteAddr, r.Host = tc.remote, tc.host
		assert.Equal(t, tc.ok, breakerhttp.FromLoopback(r), "from %s to %s", tc.remote, tc.host)
	}
}
