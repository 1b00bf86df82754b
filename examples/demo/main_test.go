package main

import (
	"bytes"
	"encoding/json"
	"io"
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

func TestDemo(t *testing.T) {
	clk := clock.NewMock()
	var out bytes.Buffer
	reg, err := newRegistry(&out, clk)
	require.NoError(t, err)
	h := dashboard(reg, requests*interval, false)
	run(&out, reg, clk, func(d time.Duration) {
		clk.Add(d)
		get(t, h, "/history") // the page's polls sample the history, as its timer does
	})
	assert.Equal(t, `One request every 40ms to each of inventory (healthy) and payments (down 1s-2.5s and 6s-7.2s).
 1.00s  payments downstream goes down
 1.16s  payments: closed    -> open  (5 of the last 10 calls failed; next probe in 300ms)
 1.48s  payments: open      -> half-open
 1.48s  payments: half-open -> open  (the probe failed; next probe in 600ms)
 2.08s  payments: open      -> half-open
 2.08s  payments: half-open -> open  (the probe failed; next probe in 1.2s)
 2.52s  payments downstream recovers
 3.28s  payments: open      -> half-open
 3.28s  payments: half-open -> closed  (the probe succeeded)
 6.00s  payments downstream goes down
 6.16s  payments: closed    -> open  (5 of the last 10 calls failed; next probe in 300ms)
 6.48s  payments: open      -> half-open
 6.48s  payments: half-open -> open  (the probe failed; next probe in 600ms)
 7.08s  payments: open      -> half-open
 7.08s  payments: half-open -> open  (the probe failed; next probe in 1.2s)
 7.20s  payments downstream recovers
 8.28s  payments: open      -> half-open
 8.28s  payments: half-open -> closed  (the probe succeeded)
payments: 250 requests, 136 succeeded, 14 failed, 100 refused by the breaker without reaching the downstream (it saw 150 calls).
`, out.String())

	snap := reg.Snapshot()
	require.Len(t, snap, 2)
	assert.Equal(t, "inventory", snap[0].Name)
	assert.Equal(t, breaker.StateClosed, snap[0].State)
	assert.Empty(t, snap[0].History, "the healthy downstream never tripped its breaker")
	assert.Len(t, snap[1].History, 14, "payments' state changes, kept for the dashboard")
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	return rec
}

func TestDemoHistorySpansTheRun(t *testing.T) {
	clk := clock.NewMock()
	reg, err := newRegistry(io.Discard, clk)
	require.NoError(t, err)
	h := dashboard(reg, requests*interval, false)
	run(io.Discard, reg, clk, func(d time.Duration) {
		clk.Add(d)
		get(t, h, "/history")
	})
	var hist breakerhttp.History
	require.NoError(t, json.Unmarshal(get(t, h, "/history").Body.Bytes(), &hist))
	assert.Equal(t, 0.2, hist.StepSeconds, "10 s of demo in 90 steps, rounded up to 100 ms")
	require.Len(t, hist.Circuits, 2)
	payments := hist.Circuits[1]
	require.Equal(t, "payments", payments.Name)
	assert.Len(t, payments.Calls, 50, "the whole run")
	var refusals uint64
	for _, r := range payments.Refusals {
		refusals += r
	}
	assert.Equal(t, uint64(100), refusals, "every refusal of the run, in its step")
	assert.Contains(t, payments.States, breaker.StateOpen)
	assert.Regexp(t, `const actions = +false *;`, get(t, h, "/dashboard").Body.String(), "no buttons without -actions")
}

func TestDemoActionsFromThisMachineOnly(t *testing.T) {
	reg, err := newRegistry(io.Discard, clock.NewMock())
	require.NoError(t, err)
	_, err = breaker.Get[string](reg, "payments")
	require.NoError(t, err)
	h := dashboard(reg, time.Minute, true)
	assert.Regexp(t, `const actions = +true *;`, get(t, h, "/dashboard").Body.String())
	post := func(remote, host string) int {
		req := httptest.NewRequest(http.MethodPost, "/actions/force-open?circuit=payments", nil)
		req.RemoteAddr, req.Host = remote, host
		req.Header.Set(breakerhttp.ActionHeader, "1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	assert.Equal(t, http.StatusForbidden, post("192.0.2.7:5000", "127.0.0.1:8080"))
	assert.Equal(t, http.StatusForbidden, post("127.0.0.1:5000", "rebind.example:8080"), "DNS rebinding")
	assert.Equal(t, breaker.StateClosed, reg.Snapshot()[0].State)
	assert.Equal(t, http.StatusOK, post("127.0.0.1:5000", "127.0.0.1:8080"))
	assert.Equal(t, http.StatusOK, post("[::1]:5000", "localhost:8080"))
	assert.Equal(t, breaker.StateForcedOpen, reg.Snapshot()[0].State)
	assert.False(t, loopback("0.0.0.0:8080"), "all interfaces is not loopback")
	assert.False(t, loopback("localhost:8080"), "names are not trusted")
}
