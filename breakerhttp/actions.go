package breakerhttp

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/seed18491788/breaker"
)

// ActionHeader must be present, with any value, on every action request.
// A browser sends a header of its own choosing cross-origin only after a
// preflight that the Handler never approves, so a page of another site
// cannot make one; the dashboard's buttons set it.
const ActionHeader = "X-Breaker-Action"

// MaxOpenFor is the longest time open-for takes; ForceOpen is for longer.
const MaxOpenFor = 24 * time.Hour

// WithActions lets operators move circuits by hand, through POST requests
// that authorize accepts (a nil authorize leaves actions off, as they are
// by default):
//
//	POST /actions/force-open?circuit=NAME   ForceOpen
//	POST /actions/disable?circuit=NAME      Disable
//	POST /actions/reset?circuit=NAME        Reset: closed, with a fresh window
//	POST /actions/open-for?circuit=NAME&for=5m  OpenFor, at most MaxOpenFor
//
// Each answers the circuit after the change, as JSON (a Circuit); the
// change shows in its history with the reason "manual". The dashboard
// shows a button for each.
//
// A request is refused with 403 Forbidden when it comes from another site
// (its Sec-Fetch-Site header is neither same-origin nor none, or, from a
// browser that sends none, its Origin is not the host it was sent to),
// when it lacks ActionHeader, or when authorize returns false; other
// methods than POST get 405 Method Not Allowed. Only then are its
// arguments read: 400 Bad Request for a missing or out-of-range for, 404
// Not Found for a circuit the registry does not hold (no action makes
// one). An unknown action, or any action without WithActions, is 404.
//
// authorize sees every request that passed the other checks: let it check
// a credential (a token, a client certificate, the user of an
// authenticating proxy). Where the address alone decides (a Handler that
// listens on loopback only), check the Host too, a loopback address or
// localhost, as FromLoopback does: a page of another site whose name its
// owner points at 127.0.0.1 (DNS rebinding) is same-origin with itself and
// connects from this machine. An authorize that panics refuses.
func WithActions(authorize func(*http.Request) bool) HandlerOption {
	return func(h *handler) { h.authorize = authorize }
}

// The actions, by the last element of their path.
var actions = map[string]func(c breaker.Circuit, d time.Duration){
	"force-open": func(c breaker.Circuit, _ time.Duration) { c.ForceOpen() },
	"disable":    func(c breaker.Circuit, _ time.Duration) { c.Disable() },
	"reset":      func(c breaker.Circuit, _ time.Duration) { c.Reset() },
	"open-for":   func(c breaker.Circuit, d time.Duration) { c.OpenFor(d) },
}

func (h *handler) serveAction(w http.ResponseWriter, r *http.Request, name string) {
	act, ok := actions[name]
	if !ok || h.authorize == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "actions take POST", http.StatusMethodNotAllowed)
		return
	}
	if why := crossSite(r); why != "" {
		http.Error(w, why, http.StatusForbidden)
		return
	}
	if r.Header.Get(ActionHeader) == "" {
		http.Error(w, "an action needs the "+ActionHeader+" header", http.StatusForbidden)
		return
	}
	if !h.authorized(r) {
		http.Error(w, "not authorized", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	var d time.Duration
	if name == "open-for" {
		var err error
		d, err = time.ParseDuration(q.Get("for"))
		if err != nil || d <= 0 || d > MaxOpenFor {
			http.Error(w, "open-for needs for=DURATION, such as 5m, above 0 and at most "+MaxOpenFor.String(), http.StatusBadRequest)
			return
		}
	}
	name = q.Get("circuit")
	c, ok := h.reg.Circuit(name)
	if !ok {
		http.Error(w, "no circuit named "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	act(c, d)
	s, ok := h.reg.Status(name)
	if !ok { // removed meanwhile
		http.Error(w, "no circuit named "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	body, _ := json.MarshalIndent(circuitOf(s), "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(body, '\n'))
}

// crossSite says why r seems to come from a page of another site, or "".
// As net/http's CrossOriginProtection, it trusts Sec-Fetch-Site where the
// browser sends it, and compares Origin with Host only where it does not
// (an older browser): a proxy in front that rewrites Host then refuses
// nothing the browser calls same-origin.
func crossSite(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "same-origin", "none":
		return ""
	case "":
	default:
		return "cross-site request refused (Sec-Fetch-Site: " + site + ")"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return "cross-site request refused (Origin " + origin + ")"
		}
	}
	return ""
}

// FromLoopback is an authorize for WithActions that lets this machine
// alone act: r must come from a loopback address and be addressed to one,
// or to localhost, so that DNS rebinding cannot pass a page of another
// site for a local one. Use it only where every local user and program
// may move the circuits, as on a developer's machine.
func FromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return false
	}
	name := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

// authorized asks authorize; a panic refuses.
func (h *handler) authorized(r *http.Request) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return h.authorize(r)
}
