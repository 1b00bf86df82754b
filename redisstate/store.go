// Package redisstate shares breaker state across a fleet of instances
// through Redis (one server, Sentinel or a Redis Cluster), so that every
// instance sees the same state, failures are judged over the fleet's
// aggregate, and the fleet as a whole sends a failing dependency at most
// HalfOpenMaxCalls trial calls per half-open period. A Store is a
// breaker.SharedState:
//
//	store, err := redisstate.New(&redis.UniversalOptions{Addrs: []string{"redis:6379"}}, redisstate.Options{})
//	defer store.Close()
//	b, err := breaker.New[T]("payments", breaker.Config{Shared: store})
//
// Calls never wait for Redis on the closed and open paths: each breaker
// counts locally, and every SyncInterval the store pushes the counts of
// all its breakers into a time-bucketed window per name in Redis, where a
// Lua script adds them and judges the fleet's aggregate, by the Redis
// server's clock. One script carries a chunk of breakers (on a Cluster, a
// pipeline of one script per breaker), so a Store syncs thousands of names
// per round; a push counts once, even when its answer was lost and it is
// pushed again.
//
// The fleet opens when its window says so, and only then. A breaker whose
// own calls fail may trip on its own window (or on ConsecutiveFailures or
// a TripRule, which only it sees) and protect its instance, but that does
// not open the fleet while the fleet's aggregate is under the threshold.
// The fleet's trips, closes and every ForceOpen, Disable or Reset are
// stored in Redis and published; a message is only a hint to read the
// state again, so instances follow at once, and within one SyncInterval if
// a message is lost. Only a half-open trial call asks Redis for a permit
// first, bounded by CommandTimeout.
//
// The breakers of one name share one window: the first to join stores its
// window type, size and bucket width, and New fails with a
// ConfigMismatchError for a breaker that differs (Store.Forget starts a
// name again).
//
// Everything read from Redis is checked: a state hash that is not what
// the scripts write starts again, closed, a window field that is not a
// count is dropped, and a reply out of range is an error. A command that
// fails for one name (a key of the wrong type, a Cluster node down) cuts
// off that name only. A breaker cut off acts alone with its own window,
// its listeners hear EventDetached with the reason, and no call waits for
// Redis longer than CommandTimeout; its counts are kept, and those still
// inside the window reach the fleet when it is back (EventAttached). Keys
// carry a TTL, so abandoned breakers vanish; Registry.Remove stops a
// breaker's syncing.
package redisstate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed18491788/breaker"
)

// Defaults for the zero values of Options.
const (
	DefaultPrefix         = "breaker"
	DefaultSyncInterval   = 100 * time.Millisecond
	DefaultCommandTimeout = 50 * time.Millisecond
	DefaultKeyTTL         = 24 * time.Hour
	DefaultTrialTimeout   = 10 * time.Second
)

// Options tunes a Store. The zero value of every field means its default.
type Options struct {
	// Prefix starts every key and channel name. Default DefaultPrefix.
	Prefix string
	// SyncInterval is how often local counts are pushed and the fleet's
	// state read back. Default DefaultSyncInterval.
	SyncInterval time.Duration
	// CommandTimeout bounds every Redis command a call can wait for (a
	// half-open trial call's permit) and every other but the syncs: each
	// chunk of a sync, which no call waits for, may take until the next is
	// due, the longer of CommandTimeout and SyncInterval. Default
	// DefaultCommandTimeout.
	CommandTimeout time.Duration
	// KeyTTL is how long a breaker's keys outlive its last sync. Default
	// DefaultKeyTTL.
	KeyTTL time.Duration
	// TrialTimeout bounds a fleet's half-open period: one that has not
	// closed or reopened by then counts as a failed probe, for trial calls
	// whose ends were lost (an instance crashed) keep their permits.
	// Default DefaultTrialTimeout.
	TrialTimeout time.Duration
}

// ErrClosed is returned by Join on a closed Store.
var ErrClosed = errors.New("redisstate: store closed")

// Store links breakers to the others of their names through Redis. It is
// safe for concurrent use. Close it when done: its goroutines stop, and its
// breakers go on alone.
type Store struct {
	rdb     redis.UniversalClient
	opts    Options
	ctx     context.Context
	cancel  context.CancelFunc
	pubsub  *redis.PubSub
	reports chan report
	wg      sync.WaitGroup
	closed  atomic.Bool
	// link is attached, detached or unknown (before the first command).
	link atomic.Int32

	mu      sync.Mutex
	members map[string][]*member // by channel

	rounds atomic.Int64 // sync rounds done, for the tests
	chunks atomic.Int64 // sync chunks begun, for the tests
}

const (
	unknown int32 = iota
	attached
	detached
)

// New connects a Store to the Redis that opts describe (one server, a
// cluster or Sentinel). The Store makes its own client, whose timeouts it
// bounds by CommandTimeout and whose retries it turns off, so that a slow
// Redis never holds a call up.
func New(opts *redis.UniversalOptions, o Options) (*Store, error) {
	if opts == nil {
		return nil, errors.New("redisstate: nil redis options")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SyncInterval", o.SyncInterval}, {"CommandTimeout", o.CommandTimeout}, {"KeyTTL", o.KeyTTL}, {"TrialTimeout", o.TrialTimeout}} {
		if d.v < 0 {
			return nil, fmt.Errorf("redisstate: %s %v is outside [0, ∞)", d.name, d.v)
		}
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("redisstate: Prefix %q holds a brace: the keys' Redis Cluster hash tags would break", o.Prefix)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.KeyTTL == 0 {
		o.KeyTTL = DefaultKeyTTL
	}
	if o.TrialTimeout == 0 {
		o.TrialTimeout = DefaultTrialTimeout
	}
	ro := *opts
	ro.ContextTimeoutEnabled = true
	ro.MaxRetries = -1
	// A cluster pipeline that retries or follows redirects fails every reply
	// in it when one master is down, and a dead server refuses at once: one
	// dial, no retries. (A name whose slot moved misses one round.)
	ro.MaxRedirects = -1
	ro.DialerRetries = 1
	bound := func(d *time.Duration, limit time.Duration) {
		if *d <= 0 || *d > limit {
			*d = limit
		}
	}
	bound(&ro.DialTimeout, o.CommandTimeout)
	bound(&ro.PoolTimeout, o.CommandTimeout)
	// Reads and writes are bounded by each command's context too:
	// CommandTimeout, or a sync's longer budget.
	bound(&ro.ReadTimeout, o.syncTimeout())
	bound(&ro.WriteTimeout, o.syncTimeout())

	s := &Store{
		rdb:     redis.NewUniversalClient(&ro),
		opts:    o,
		reports: make(chan report, 1024),
		members: map[string][]*member{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pubsub = s.rdb.Subscribe(s.ctx)
	ctx, cancel := s.timeout()
	for _, sc := range scripts {
		sc.Load(ctx, s.rdb) // best effort: EVALSHA falls back if they are missing
	}
	cancel()
	s.wg.Add(2)
	go s.loop()
	go s.listen(s.pubsub.Channel())
	return s, nil
}

// Close stops the Store's goroutines and closes its client. Its breakers
// hear EventDetached and go on alone.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	err := s.pubsub.Close()
	// Closing the client ends a chunk blocked on a Redis that does not
	// answer, whose deadline may be a SyncInterval away.
	err = errors.Join(err, s.rdb.Close())
	s.wg.Wait()
	for _, m := range s.all() {
		m.local.Notify(breaker.EventDetached, ErrClosed)
	}
	return err
}

// Join links a breaker to the others of its name; it makes Store a
// breaker.SharedState. It checks, waiting at most CommandTimeout, that the
// breaker's window is the fleet's: if not, it returns a
// *ConfigMismatchError, which New returns. It does not wait for Redis
// otherwise: when Redis does not answer, the breaker follows the fleet
// from the Store's first sync that reaches it.
func (s *Store) Join(name string, cfg breaker.Config, local *breaker.Local) (breaker.Peer, error) {
	tag := keyTag(s.opts.Prefix, name)
	m := &member{
		s: s, name: name, cfg: cfg, local: local,
		keys:    []string{tag + "state", tag + "window"},
		channel: tag + "events",
		layout:  layoutOf(cfg),
		id:      fmt.Sprintf("%016x", rand.Uint64()),
		taken:   time.Now(),
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if s.link.Load() != detached {
		ctx, cancel := s.timeout()
		st, err := m.run1(ctx, joinScript)
		cancel()
		m.takenEpoch = st.epoch // its first counts begin in the fleet's epoch (0: unknown)
		if mismatch := (*ConfigMismatchError)(nil); errors.As(err, &mismatch) {
			return nil, mismatch
		}
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	first := len(s.members[m.channel]) == 0
	s.members[m.channel] = append(s.members[m.channel], m)
	s.mu.Unlock()
	if first {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.CommandTimeout)
		// On failure the subscription is still kept, and made on reconnection.
		_ = s.pubsub.Subscribe(ctx, m.channel)
		cancel()
	}
	s.enqueue(report{m: m, kind: joined})
	return m, nil
}

// Forget deletes the fleet's keys of the breaker named name: its state and
// window start again at the next sync of any breaker of that name, with
// that breaker's window. Use it to give a fleet a new window once every
// breaker of the old one is gone.
func (s *Store) Forget(ctx context.Context, name string) error {
	tag := keyTag(s.opts.Prefix, name)
	if err := s.rdb.Del(ctx, tag+"state", tag+"window").Err(); err != nil {
		return err
	}
	return s.rdb.Publish(ctx, tag+"events", "0 0 0").Err() // members read again
}

// keyTag returns the start of the keys and the channel of the breaker
// named name: the prefix, a Redis Cluster hash tag made of a hash of the
// name, and the name itself. The tag puts all of a name's keys in one
// slot whatever the name holds ("", braces, kilobytes), and the name,
// after it, keeps the keys readable and distinct.
func keyTag(prefix, name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	return prefix + ":{" + strconv.FormatUint(h.Sum64(), 16) + "}:" + name + ":"
}

// all returns every member.
func (s *Store) all() []*member {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*member
	for _, ms := range s.members {
		out = append(out, ms...)
	}
	return out
}

// timeout returns a context bounded by CommandTimeout.
func (s *Store) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.opts.CommandTimeout)
}

// syncTimeout bounds a chunk of a sync: no call waits for it, and it may
// take until the next round is due, but never less than CommandTimeout.
func (o Options) syncTimeout() time.Duration { return max(o.CommandTimeout, o.SyncInterval) }

// enqueue hands r to the Store's goroutine, never blocking: with the queue
// full, r is dropped, as the next sync reconciles the state anyway.
func (s *Store) enqueue(r report) bool {
	select {
	case s.reports <- r:
		return true
	default:
		return false
	}
}

type reportKind int

const (
	joined   reportKind = iota // a member joined: sync it now
	changed                    // a member's own change
	trial                      // a member's trial call ended
	observed                   // the fleet's state, as seen by a Permit
	failed                     // a Permit's command failed
	hinted                     // the fleet published a change: read it
)

type report struct {
	m      *member
	kind   reportKind
	change breaker.Change
	trial  string // s, f or i
	epoch  int64
	fleet  fleetState
	err    error
	told   uint64 // changed: the breaker's change counter for this change
}

// loop is the Store's goroutine: it handles reports as they come and syncs
// every member each SyncInterval.
func (s *Store) loop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.SyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.reports:
			s.handle(r)
		case <-tick.C:
			s.syncAll()
		}
	}
}

func (s *Store) handle(r report) {
	m := r.m
	if m.left.Load() {
		return // the breaker left the fleet
	}
	switch r.kind {
	case joined:
		if s.link.Load() != detached {
			s.sync([]*member{m})
		}
	case hinted:
		m.hinted.Store(false)
		s.sync([]*member{m})
	case observed:
		m.adopt(r.fleet, false, false)
	case failed:
		m.linked(r.err)
	case changed:
		switch {
		case !r.change.Manual:
			// A trip is the breaker's own: it protects itself, and its
			// counts, pushed now, let the fleet's window decide for all.
			m.proposedUpTo(r.told)
			if m.attached() {
				s.sync([]*member{m})
			}
		case m.attached():
			m.propose(r.change, r.told)
		default:
			m.setPending(&r.change, r.told)
		}
	case trial:
		if !m.attached() {
			return
		}
		if st, ok := m.run(trialScript, r.epoch, r.trial, m.cfg.SuccessThreshold); ok {
			m.adopt(st, false, true)
		}
	}
}

// syncChunk is how many members one command syncs (one pipeline, in a
// Redis Cluster), each bounded by CommandTimeout: a Store of many breakers
// sends several.
const syncChunk = 64

// syncInFlight is how many chunks a round has in flight at once: Redis
// runs one while the Store makes and reads the others.
const syncInFlight = 2

// syncAll pushes every member's counts and reads the fleet's states back.
// When the last round found Redis out of reach, it first checks that Redis
// is back, and meanwhile keeps the counts.
func (s *Store) syncAll() {
	ms := s.all()
	if len(ms) == 0 {
		return
	}
	if s.link.Load() == detached {
		ctx, cancel := s.timeout()
		err := s.rdb.Ping(ctx).Err()
		cancel()
		if err != nil {
			for _, m := range ms {
				m.keep(m.take(), false)
			}
			return
		}
	}
	s.sync(ms)
	s.rounds.Add(1)
}

// sync pushes the counts of ms and reads their fleets' states, a chunk of
// members at a time. Each member's entries stand alone: one that fails (a
// key of the wrong type, a window config of another, a cluster node down)
// cuts that member off, and only that one. A chunk that reaches no Redis
// at all ends the round: the chunks not sent yet keep their counts.
func (s *Store) sync(ms []*member) {
	var (
		wg   sync.WaitGroup
		lost atomic.Bool
		sem  = make(chan struct{}, syncInFlight)
	)
	for i := 0; i < len(ms); i += syncChunk {
		chunk := ms[i:min(i+syncChunk, len(ms))]
		sem <- struct{}{}
		if lost.Load() {
			<-sem
			for _, m := range chunk {
				m.keep(m.take(), false)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !s.syncChunk(chunk) {
				lost.Store(true)
			}
			<-sem
		}()
	}
	wg.Wait()
	if lost.Load() {
		s.link.Store(detached)
	} else {
		s.link.Store(attached)
	}
}

// job is one member's part of a sync: its pushes, the command that carries
// them, and the answers for them.
type job struct {
	m       *member
	pushes  []push
	renew   bool // the first entry renews the keys' TTL
	keys    []string
	args    []any
	cmd     *redis.Cmd
	answers []any
	err     error // the command's own
}

// syncChunk syncs ms, and reports whether Redis answered any of it. On one
// server (or Sentinel) the chunk is one command, one script over all its
// members' entries; in a Redis Cluster, whose scripts see keys of one slot
// only, each member's entries are a command, all in one pipeline.
func (s *Store) syncChunk(ms []*member) bool {
	jobs := make([]*job, len(ms))
	now := time.Now()
	for i, m := range ms {
		// A Reset made while cut off goes first: the counts made since
		// then are pushed into the window it empties, not emptied by it.
		if !m.left.Load() {
			m.proposePending()
		}
		jobs[i] = &job{m: m, pushes: m.take(), renew: m.renewDue(now)}
	}
	_, cluster := s.rdb.(*redis.ClusterClient)
	var keys []string // made before the clock starts
	var args []any
	for _, j := range jobs {
		if cluster {
			j.keys, j.args = j.entries(nil, nil)
		} else {
			keys, args = j.entries(keys, args)
		}
	}
	s.chunks.Add(1)
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.syncTimeout())
		eval := syncScript.EvalSha
		if attempt > 0 {
			// EVAL loads the script on the node it runs on, whether or
			// not the other masters are up.
			eval = syncScript.Eval
		}
		if cluster {
			_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, j := range jobs {
					j.cmd = eval(ctx, p, j.keys, j.args...)
				}
				return nil
			})
		} else {
			cmd := eval(ctx, s.rdb, keys, args...)
			for _, j := range jobs {
				j.cmd = cmd
			}
		}
		cancel()
		lost := false
		for _, j := range jobs {
			lost = lost || noScript(j.cmd.Err())
		}
		if !lost || attempt == 1 {
			break
		}
		// Redis lost its scripts (a restart, SCRIPT FLUSH): retry with EVAL.
	}
	reached := false
	at := 0 // the first answer of the job, in a command over the chunk
	for _, j := range jobs {
		answers, err := j.cmd.Slice()
		if !cluster {
			answers, at = answers[min(at, len(answers)):], at+len(j.pushes)
		}
		var rerr redis.Error
		if err == nil || errors.As(err, &rerr) {
			reached = true // Redis answered, if only with an error of its own
		}
		j.settle(answers, err, now)
	}
	return reached
}

// settle reads the answers to j's pushes (or the error of their command,
// err): it keeps the pushes that did not count, tells the member how its
// link went, and has it follow the fleet. now is when the round began.
func (j *job) settle(answers []any, err error, now time.Time) {
	m := j.m
	var st fleetState
	if err == nil && len(answers) < len(j.pushes) {
		err = fmt.Errorf("redisstate: %d answers to a sync of %d", len(answers), len(j.pushes))
	}
	if err != nil {
		m.keep(j.pushes, mayHaveRun(err))
	} else {
		var again []push
		for i, p := range j.pushes {
			got, perr := m.parse(answers[i])
			if perr == nil {
				st = got // added, or skipped as seen before
				continue
			}
			err = cmp.Or(err, perr)
			// An error the entry raised (pcall's text) came before it
			// wrote the window: the push did not count. Any other answer
			// may have counted.
			if _, raised := answers[i].(string); !raised {
				p.sent = true
			}
			again = append(again, p)
		}
		if err != nil {
			m.keep(again, false)
		}
	}
	if m.left.Load() {
		return
	}
	back := m.linked(err)
	if err != nil {
		return
	}
	if j.renew {
		m.renewedAt(now)
	}
	m.mu.Lock()
	first := !m.synced || back
	m.synced = true
	m.mu.Unlock()
	if !m.proposePending() {
		m.adopt(st, first, true)
	}
}

// entries appends the keys and arguments of j's entries, one per push.
func (j *job) entries(keys []string, args []any) ([]string, []any) {
	for i, p := range j.pushes {
		keys = append(keys, j.m.keys...)
		args = j.m.syncArgs(args, p, j.renew && i == 0)
	}
	return keys, args
}

// mayHaveRun reports whether a command that failed with err may have run
// all the same: Redis answered no, or it was never sent, or else its
// answer was lost (a timeout: a paused Redis runs it when it resumes).
func mayHaveRun(err error) bool {
	var rerr redis.Error
	var nerr *net.OpError
	switch {
	case errors.As(err, &rerr):
		return false
	case errors.As(err, &nerr) && nerr.Op == "dial":
		return false
	}
	return true
}

func noScript(err error) bool {
	return errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")
}

// listen hears the changes published by any member of the fleet, and has
// the Store read each changed breaker's state: a message is a hint, never
// the state itself, so that a message forged or garbled by anything that
// can publish is harmless.
func (s *Store) listen(ch <-chan *redis.Message) {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			s.mu.Lock()
			ms := append([]*member(nil), s.members[msg.Channel]...)
			s.mu.Unlock()
			for _, m := range ms {
				if m.hinted.CompareAndSwap(false, true) && !s.enqueue(report{m: m, kind: hinted}) {
					m.hinted.Store(false) // the next sync reads it anyway
				}
			}
		}
	}
}

// fleetState is the fleet's state as a script gives it.
type fleetState struct {
	epoch     int64
	state     breaker.State
	remaining time.Duration
	extra     int64
}
