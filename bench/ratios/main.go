// Command ratios reads the output of bench/run's benchmarks and prints, as
// Markdown, the performance targets, how each subject compares with
// gobreaker and with its floor, the parallel scaling, the memory per
// breaker, the slow listener's delivery and, given fleet.txt, the fleet's
// throughput, consistency and propagation. Figures are medians over the
// rounds, as benchstat computes them. A file or a figure that is missing
// reads "not measured". With -fleet it prints the fleet's tables alone.
//
//	go run ./ratios results.txt scaling.txt memory.txt delivery.txt [fleet.txt]
//	go run ./ratios -fleet fleet.txt
package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Subjects of the call-path benchmarks, by kind.
var (
	ours = []string{
		"breaker-time", "breaker-time-prom", "breaker-time-otel", "breaker-time-slow",
		"breaker-count", "breaker-count-slow",
	}
	peers = []string{"gobreaker", "failsafe", "hystrix"}
	// floorOf names, for each of our subjects, the floor of the clock reads
	// it needs on the closed path.
	floorOf = map[string]string{
		"breaker-time":       "floor-mono-1",
		"breaker-time-prom":  "floor-mono-1",
		"breaker-time-otel":  "floor-mono-1",
		"breaker-time-slow":  "floor-mono-2",
		"breaker-count":      "floor-call",
		"breaker-count-slow": "floor-mono-2",
	}
	floors = []string{"floor-call", "floor-mono-1", "floor-mono-2"}
)

// known holds every lib= value, so that a name ending in -N (floor-mono-2)
// is not taken for a GOMAXPROCS suffix.
var known = map[string]bool{"breaker": true, "floor": true}

func init() {
	for _, l := range slices.Concat(ours, peers, floors, fleetLibs) {
		known[l] = true
	}
}

// id names a benchmark: its name without "Benchmark" and without the
// GOMAXPROCS suffix, and that GOMAXPROCS.
type id struct {
	name  string
	procs int
}

// set holds the samples of a file's benchmarks, by unit, and the names in
// the order they first appear.
type set struct {
	samples map[id]map[string][]float64
	names   []string
}

// read parses the benchmark lines of path. A file that cannot be read
// gives an empty set, with a note on stderr.
func read(path string) *set {
	s := &set{samples: map[id]map[string][]float64{}}
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue
		}
		name, procs := splitProcs(strings.TrimPrefix(fields[0], "Benchmark"))
		k := id{name, procs}
		if s.samples[k] == nil {
			s.samples[k] = map[string][]float64{}
		}
		if !slices.Contains(s.names, name) {
			s.names = append(s.names, name)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				break
			}
			s.samples[k][fields[i+1]] = append(s.samples[k][fields[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
	}
	return s
}

// splitProcs splits the GOMAXPROCS suffix off a benchmark's name; the
// testing package leaves it out for GOMAXPROCS 1.
func splitProcs(name string) (string, int) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name, 1
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n <= 0 {
		return name, 1
	}
	last := name[strings.LastIndexByte(name, '/')+1:]
	if lib, ok := strings.CutPrefix(last, "lib="); ok && known[lib] {
		return name, 1
	}
	return name[:i], n
}

// get returns the median of a benchmark's samples in unit, and whether
// there are any.
func (s *set) get(name string, procs int, unit string) (float64, bool) {
	xs := s.samples[id{name, procs}][unit]
	if len(xs) == 0 {
		return 0, false
	}
	return median(xs), true
}

// procs returns the GOMAXPROCS values in the set, in increasing order.
func (s *set) procs() []int {
	var ps []int
	for k := range s.samples {
		if !slices.Contains(ps, k.procs) {
			ps = append(ps, k.procs)
		}
	}
	slices.Sort(ps)
	return ps
}

// mainProcs returns the GOMAXPROCS that most of the set's benchmarks ran
// with.
func (s *set) mainProcs() int {
	count := map[int]int{}
	best := 1
	for k := range s.samples {
		count[k.procs]++
		if count[k.procs] > count[best] || count[k.procs] == count[best] && k.procs > best {
			best = k.procs
		}
	}
	return best
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

const notMeasured = "not measured"

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-fleet" {
		fleet(read(os.Args[2]))
		return
	}
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: ratios results.txt scaling.txt memory.txt delivery.txt [fleet.txt]\n       ratios -fleet fleet.txt")
		os.Exit(2)
	}
	results, scaling, memory, delivery := read(os.Args[1]), read(os.Args[2]), read(os.Args[3]), read(os.Args[4])
	procs := results.mainProcs()
	targets(results, procs, memory, delivery)
	ratios(results, procs)
	scalingTable(scaling)
	memoryTable(memory)
	deliveryTable(delivery)
	if len(os.Args) > 5 {
		fleet(read(os.Args[5]))
	}
}

// targets prints the performance targets: the call paths from results at
// GOMAXPROCS procs, the memory per breaker and the slow listener.
func targets(results *set, procs int, memory, delivery *set) {
	callNs := func(scenario, mode, lib string) (float64, bool) {
		return results.get(scenario+"/mode="+mode+"/lib="+lib, procs, "ns/op")
	}

	fmt.Printf("## Targets\n\n")
	fmt.Printf("Call paths at GOMAXPROCS %d.\n\n", procs)
	fmt.Println("| target | measured | goal | |")
	fmt.Println("| --- | ---: | ---: | --- |")
	vsGobreaker := func(what, scenario, mode, lib string, limit float64) {
		v, ok1 := callNs(scenario, mode, lib)
		g, ok2 := callNs(scenario, mode, "gobreaker")
		target(what, ok1 && ok2, ratioOf(v, g), limit, "%.2fx")
	}
	vsGobreaker("with prommetrics: closed, serial: breaker-time-prom ÷ gobreaker", "Closed", "serial", "breaker-time-prom", 0.4)
	vsGobreaker("with prommetrics: open refusal, serial: breaker-time-prom ÷ gobreaker", "Open", "serial", "breaker-time-prom", 0.6)
	vsGobreaker("with prommetrics: closed, RunParallel: breaker-time-prom ÷ gobreaker", "Closed", "parallel", "breaker-time-prom", 0.2)
	vsGobreaker("with prommetrics: half-open, RunParallel: breaker-time-prom ÷ gobreaker", "HalfOpen", "parallel", "breaker-time-prom", 1.0)
	vsGobreaker("no listener: closed, serial: breaker-time ÷ gobreaker", "Closed", "serial", "breaker-time", 0.35)
	for _, lib := range []string{"breaker-time-slow", "breaker-count-slow"} {
		v, ok1 := callNs("Closed", "serial", lib)
		fl, ok2 := callNs("Closed", "serial", "floor-mono-2")
		target("slow tracking: closed, serial: "+lib+" ÷ floor-mono-2", ok1 && ok2, ratioOf(v, fl), 1.3, "%.2fx")
	}
	checkAllocs(results, procs)
	perBreaker, ok := memory.get("MemoryPerBreaker/procs=128/lib=breaker-count", memory.mainProcs(), "B/breaker")
	target("bytes per breaker, GOMAXPROCS 128, breaker-count (Config{})", ok, perBreaker, 1024, "%.0f B")
	dp := delivery.mainProcs()
	slowest, ok := delivery.get("SlowListener/lib=breaker", dp, "slowest-ms")
	floorSlowest, okFloor := delivery.get("SlowListener/lib=floor", dp, "slowest-ms")
	measured := notMeasured
	if ok {
		measured = fmt.Sprintf("%.1f ms", slowest)
		if okFloor {
			measured += fmt.Sprintf(" (floor %.1f ms)", floorSlowest)
		}
	}
	v := verdict(ok, slowest <= 100)
	if ok && okFloor && slowest > 100 && floorSlowest > 100 {
		v += " (nor by the floor)"
	}
	row("slow listener: slowest Execute", measured, "≤ 100 ms", v)
	heap, ok := delivery.get("SlowListener/lib=breaker", dp, "heap-MB")
	target("slow listener: heap growth", ok, heap, 32, "%.2f MB")
	lost, ok := delivery.get("SlowListener/lib=breaker", dp, "events-lost")
	row("slow listener: events lost", fmtIf(ok, "%.0f", lost), "0", verdict(ok, lost == 0))
}

// checkAllocs prints the row of the allocations on the closed and open
// paths of every breaker-* subject.
func checkAllocs(results *set, procs int) {
	var bad []string
	seen := 0
	for _, lib := range ours {
		for _, sc := range []string{"Closed", "Open"} {
			for _, mode := range modes {
				v, ok := results.get(sc+"/mode="+mode+"/lib="+lib, procs, "allocs/op")
				if !ok {
					continue
				}
				seen++
				if v != 0 {
					bad = append(bad, fmt.Sprintf("%s %s %s: %g", lib, sc, mode, v))
				}
			}
		}
	}
	measured := "0"
	switch {
	case seen == 0:
		measured = notMeasured
	case len(bad) > 0:
		measured = strings.Join(bad, "; ")
	}
	row(fmt.Sprintf("allocations on the closed and open paths, breaker-* (%d benchmarks)", seen), measured, "0",
		verdict(seen > 0, len(bad) == 0))
}

// target prints a row whose measure must be at most limit.
func target(what string, ok bool, v, limit float64, format string) {
	row(what, fmtIf(ok, format, v), "≤ "+fmt.Sprintf(format, limit), verdict(ok, v <= limit))
}

func row(cells ...string) { fmt.Println("| " + strings.Join(cells, " | ") + " |") }

func verdict(measured, met bool) string {
	switch {
	case !measured:
		return notMeasured
	case met:
		return "met"
	}
	return "**not met**"
}

func fmtIf(ok bool, format string, v float64) string {
	if !ok {
		return notMeasured
	}
	return fmt.Sprintf(format, v)
}

func ratioOf(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

var (
	scenarios = []string{"Closed", "Failing10", "Open", "HalfOpen"}
	modes     = []string{"serial", "parallel"}
)

// ratios prints each subject's ns/op and its ratio to gobreaker by
// scenario, then our subjects against their floors.
func ratios(results *set, procs int) {
	ns := func(scenario, mode, lib string) (float64, bool) {
		return results.get(scenario+"/mode="+mode+"/lib="+lib, procs, "ns/op")
	}
	fmt.Printf("\n## Against gobreaker\n\nns/op, and in parentheses the ratio to gobreaker in the same column; GOMAXPROCS %d.\n\n", procs)
	header := []string{"subject"}
	for _, sc := range scenarios {
		for _, m := range modes {
			header = append(header, sc+" "+m)
		}
	}
	row(header...)
	row(slices.Concat([]string{"---"}, slices.Repeat([]string{"---:"}, len(header)-1))...)
	for _, lib := range slices.Concat(ours, peers) {
		cells := []string{lib}
		for _, sc := range scenarios {
			for _, m := range modes {
				v, ok := ns(sc, m, lib)
				g, okG := ns(sc, m, "gobreaker")
				switch {
				case !ok:
					cells = append(cells, notMeasured)
				case okG && lib != "gobreaker":
					cells = append(cells, fmt.Sprintf("%s (%.2fx)", f(v), v/g))
				default:
					cells = append(cells, f(v))
				}
			}
		}
		row(cells...)
	}

	fmt.Printf("\n## Against the floors\n\nClosed path: ns/op of each breaker subject and of the floor of the clock reads it needs.\n\n")
	row("subject", "floor", "serial", "floor", "ratio", "parallel", "floor", "ratio")
	row("---", "---", "---:", "---:", "---:", "---:", "---:", "---:")
	for _, lib := range ours {
		fl := floorOf[lib]
		cells := []string{lib, fl}
		for _, m := range modes {
			v, ok := ns("Closed", m, lib)
			fv, okF := ns("Closed", m, fl)
			cells = append(cells, fmtIf(ok, "%.1f", v), fmtIf(okF, "%.1f", fv))
			if ok && okF {
				cells = append(cells, fmt.Sprintf("%.2fx", v/fv))
			} else {
				cells = append(cells, notMeasured)
			}
		}
		row(cells...)
	}
}

// scalingTable prints ns/op by GOMAXPROCS for the parallel closed and open
// paths.
func scalingTable(s *set) {
	libs := []string{"breaker-time", "breaker-time-prom", "gobreaker"}
	fmt.Printf("\n## Parallel scaling\n\nns/op under RunParallel by GOMAXPROCS, and in parentheses the ratio to gobreaker.\n\n")
	header := []string{"GOMAXPROCS"}
	for _, sc := range []string{"closed", "open"} {
		for _, l := range libs {
			header = append(header, sc+": "+l)
		}
	}
	row(header...)
	row(slices.Repeat([]string{"---:"}, len(header))...)
	ps := s.procs()
	if len(ps) == 0 {
		row(slices.Concat([]string{notMeasured}, slices.Repeat([]string{""}, len(header)-1))...)
	}
	for _, p := range ps {
		cells := []string{strconv.Itoa(p)}
		for _, sc := range []string{"Closed", "Open"} {
			g, okG := s.get(sc+"/mode=parallel/lib=gobreaker", p, "ns/op")
			for _, l := range libs {
				v, ok := s.get(sc+"/mode=parallel/lib="+l, p, "ns/op")
				switch {
				case !ok:
					cells = append(cells, notMeasured)
				case okG && l != "gobreaker":
					cells = append(cells, fmt.Sprintf("%s (%.2fx)", f(v), v/g))
				default:
					cells = append(cells, f(v))
				}
			}
		}
		row(cells...)
	}
}

// memoryTable prints the heap bytes per breaker by GOMAXPROCS.
func memoryTable(s *set) {
	libs := []string{"breaker-count", "breaker-time", "gobreaker"}
	fmt.Printf("\n## Memory\n\nHeap bytes per breaker, each used for one call, by GOMAXPROCS.\n\n")
	row(slices.Concat([]string{"GOMAXPROCS"}, libs)...)
	row(slices.Repeat([]string{"---:"}, len(libs)+1)...)
	p := s.mainProcs()
	for _, procs := range []string{"1", "16", "128"} {
		cells := []string{procs}
		for _, l := range libs {
			v, ok := s.get("MemoryPerBreaker/procs="+procs+"/lib="+l, p, "B/breaker")
			cells = append(cells, fmtIf(ok, "%.0f", v))
		}
		row(cells...)
	}
}

// deliveryTable prints the slow listener's figures, breaker against floor.
func deliveryTable(s *set) {
	p := s.mainProcs()
	rounds := len(s.samples[id{"SlowListener/lib=breaker", p}]["slowest-ms"])
	fmt.Printf("\n## A slow listener\n\n8 goroutines, a listener that spins 20µs on every event; medians over %d rounds.\n\n", rounds)
	row("metric", "breaker", "floor")
	row("---", "---:", "---:")
	for _, m := range []struct{ unit, what, format string }{
		{"slowest-ms", "slowest Execute, ms", "%.1f"},
		{"p999-us", "99.9th percentile, µs", "%.0f"},
		{"heap-MB", "heap growth, MB", "%.2f"},
		{"events-lost", "events lost", "%.0f"},
		{"calls-per-second", "calls per second", "%.0f"},
	} {
		b, okB := s.get("SlowListener/lib=breaker", p, m.unit)
		fl, okF := s.get("SlowListener/lib=floor", p, m.unit)
		row(m.what, fmtIf(okB, m.format, b), fmtIf(okF, m.format, fl))
	}
}

// fleetLibs are the subjects of the fleet benchmarks.
var fleetLibs = []string{"breaker-shared", "breaker-local", "gobreaker-distributed"}

// fleet prints the fleet benchmarks: throughput, the failures let through
// before every instance refuses, and the propagation of a trip.
func fleet(s *set) {
	p := s.mainProcs()
	fmt.Printf("\n## Fleet\n\nCalls per second through a fleet of 4 instances, each call sleeping 1ms.\n\n")
	row("goroutines", "breaker, shared", "breaker, local", "gobreaker distributed", "shared ÷ gobreaker", "local ÷ shared")
	row("---:", "---:", "---:", "---:", "---:", "---:")
	goroutines := s.level("Fleet/goroutines=")
	if len(goroutines) == 0 {
		row(notMeasured, "", "", "", "", "")
	}
	for _, g := range goroutines {
		rate := func(lib string) (float64, bool) {
			return s.get("Fleet/goroutines="+g+"/lib="+lib, p, "calls-per-second")
		}
		shared, okS := rate("breaker-shared")
		local, okL := rate("breaker-local")
		gob, okG := rate("gobreaker-distributed")
		row(g, fmtIf(okS, "%.0f", shared), fmtIf(okL, "%.0f", local), fmtIf(okG, "%.1f", gob),
			fmtIf(okS && okG && gob > 0, ratioFormat(ratioOf(shared, gob)), ratioOf(shared, gob)),
			fmtIf(okS && okL && shared > 0, "%.3fx", ratioOf(local, shared)))
	}

	fmt.Printf("\nThe time of a call, waiting included, in ms: the 99th percentile and the slowest; the calls that failed; and gobreaker's calls per second over the whole run, the drain at the end included (each the median over the rounds).\n\n")
	row("goroutines", "breaker, shared: p99", "breaker, local: p99", "gobreaker: p99", "gobreaker: slowest", "gobreaker: failed calls", "gobreaker: calls/s, drain included")
	row("---:", "---:", "---:", "---:", "---:", "---:", "---:")
	if len(goroutines) == 0 {
		row(notMeasured, "", "", "", "", "", "")
	}
	for _, g := range goroutines {
		get := func(lib, unit string) (float64, bool) {
			return s.get("Fleet/goroutines="+g+"/lib="+lib, p, unit)
		}
		cell := func(lib, unit, format string) string {
			v, ok := get(lib, unit)
			return fmtIf(ok, format, v)
		}
		row(g, cell("breaker-shared", "p99-call-ms", "%.2f"), cell("breaker-local", "p99-call-ms", "%.2f"),
			cell("gobreaker-distributed", "p99-call-ms", "%.0f"), cell("gobreaker-distributed", "max-call-ms", "%.0f"),
			cell("gobreaker-distributed", "failed-calls", "%.0f"), cell("gobreaker-distributed", "drained-calls-per-second", "%.1f"))
	}

	fmt.Printf("\nFailing calls let through before every instance refuses (trip at a failure rate of 0.5 over 10 calls): the median over the rounds of each round's mean and, in brackets, the fewest and the most of any fleet in any round. For breaker, shared, the last column gives how many of the 4 instances the fleet's trip opened before their own window did (the median over the rounds of each round's mean).\n\n")
	row("callers", "breaker, shared", "breaker, local", "gobreaker distributed", "shared: opened by the fleet")
	row("---:", "---:", "---:", "---:", "---:")
	callers := s.level("FleetConsistency/callers=")
	if len(callers) == 0 {
		row(notMeasured, "", "", "", "")
	}
	for _, c := range callers {
		cells := []string{c}
		for _, lib := range fleetLibs {
			name := "FleetConsistency/callers=" + c + "/lib=" + lib
			mean, ok := s.get(name, p, "failures-before-all-refuse")
			least, okMin := s.all(name, p, "min-failures")
			most, okMax := s.all(name, p, "max-failures")
			cell := fmtIf(ok, "%.1f", mean)
			if ok && okMin && okMax {
				cell += fmt.Sprintf(" (%.0f–%.0f)", slices.Min(least), slices.Max(most))
			}
			cells = append(cells, cell)
		}
		byFleet, ok := s.get("FleetConsistency/callers="+c+"/lib=breaker-shared", p, "fleet-opened")
		cells = append(cells, fmtIf(ok, "%.1f", byFleet))
		row(cells...)
	}

	fmt.Printf("\nPropagation: from a trip on one instance to the first refusal on another, the median over the rounds of each round's median and slowest.\n\n")
	row("subject", "median, µs", "slowest, µs")
	row("---", "---:", "---:")
	for _, sub := range []string{"breaker-shared/via=published", "breaker-shared/via=synced", "gobreaker-distributed"} {
		median, okM := s.get("FleetPropagation/lib="+sub, p, "median-µs")
		slowest, okS := s.get("FleetPropagation/lib="+sub, p, "max-µs")
		row(sub, fmtIf(okM, "%.0f", median), fmtIf(okS, "%.0f", slowest))
	}
}

// all returns a benchmark's samples in unit, one a round, and whether
// there are any.
func (s *set) all(name string, procs int, unit string) ([]float64, bool) {
	xs := s.samples[id{name, procs}][unit]
	return xs, len(xs) > 0
}

// level returns, in the order they first appear, the values of the
// sub-benchmark level that follows prefix in the set's names.
func (s *set) level(prefix string) []string {
	var vs []string
	for _, name := range s.names {
		v, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, "/")
		if !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	return vs
}

// ratioFormat shows a ratio under 10 with one decimal.
func ratioFormat(v float64) string {
	if v < 10 {
		return "%.1fx"
	}
	return "%.0fx"
}

func f(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
