package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSplitProcs(t *testing.T) {
	for _, tc := range []struct {
		in    string
		name  string
		procs int
	}{
		{"Closed/mode=serial/lib=floor-mono-2", "Closed/mode=serial/lib=floor-mono-2", 1},
		{"Closed/mode=serial/lib=floor-mono-2-2", "Closed/mode=serial/lib=floor-mono-2", 2},
		{"Closed/mode=serial/lib=breaker-time-16", "Closed/mode=serial/lib=breaker-time", 16},
		{"Closed/mode=serial/lib=breaker-time", "Closed/mode=serial/lib=breaker-time", 1},
		{"TimeWindowRate/calls-per-window=1000", "TimeWindowRate/calls-per-window=1000", 1},
		{"TimeWindowRate/calls-per-window=1000-4", "TimeWindowRate/calls-per-window=1000", 4},
		{"MemoryPerBreaker/procs=128/lib=gobreaker-2", "MemoryPerBreaker/procs=128/lib=gobreaker", 2},
		{"Fleet/goroutines=64/lib=breaker-shared", "Fleet/goroutines=64/lib=breaker-shared", 1},
	} {
		name, procs := splitProcs(tc.in)
		if name != tc.name || procs != tc.procs {
			t.Errorf("splitProcs(%q) = %q, %d, want %q, %d", tc.in, name, procs, tc.name, tc.procs)
		}
	}
}

func TestRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.txt")
	text := `goos: linux
BenchmarkClosed/mode=serial/lib=gobreaker-2   	 100	  40.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkClosed/mode=serial/lib=gobreaker-2   	 100	  10.0 ns/op	 0 B/op	 0 allocs/op
BenchmarkClosed/mode=serial/lib=gobreaker-2   	 100	  20.0 ns/op	 0 B/op	 1 allocs/op
BenchmarkSlowListener/lib=floor-2 	 1	3000000000 ns/op	 98000 calls-per-second	 0 events-lost	 0.01 heap-MB
PASS
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := read(path)
	if v, ok := s.get("Closed/mode=serial/lib=gobreaker", 2, "ns/op"); !ok || v != 20 {
		t.Errorf("ns/op = %v, %v; want the median, 20", v, ok)
	}
	if v, ok := s.get("SlowListener/lib=floor", 2, "calls-per-second"); !ok || v != 98000 {
		t.Errorf("calls-per-second = %v, %v; want 98000", v, ok)
	}
	if _, ok := s.get("Closed/mode=serial/lib=gobreaker", 1, "ns/op"); ok {
		t.Error("found a benchmark at GOMAXPROCS 1")
	}
	if p := s.mainProcs(); p != 2 {
		t.Errorf("mainProcs = %d, want 2", p)
	}
	if empty := read(filepath.Join(t.TempDir(), "missing.txt")); len(empty.samples) != 0 {
		t.Error("a missing file gave samples")
	}
}
