package breaker

import (
	"slices"
	"time"
)

// openFor opens the circuit now for d, as an operator asks.
func (c *core) openFor(d time.Duration) {
	d = max(d, 0)
	c.lock()
	now := c.elapsed()
	c.tick(now)
	from := c.state
	c.openUntil.Store(int64(now + min(d, maxDuration-max(now, 0))))
	if from != StateOpen {
		c.life.opens.Add(1)
	}
	c.setState(StateOpen, now, Reason{Kind: ReasonManual, Wait: d})
	c.changed(Change{From: from, To: StateOpen, Manual: true, Wait: d})
	c.unlock(now)
}

// reconfigure puts cfg in force; see Breaker.Reconfigure.
func (c *core) reconfigure(cfg Config) error {
	n, err := cfg.normalize()
	if err != nil {
		return err
	}
	subs, wants, err := subscribe(n.Listeners)
	if err != nil {
		return err
	}
	c.lock()
	now := c.elapsed()
	n.Clock, n.Shared = c.cfg.Clock, c.cfg.Shared
	c.win = resize(c.win, c.cfg, n, now)
	c.cfg = n
	c.defaulted = defaultedIn(cfg)
	c.hot.Store(newSettings(n, subs, wants))
	if c.state == StateHalfOpen { // the period's limit follows the new config
		if c.trials > 0 {
			c.halfOpenUntil.Store(c.halfOpenDeadline())
		}
		c.markTrials()
	}
	c.unlock(now)
	c.attach(subs)
	return nil
}

// config returns the config in force, as given: the fields that were zero
// are zero again.
func (c *core) config() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.cfg
	cfg.Listeners = slices.Clone(cfg.Listeners)
	c.defaulted.clear(&cfg)
	return cfg
}

// defaults is a set of the Config fields that normalize fills in.
type defaults uint16

const (
	dWindowSize defaults = 1 << iota
	dWindowDuration
	dBucketDuration
	dMinimumCalls
	dFailureRateThreshold
	dSlowCallRateThreshold
	dOpenTimeout
	dHalfOpenMaxCalls
	dSuccessThreshold
	dHalfOpenMaxWait
	dIsFailure
	dIsIgnored
)

// defaultedIn returns the fields that are zero in cfg, and so take their
// defaults.
func defaultedIn(cfg Config) defaults {
	var d defaults
	set := func(zero bool, f defaults) {
		if zero {
			d |= f
		}
	}
	set(cfg.WindowSize == 0, dWindowSize)
	set(cfg.WindowDuration == 0, dWindowDuration)
	set(cfg.BucketDuration == 0, dBucketDuration)
	set(cfg.MinimumCalls == 0, dMinimumCalls)
	set(cfg.FailureRateThreshold == 0, dFailureRateThreshold)
	set(cfg.SlowCallRateThreshold == 0, dSlowCallRateThreshold)
	set(cfg.OpenTimeout == 0, dOpenTimeout)
	set(cfg.HalfOpenMaxCalls == 0, dHalfOpenMaxCalls)
	set(cfg.SuccessThreshold == 0, dSuccessThreshold)
	set(cfg.HalfOpenMaxWait == 0, dHalfOpenMaxWait)
	set(cfg.IsFailure == nil, dIsFailure)
	set(cfg.IsIgnored == nil, dIsIgnored)
	return d
}

// clear zeroes the fields of d in cfg.
func (d defaults) clear(cfg *Config) {
	zero := func(f defaults, clear func()) {
		if d&f != 0 {
			clear()
		}
	}
	zero(dWindowSize, func() { cfg.WindowSize = 0 })
	zero(dWindowDuration, func() { cfg.WindowDuration = 0 })
	zero(dBucketDuration, func() { cfg.BucketDuration = 0 })
	zero(dMinimumCalls, func() { cfg.MinimumCalls = 0 })
	zero(dFailureRateThreshold, func() { cfg.FailureRateThreshold = 0 })
	zero(dSlowCallRateThreshold, func() { cfg.SlowCallRateThreshold = 0 })
	zero(dOpenTimeout, func() { cfg.OpenTimeout = 0 })
	zero(dHalfOpenMaxCalls, func() { cfg.HalfOpenMaxCalls = 0 })
	zero(dSuccessThreshold, func() { cfg.SuccessThreshold = 0 })
	zero(dHalfOpenMaxWait, func() { cfg.HalfOpenMaxWait = 0 })
	zero(dIsFailure, func() { cfg.IsFailure = nil })
	zero(dIsIgnored, func() { cfg.IsIgnored = nil })
}

// resize returns the window for config to, keeping what w, the window for
// config from, holds where the new window allows.
func resize(w window, from, to Config, now time.Duration) window {
	switch {
	case from.Window != to.Window:
		return newWindow(to)
	case to.Window == CountWindow:
		if from.WindowSize == to.WindowSize {
			return w
		}
		return w.(*countWindow).resized(to.WindowSize)
	case from.WindowDuration == to.WindowDuration && from.BucketDuration == to.BucketDuration:
		return w
	}
	return w.(*timeWindow).resized(to.WindowDuration, to.BucketDuration, now)
}
