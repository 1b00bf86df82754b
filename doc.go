// Package breaker is a circuit breaker: it watches the calls a service makes
// to a dependency and, when too many fail or run slow, cuts the dependency
// off for a while, so that callers fail fast instead of queueing behind it.
//
// A Breaker starts closed: every call is made and its outcome recorded in a
// sliding window, either the last N calls (CountWindow) or the calls of the
// last D (TimeWindow). When, over at least MinimumCalls calls, the failure
// rate or the slow-call rate reaches its threshold, or ConsecutiveFailures
// failures come in a row, the circuit opens: calls are refused with ErrOpen
// without being made. Once OpenTimeout has passed the circuit is half-open
// and admits up to HalfOpenMaxCalls trial calls; SuccessThreshold successes
// close it with a fresh window, and a failure opens it again, with an
// exponential back-off when MaxOpenTimeout is set. ForceOpen and Disable
// override the state until Reset.
//
// The breaker starts no goroutines and no timers: the move from open to
// half-open is a comparison with the Clock, made when the breaker is next
// used. Metrics reports the window and, in Lifetime, counts since New that
// calls keep anyway and that are read without the lock: metrics systems
// read them when they collect (see Attacher and CircuitSet) instead of
// hearing every call.
// Listeners receive outcomes, rejections and state changes, each call
// delivering its own event; a MaskedListener hears only the kinds it wants,
// and a listener of state changes alone costs calls nothing. A Registry
// holds named breakers of any result type, and Config.Shared links the
// breakers of one name across processes through a store (see SharedState).
//
// A Breaker is safe for concurrent use by multiple goroutines.
package breaker
