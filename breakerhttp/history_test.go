package breakerhttp_test

import (
	"context"
	"encoding/json"
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

func getHistory(t *testing.T, h http.Handler) breakerhttp.History {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/history", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var hist breakerhttp.History
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &hist), rec.Body.String())
	return hist
}

// step runs the calls of outcomes through the breaker named name (S a
// success, F a failure, I an ignored call) and ends the step.
func step(t *testing.T, reg *breaker.Registry, clk *clock.Mock, h http.Handler, name, outcomes string) {
	t.Helper()
	b, err := breaker.Get[int](reg, name)
	require.NoError(t, err)
	for _, o := range outcomes {
		b.Execute(context.Background(), func(context.Context) (int, error) {
			switch o {
			case 'F':
				return 0, errBoom
			case 'I':
				return 0, context.Canceled
			}
			return 1, nil
		})
	}
	clk.Add(breakerhttp.DefaultHistoryStep)
	getHistory(t, h) // samples now, whatever the timer does
}

func circuitHistory(t *testing.T, hist breakerhttp.History, name string) breakerhttp.CircuitHistory {
	t.Helper()
	for _, c := range hist.Circuits {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "no history", "for %q in %+v", name, hist)
	return breakerhttp.CircuitHistory{}
}

func TestHistoryCountsEachStep(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{WindowSize: 4, MinimumCalls: 4, OpenTimeout: 25 * time.Second})
	start := clk.Now()
	h := breakerhttp.Handler(reg)

	step(t, reg, clk, h, "db", "SSSI")  // step 0: closed
	step(t, reg, clk, h, "db", "FF")    // step 1: trips at the 2nd failure, at 10 s
	step(t, reg, clk, h, "db", "FFFFF") // step 2: all refused
	step(t, reg, clk, h, "db", "")      // step 3: its wait of 25 s over
	step(t, reg, clk, h, "db", "S")     // step 4: a probe closes it

	hist := getHistory(t, h)
	assert.Equal(t, start.Add(5*breakerhttp.DefaultHistoryStep).UTC(), hist.Now.UTC())
	assert.Equal(t, 10.0, hist.StepSeconds)
	assert.Equal(t, 900.0, hist.LengthSeconds, "15 minutes")
	require.Len(t, hist.Circuits, 1)
	db := circuitHistory(t, hist, "db")
	assert.Equal(t, start.UTC(), db.Start.UTC(), "new since the first sample: counted from its first step")
	assert.Equal(t, []uint64{4, 2, 0, 0, 1}, db.Calls, "the ignored call counted as a call")
	assert.Equal(t, []uint64{0, 2, 0, 0, 0}, db.Failures)
	assert.Equal(t, []uint64{0, 0, 5, 0, 0}, db.Refusals)
	assert.Equal(t, []float64{0, 10, 10, 10, 0}, db.OpenSeconds, "open from 10 s until 40 s, when the sample found its wait over")
	assert.Equal(t, []breaker.State{breaker.StateClosed, breaker.StateOpen, breaker.StateOpen, breaker.StateHalfOpen, breaker.StateClosed}, db.States)
}

func TestHistoryKeepsFifteenMinutes(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{})
	h := breakerhttp.Handler(reg)
	steps := breakerhttp.HistoryPoints + 10
	for i := range steps {
		outcomes := "S"
		if i == steps-1 {
			outcomes = "SS"
		}
		step(t, reg, clk, h, "api", outcomes)
	}
	api := circuitHistory(t, getHistory(t, h), "api")
	require.Len(t, api.Calls, 90, "15 minutes of 10 s steps")
	assert.Equal(t, clk.Now().Add(-(breakerhttp.HistoryPoints * breakerhttp.DefaultHistoryStep)).UTC(), api.Start.UTC())
	assert.Equal(t, uint64(1), api.Calls[0])
	assert.Equal(t, uint64(2), api.Calls[89], "the latest step last")
}

func TestHistoryCatchesUpMissedSteps(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{})
	h := breakerhttp.Handler(reg)
	step(t, reg, clk, h, "api", "S")
	b, _ := breaker.Get[int](reg, "api")
	b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
	clk.Add(3*breakerhttp.DefaultHistoryStep + time.Second) // no sample for three steps

	api := circuitHistory(t, getHistory(t, h), "api")
	assert.Equal(t, []uint64{1, 0, 0, 1}, api.Calls, "what came since the latest sample goes to the last step it closes")
	assert.Equal(t, []uint64{0, 0, 0, 1}, api.Failures)
}

func TestHistoryStartsFromNowForCircuitsItFinds(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{})
	b, _ := breaker.Get[int](reg, "old")
	for range 100 {
		b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	}
	h := breakerhttp.Handler(reg) // finds "old" with 100 calls behind it
	step(t, reg, clk, h, "old", "S")
	assert.Equal(t, []uint64{1}, circuitHistory(t, getHistory(t, h), "old").Calls, "not the 100 from before")
}

func TestHistoryIsBounded(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{})
	h := breakerhttp.Handler(reg, breakerhttp.WithHistoryCircuits(2))
	for _, name := range []string{"a", "b", "c", "d"} {
		_, err := breaker.Get[int](reg, name)
		require.NoError(t, err)
	}
	step(t, reg, clk, h, "a", "S")
	names := func() []string {
		var out []string
		for _, c := range getHistory(t, h).Circuits {
			out = append(out, c.Name)
		}
		return out
	}
	assert.Equal(t, []string{"a", "b"}, names(), "history for 2 of the 4 circuits")

	require.True(t, reg.Remove("a"))
	step(t, reg, clk, h, "d", "S")
	assert.Equal(t, []string{"b", "c"}, names(), "a removed circuit leaves room for another")
	assert.Empty(t, circuitHistory(t, getHistory(t, h), "c").Calls, "found when the bound was reached: counted from then")

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard", nil))
	assert.Contains(t, rec.Body.String(), `no history kept for this circuit`, "the page says why d has no plots")
}

func TestHistoryForANewBreakerOfTheSameName(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{})
	h := breakerhttp.Handler(reg)
	step(t, reg, clk, h, "api", "SSS")
	require.True(t, reg.Remove("api"))
	step(t, reg, clk, h, "other", "")
	step(t, reg, clk, h, "api", "S") // a new breaker, its totals from zero
	api := circuitHistory(t, getHistory(t, h), "api")
	assert.Equal(t, []uint64{1}, api.Calls, "the removed breaker's history went with it")
}

func TestHistoryOff(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{})
	h := breakerhttp.Handler(reg, breakerhttp.WithHistoryCircuits(0))
	step(t, reg, clk, h, "api", "S")
	hist := getHistory(t, h)
	assert.Empty(t, hist.Circuits)
	assert.Equal(t, clk.Now().UTC(), hist.Now.UTC())
}

func TestDashboardSecurityHeaders(t *testing.T) {
	reg, _ := newRegistry(t, breaker.Config{})
	rec := httptest.NewRecorder()
	breakerhttp.Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	csp := rec.Header().Get("Content-Security-Policy")
	assert.Contains(t, csp, "frame-ancestors 'none'", "no other site frames the buttons")
	assert.Contains(t, csp, "connect-src 'self'")
	assert.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"))
}

func TestHistoryStep(t *testing.T) {
	for _, tc := range []struct {
		asked, got time.Duration
	}{
		{time.Second, time.Second},
		{0, breakerhttp.MinHistoryStep},
		{-time.Minute, breakerhttp.MinHistoryStep},
		{time.Millisecond, breakerhttp.MinHistoryStep},
		{48 * time.Hour, breakerhttp.MaxHistoryStep},
	} {
		reg, clk := newRegistry(t, breaker.Config{})
		h := breakerhttp.Handler(reg, breakerhttp.WithHistoryStep(tc.asked))
		b, _ := breaker.Get[int](reg, "api")
		b.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
		clk.Add(tc.got)
		hist := getHistory(t, h)
		assert.Equal(t, tc.got.Seconds(), hist.StepSeconds, "WithHistoryStep(%v)", tc.asked)
		assert.Equal(t, (breakerhttp.HistoryPoints * tc.got).Seconds(), hist.LengthSeconds)
		assert.Equal(t, []uint64{1}, circuitHistory(t, hist, "api").Calls, "one step closed after %v", tc.got)
	}
}

func TestHistoryBeforeTheEpoch(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{})
	clk.Set(time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC)) // a clock may say anything
	h := breakerhttp.Handler(reg)
	for range 8 {
		step(t, reg, clk, h, "api", "S") // across the epoch
	}
	api := circuitHistory(t, getHistory(t, h), "api")
	assert.Equal(t, []uint64{1, 1, 1, 1, 1, 1, 1, 1}, api.Calls)
	assert.Equal(t, time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC), api.Start.UTC())
}

func TestHistoryClockGoingBackStartsAgain(t *testing.T) {
	reg, clk := newRegistry(t, breaker.Config{})
	h := breakerhttp.Handler(reg)
	step(t, reg, clk, h, "api", "S")
	clk.Set(clk.Now().Add(-time.Hour))
	for range 5 {
		step(t, reg, clk, h, "api", "SS")
	}
	hist := getHistory(t, h)
	api := circuitHistory(t, hist, "api")
	assert.Equal(t, []uint64{2, 2, 2, 2}, api.Calls, "from the first sample after the jump")
	assert.True(t, api.Start.Before(hist.Now), "the points are in the window the page draws")
}

func TestHistoryListenersRunOutsideItsLock(t *testing.T) {
	var h http.Handler
	nested := 0
	l := breaker.ListenerFor(breaker.Mask(breaker.EventStateChange), func(e breaker.Event) {
		if e.To == breaker.StateHalfOpen { // found by the sample's reading
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/history", nil)) // would wait for ever under the lock
			nested = rec.Code
		}
	})
	reg, clk := newRegistry(t, breaker.Config{WindowSize: 1, OpenTimeout: time.Second, Listeners: []breaker.Listener{l}})
	h = breakerhttp.Handler(reg)
	b, _ := breaker.Get[int](reg, "api")
	b.Execute(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
	require.Equal(t, breaker.StateOpen, b.State())
	clk.Add(breakerhttp.DefaultHistoryStep)
	hist := getHistory(t, h) // samples: the reading moves the breaker to half-open
	assert.Equal(t, http.StatusOK, nested, "the listener's own request was answered")
	assert.Equal(t, []breaker.State{breaker.StateHalfOpen}, circuitHistory(t, hist, "api").States)
}
