package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

func TestDemo(t *testing.T) {
	clk := clock.NewMock()
	var out bytes.Buffer
	reg, err := newRegistry(&out, clk)
	require.NoError(t, err)
	run(&out, reg, clk, func(d time.Duration) { clk.Add(d) })
	assert.Equal(t, `One request every 40ms to each of inventory (healthy) and payments (down 1s-2.5s and 6s-7.2s).
 1.00s  payments downstream goes down
 1.16s  payments: closed    -> open  (5 of the last 10 calls failed; next probe in 300ms)
 1.48s  payments: open      -> half-open
 1.48s  payments: half-open -> open  (the probe failed; next probe in 600ms)
 2.08s  payments: open      -> half-open
 2.08s  payments: half-open -> open  (the probe failed; next probe in 1.2s)
 2.52s  payments downstream recovers
 3.28s  payments: open      -> half-open
 3.28s  payments: half-open -> closed  (the probe succeeded)
 6.00s  payments downstream goes down
 6.16s  payments: closed    -> open  (5 of the last 10 calls failed; next probe in 300ms)
 6.48s  payments: open      -> half-open
 6.48s  payments: half-open -> open  (the probe failed; next probe in 600ms)
 7.08s  payments: open      -> half-open
 7.08s  payments: half-open -> open  (the probe failed; next probe in 1.2s)
 7.20s  payments downstream recovers
 8.28s  payments: open      -> half-open
 8.28s  payments: half-open -> closed  (the probe succeeded)
payments: 250 requests, 136 succeeded, 14 failed, 100 refused by the breaker without reaching the downstream (it saw 150 calls).
`, out.String())

	snap := reg.Snapshot()
	require.Len(t, snap, 2)
	assert.Equal(t, "inventory", snap[0].Name)
	assert.Equal(t, breaker.StateClosed, snap[0].State)
	assert.Empty(t, snap[0].History, "the healthy downstream never tripped its breaker")
	assert.Len(t, snap[1].History, 14, "payments' state changes, kept for the dashboard")
}
