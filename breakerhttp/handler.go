package breakerhttp

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"math"
	"net/http"
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
//     its state, time until its next probe and latest state changes; the
//     status is 200 when every circuit is healthy and 503 otherwise, with
//     the unhealthy ones listed. Point a load balancer's health check here.
//   - GET /dashboard answers a self-contained HTML page that shows the same,
//     with colours and a state history, and refreshes itself.
//
// Mount it under a prefix with http.StripPrefix.
func Handler(reg *breaker.Registry, opts ...HandlerOption) http.Handler {
	h := &handler{reg: reg, unhealthy: defaultUnhealthy, refresh: 2 * time.Second}
	for _, o := range opts {
		if o != nil {
			o(h)
		}
	}
	return h
}

type handler struct {
	reg       *breaker.Registry
	unhealthy func(breaker.Status) bool
	refresh   time.Duration
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

func (h *handler) report() Report {
	rep := Report{Healthy: true, Unhealthy: []string{}, Circuits: []Circuit{}}
	for _, s := range h.reg.Snapshot() {
		c := Circuit{
			Name: s.Name, State: s.State, Since: s.Since,
			Calls: s.Calls, Failures: s.Failures, SlowCalls: s.SlowCalls,
			FailureRate: s.FailureRate, SlowCallRate: s.SlowCallRate,
			ConsecutiveFailures: s.ConsecutiveFailures,
			Rejected:            s.Lifetime.Refused(), Opens: s.Lifetime.Opens,
			RetryAfterSeconds: math.Round(s.RetryAfter.Seconds()*1000) / 1000,
			History:           make([]Transition, len(s.History)),
		}
		for i, t := range s.History {
			c.History[i] = Transition{From: t.From, To: t.To, Time: t.Time, Reason: t.Reason.String()}
		}
		rep.Circuits = append(rep.Circuits, c)
		if h.unhealthy(s) {
			rep.Healthy = false
			rep.Unhealthy = append(rep.Unhealthy, s.Name)
		}
	}
	return rep
}

//go:embed dashboard.html
var dashboardHTML string

var dashboard = template.Must(template.New("dashboard").Parse(dashboardHTML))

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "", "/":
		rep := h.report()
		body, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !rep.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write(append(body, '\n'))
	case "/dashboard":
		initial, err := json.Marshal(h.report())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var page bytes.Buffer
		err = dashboard.Execute(&page, map[string]any{
			"Initial":   template.JS(initial), // JSON is a valid JavaScript literal
			"RefreshMS": h.refresh.Milliseconds(),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(page.Bytes())
	default:
		http.NotFound(w, r)
	}
}
