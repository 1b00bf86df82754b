package redisstate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed18491788/breaker"
)

// member is one breaker's link to the fleet: the breaker's Peer.
type member struct {
	s       *Store
	name    string
	cfg     breaker.Config
	local   *breaker.Local
	keys    []string // the state hash and the window hash
	channel string
	layout  string // the window, as the fleet stores it
	id      string // this member's, among the fleet's: its pushes count once

	applyMu sync.Mutex  // one Apply at a time, in epoch order
	left    atomic.Bool // the breaker left the fleet (Leave)
	hinted  atomic.Bool // a published change waits for the Store to read it

	mu      sync.Mutex
	link    int32          // this member's own: unknown, attached or detached
	synced  bool           // it has synced once since it joined
	base    breaker.Totals // the counts already pushed or kept, or left out
	renewed time.Time      // when a sync last renewed the keys' TTL
	seq     uint64         // the last push's
	taken   time.Time      // when the counts not pushed yet began
	// takenEpoch is the latest fleet epoch the breaker followed when they
	// began, or since (a change it follows starts them afresh).
	takenEpoch int64
	kept       []push // counts made while cut off, oldest first
	epoch      int64  // the fleet's last change this breaker follows
	// trialEpoch is the epoch of the last permit granted.
	trialEpoch int64
	// pending is a ForceOpen, Disable or Reset not proposed yet (made
	// while cut off, or whose proposal failed), the told-th change.
	pending     *breaker.Change
	pendingTold uint64
	// told counts the breaker's own changes, proposed those of them the
	// Store has proposed to the fleet (or given up on). While proposed is
	// behind, the breaker has moved on from any fleet state read so far:
	// following one would undo its newer change, whose own proposal brings
	// breaker and fleet together.
	told, proposed uint64
}

// push is counts for the fleet's window, and when they began. Its
// seq, one more for each push of the member, lets the fleet add it once:
// a push whose command may have run though its answer was lost (sent) is
// pushed again, and the fleet skips it if it has seen its seq.
type push struct {
	at    time.Time
	t     breaker.Totals
	seq   uint64
	epoch int64 // the latest fleet epoch known when the counts began
	sent  bool
}

// maxKept bounds the counts a member keeps while cut off: they are merged
// into at most this many pushes over the window.
const maxKept = 32

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
	if c.Manual && c.To == breaker.StateClosed {
		// A Reset empties the windows: the counts before it are never
		// pushed, even if a sync takes them before it is proposed (or
		// while it waits, cut off), and the counts kept go too.
		m.skip(c.Totals)
	}
	if !m.s.enqueue(report{m: m, kind: changed, change: c, told: told}) {
		// Lost: a manual change waits for the next sync, a trip's counts
		// go with it anyway.
		if c.Manual {
			m.setPending(&c, told)
		} else {
			m.proposedUpTo(told)
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
// CommandTimeout. Cut off, it lets the breaker decide alone.
func (m *member) Permit() bool {
	s := m.s
	if !m.attached() || s.closed.Load() {
		return true
	}
	ctx, cancel := s.timeout()
	defer cancel()
	st, err := m.run1(ctx, claimScript, m.cfg.HalfOpenMaxCalls)
	if err != nil {
		s.enqueue(report{m: m, kind: failed, err: err}) // Local must not be called from here
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

// attached reports whether the member's last command reached the fleet.
func (m *member) attached() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.link == attached
}

// linked records how the member's last command went, tells the breaker's
// listeners when that changes its link (EventDetached with err, or
// EventAttached), and reports whether the member has just come back. It
// runs on the Store's goroutine.
func (m *member) linked(err error) (back bool) {
	m.mu.Lock()
	was := m.link
	if err == nil {
		m.link = attached
	} else {
		m.link = detached
	}
	m.mu.Unlock()
	switch {
	case err == nil && was == detached:
		m.local.Notify(breaker.EventAttached, nil)
		return true
	case err != nil && was != detached:
		m.local.Notify(breaker.EventDetached, err)
	}
	return false
}

// adopt makes the breaker follow the fleet's state st. A state read by the
// Store's goroutine (authoritative: it runs one command at a time, and
// reads every reply before the next) is followed whenever its epoch is
// another than the breaker's, later or, if something reset the fleet's
// keys, earlier; one a Permit read on its own goroutine only if it is
// later. On joining or coming back (first), a state the breaker is in
// already is left alone, so that its window is kept, and so is a circuit
// it opened alone while the fleet stayed closed: it protects itself until
// its own trial calls close it.
func (m *member) adopt(st fleetState, first, authoritative bool) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	if !m.advance(st.epoch, authoritative) || m.behind() {
		return
	}
	if first && st.state != breaker.StateOpen {
		switch local := m.local.State(); {
		case local == st.state:
			return
		case st.state == breaker.StateClosed && (local == breaker.StateOpen || local == breaker.StateHalfOpen):
			return
		}
	}
	m.local.Apply(st.state, st.remaining)
	if st.state == breaker.StateClosed {
		m.skip(m.local.Counts()) // the fleet's window starts afresh, and so does ours
	}
}

// skip leaves the counts up to t out of the fleet's window, and the counts
// kept from before.
func (m *member) skip(t breaker.Totals) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.Calls >= m.base.Calls {
		m.base = t
	}
	m.kept = nil
}

// advance moves the breaker's epoch to epoch and reports whether that is a
// change it has not followed yet: a later epoch, or, authoritative,
// another.
func (m *member) advance(epoch int64, authoritative bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if epoch == m.epoch || (epoch < m.epoch && !authoritative) {
		return false
	}
	m.epoch = epoch
	// The counts from now on know it; an earlier one too (the fleet's keys
	// went back): a Reset there clears to an epoch under those it had.
	m.takenEpoch = epoch
	return true
}

// propose stores the breaker's own manual change c, its told-th, in Redis
// and follows the fleet's answer. A change the fleet took as it is needs
// no Apply: the breaker made it already. Until it is stored, the breaker
// follows no fleet state. It runs on the Store's goroutine.
func (m *member) propose(c breaker.Change, told uint64) {
	// (Changed left the counts from before a Reset out.)
	st, ok := m.run(setScript, int(c.To))
	if !ok {
		m.setPending(&c, told)
		return
	}
	m.proposedUpTo(told)
	if c.To == breaker.StateClosed {
		// The counts kept since the Reset were made after it: they count
		// in the window it emptied.
		m.mu.Lock()
		for i := range m.kept {
			m.kept[i].epoch = max(m.kept[i].epoch, st.epoch)
		}
		m.mu.Unlock()
	}
	if st.state == c.To && m.local.State() == c.To {
		m.applyMu.Lock()
		m.advance(st.epoch, true)
		m.applyMu.Unlock()
		return
	}
	m.adopt(st, false, true)
}

// run runs script with the member's keys and the common arguments before
// extra, on the Store's goroutine, and returns the fleet's state, or false
// if Redis failed it.
func (m *member) run(script script, extra ...any) (fleetState, bool) {
	ctx, cancel := m.s.timeout()
	defer cancel()
	st, err := m.run1(ctx, script, extra...)
	m.linked(err)
	return st, err == nil
}

// run1 runs script for the member alone and reads its answer.
func (m *member) run1(ctx context.Context, script script, extra ...any) (fleetState, error) {
	v, err := script.Run(ctx, m.s.rdb, m.keys, m.args(extra...)...).Slice()
	if err != nil {
		return fleetState{}, err
	}
	if len(v) != 1 {
		return fleetState{}, fmt.Errorf("redisstate: %d answers to a script for one breaker", len(v))
	}
	return m.parse(v[0])
}

func (m *member) setPending(c *breaker.Change, told uint64) {
	m.mu.Lock()
	if told >= m.pendingTold {
		m.pending, m.pendingTold = c, told
	}
	m.mu.Unlock()
}

// proposePending proposes the manual change not proposed yet, if any, and
// reports whether there was one. (A trip the breaker made alone is only
// counts, which the syncs push.)
func (m *member) proposePending() bool {
	m.mu.Lock()
	p, told := m.pending, m.pendingTold
	m.pending = nil
	m.mu.Unlock()
	if p == nil {
		return false
	}
	m.propose(*p, told)
	return true
}

// args returns the scripts' common arguments followed by extra, renewing
// the keys' TTL.
func (m *member) args(extra ...any) []any { return m.appendArgs(nil, true, extra...) }

// appendArgs appends the scripts' common arguments and extra to args.
func (m *member) appendArgs(args []any, renew bool, extra ...any) []any {
	flag := 0
	if renew {
		flag = 1
	}
	return append(append(args,
		m.channel,
		m.s.opts.KeyTTL.Milliseconds(),
		ceilMS(m.cfg.OpenTimeout),
		ceilMS(m.cfg.MaxOpenTimeout),
		ceilMS(m.s.opts.TrialTimeout),
		m.layout,
		flag,
	), extra...)
}

// renewDue reports whether the member's keys are due to have their TTL
// renewed: a sync renews them once a quarter of KeyTTL, not every time.
func (m *member) renewDue(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return now.Sub(m.renewed) >= m.s.opts.KeyTTL/4
}

// renewedAt records a sync that renewed the keys' TTL.
func (m *member) renewedAt(t time.Time) {
	m.mu.Lock()
	m.renewed = t
	m.mu.Unlock()
}

// take returns the counts to push: those kept while cut off, and those
// made since the last push. With none of either, it returns one empty
// push, which reads the fleet's state.
func (m *member) take() []push {
	now := m.local.Counts()
	m.mu.Lock()
	defer m.mu.Unlock()
	d := breaker.Totals{
		Calls:     now.Calls - min(m.base.Calls, now.Calls),
		Failures:  now.Failures - min(m.base.Failures, now.Failures),
		SlowCalls: now.SlowCalls - min(m.base.SlowCalls, now.SlowCalls),
	}
	if now.Calls >= m.base.Calls {
		m.base = now // (a Reset may have moved it past this reading)
	}
	begun, under := m.taken, m.takenEpoch
	m.taken = time.Now()
	out := m.kept
	m.kept = nil
	if d.Calls > 0 || len(out) == 0 {
		m.seq++
		out = append(out, push{at: begun, t: d, seq: m.seq, epoch: under})
	}
	return out
}

// keep takes back pushes that did not reach Redis, to push later with
// their age; sent tells that their command may have run. Those older than
// the window are dropped, and the rest merged into at most maxKept, but
// never a push that may have counted: the fleet may skip it, by its seq.
func (m *member) keep(ps []push, sent bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	width := max(m.cfg.BucketDuration, m.cfg.WindowDuration/maxKept, time.Millisecond)
	for i := range ps {
		ps[i].sent = ps[i].sent || sent
	}
	all := append(m.kept, ps...)
	m.kept = m.kept[:0:0]
	for _, p := range all {
		if p.t.Calls == 0 || time.Since(p.at) > m.cfg.WindowDuration {
			continue
		}
		if n := len(m.kept); n > 0 && !p.sent && !m.kept[n-1].sent && p.at.Sub(m.kept[n-1].at) < width {
			last := &m.kept[n-1]
			last.t.Calls += p.t.Calls
			last.t.Failures += p.t.Failures
			last.t.SlowCalls += p.t.SlowCalls
			last.seq = max(last.seq, p.seq)
			last.epoch = min(last.epoch, p.epoch)
			continue
		}
		m.kept = append(m.kept, p)
	}
	if n := len(m.kept); n > maxKept {
		m.kept = m.kept[n-maxKept:]
	}
}

// syncArgs appends the sync script's arguments for p to args.
func (m *member) syncArgs(args []any, p push, renew bool) []any {
	slowRate := 0.0
	if m.cfg.SlowCallDuration > 0 {
		slowRate = m.cfg.SlowCallRateThreshold
	}
	return m.appendArgs(args, renew, p.t.Calls, p.t.Failures, p.t.SlowCalls,
		max(ceilMS(m.cfg.BucketDuration), 1), max(ceilMS(m.cfg.WindowDuration), 1),
		m.cfg.MinimumCalls, m.cfg.FailureRateThreshold, slowRate,
		max(time.Since(p.at).Milliseconds(), 0), m.id, p.seq, p.epoch)
}

// ceilMS is d in whole milliseconds, rounded up.
func ceilMS(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// layoutOf returns the fleet's record of cfg's window: every breaker of a
// fleet must have the same.
func layoutOf(cfg breaker.Config) string {
	size := 0
	if cfg.Window == breaker.CountWindow {
		size = cfg.WindowSize
	}
	return fmt.Sprintf("%s/%d/%d/%d", cfg.Window, size, ceilMS(cfg.WindowDuration), ceilMS(cfg.BucketDuration))
}

// describeLayout puts a layout in words, for an error.
func describeLayout(l string) string {
	f := strings.Split(l, "/")
	if len(f) != 4 {
		return fmt.Sprintf("window %q", l)
	}
	ms := func(s string) string {
		var n int64
		fmt.Sscan(s, &n)
		return (time.Duration(n) * time.Millisecond).String()
	}
	if f[0] == breaker.CountWindow.String() {
		return fmt.Sprintf("a CountWindow of %s calls (fleet window %s in %s buckets)", f[1], ms(f[2]), ms(f[3]))
	}
	return fmt.Sprintf("a %s of %s in %s buckets", f[0], ms(f[2]), ms(f[3]))
}

// ErrConfigMismatch matches (errors.Is) the error of a breaker whose
// window is another than its fleet's.
var ErrConfigMismatch = errors.New("redisstate: window config differs from the fleet's")

// ConfigMismatchError is the error of a breaker joining a fleet whose
// window is another than its own: New returns it when the Store can tell
// at once, and otherwise the breaker's listeners hear it with
// EventDetached, and it acts alone, keeping its counts.
type ConfigMismatchError struct {
	Name          string
	Fleet, Config string // the two windows, in words
}

func (e *ConfigMismatchError) Error() string {
	return fmt.Sprintf("redisstate: breaker %q has %s, its fleet %s: the breakers of a fleet share one window (give the new config a new name, or Forget the fleet's keys)",
		e.Name, e.Config, e.Fleet)
}

// Unwrap returns ErrConfigMismatch.
func (e *ConfigMismatchError) Unwrap() error { return ErrConfigMismatch }

// parse reads a script's answer for the member's entry and checks it: an
// error, an answer of another shape, or figures out of range are errors,
// so that what Redis holds never puts the breaker in a state that is none.
func (m *member) parse(v any) (fleetState, error) {
	var r [4]int64
	switch v := v.(type) {
	case string:
		if fleet, ok := strings.CutPrefix(v, "BREAKERCONFIG "); ok {
			return fleetState{}, &ConfigMismatchError{Name: m.name, Fleet: describeLayout(fleet), Config: describeLayout(m.layout)}
		}
		return fleetState{}, fmt.Errorf("redisstate: breaker %q: %s", m.name, v)
	case []any:
		if len(v) != len(r) {
			return fleetState{}, fmt.Errorf("redisstate: unexpected script answer %v", v)
		}
		for i, x := range v {
			n, ok := x.(int64)
			if !ok {
				return fleetState{}, fmt.Errorf("redisstate: unexpected script answer %v", v)
			}
			r[i] = n
		}
	default:
		return fleetState{}, fmt.Errorf("redisstate: unexpected script answer %v", v)
	}
	st := fleetState{epoch: r[0], state: breaker.State(r[1]), remaining: time.Duration(r[2]) * time.Millisecond, extra: r[3]}
	switch {
	case st.epoch <= 0, r[1] < 0 || st.state > breaker.StateDisabled, r[2] < 0 || r[2] > maxRemaining.Milliseconds(), r[3] < 0:
		return fleetState{}, fmt.Errorf("redisstate: script answer %v out of range", r)
	}
	return st, nil
}

// maxRemaining bounds the open time a reply may give.
const maxRemaining = 365 * 24 * time.Hour

var _ breaker.Peer = (*member)(nil)
