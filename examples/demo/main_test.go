package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDemo(t *testing.T) {
	clk := clock.NewMock()
	var out bytes.Buffer
	require.NoError(t, run(&out, clk, func(d time.Duration) { clk.Add(d) }))
	assert.Equal(t, `One request every 40ms; the downstream is down from 1s to 2.5s.
 1.00s  downstream goes down
 1.16s  breaker closed    -> open  (5 of the last 10 calls failed; next probe in 300ms)
 1.48s  breaker open      -> half-open
 1.48s  breaker half-open -> open  (the probe failed; next probe in 600ms)
 2.08s  breaker open      -> half-open
 2.08s  breaker half-open -> open  (the probe failed; next probe in 1.2s)
 2.52s  downstream recovers
 3.28s  breaker open      -> half-open
 3.28s  breaker half-open -> closed  (the probe succeeded)
100 requests: 43 succeeded, 7 failed, 50 refused by the breaker without reaching the downstream (it saw 50 calls).
`, out.String())
}
