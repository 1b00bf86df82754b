package breaker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Mode is a per-name switch of a Registry's document, a feature flag for
// its breaker: auto (the breaker decides), disabled (admits every call,
// never trips) or forced-open (refuses every call). A change of mode shows
// as a state change with ReasonReconfigured; going back to auto resets the
// breaker.
type Mode uint8

const (
	ModeAuto Mode = iota
	ModeDisabled
	ModeForcedOpen
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeDisabled:
		return "disabled"
	case ModeForcedOpen:
		return "forced-open"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// MarshalText encodes m as its String.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText decodes a mode's name.
func (m *Mode) UnmarshalText(text []byte) error {
	for x := ModeAuto; x <= ModeForcedOpen; x++ {
		if x.String() == string(text) {
			*m = x
			return nil
		}
	}
	return fmt.Errorf("%q is not a mode (auto, disabled, forced-open)", text)
}

// fieldKind is how a Config field is written as data.
type fieldKind uint8

const (
	intField fieldKind = iota
	floatField
	durationField
	windowField
)

// field is a Config field that is data: it has a JSON key and an
// environment variable suffix.
type field struct {
	key  string // JSON key, as the Go field name in lowerCamelCase
	name string // the Config field
	kind fieldKind
	ptr  func(*Config) any
}

// fields are the Config fields that are data, in Config's order. The
// others (IsFailure, IsIgnored, Clock, Listeners, Shared, TripRule) are
// code, and are set in code.
var fields = []field{
	{"window", "Window", windowField, func(c *Config) any { return &c.Window }},
	{"windowSize", "WindowSize", intField, func(c *Config) any { return &c.WindowSize }},
	{"windowDuration", "WindowDuration", durationField, func(c *Config) any { return &c.WindowDuration }},
	{"bucketDuration", "BucketDuration", durationField, func(c *Config) any { return &c.BucketDuration }},
	{"minimumCalls", "MinimumCalls", intField, func(c *Config) any { return &c.MinimumCalls }},
	{"failureRateThreshold", "FailureRateThreshold", floatField, func(c *Config) any { return &c.FailureRateThreshold }},
	{"consecutiveFailures", "ConsecutiveFailures", intField, func(c *Config) any { return &c.ConsecutiveFailures }},
	{"slowCallDuration", "SlowCallDuration", durationField, func(c *Config) any { return &c.SlowCallDuration }},
	{"slowCallRateThreshold", "SlowCallRateThreshold", floatField, func(c *Config) any { return &c.SlowCallRateThreshold }},
	{"openTimeout", "OpenTimeout", durationField, func(c *Config) any { return &c.OpenTimeout }},
	{"maxOpenTimeout", "MaxOpenTimeout", durationField, func(c *Config) any { return &c.MaxOpenTimeout }},
	{"openJitter", "OpenJitter", floatField, func(c *Config) any { return &c.OpenJitter }},
	{"halfOpenMaxCalls", "HalfOpenMaxCalls", intField, func(c *Config) any { return &c.HalfOpenMaxCalls }},
	{"successThreshold", "SuccessThreshold", intField, func(c *Config) any { return &c.SuccessThreshold }},
	{"halfOpenMaxWait", "HalfOpenMaxWait", durationField, func(c *Config) any { return &c.HalfOpenMaxWait }},
}

// modeKey is the key of a circuit's Mode in a document.
const modeKey = "mode"

func fieldByKey(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// jsonKey returns the JSON key of the Config field named name.
func jsonKey(name string) string {
	for _, f := range fields {
		if f.name == name {
			return f.key
		}
	}
	return name
}

// set decodes raw, a JSON value, into f of c.
func (f field) set(c *Config, raw json.RawMessage) error {
	switch p := f.ptr(c).(type) {
	case *int:
		var v json.Number
		if err := json.Unmarshal(raw, &v); err != nil {
			return errors.New("want a whole number")
		}
		n, err := strconv.ParseInt(string(v), 10, 0)
		if err != nil {
			return fmt.Errorf("%s is not a whole number", v)
		}
		*p = int(n)
	case *float64:
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil {
			return errors.New("want a number")
		}
		*p = v
	case *time.Duration:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return errors.New(`want a duration as a string, such as "30s"`)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf(`%q is not a duration (such as "30s", "1m30s", "250ms")`, s)
		}
		*p = d
	case *WindowType:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return errors.New(`want "count" or "time"`)
		}
		return p.UnmarshalText([]byte(s))
	}
	return nil
}

// value returns f of c as a JSON value.
func (f field) value(c *Config) (json.RawMessage, error) {
	switch p := f.ptr(c).(type) {
	case *int:
		return json.Marshal(*p)
	case *float64:
		if math.IsNaN(*p) || math.IsInf(*p, 0) {
			return nil, fmt.Errorf("breaker: %s %v has no JSON form", f.name, *p)
		}
		return json.Marshal(*p)
	case *time.Duration:
		return json.Marshal(p.String())
	case *WindowType:
		t, err := p.MarshalText()
		if err != nil {
			return nil, err
		}
		return json.Marshal(string(t))
	}
	return nil, nil
}

// MarshalJSON writes the fields of c that are data, with lowerCamelCase
// keys, durations as strings ("30s") and the window type by name
// ("count", "time"). IsFailure, IsIgnored, Clock, Listeners, Shared and
// TripRule are code, not data, and are left out.
func (c Config) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		v, err := f.value(&c)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", f.key, v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the fields MarshalJSON writes. A field left out keeps
// its value, so that a document can change some fields only. An unknown
// key, or a value of the wrong form, is an error naming the key.
func (c *Config) UnmarshalJSON(data []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return &DocumentError{Fields: []*FieldError{{Path: "config", Err: errors.New("want a JSON object")}}}
	}
	var errs []*FieldError
	for _, key := range sortedKeys(obj) {
		f, ok := fieldByKey(key)
		if !ok {
			errs = append(errs, &FieldError{Path: key, Err: errors.New("unknown field")})
			continue
		}
		if err := f.set(c, obj[key]); err != nil {
			errs = append(errs, &FieldError{Path: key, Err: err})
		}
	}
	if len(errs) > 0 {
		return &DocumentError{Fields: errs}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// section is one part of a document, the defaults or one circuit: the
// fields it sets, as JSON values, and where they came from.
type section struct {
	values map[string]json.RawMessage // by JSON key
	paths  map[string]string          // by JSON key: the path to report
	mode   *Mode
}

// layer is a document as a Registry keeps it: the defaults and the
// per-name sections.
type layer struct {
	defaults section
	circuits map[string]section
	byEnv    bool // circuits are keyed by envName
}

// circuit returns the section of the circuit named name, if l has one.
func (l *layer) circuit(name string) (section, bool) {
	if l == nil {
		return section{}, false
	}
	if l.byEnv {
		name = envName(name)
	}
	s, ok := l.circuits[name]
	return s, ok
}

// apply sets the fields of s on c, and returns those whose values were of
// the wrong form.
func (s section) apply(c *Config) []*FieldError {
	var errs []*FieldError
	for _, key := range sortedKeys(s.values) {
		f, _ := fieldByKey(key)
		if err := f.set(c, s.values[key]); err != nil {
			errs = append(errs, &FieldError{Path: s.paths[key], Err: err})
		}
	}
	return errs
}

// parseDocument reads a JSON document:
//
//	{"defaults": {...}, "circuits": {"payments": {..., "mode": "disabled"}}}
//
// and returns it with every problem of form found in it.
func parseDocument(data []byte) (*layer, []*FieldError) {
	notDoc := func(why string) (*layer, []*FieldError) {
		return nil, []*FieldError{{Path: "document", Err: errors.New("not a document of defaults and circuits: " + why)}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return notDoc(err.Error())
	}
	if top == nil {
		return notDoc("null")
	}
	if dec.More() {
		return notDoc("data after the document")
	}
	var errs []*FieldError
	var defaults map[string]json.RawMessage
	var circuits map[string]map[string]json.RawMessage
	for _, key := range sortedKeys(top) {
		var err error
		switch key {
		case "defaults":
			err = json.Unmarshal(top[key], &defaults)
		case "circuits":
			err = json.Unmarshal(top[key], &circuits)
		default:
			err = errors.New(`unknown key: a document has "defaults" and "circuits"`)
		}
		if err != nil {
			errs = append(errs, &FieldError{Path: key, Err: err})
		}
	}
	l := &layer{circuits: map[string]section{}}
	s, e := newSection("defaults.", defaults, false)
	l.defaults, errs = s, append(errs, e...)
	for _, name := range sortedKeys(circuits) {
		s, e := newSection("circuits."+name+".", circuits[name], true)
		l.circuits[name] = s
		errs = append(errs, e...)
	}
	return l, errs
}

// newSection checks the keys and the form of the values of a section whose
// paths start with prefix; only a circuit's section may have a mode.
func newSection(prefix string, values map[string]json.RawMessage, circuit bool) (section, []*FieldError) {
	s := section{values: map[string]json.RawMessage{}, paths: map[string]string{}}
	var errs []*FieldError
	for _, key := range sortedKeys(values) {
		path := prefix + key
		if key == modeKey && !circuit {
			errs = append(errs, &FieldError{Path: path, Err: errors.New("a mode is per circuit")})
			continue
		}
		if key == modeKey {
			var text string
			var m Mode
			err := json.Unmarshal(values[key], &text)
			if err == nil {
				err = m.UnmarshalText([]byte(text))
			} else {
				err = errors.New("want auto, disabled or forced-open")
			}
			if err != nil {
				errs = append(errs, &FieldError{Path: path, Err: err})
				continue
			}
			s.mode = &m
			continue
		}
		f, ok := fieldByKey(key)
		if !ok {
			errs = append(errs, &FieldError{Path: path, Err: errors.New("unknown field")})
			continue
		}
		var probe Config
		if err := f.set(&probe, values[key]); err != nil {
			errs = append(errs, &FieldError{Path: path, Err: err})
			continue
		}
		s.values[key], s.paths[key] = values[key], path
	}
	return s, errs
}

// envName is the form of a circuit's name in environment variables: upper
// case, with every character other than a letter or a digit as '_'.
func envName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// envField is the suffix of f in environment variables: its key in upper
// snake case, as FAILURE_RATE_THRESHOLD.
func envField(key string) string {
	var b strings.Builder
	for i, r := range key {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
			continue
		}
		b.WriteRune(r - 'a' + 'A')
	}
	return b.String()
}

// envDefaults is the name that stands for the defaults in environment
// variables.
const envDefaults = "DEFAULTS"

// parseEnv reads the variables of environ (as os.Environ gives them) named
// prefix_NAME_FIELD: NAME is DEFAULTS or a circuit's name as envName writes
// it, FIELD a Config field or MODE as envField writes it. Other variables
// are left alone.
func parseEnv(prefix string, environ []string) (*layer, []*FieldError) {
	l := &layer{circuits: map[string]section{}, byEnv: true}
	l.defaults = section{values: map[string]json.RawMessage{}, paths: map[string]string{}}
	var errs []*FieldError
	prefix = strings.TrimSuffix(prefix, "_") + "_"
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := k[len(prefix):]
		key, name := "", ""
		for _, f := range append([]string{modeKey}, keysOf()...) {
			if suffix := "_" + envField(f); strings.HasSuffix(rest, suffix) && len(rest) > len(suffix) {
				if len(f) > len(key) { // the longest field wins: MAX_OPEN_TIMEOUT over OPEN_TIMEOUT
					key, name = f, strings.TrimSuffix(rest, suffix)
				}
			}
		}
		if key == "" {
			errs = append(errs, &FieldError{Path: k, Err: errors.New("names no field (PREFIX_NAME_FIELD)")})
			continue
		}
		if key == modeKey && name == envDefaults {
			errs = append(errs, &FieldError{Path: k, Err: errors.New("a mode is per circuit")})
			continue
		}
		raw, err := envValue(key, v)
		if err != nil {
			errs = append(errs, &FieldError{Path: k, Err: err})
			continue
		}
		s := l.defaults
		if name != envDefaults {
			var ok bool
			if s, ok = l.circuits[name]; !ok {
				s = section{values: map[string]json.RawMessage{}, paths: map[string]string{}}
			}
		}
		one, e := newSection("", map[string]json.RawMessage{key: raw}, name != envDefaults)
		if len(e) > 0 {
			e[0].Path = k
			errs = append(errs, e[0])
			continue
		}
		if one.mode != nil {
			s.mode = one.mode
		} else {
			s.values[key], s.paths[key] = raw, k
		}
		if name != envDefaults {
			l.circuits[name] = s
		}
	}
	return l, errs
}

func keysOf() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}

// envValue turns the text of an environment variable into the JSON value
// of the field with key key.
func envValue(key, text string) (json.RawMessage, error) {
	f, ok := fieldByKey(key)
	if !ok || f.kind == durationField || f.kind == windowField {
		return json.Marshal(text) // strings: durations, window types, modes
	}
	if f.kind == intField {
		if _, err := strconv.ParseInt(text, 10, 0); err != nil {
			return nil, fmt.Errorf("%q is not a whole number", text)
		}
	} else if _, err := strconv.ParseFloat(text, 64); err != nil {
		return nil, fmt.Errorf("%q is not a number", text)
	}
	return json.RawMessage(text), nil
}
