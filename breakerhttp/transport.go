package breakerhttp

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/seed18491788/breaker"
)

// StatusError is the error a breaker records for an HTTP response that
// counts as a failure, such as a 503. A breaker's IsFailure or IsIgnored
// can match it with errors.As.
type StatusError struct {
	Code int
}

func (e *StatusError) Error() string {
	return "breakerhttp: status " + strconv.Itoa(e.Code) + " " + http.StatusText(e.Code)
}

// TransportOption configures Transport.
type TransportOption func(*transport)

// DefaultMaxHosts bounds the registry a Transport makes for itself: past it,
// the breakers of the hosts used least recently are dropped.
const DefaultMaxHosts = 1000

// WithRegistry takes the breakers from r, so that they can be configured,
// watched (Handler) and shared; bound r (breaker.WithMaxCircuits) if the
// hosts are many. By default the transport has a registry of its own with
// breaker.Config{}, bounded to DefaultMaxHosts breakers.
func WithRegistry(r *breaker.Registry) TransportOption {
	return func(t *transport) { t.reg = r }
}

// WithKey names the breaker a request goes through. By default it is
// Host, the request's host with its port if any; Hostname leaves the port
// out, so that every port of a host shares one breaker. A nil key keeps the
// default.
func WithKey(key func(*http.Request) string) TransportOption {
	return func(t *transport) {
		if key != nil {
			t.key = key
		}
	}
}

// Host returns the request's host, with its port if any: req.URL.Host.
func Host(req *http.Request) string { return req.URL.Host }

// Hostname returns the request's host without its port.
func Hostname(req *http.Request) string { return req.URL.Hostname() }

// WithFailure decides which round trips are failures. By default they are
// the ones that return an error and those answered with a 5xx status. resp
// is nil when err is not. A nil isFailure keeps the default; one that
// panics makes the round trip a failure, and the panic goes on up.
func WithFailure(isFailure func(resp *http.Response, err error) bool) TransportOption {
	return func(t *transport) {
		if isFailure != nil {
			t.isFailure = isFailure
		}
	}
}

// Transport returns an http.RoundTripper that sends each request through
// next (http.DefaultTransport if nil) guarded by a breaker. A refused
// request gets the breaker's error, which matches breaker.ErrOpen or
// breaker.ErrTooManyCalls, without touching the network. The outcome is
// recorded when the response headers arrive: the body is passed on as it
// is, for the caller to read and close.
func Transport(next http.RoundTripper, opts ...TransportOption) http.RoundTripper {
	t := &transport{next: next, key: Host, isFailure: defaultFailure}
	for _, o := range opts {
		if o != nil {
			o(t)
		}
	}
	if t.next == nil {
		t.next = http.DefaultTransport
	}
	if t.reg == nil {
		t.reg, _ = breaker.NewRegistry(breaker.Config{}, breaker.WithMaxCircuits(DefaultMaxHosts)) // the zero Config is valid
	}
	return t
}

type transport struct {
	next      http.RoundTripper
	reg       *breaker.Registry
	key       func(*http.Request) string
	isFailure func(*http.Response, error) bool
}

func defaultFailure(resp *http.Response, err error) bool {
	return err != nil || resp.StatusCode >= http.StatusInternalServerError
}

// errPanicked is recorded for a round trip or a handler that panicked, or
// whose classifier did.
var errPanicked = errors.New("breakerhttp: panicked")

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	b, err := breaker.Get[*http.Response](t.reg, t.key(req))
	if err == nil {
		var done func(error)
		if done, err = b.Allow(); err == nil {
			outcome := errPanicked // until RoundTrip and the classifier return
			defer func() { done(outcome) }()
			resp, err := t.next.RoundTrip(req)
			outcome = t.outcome(resp, err)
			return resp, err
		}
	}
	if req.Body != nil {
		req.Body.Close() // a RoundTripper closes the body, even on errors
	}
	return nil, err
}

// outcome is the error the breaker records for a round trip.
func (t *transport) outcome(resp *http.Response, err error) error {
	switch {
	case !t.isFailure(resp, err):
		return nil
	case err != nil:
		return err
	case resp != nil:
		return &StatusError{Code: resp.StatusCode}
	}
	return &StatusError{}
}
