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

func TestFleetLevels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.txt")
	text := `BenchmarkFleet/goroutines=4/lib=breaker-shared-2 	 200	 277328 ns/op	 3606 calls-per-second	 0 failed-calls
BenchmarkFleet/goroutines=16/lib=gobreaker-distributed-2 	 200	 2706905 ns/op	 369.4 calls-per-second	 0 failed-calls
BenchmarkFleetConsistency/callers=1/lib=breaker-shared-2 	 5	 32655160 ns/op	 29.40 failures-before-all-refuse	 3.2 fleet-opened	 0 gave-up	 38.00 max-failures	 21.00 min-failures
BenchmarkFleetConsistency/callers=1/lib=breaker-shared-2 	 5	 32655160 ns/op	 29.40 failures-before-all-refuse	 3.0 fleet-opened	 0 gave-up	 39.00 max-failures	 25.00 min-failures
BenchmarkFleetConsistency/callers=16/lib=gobreaker-distributed-2 	 5	 577959489 ns/op	 160.0 failures-before-all-refuse	 0 gave-up	 160.0 max-failures
BenchmarkFleetPropagation/lib=gobreaker-distributed-2 	 200	 487798 ns/op	 2749 max-µs	 470.0 median-µs
BenchmarkFleetPropagation/lib=breaker-shared/via=synced-2 	 30	 487798 ns/op	 99000 max-µs	 51000 median-µs
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := read(path)
	if got := s.level("Fleet/goroutines="); len(got) != 2 || got[0] != "4" || got[1] != "16" {
		t.Errorf("goroutines = %q, want [4 16]", got)
	}
	if got := s.level("FleetConsistency/callers="); len(got) != 2 || got[0] != "1" || got[1] != "16" {
		t.Errorf("callers = %q, want [1 16]", got)
	}
	if v, ok := s.get("FleetConsistency/callers=1/lib=breaker-shared", 2, "failures-before-all-refuse"); !ok || v != 29.4 {
		t.Errorf("failures-before-all-refuse = %v, %v; want 29.4", v, ok)
	}
	if v, ok := s.all("FleetConsistency/callers=1/lib=breaker-shared", 2, "min-failures"); !ok || len(v) != 2 || v[0] != 21 || v[1] != 25 {
		t.Errorf("min-failures = %v, %v; want [21 25]", v, ok)
	}
	if v, ok := s.get("FleetPropagation/lib=breaker-shared/via=synced", 2, "median-µs"); !ok || v != 51000 {
		t.Errorf("via=synced median-µs = %v, %v; want 51000", v, ok)
	}
	if v, ok := s.get("FleetPropagation/lib=gobreaker-distributed", 2, "median-µs"); !ok || v != 470 {
		t.Errorf("median-µs = %v, %v; want 470", v, ok)
	}
}
