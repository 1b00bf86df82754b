package breaker

import (
	"math"
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
	if c.peer != nil {
		c.peer.Changed(Change{From: from, To: StateOpen, Manual: true, Wait: d, Totals: c.totals})
	}
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
	c.hot.Store(newSettings(n, subs, wants))
	if c.state == StateHalfOpen { // the period's limit follows the new config, from when it began
		until := int64(math.MaxInt64)
		if w := n.HalfOpenMaxWait; w > 0 {
			until = int64(c.since + min(w, maxDuration-max(c.since, 0)))
		}
		c.halfOpenUntil.Store(until)
		c.markTrials()
	}
	c.unlock(now)
	c.attach(subs)
	return nil
}

// config returns the config in force.
func (c *core) config() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.cfg
	cfg.Listeners = append([]Listener(nil), cfg.Listeners...)
	return cfg
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
