package redisstate

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed18491788/breaker"
)

// member is one breaker's link to the fleet: the breaker's Peer.
type member struct {
	s       *Store
	cfg     breaker.Config
	local   *breaker.Local
	keys    []string // the state hash and the window hash
	channel string

	applyMu sync.Mutex  // one Apply at a time, in epoch order
	left    atomic.Bool // the breaker left the fleet (Leave)

	mu         sync.Mutex
	base       breaker.Totals  // the counts already in the fleet's window, or left out of it
	epoch      int64           // the fleet's last change this breaker follows
	trialEpoch int64           // the epoch of the last permit granted
	pending    *breaker.Change // a ForceOpen, Disable or Reset made while detached
	// told counts the breaker's own changes, proposed those of them the
	// Store has proposed to the fleet (or given up on). While proposed is
	// behind, the breaker has moved on from any fleet state read so far:
	// following one would undo its newer change, whose own proposal brings
	// breaker and fleet together.
	told, proposed uint64
}

// Leave takes the member out of its Store: the Store stops syncing it and
// drops what it still had queued for it.
func (m *member) Leave() {
	s := m.s
	m.left.Store(true)
	s.mu.Lock()
	ms := slices.DeleteFunc(slices.Clone(s.members[m.channel]), func(x *member) bool { return x == m })
	if len(ms) == 0 {
		delete(s.members, m.channel)
	} else {
		s.members[m.channel] = ms
	}
	s.mu.Unlock()
	if len(ms) > 0 || s.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.CommandTimeout)
	defer cancel()
	_ = s.pubsub.Unsubscribe(ctx, m.channel) // on failure, a message now and then finds no member
	s.mu.Lock()
	rejoined := len(s.members[m.channel]) > 0 // a Join of the name came in meanwhile
	s.mu.Unlock()
	if rejoined {
		_ = s.pubsub.Subscribe(ctx, m.channel)
	}
}

// Changed queues the breaker's own change for the fleet.
func (m *member) Changed(c breaker.Change) {
	m.mu.Lock()
	m.told++
	told := m.told
	m.mu.Unlock()
	if !m.s.enqueue(report{m: m, kind: changed, change: c, told: told}) {
		m.proposedUpTo(told) // lost: a manual change is kept for rejoin
		if c.Manual {
			m.setPending(&c)
		}
	}
}

// proposedUpTo notes that the breaker's changes up to told were proposed.
func (m *member) proposedUpTo(told uint64) {
	m.mu.Lock()
	m.proposed = max(m.proposed, told)
	m.mu.Unlock()
}

// behind reports whether the breaker has changes not proposed yet.
func (m *member) behind() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proposed < m.told
}

// TrialDone queues the end of a trial call for the fleet.
func (m *member) TrialDone(kind breaker.EventKind, slow bool) {
	outcome := "s"
	switch {
	case kind == breaker.EventIgnored:
		outcome = "i"
	case kind == breaker.EventFailure || slow:
		outcome = "f"
	}
	m.mu.Lock()
	epoch := m.trialEpoch
	m.mu.Unlock()
	m.s.enqueue(report{m: m, kind: trial, trial: outcome, epoch: epoch})
}

// Permit asks Redis for one of the fleet's trial permits, waiting at most
// CommandTimeout. Detached, it lets the breaker decide alone.
func (m *member) Permit() bool {
	s := m.s
	if !s.attached() {
		return true
	}
	ctx, cancel := s.timeout()
	defer cancel()
	st, err := parse(claimScript.Run(ctx, s.rdb, m.keys, m.args(m.cfg.HalfOpenMaxCalls)...))
	if err != nil {
		s.failed(err)
		return true
	}
	granted := st.extra == 1
	if granted {
		m.mu.Lock()
		m.trialEpoch = st.epoch
		m.mu.Unlock()
	}
	s.enqueue(report{m: m, kind: observed, fleet: st})
	return granted
}

// adopt makes the breaker follow the fleet's state st, unless it follows
// that change or a later one already. On joining (first), a state the
// breaker is in already is left alone, so that its window is kept.
func (m *member) adopt(st fleetState, first bool) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	if !m.advance(st.epoch) || m.behind() {
		return
	}
	if first && st.state != breaker.StateOpen && m.local.State() == st.state {
		return
	}
	m.local.Apply(st.state, st.remaining)
	if st.state == breaker.StateClosed {
		m.skip(m.local.Counts()) // the fleet's window starts afresh, and so does ours
	}
}

// skip leaves the counts up to t out of the fleet's window.
func (m *member) skip(t breaker.Totals) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.Calls >= m.base.Calls {
		m.base = t
	}
}

// advance moves the breaker's epoch to epoch and reports whether that is a
// change it has not followed yet.
func (m *member) advance(epoch int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if epoch <= m.epoch {
		return false
	}
	m.epoch = epoch
	return true
}

// propose stores the breaker's own change c, its told-th, in Redis and
// follows the fleet's answer. A manual change the fleet took as it is needs
// no Apply: the breaker made it already.
func (m *member) propose(c breaker.Change, told uint64) {
	defer m.proposedUpTo(told)
	manual := 0
	if c.Manual {
		manual = 1
	}
	if c.Manual && c.To == breaker.StateClosed {
		m.skip(c.Totals) // a Reset empties the windows: counts from before it are not sent
	}
	st, ok := m.run(setScript, int(c.To), manual)
	if !ok {
		if c.Manual {
			m.setPending(&c)
		}
		return
	}
	m.proposedUpTo(told)
	if c.Manual && st.state == c.To && m.local.State() == c.To {
		m.applyMu.Lock()
		m.advance(st.epoch)
		m.applyMu.Unlock()
		return
	}
	m.adopt(st, false)
}

// run runs script with the member's keys and the common arguments before
// extra, and returns the fleet's state, or false if Redis failed.
func (m *member) run(script *redis.Script, extra ...any) (fleetState, bool) {
	ctx, cancel := m.s.timeout()
	defer cancel()
	st, err := parse(script.Run(ctx, m.s.rdb, m.keys, m.args(extra...)...))
	if err != nil {
		m.s.failed(err)
		return fleetState{}, false
	}
	return st, true
}

func (m *member) setPending(c *breaker.Change) {
	m.mu.Lock()
	m.pending = c
	m.mu.Unlock()
}

// rejoin tells the fleet what the breaker did while detached: its last
// manual change, or else a trip it made alone.
func (m *member) rejoin() {
	m.mu.Lock()
	p := m.pending
	m.pending = nil
	m.mu.Unlock()
	m.mu.Lock()
	told := m.told
	m.mu.Unlock()
	switch {
	case p != nil:
		m.propose(*p, told)
	case m.local.State() == breaker.StateOpen:
		m.propose(breaker.Change{From: breaker.StateClosed, To: breaker.StateOpen}, told)
	}
}

// args returns the scripts' common arguments followed by extra.
func (m *member) args(extra ...any) []any {
	return append([]any{
		m.channel,
		m.s.opts.KeyTTL.Milliseconds(),
		ceilMS(m.cfg.OpenTimeout),
		ceilMS(m.cfg.MaxOpenTimeout),
		ceilMS(m.s.opts.TrialTimeout),
	}, extra...)
}

// syncArgs returns the sync script's arguments: the counts since the last
// sync, or none with drop.
func (m *member) syncArgs(drop bool) []any {
	now := m.local.Counts()
	m.mu.Lock()
	d := breaker.Totals{
		Calls:     now.Calls - min(m.base.Calls, now.Calls),
		Failures:  now.Failures - min(m.base.Failures, now.Failures),
		SlowCalls: now.SlowCalls - min(m.base.SlowCalls, now.SlowCalls),
	}
	m.base = now
	m.mu.Unlock()
	if drop {
		d = breaker.Totals{}
	}
	slowRate := 0.0
	if m.cfg.SlowCallDuration > 0 {
		slowRate = m.cfg.SlowCallRateThreshold
	}
	return m.args(d.Calls, d.Failures, d.SlowCalls,
		max(ceilMS(m.cfg.BucketDuration), 1), max(ceilMS(m.cfg.WindowDuration), 1),
		m.cfg.MinimumCalls, m.cfg.FailureRateThreshold, slowRate)
}

// ceilMS is d in whole milliseconds, rounded up.
func ceilMS(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

var _ breaker.Peer = (*member)(nil)
