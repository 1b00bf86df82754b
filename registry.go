package breaker

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Registry holds named breakers, each made on first use from a default
// Config, as changed for its name by Configure. Breakers of different result
// types can share one registry. A Registry is safe for concurrent use.
type Registry struct {
	defaults Config
	mu       sync.Mutex        // serialises making breakers and Configure
	configs  map[string]Config // per-name configs, guarded by mu
	circuits sync.Map          // name → Circuit; read without mu
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
	status() Status
	base() *core
}

// Status is a circuit's Metrics with its name and its latest state changes.
type Status struct {
	Name string
	Metrics
	History []Transition // oldest first; at most the last 16
}

// NewRegistry returns an empty registry whose breakers use defaults, which
// must be a valid Config.
func NewRegistry(defaults Config) (*Registry, error) {
	if _, err := defaults.normalize(); err != nil {
		return nil, err
	}
	return &Registry{defaults: defaults, configs: map[string]Config{}}, nil
}

// Configure sets the Config of the breaker named name: edit changes a copy
// of the defaults (with a Listeners slice of its own, so appending to it is
// safe). The result is checked now. Configure must come before the
// breaker's first use.
func (r *Registry) Configure(name string, edit func(*Config)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.circuits.Load(name); ok {
		return fmt.Errorf("breaker: registry already holds %q; configure it before its first use", name)
	}
	cfg := r.defaults
	cfg.Listeners = slices.Clone(cfg.Listeners)
	edit(&cfg)
	if _, err := cfg.normalize(); err != nil {
		return err
	}
	r.configs[name] = cfg
	return nil
}

// Get returns the breaker named name from r, making it on first use. It
// fails if r holds that name with another result type (ErrWrongType) or if
// the breaker cannot be made.
func Get[T any](r *Registry, name string) (*Breaker[T], error) {
	if c, ok := r.circuits.Load(name); ok {
		return typed[T](c.(Circuit))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.circuits.Load(name); ok {
		return typed[T](c.(Circuit))
	}
	cfg, ok := r.configs[name]
	if !ok {
		cfg = r.defaults
	}
	b, err := New[T](name, cfg)
	if err != nil {
		return nil, err
	}
	r.circuits.Store(name, Circuit(b))
	return b, nil
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
	c, ok := r.circuits.Load(name)
	if !ok {
		return nil, false
	}
	return c.(Circuit), true
}

// Circuits returns every breaker r holds, by name.
func (r *Registry) Circuits() []Circuit {
	var out []Circuit
	r.circuits.Range(func(_, c any) bool {
		out = append(out, c.(Circuit))
		return true
	})
	slices.SortFunc(out, func(a, b Circuit) int { return strings.Compare(a.Name(), b.Name()) })
	return out
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
