package breakergrpc

import (
	"context"

	"google.golang.org/grpc/codes"

	"github.com/seed18491788/breaker"
)

// DefaultMaxCircuits bounds the registry an interceptor makes for itself
// when it is given none: past it, the breakers used least recently are
// dropped.
const DefaultMaxCircuits = 1000

// maxCode is the greatest of gRPC's canonical codes, Unauthenticated.
const maxCode = codes.Unauthenticated

// defaultFailureCodes are the codes that say the service is in trouble
// rather than the call at fault.
var defaultFailureCodes = codeSet(0).with(
	codes.Unavailable,
	codes.DeadlineExceeded,
	codes.ResourceExhausted,
	codes.Internal,
	codes.Unknown,
)

// DefaultFailureCodes returns the codes that count as failures without
// WithFailureCodes or WithFailure: Unknown, DeadlineExceeded,
// ResourceExhausted, Internal and Unavailable. It returns a new slice
// each time, for the caller to add to.
func DefaultFailureCodes() []codes.Code { return defaultFailureCodes.codes() }

// KeyFunc names the breaker a call goes through, from the call's context,
// its ClientConn's target (cc.Target(); empty on the server) and its full
// method, "/pkg.Service/Method". A call whose key a registry holds with
// another result type fails with code Internal.
type KeyFunc func(ctx context.Context, target, method string) string

// Method keys a breaker per full method: the default.
func Method(_ context.Context, _, method string) string { return method }

// Target keys a breaker per ClientConn target, such as
// "dns:///inventory:443", so that every method of a service shares one.
// On the server, where there is no target, it keys by method, as Method.
func Target(_ context.Context, target, method string) string {
	if target == "" {
		return method
	}
	return target
}

// Option configures an interceptor. A nil Option is ignored.
type Option func(*guard)

// WithKey names the breaker each call goes through; see KeyFunc. By
// default, and with a nil key, it is Method.
func WithKey(key KeyFunc) Option {
	return func(g *guard) {
		if key == nil {
			key = Method
		}
		g.key = key
	}
}

// WithFailureCodes makes the calls that end with one of cs failures, in
// place of DefaultFailureCodes; every other code is a success, Canceled
// aside, which is always left out. Codes that cannot be a failure are
// dropped: OK, Canceled, and any code above Unauthenticated (16), the last
// of gRPC's canonical codes. No codes at all means no call fails. It
// replaces an earlier WithFailure.
func WithFailureCodes(cs ...codes.Code) Option {
	set := codeSet(0).with(cs...)
	return func(g *guard) { g.failures, g.isFailure = set, nil }
}

// WithFailure decides which calls are failures from the error they ended
// with, as the invoker or the handler returned it. f is asked only
// for a non-nil error whose code is not Canceled; those are always left
// out. A panic in f makes the call a failure, recorded before the panic
// goes on up to the caller; on the goroutine that records a client stream
// whose context is done, where no caller could recover it, the panic is
// logged instead. It replaces an earlier WithFailureCodes; a nil f
// restores the default codes.
func WithFailure(f func(error) bool) Option {
	return func(g *guard) { g.failures, g.isFailure = defaultFailureCodes, f }
}

// WithNameInMessage adds the breaker's name to the message of a refused
// call. By default the message is generic ("breakergrpc: circuit open"),
// so that a server does not tell its clients how it names its breakers,
// which may include its own method names or its upstreams' targets. The
// client's refusal names its breaker anyway through the
// *breaker.RejectedError it wraps.
func WithNameInMessage() Option {
	return func(g *guard) { g.showName = true }
}

// guard is what the four interceptors share: where their breakers come
// from and how a call's end is judged.
type guard struct {
	reg       *breaker.Registry
	key       KeyFunc
	failures  codeSet
	isFailure func(error) bool // in place of failures; nil without WithFailure
	showName  bool
}

func newGuard(reg *breaker.Registry, opts []Option) *guard {
	g := &guard{reg: reg, key: Method, failures: defaultFailureCodes}
	for _, o := range opts {
		if o != nil {
			o(g)
		}
	}
	if g.reg == nil {
		g.reg, _ = breaker.NewRegistry(breaker.Config{}, breaker.WithMaxCircuits(DefaultMaxCircuits)) // the zero Config is valid
	}
	return g
}

// breaker returns the breaker of the call.
func (g *guard) breaker(ctx context.Context, target, method string) (*breaker.Breaker[struct{}], error) {
	return breaker.Get[struct{}](g.reg, g.key(ctx, target, method))
}

// codeSet is a set of the canonical codes that can be failures.
type codeSet uint32

// with returns s with cs added, those that cannot be failures left out.
func (s codeSet) with(cs ...codes.Code) codeSet {
	for _, c := range cs {
		if c != codes.OK && c != codes.Canceled && c <= maxCode {
			s |= 1 << c
		}
	}
	return s
}

func (s codeSet) has(c codes.Code) bool { return c <= maxCode && s&(1<<c) != 0 }

func (s codeSet) codes() []codes.Code {
	var out []codes.Code
	for c := codes.OK; c <= maxCode; c++ {
		if s.has(c) {
			out = append(out, c)
		}
	}
	return out
}
