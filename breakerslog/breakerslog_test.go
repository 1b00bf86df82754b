package breakerslog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/breakerslog"
)

// lines decodes the JSON lines of buf, dropping the time.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func newLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var errBoom = errors.New("boom")

func call(b *breaker.Breaker[int], err error) error {
	_, got := b.Execute(context.Background(), func(context.Context) (int, error) { return 0, err })
	return got
}

func TestStateChanges(t *testing.T) {
	var buf bytes.Buffer
	l := breakerslog.New(newLogger(&buf))
	assert.Equal(t, breaker.StateEvents, l.EventMask(), "no call events: the closed and open paths pay nothing")
	clk := clock.NewMock()
	b, err := breaker.New[int]("payments", breaker.Config{WindowSize: 2, OpenTimeout: time.Second, Clock: clk, Listeners: []breaker.Listener{l}})
	require.NoError(t, err)
	call(b, nil)
	call(b, errBoom)
	call(b, nil) // refused: not logged without WithRefusals
	clk.Add(time.Second)
	call(b, nil)
	assert.Equal(t, []map[string]any{
		{"level": "WARN", "msg": "circuit breaker state change", "breaker": "payments", "from": "closed", "to": "open",
			"reason": "failure rate 0.5 ≥ 0.5 over 2 calls", "reason_kind": "failure-rate"},
		{"level": "INFO", "msg": "circuit breaker state change", "breaker": "payments", "from": "open", "to": "half-open",
			"reason": "open wait over", "reason_kind": "open-wait-over"},
		{"level": "INFO", "msg": "circuit breaker state change", "breaker": "payments", "from": "half-open", "to": "closed",
			"reason": "trial 1 call succeeded", "reason_kind": "trials-succeeded"},
	}, lines(t, &buf))
}

func TestRefusalsAreSampled(t *testing.T) {
	var buf bytes.Buffer
	l := breakerslog.New(newLogger(&buf), breakerslog.WithRefusals(10))
	assert.True(t, l.EventMask().Has(breaker.EventRejected))
	clk := clock.NewMock()
	b, err := breaker.New[int]("search", breaker.Config{WindowSize: 1, OpenTimeout: time.Minute, Clock: clk, Listeners: []breaker.Listener{l}})
	require.NoError(t, err)
	call(b, errBoom)
	buf.Reset()
	for range 25 {
		require.ErrorIs(t, call(b, nil), breaker.ErrOpen)
	}
	got := lines(t, &buf)
	require.Len(t, got, 3, "the 1st, 11th and 21st")
	assert.Equal(t, map[string]any{
		"level": "DEBUG", "msg": "circuit breaker refused a call", "breaker": "search", "sampled": float64(10),
		"state": "open", "retry_at": clk.Now().Add(time.Minute).Format(time.RFC3339Nano),
	}, got[0])
}

func TestStoreEvents(t *testing.T) {
	var buf bytes.Buffer
	l := breakerslog.New(newLogger(&buf))
	l.OnEvent(breaker.Event{Breaker: "db", Kind: breaker.EventDetached, Err: errBoom})
	l.OnEvent(breaker.Event{Breaker: "db", Kind: breaker.EventAttached})
	l.OnEvent(breaker.Event{Breaker: "db", Kind: breaker.EventSuccess}) // not asked for: ignored
	assert.Equal(t, []map[string]any{
		{"level": "WARN", "msg": "circuit breaker store unreachable", "breaker": "db", "error": "boom"},
		{"level": "INFO", "msg": "circuit breaker store reachable", "breaker": "db"},
	}, lines(t, &buf))
}

func TestDefaults(t *testing.T) {
	l := breakerslog.New(nil, nil, breakerslog.WithRefusals(0), breakerslog.WithContext(context.Background()))
	assert.True(t, l.EventMask().Has(breaker.EventRejected), "0 is taken as 1")
}
