package breakerhttp

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"math"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/seed18491788/breaker"
)

// HandlerOption configures Handler.
type HandlerOption func(*handler)

// WithUnhealthy decides which circuits make GET / answer 503. By default
// they are those open, forced open or half-open. A nil unhealthy keeps the
// default.
func WithUnhealthy(unhealthy func(breaker.Status) bool) HandlerOption {
	return func(h *handler) {
		if unhealthy != nil {
			h.unhealthy = unhealthy
		}
	}
}

// MinRefresh is the shortest interval WithRefresh takes: a shorter one,
// zero or negative, is raised to it, so that no page polls as fast as the
// browser can.
const MinRefresh = 500 * time.Millisecond

// WithRefresh sets how often the dashboard reloads its figures; by default
// every 2 seconds, and never more often than every MinRefresh.
func WithRefresh(every time.Duration) HandlerOption {
	return func(h *handler) { h.refresh = max(every, MinRefresh) }
}

// Handler reports the circuits of reg:
//
//   - GET / answers JSON with every circuit's state, rates, counts, time in
//     its state and in all spent open, time until its next probe and latest
//     state changes (a Report); the status is 200 when every circuit is
//     healthy and 503 otherwise, with the unhealthy ones listed. Point a
//     load balancer's health check here.
//   - GET /history answers JSON with what each circuit did over the last
//     HistoryPoints steps, 15 minutes by default (a History).
//   - GET /dashboard answers a self-contained HTML page that shows both,
//     with plots of failure rate, calls and refusals, a timeline of states
//     and, WithActions, buttons; it refreshes itself from the two above.
//   - POST /actions/..., WithActions only: see there.
//
// The history is sampled on one timer for the whole registry, by the
// registry's Clock, and before each answer that shows it; make one Handler
// per registry. Mount it under a prefix with http.StripPrefix.
func Handler(reg *breaker.Registry, opts ...HandlerOption) http.Handler {
	h := &handler{reg: reg, unhealthy: defaultUnhealthy, refresh: 2 * time.Second,
		historyCircuits: DefaultHistoryCircuits, historyStep: DefaultHistoryStep}
	for _, o := range opts {
		if o != nil {
			o(h)
		}
	}
	if h.historyCircuits > 0 {
		h.history = newHistory(reg, h.historyCircuits, h.historyStep)
		runtime.AddCleanup(h, (*history).stop, h.history)
	}
	return h
}

type handler struct {
	reg             *breaker.Registry
	unhealthy       func(breaker.Status) bool
	refresh         time.Duration
	historyCircuits int
	historyStep     time.Duration
	history         *history // nil without history
	authorize       func(*http.Request) bool
}

func defaultUnhealthy(s breaker.Status) bool {
	switch s.State {
	case breaker.StateOpen, breaker.StateForcedOpen, breaker.StateHalfOpen:
		return true
	}
	return false
}

// Report is the JSON body of GET /.
type Report struct {
	Healthy   bool      `json:"healthy"`
	Unhealthy []string  `json:"unhealthy"`
	Circuits  []Circuit `json:"circuits"`
}

// Circuit is one circuit in a Report.
type Circuit struct {
	Name                string        `json:"name"`
	State               breaker.State `json:"state"`
	Since               time.Time     `json:"since"`
	Calls               int           `json:"calls"`
	Failures            int           `json:"failures"`
	SlowCalls           int           `json:"slow_calls"`
	FailureRate         float64       `json:"failure_rate"`
	SlowCallRate        float64       `json:"slow_call_rate"`
	ConsecutiveFailures int           `json:"consecutive_failures"`
	Rejected            uint64        `json:"rejected"`
	Opens               uint64        `json:"opens"`
	OpenSeconds         float64       `json:"open_seconds"` // in all, the current period included
	RetryAfterSeconds   float64       `json:"retry_after_seconds"`
	History             []Transition  `json:"history"`
}

// Transition is a state change in a Circuit's history.
type Transition struct {
	From   breaker.State `json:"from"`
	To     breaker.State `json:"to"`
	Time   time.Time     `json:"time"`
	Reason string        `json:"reason"` // why, as breaker.Reason prints it
}

func millis(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func circuitOf(s breaker.Status) Circuit {
	c := Circuit{
		Name: s.Name, State: s.State, Since: s.Since,
		Calls: s.Calls, Failures: s.Failures, SlowCalls: s.SlowCalls,
		FailureRate: s.FailureRate, SlowCallRate: s.SlowCallRate,
		ConsecutiveFailures: s.ConsecutiveFailures,
		Rejected:            s.Lifetime.Refused(), Opens: s.Lifetime.Opens,
		OpenSeconds:       millis(s.Lifetime.OpenTime),
		RetryAfterSeconds: millis(s.RetryAfter),
		History:           make([]Transition, len(s.History)),
	}
	for i, t := range s.History {
		c.History[i] = Transition{From: t.From, To: t.To, Time: t.Time, Reason: t.Reason.String()}
	}
	return c
}

func (h *handler) report() Report {
	rep := Report{Healthy: true, Unhealthy: []string{}, Circuits: []Circuit{}}
	for _, s := range h.reg.Snapshot() {
		rep.Circuits = append(rep.Circuits, circuitOf(s))
		if h.unhealthy(s) {
			rep.Healthy = false
			rep.Unhealthy = append(rep.Unhealthy, s.Name)
		}
	}
	return rep
}

// historyReport samples and returns the history; empty without one.
func (h *handler) historyReport() History {
	if h.history == nil {
		return History{Now: h.reg.Clock().Now(), StepSeconds: h.historyStep.Seconds(), LengthSeconds: (HistoryPoints * h.historyStep).Seconds(), Circuits: []CircuitHistory{}}
	}
	h.history.sample()
	return h.history.report()
}

//go:embed dashboard.html
var dashboardHTML string

var dashboard = template.Must(template.New("dashboard").Parse(dashboardHTML))

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if action, ok := strings.CutPrefix(r.URL.Path, "/actions/"); ok {
		h.serveAction(w, r, action)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "", "/":
		rep := h.report()
		status := http.StatusOK
		if !rep.Healthy {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, rep)
	case "/history":
		writeJSON(w, http.StatusOK, h.historyReport())
	case "/dashboard":
		h.serveDashboard(w)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// dashboardPolicy lets the page run its own inline script and style and
// fetch from its own origin, nothing else; no other site may frame it,
// which keeps its buttons from being clicked through a disguise.
const dashboardPolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
	"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (h *handler) serveDashboard(w http.ResponseWriter) {
	initial, err := json.Marshal(h.report())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	hist, err := json.Marshal(h.historyReport())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var page bytes.Buffer
	err = dashboard.Execute(&page, map[string]any{
		"Initial":   template.JS(initial), // JSON is a valid JavaScript literal
		"History":   template.JS(hist),
		"RefreshMS": h.refresh.Milliseconds(),
		"Actions":   h.authorize != nil,
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", dashboardPolicy)
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(page.Bytes())
}
