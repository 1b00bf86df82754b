package breakerhttp

import (
	"bufio"
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
// default they are the 5xx codes.
func WithStatusFailure(isFailure func(code int) bool) MiddlewareOption {
	return func(m *middleware) { m.isFailure = isFailure }
}

// Middleware protects a handler chain with b. A request that b refuses is
// answered 503 Service Unavailable with a Retry-After header giving the
// seconds until the next probe, when that is known, and never reaches the
// handler. For the others the status code the handler writes (200 if none)
// decides the outcome; a handler that panics is a failure, and its panic
// goes on up. A failing request whose client has gone away is recorded
// with the context's error, so that the breaker's default IsIgnored leaves
// cancelled requests out.
func Middleware(b Guard, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	m := &middleware{b: b, isFailure: func(code int) bool { return code >= 500 }}
	for _, o := range opts {
		o(m)
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
}

// errPanicked is recorded for a handler that panicked.
var errPanicked = errors.New("breakerhttp: handler panicked")

func (m *middleware) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	done, err := m.b.Allow()
	if err != nil {
		m.refuse(w, err)
		return
	}
	rec := &recorder{ResponseWriter: w}
	returned := false
	defer func() {
		if !returned {
			done(errPanicked)
		}
	}()
	next.ServeHTTP(rec, r)
	returned = true
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	switch {
	case !m.isFailure(code):
		done(nil)
	case r.Context().Err() != nil:
		done(r.Context().Err())
	default:
		done(&StatusError{Code: code})
	}
}

func (m *middleware) refuse(w http.ResponseWriter, err error) {
	if errors.Is(err, breaker.ErrTooManyCalls) {
		w.Header().Set("Retry-After", "1")
	} else if wait := m.b.Metrics().RetryAfter; wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	}
	http.Error(w, http.StatusText(http.StatusServiceUnavailable)+": "+err.Error(), http.StatusServiceUnavailable)
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
	r.code = http.StatusSwitchingProtocols
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
