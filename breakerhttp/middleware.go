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
// goes on up. A request whose client has gone away (its context is
// cancelled, or a write to it failed before the handler panicked with
// http.ErrAbortHandler, as httputil.ReverseProxy does when the client
// leaves mid-stream) is recorded with context.Canceled, which the
// breaker's default IsIgnored leaves out: a client that hangs up says
// nothing of the server. An abort with the client still there (a backend
// behind ReverseProxy that broke off) is a failure, and so is a deadline
// of the server's own that passed (http.TimeoutHandler): the handler was
// too slow.
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
			// ReverseProxy aborts so for a client that left, whose writes
			// fail, and for a backend that broke off, which is a failure.
			if clientLeft(r) || (p == http.ErrAbortHandler && rec.writeFailed) {
				outcome = context.Canceled
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
	case clientLeft(r):
		outcome = context.Canceled
	case m.isFailure(code):
		outcome = &StatusError{Code: code}
	default:
		outcome = nil
	}
}

// clientLeft reports whether r's client went away: its context was
// cancelled, not timed out by a deadline of the server's own (such as
// http.TimeoutHandler's), which says the handler was slow.
func clientLeft(r *http.Request) bool { return errors.Is(r.Context().Err(), context.Canceled) }

func (m *middleware) refuse(w http.ResponseWriter, err error) {
	var rej *breaker.RejectedError
	if errors.Is(err, breaker.ErrTooManyCalls) {
		w.Header().Set("Retry-After", "1")
	} else if errors.As(err, &rej) && rej.RetryAfter() > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rej.RetryAfter().Seconds()))))
	}
	body := http.StatusText(http.StatusServiceUnavailable)
	if m.detail {
		body += ": " + err.Error()
	}
	http.Error(w, body, http.StatusServiceUnavailable)
}

// recorder notes the status code a handler writes, and whether a write to
// the client failed. It passes Flush and Hijack through, and unwraps for
// http.ResponseController.
type recorder struct {
	http.ResponseWriter
	code        int
	writeFailed bool
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
	n, err := r.ResponseWriter.Write(p)
	if err != nil {
		r.writeFailed = true
	}
	return n, err
}

func (r *recorder) Flush() { r.FlushError() }

// FlushError flushes, for http.ResponseController, and notes a failure.
func (r *recorder) FlushError() error {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	err := http.NewResponseController(r.ResponseWriter).Flush()
	if err != nil {
		r.writeFailed = true
	}
	return err
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.code == 0 {
		r.code = http.StatusSwitchingProtocols // a failed Hijack (HTTP/2) leaves the status to come
	}
	return conn, rw, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
