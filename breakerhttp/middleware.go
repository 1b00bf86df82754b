package breakerhttp

import (
	"bufio"
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"

	"github.com/seed18491788/breaker"
)

// Guard is the part of a breaker that Middleware uses. Every
// *breaker.Breaker[T] is a Guard.
type Guard interface {
	Allow() (done func(error), err error)
	Metrics() breaker.Metrics
}

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middleware)

// WithStatusFailure decides which response status codes are failures. By
// default they are the 5xx codes. A nil isFailure keeps the default; one
// that panics makes the request a failure, and the panic goes on up.
func WithStatusFailure(isFailure func(code int) bool) MiddlewareOption {
	return func(m *middleware) {
		if isFailure != nil {
			m.isFailure = isFailure
		}
	}
}

// WithRefusalDetail adds the breaker's error, which names the breaker, to
// the body of the 503 that answers a refused request. By default the body
// is the status text alone, so that callers outside learn nothing of the
// service's insides.
func WithRefusalDetail() MiddlewareOption {
	return func(m *middleware) { m.detail = true }
}

// Middleware protects a handler chain with b. A request that b refuses is
// answered 503 Service Unavailable with a Retry-After header giving the
// seconds until the next probe, when that is known, and never reaches the
// handler. For the others the status code the handler writes (200 if none)
// decides the outcome; a handler that panics is a failure, and its panic
// goes on up. A request whose client has gone away (its context is done,
// or the handler panics with http.ErrAbortHandler, as
// httputil.ReverseProxy does when the client leaves mid-stream) is recorded
// with context.Canceled, which the breaker's default IsIgnored leaves out:
// a client that hangs up says nothing of the server.
func Middleware(b Guard, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	m := &middleware{b: b, isFailure: func(code int) bool { return code >= 500 }}
	for _, o := range opts {
		if o != nil {
			o(m)
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(next, w, r)
		})
	}
}

type middleware struct {
	b         Guard
	isFailure func(code int) bool
	detail    bool
}

func (m *middleware) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	done, err := m.b.Allow()
	if err != nil {
		m.refuse(w, err)
		return
	}
	rec := &recorder{ResponseWriter: w}
	outcome := errPanicked // until the handler and the classifier return
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler || r.Context().Err() != nil {
				outcome = context.Canceled // the client went away
			}
			done(outcome)
			panic(p)
		}
		done(outcome)
	}()
	next.ServeHTTP(rec, r)
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	switch {
	case r.Context().Err() != nil:
		outcome = context.Canceled
	case m.isFailure(code):
		outcome = &StatusError{Code: code}
	default:
		outcome = nil
	}
}

func (m *middleware) refuse(w http.ResponseWriter, err error) {
	if errors.Is(err, breaker.ErrTooManyCalls) {
		w.Header().Set("Retry-After", "1")
	} else if wait := m.b.Metrics().RetryAfter; wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	}
	body := http.StatusText(http.StatusServiceUnavailable)
	if m.detail {
		body += ": " + err.Error()
	}
	http.Error(w, body, http.StatusServiceUnavailable)
}

// recorder notes the status code a handler writes. It passes Flush and
// Hijack through, and unwraps for http.ResponseController.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 && code >= 200 { // 1xx responses are not the final status
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.code == 0 {
		r.code = http.StatusSwitchingProtocols // a failed Hijack (HTTP/2) leaves the status to come
	}
	return conn, rw, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
