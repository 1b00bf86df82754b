package breaker_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
)

// TestConfigJSONRoundTrip sets every data field of Config to a value other
// than its zero and checks that JSON carries each one there and back.
func TestConfigJSONRoundTrip(t *testing.T) {
	cfg := breaker.Config{
		Window:                breaker.TimeWindow,
		WindowSize:            42,
		WindowDuration:        90 * time.Second,
		BucketDuration:        1500 * time.Millisecond,
		MinimumCalls:          7,
		FailureRateThreshold:  0.25,
		ConsecutiveFailures:   3,
		SlowCallDuration:      250 * time.Millisecond,
		SlowCallRateThreshold: 0.8,
		OpenTimeout:           12 * time.Second,
		MaxOpenTimeout:        5 * time.Minute,
		OpenJitter:            0.1,
		HalfOpenMaxCalls:      4,
		SuccessThreshold:      2,
		HalfOpenMaxWait:       -1,
	}
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"window": "time", "windowSize": 42, "windowDuration": "1m30s", "bucketDuration": "1.5s",
		"minimumCalls": 7, "failureRateThreshold": 0.25, "consecutiveFailures": 3,
		"slowCallDuration": "250ms", "slowCallRateThreshold": 0.8, "openTimeout": "12s",
		"maxOpenTimeout": "5m0s", "openJitter": 0.1, "halfOpenMaxCalls": 4, "successThreshold": 2,
		"halfOpenMaxWait": "-1ns"
	}`, string(data))
	var back breaker.Config
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, cfg, back)

	// Every data field is in the round trip: none is left at its zero.
	var obj map[string]any
	require.NoError(t, json.Unmarshal(data, &obj))
	assert.Len(t, obj, 15)
}

func TestConfigJSONKeepsWhatItDoesNotSet(t *testing.T) {
	cfg := breaker.Config{WindowSize: 10, OpenTimeout: time.Minute}
	require.NoError(t, json.Unmarshal([]byte(`{"openTimeout": "5s", "window": "CountWindow"}`), &cfg))
	assert.Equal(t, 10, cfg.WindowSize)
	assert.Equal(t, 5*time.Second, cfg.OpenTimeout)
}

func TestConfigJSONErrors(t *testing.T) {
	var cfg breaker.Config
	err := json.Unmarshal([]byte(`{"openTimeout": 30, "windowSize": 1.5, "colour": "red", "window": "sliding"}`), &cfg)
	assert.ErrorIs(t, err, breaker.ErrInvalidConfig)
	assert.EqualError(t, err, `breaker: invalid config: colour: unknown field; `+
		`openTimeout: want a duration as a string, such as "30s"; `+
		`window: "sliding" is not a window type (count, time); windowSize: 1.5 is not a whole number`)
	assert.ErrorIs(t, json.Unmarshal([]byte(`[]`), &cfg), breaker.ErrInvalidConfig)
	assert.ErrorIs(t, json.Unmarshal([]byte(`null`), &cfg), breaker.ErrInvalidConfig)
	_, err = json.Marshal(breaker.Config{FailureRateThreshold: math.NaN()})
	assert.ErrorContains(t, err, "FailureRateThreshold NaN has no JSON form")
	_, err = json.Marshal(breaker.Config{Window: 9})
	assert.Error(t, err)
}

func TestModeText(t *testing.T) {
	for _, m := range []breaker.Mode{breaker.ModeAuto, breaker.ModeDisabled, breaker.ModeForcedOpen} {
		text, err := m.MarshalText()
		require.NoError(t, err)
		var back breaker.Mode
		require.NoError(t, back.UnmarshalText(text))
		assert.Equal(t, m, back)
	}
	assert.Equal(t, "Mode(9)", breaker.Mode(9).String())
}
