package breaker

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds named breakers of any result type, each made on first use
// from a default Config. Breakers of different result types can share one
// registry. A Registry is safe for concurrent use.
//
// A breaker's Config is, in this order: the defaults given to NewRegistry,
// the defaults of the document last loaded (Load) and of the environment
// (LoadEnv), the breaker's own section in each, and the edit of Configure.
// Changing any of them reconfigures the live breakers it concerns.
//
// A registry can be bounded (WithMaxCircuits, WithIdleTimeout): past the
// bound it evicts the breakers used least recently. An evicted or removed
// breaker goes on working for whoever holds it; the registry forgets it,
// and the next Get of its name makes a new one.
type Registry struct {
	defaults Config
	opts     registryOptions

	mu       sync.Mutex // serialises making, removing and configuring breakers
	edits    map[string]func(*Config)
	doc, env *layer
	modes    map[string]Mode // the mode applied to each live breaker
	size     int             // live breakers
	epoch    atomic.Uint64   // advanced by each sweep; see entry.seen
	sweptAt  atomic.Int64    // when the registry last swept, in Unix nanoseconds

	apply    sync.Mutex // one round of reconfiguring live breakers at a time
	circuits sync.Map   // name → *entry; read without mu
}

// entry is a live breaker of a Registry.
type entry struct {
	c    Circuit
	seen atomic.Uint64 // the registry's epoch when Get last returned it
	// Guarded by the registry's mu:
	activity uint64    // the breaker's calls at the last sweep
	active   time.Time // when the last sweep found it used
}

// Circuit is a breaker of any result type, as a Registry holds it. Every
// *Breaker[T] is a Circuit.
type Circuit interface {
	Name() string
	State() State
	Metrics() Metrics
	ForceOpen()
	Disable()
	Reset()
	OpenFor(time.Duration)
	Reconfigure(Config) error
	Config() Config
	status() Status
	base() *core
}

// Status is a circuit's Metrics with its name and its latest state changes.
type Status struct {
	Name string
	Metrics
	History []Transition // oldest first; at most the last 16
}

// RegistryOption bounds a Registry.
type RegistryOption func(*registryOptions)

type registryOptions struct {
	maxCircuits int
	idle        time.Duration
}

// WithMaxCircuits bounds the registry to n breakers: making one more first
// evicts the least recently used, preferring those no call used since the
// registry last looked. n < 1 means no bound.
func WithMaxCircuits(n int) RegistryOption {
	return func(o *registryOptions) { o.maxCircuits = max(n, 0) }
}

// WithIdleTimeout evicts breakers that no call has used for d. The registry
// looks when it makes a breaker, when it lists them (Circuits, Snapshot),
// and on Get at most once every d/4: there is no timer. d <= 0 means no
// idle eviction.
func WithIdleTimeout(d time.Duration) RegistryOption {
	return func(o *registryOptions) { o.idle = max(d, 0) }
}

// NewRegistry returns an empty registry whose breakers use defaults, which
// must be a valid Config.
func NewRegistry(defaults Config, opts ...RegistryOption) (*Registry, error) {
	if _, err := defaults.normalize(); err != nil {
		return nil, err
	}
	r := &Registry{defaults: defaults, edits: map[string]func(*Config){}, modes: map[string]Mode{}}
	for _, o := range opts {
		if o != nil {
			o(&r.opts)
		}
	}
	r.epoch.Store(1)
	r.sweptAt.Store(r.now().UnixNano())
	return r, nil
}

// now reads the defaults' Clock, or the system clock.
func (r *Registry) now() time.Time {
	if r.defaults.Clock != nil {
		return r.defaults.Clock.Now()
	}
	return time.Now()
}

// Clock returns the Clock of the registry's defaults, or the system clock
// if they have none: the time by which whatever watches the registry (a
// dashboard's history) should stamp what it sees.
func (r *Registry) Clock() Clock {
	if r.defaults.Clock != nil {
		return r.defaults.Clock
	}
	return systemClock{}
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// configFor returns the Config and the mode of the breaker named name, and
// the problems of form of the sections it took them from. It requires
// r.mu held.
func (r *Registry) configFor(name string, doc, env *layer) (Config, Mode, []*FieldError) {
	cfg := r.defaults
	cfg.Listeners = slices.Clone(cfg.Listeners)
	mode := ModeAuto
	var errs []*FieldError
	for _, l := range []*layer{doc, env} {
		if l != nil {
			errs = append(errs, l.defaults.apply(&cfg)...)
		}
	}
	for _, l := range []*layer{doc, env} {
		if s, ok := l.circuit(name); ok {
			errs = append(errs, s.apply(&cfg)...)
			if s.mode != nil {
				mode = *s.mode
			}
		}
	}
	if edit := r.edits[name]; edit != nil {
		if err := runEdit(name, edit, &cfg); err != nil {
			errs = append(errs, &FieldError{Path: "Configure(" + strconv.Quote(name) + ")", Err: err})
		}
	}
	return cfg, mode, errs
}

// runEdit calls edit on cfg, turning a panic into an error.
func runEdit(name string, edit func(*Config), cfg *Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("breaker: the edit of %q panicked: %v", name, r)
		}
	}()
	edit(cfg)
	return nil
}

// Configure sets the edit of the breaker named name: edit changes a copy of
// its Config as the defaults and documents make it (with a Listeners slice
// of its own, so appending to it is safe). The result is checked now; if it
// is invalid, or edit panics, nothing changes and Configure says why. If
// the breaker exists, it is reconfigured (see Breaker.Reconfigure).
func (r *Registry) Configure(name string, edit func(*Config)) error {
	r.apply.Lock()
	defer r.apply.Unlock()
	cfg, c, err := r.configure(name, edit)
	if err != nil || c == nil {
		return err
	}
	return c.Reconfigure(cfg)
}

// configure stores edit for name if the Config it makes is valid, and
// returns that Config and the live breaker of name, if any.
func (r *Registry) configure(name string, edit func(*Config)) (Config, Circuit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.edits[name]
	r.edits[name] = edit
	cfg, _, errs := r.configFor(name, r.doc, r.env)
	err := error(nil)
	if len(errs) > 0 {
		err = errs[len(errs)-1].Err // the edit's: a document's problems were caught when it loaded
	} else {
		_, err = cfg.normalize()
	}
	if err != nil {
		if had {
			r.edits[name] = old
		} else {
			delete(r.edits, name)
		}
		return Config{}, nil, err
	}
	if e, ok := r.entry(name); ok {
		return cfg, e.c, nil
	}
	return cfg, nil, nil
}

// entry returns the live entry named name.
func (r *Registry) entry(name string) (*entry, bool) {
	v, ok := r.circuits.Load(name)
	if !ok {
		return nil, false
	}
	return v.(*entry), true
}

// Get returns the breaker named name from r, making it on first use. It
// fails if r holds that name with another result type (ErrWrongType) or if
// the breaker cannot be made.
func Get[T any](r *Registry, name string) (*Breaker[T], error) {
	if e, ok := r.entry(name); ok {
		r.touch(e)
		return typed[T](e.c)
	}
	r.apply.Lock()
	defer r.apply.Unlock()
	b, gone, err := getNew[T](r, name)
	for _, c := range gone {
		c.base().leave() // out of the lock: a store may talk to its server
	}
	return b, err
}

// getNew returns the breaker named name, making it if need be, and the
// breakers evicted to make room. A breaker whose document sets a mode is
// made in that mode before anyone can get it.
func getNew[T any](r *Registry, name string) (*Breaker[T], []Circuit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entry(name); ok {
		b, err := typed[T](e.c)
		return b, nil, err
	}
	cfg, mode, errs := r.configFor(name, r.doc, r.env)
	if len(errs) > 0 {
		return nil, nil, errs[len(errs)-1].Err
	}
	b, err := New[T](name, cfg)
	if err != nil {
		return nil, nil, err
	}
	if mode != ModeAuto {
		b.c.startIn(mode.state())
		r.modes[name] = mode
	}
	now := r.now()
	var gone []Circuit
	if max := r.opts.maxCircuits; max > 0 && r.size >= max {
		gone = r.sweep(now, r.size-max+1, max/8) // a batch of idle ones too: each make seldom sweeps
	} else if r.sweepDue(now) {
		gone = r.sweep(now, 0, 0)
	}
	e := &entry{c: b, active: now}
	r.circuits.Store(name, e)
	r.size++
	return b, gone, nil
}

// sweepDue reports whether it is time to look for idle breakers.
func (r *Registry) sweepDue(now time.Time) bool {
	idle := r.opts.idle
	return idle > 0 && now.UnixNano()-r.sweptAt.Load() >= int64(idle/4)
}

// touch notes that Get returned e, and sweeps for idle breakers when one is
// due.
func (r *Registry) touch(e *entry) {
	if epoch := r.epoch.Load(); e.seen.Load() != epoch {
		e.seen.Store(epoch)
	}
	if r.opts.idle <= 0 {
		return
	}
	now := r.now()
	if !r.sweepDue(now) {
		return
	}
	r.mu.Lock()
	var gone []Circuit
	if r.sweepDue(now) {
		gone = r.sweep(now, 0, 0)
	}
	r.mu.Unlock()
	for _, c := range gone {
		c.base().leave()
	}
}

// sweep evicts the least recently used breakers: must of them in any case,
// up to may more among those unused since the last sweep, and those idle
// longer than the idle timeout; it returns them, for the caller to take out
// of their fleets once it has released r.mu. A breaker counts as used when
// Get returned it or calls went through it; among those used as recently,
// the one with the fewest calls since the last sweep goes first. It
// requires r.mu held.
func (r *Registry) sweep(now time.Time, must, may int) []Circuit {
	epoch := r.epoch.Load()
	r.epoch.Store(epoch + 1)
	r.sweptAt.Store(now.UnixNano())
	type candidate struct {
		name  string
		e     *entry
		used  bool
		calls uint64 // since the last sweep
	}
	var all []candidate
	r.circuits.Range(func(k, v any) bool {
		e := v.(*entry)
		a := e.c.base().activity()
		c := candidate{name: k.(string), e: e, calls: a - e.activity}
		c.used = e.seen.Load() == epoch || c.calls > 0
		if c.used {
			e.activity, e.active = a, now
		}
		all = append(all, c)
		return true
	})
	slices.SortFunc(all, func(a, b candidate) int {
		if c := a.e.active.Compare(b.e.active); c != 0 {
			return c
		}
		if a.calls != b.calls {
			return cmp.Compare(a.calls, b.calls)
		}
		return strings.Compare(a.name, b.name)
	})
	var gone []Circuit
	for i, c := range all {
		switch {
		case i < must,
			i < must+may && !c.used,
			r.opts.idle > 0 && now.Sub(c.e.active) >= r.opts.idle:
			if r.forget(c.name, c.e) {
				gone = append(gone, c.e.c)
			}
		}
	}
	return gone
}

// forget removes the entry of name from r and reports whether it was
// there. It requires r.mu held.
func (r *Registry) forget(name string, e *entry) bool {
	if !r.circuits.CompareAndDelete(name, e) {
		return false
	}
	r.size--
	delete(r.modes, name)
	return true
}

// Remove takes the breaker named name out of r, and out of its fleet if
// it has a SharedState, and reports whether r held it. Whoever holds the
// breaker keeps a working breaker, acting alone; the next Get of name
// makes a new one. Configure's edit for name is kept.
func (r *Registry) Remove(name string) bool {
	r.mu.Lock()
	e, ok := r.entry(name)
	ok = ok && r.forget(name, e)
	r.mu.Unlock()
	if ok {
		e.c.base().leave()
	}
	return ok
}

// Load puts a JSON document of configs in force:
//
//	{
//	  "defaults": {"window": "time", "openTimeout": "10s"},
//	  "circuits": {
//	    "payments": {"failureRateThreshold": 0.2},
//	    "search":   {"mode": "disabled"}
//	  }
//	}
//
// Keys are Config's data fields in lowerCamelCase (see Config.MarshalJSON)
// and, for a circuit, "mode" (see Mode). A field left out keeps the value
// it has below: the defaults given to NewRegistry, then the document's
// defaults. The live breakers are reconfigured at once, and each change of
// mode is applied. If the document has problems, Load returns a
// *DocumentError naming each invalid field by its path
// ("circuits.payments.failureRateThreshold: 1.5 is outside (0, 1]") and
// changes nothing.
func (r *Registry) Load(data []byte) error {
	l, errs := parseDocument(data)
	if len(errs) > 0 {
		return &DocumentError{Fields: errs}
	}
	return r.put(l, false)
}

// LoadEnv is Load for settings in environment variables, as os.Environ
// lists them: prefix_NAME_FIELD=value, where NAME is DEFAULTS or a
// circuit's name in upper case with every character other than a letter
// or a digit as '_', and FIELD a data field of Config, or MODE, in upper
// snake case. So BREAKER_PAYMENTS_FAILURE_RATE_THRESHOLD=0.2,
// BREAKER_DEFAULTS_OPEN_TIMEOUT=10s, BREAKER_SEARCH_MODE=disabled. The
// environment's settings override the document's.
func (r *Registry) LoadEnv(prefix string, environ []string) error {
	l, errs := parseEnv(prefix, environ)
	if len(errs) > 0 {
		return &DocumentError{Fields: errs}
	}
	return r.put(l, true)
}

// put makes l the document (or, for env, the environment), after checking
// the Config of every circuit it names and of the live ones.
func (r *Registry) put(l *layer, env bool) error {
	r.apply.Lock()
	defer r.apply.Unlock()
	r.mu.Lock()
	doc, envl := r.doc, r.env
	if env {
		envl = l
	} else {
		doc = l
	}
	if errs := r.check(l, doc, envl); len(errs) > 0 {
		r.mu.Unlock()
		return &DocumentError{Fields: errs}
	}
	r.doc, r.env = doc, envl
	type change struct {
		name string
		e    *entry
		cfg  Config
		mode Mode
	}
	var changes []change
	r.circuits.Range(func(k, v any) bool {
		name := k.(string)
		cfg, mode, _ := r.configFor(name, doc, envl)
		changes = append(changes, change{name, v.(*entry), cfg, mode})
		return true
	})
	r.mu.Unlock()
	for _, ch := range changes {
		_ = ch.e.c.Reconfigure(ch.cfg) // checked above
		r.setMode(ch.name, ch.e, ch.mode)
	}
	return nil
}

// check returns the invalid fields of the configs that l, part of the
// document doc and the environment env, makes: of its defaults, of each
// circuit it names and of each live one. An invalid field is reported at
// its path in l when l sets it, once. It requires r.mu held.
func (r *Registry) check(l, doc, env *layer) []*FieldError {
	var errs []*FieldError
	seen := map[string]bool{}
	report := func(s *section, prefix string, ces []*ConfigError) {
		for _, ce := range ces {
			key := jsonKey(ce.Field)
			path, ok := s.paths[key]
			if !ok {
				path, ok = l.defaults.paths[key] // a bad default: reported once, there
			}
			if !ok {
				path = prefix + key
			}
			if !seen[path] { // once per path: a bad default shows in every circuit
				seen[path] = true
				errs = append(errs, &FieldError{Path: path, Err: ce})
			}
		}
	}
	base := r.defaults
	for _, x := range []*layer{doc, env} {
		if x != nil {
			x.defaults.apply(&base)
		}
	}
	_, ces := base.check()
	report(&l.defaults, defaultsPrefix(l), ces)
	names := map[string]bool{}
	r.circuits.Range(func(k, _ any) bool {
		names[k.(string)] = true
		return true
	})
	for name := range l.circuits {
		names[name] = true
	}
	for _, name := range sortedKeys(names) {
		cfg, _, _ := r.configFor(name, doc, env)
		if _, ces := cfg.check(); len(ces) > 0 {
			s, ok := l.circuit(name)
			if !ok {
				s = l.defaults
			}
			report(&s, circuitPrefix(l, name), ces)
		}
	}
	return errs
}

func defaultsPrefix(l *layer) string {
	if l.byEnv {
		return "env defaults."
	}
	return "defaults."
}

func circuitPrefix(l *layer, name string) string {
	if l.byEnv {
		return "env " + envName(name) + "."
	}
	return "circuits." + name + "."
}

// setMode applies mode to e, the live entry of name, if it is not the mode
// last applied to it; a breaker no longer live is left alone.
func (r *Registry) setMode(name string, e *entry, mode Mode) {
	r.mu.Lock()
	if live, ok := r.entry(name); !ok || live != e {
		r.mu.Unlock()
		return
	}
	last := r.modes[name] // ModeAuto if none
	if mode == ModeAuto {
		delete(r.modes, name)
	} else {
		r.modes[name] = mode
	}
	r.mu.Unlock()
	if last == mode {
		return
	}
	k := e.c.base()
	if mode == ModeAuto {
		k.resetFor(Reason{Kind: ReasonReconfigured})
	} else {
		k.forceFor(mode.state(), Reason{Kind: ReasonReconfigured})
	}
}

// state is the state a mode other than auto holds a breaker in.
func (m Mode) state() State {
	if m == ModeDisabled {
		return StateDisabled
	}
	return StateForcedOpen
}

func typed[T any](c Circuit) (*Breaker[T], error) {
	if b, ok := c.(*Breaker[T]); ok {
		return b, nil
	}
	return nil, fmt.Errorf("%w: %q is a %s, not a %s", ErrWrongType, c.Name(), typeName(c), typeName((*Breaker[T])(nil)))
}

func typeName(v any) string { return strings.TrimPrefix(fmt.Sprintf("%T", v), "*breaker.") }

// Circuit returns the breaker named name, if r holds one.
func (r *Registry) Circuit(name string) (Circuit, bool) {
	e, ok := r.entry(name)
	if !ok {
		return nil, false
	}
	return e.c, true
}

// Circuits returns every breaker r holds, by name, after evicting the idle
// ones (WithIdleTimeout).
func (r *Registry) Circuits() []Circuit {
	if r.opts.idle > 0 {
		r.mu.Lock()
		gone := r.sweep(r.now(), 0, 0)
		r.mu.Unlock()
		for _, c := range gone {
			c.base().leave()
		}
	}
	var out []Circuit
	r.circuits.Range(func(_, v any) bool {
		out = append(out, v.(*entry).c)
		return true
	})
	slices.SortFunc(out, func(a, b Circuit) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

// Len returns how many breakers r holds.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.size
}

// Snapshot returns the Status of every breaker r holds, by name.
func (r *Registry) Snapshot() []Status {
	cs := r.Circuits()
	out := make([]Status, len(cs))
	for i, c := range cs {
		out[i] = c.status()
	}
	return out
}

// Status returns the Status of the breaker named name, if r holds one.
func (r *Registry) Status(name string) (Status, bool) {
	c, ok := r.Circuit(name)
	if !ok {
		return Status{}, false
	}
	return c.status(), true
}

// Reset resets the breaker named name and reports whether r holds one.
func (r *Registry) Reset(name string) bool {
	c, ok := r.Circuit(name)
	if ok {
		c.Reset()
	}
	return ok
}

// ResetAll resets every breaker r holds.
func (r *Registry) ResetAll() {
	for _, c := range r.Circuits() {
		c.Reset()
	}
}

func (b *Breaker[T]) status() Status { return b.c.status() }

// status returns the breaker's Status, read under one hold of mu.
func (c *core) status() Status {
	c.lock()
	now := c.elapsed()
	c.tick(now)
	s := Status{Name: c.name, Metrics: c.snapshot(now), History: c.transitions()}
	c.unlockRead(now)
	s.Lifetime = c.lifetime()
	return s
}
