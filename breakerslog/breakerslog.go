// Package breakerslog logs what breakers do with log/slog: each state
// change, with the breaker's name, the states left and entered and the
// reason, and, if asked, a sample of the calls refused.
//
//	l := breakerslog.New(slog.Default())
//	reg, _ := breaker.NewRegistry(breaker.Config{Listeners: []breaker.Listener{l}})
//
// By default a Listener hears state events only (breaker.StateEvents), so
// it costs the closed and open paths nothing.
package breakerslog

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync/atomic"

	"github.com/seed18491788/breaker"
)

// Option configures New.
type Option func(*Listener)

// WithRefusals also logs refused calls, one in every n, so that an open
// circuit under load writes a line now and then, not one per call. The
// count is kept per breaker name in a fixed table of 256 counters, so
// memory stays flat however many breakers there are; names that share a
// counter share its sample. Each line's "sampled" is n. n < 1 is taken as
// 1. Refusals are logged at slog.LevelDebug.
func WithRefusals(n int) Option {
	return func(l *Listener) { l.every = uint64(max(n, 1)) }
}

// WithContext sets the context passed to the logger. Default
// context.Background().
func WithContext(ctx context.Context) Option {
	return func(l *Listener) { l.ctx = ctx }
}

// Listener logs breaker events. It is safe for concurrent use.
type Listener struct {
	logger *slog.Logger
	ctx    context.Context
	every  uint64 // log one refusal in every; 0: none
	seed   maphash.Seed
	counts [256]atomic.Uint64 // refusals, by a hash of the breaker's name
}

// New returns a Listener that logs to logger (slog.Default() if nil).
func New(logger *slog.Logger, opts ...Option) *Listener {
	if logger == nil {
		logger = slog.Default()
	}
	l := &Listener{logger: logger, ctx: context.Background(), seed: maphash.MakeSeed()}
	for _, o := range opts {
		if o != nil {
			o(l)
		}
	}
	return l
}

// EventMask returns the kinds the Listener hears: state events, and
// refusals with WithRefusals.
func (l *Listener) EventMask() breaker.EventMask {
	if l.every > 0 {
		return breaker.StateEvents | breaker.Mask(breaker.EventRejected)
	}
	return breaker.StateEvents
}

// OnEvent logs e. A change to open or forced open, and a detached store,
// are logged at slog.LevelWarn; other state events at slog.LevelInfo.
func (l *Listener) OnEvent(e breaker.Event) {
	switch e.Kind {
	case breaker.EventStateChange:
		level := slog.LevelInfo
		if e.To == breaker.StateOpen || e.To == breaker.StateForcedOpen {
			level = slog.LevelWarn
		}
		l.logger.LogAttrs(l.ctx, level, "circuit breaker state change",
			slog.String("breaker", e.Breaker),
			slog.String("from", e.From.String()),
			slog.String("to", e.To.String()),
			slog.String("reason", e.Reason.String()),
			slog.String("reason_kind", e.Reason.Kind.String()),
		)
	case breaker.EventDetached:
		l.logger.LogAttrs(l.ctx, slog.LevelWarn, "circuit breaker store unreachable",
			slog.String("breaker", e.Breaker), slog.Any("error", e.Err))
	case breaker.EventAttached:
		l.logger.LogAttrs(l.ctx, slog.LevelInfo, "circuit breaker store reachable",
			slog.String("breaker", e.Breaker))
	case breaker.EventRejected:
		l.refused(e)
	}
}

// refused logs a sample of the refusals.
func (l *Listener) refused(e breaker.Event) {
	if l.every == 0 {
		return
	}
	n := l.counts[maphash.String(l.seed, e.Breaker)%uint64(len(l.counts))].Add(1)
	if (n-1)%l.every != 0 {
		return
	}
	attrs := []slog.Attr{
		slog.String("breaker", e.Breaker),
		slog.Uint64("sampled", l.every),
	}
	var re *breaker.RejectedError
	if errors.As(e.Err, &re) {
		attrs = append(attrs, slog.String("state", re.State.String()))
		if !re.RetryAt.IsZero() {
			attrs = append(attrs, slog.Time("retry_at", re.RetryAt))
		}
	}
	l.logger.LogAttrs(l.ctx, slog.LevelDebug, "circuit breaker refused a call", attrs...)
}

var _ breaker.MaskedListener = (*Listener)(nil)
