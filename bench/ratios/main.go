// Command ratios reads the output of the bench module's benchmarks and
// prints, as Markdown, how breaker compares with the fastest peer and with
// the floor in each scenario, and the acceptance checks of the performance
// issue. Figures are medians over the runs, as benchstat computes them.
//
//	go run ./ratios results.txt [scaling.txt [fleet.txt]]
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// line matches "BenchmarkClosed/serial/lib=gobreaker-2  123  45.6 ns/op ...".
var line = regexp.MustCompile(`^Benchmark(\S+?)/lib=(\S+?)(?:-(\d+))?\s+\d+\s+([\d.]+) ns/op(?:.*?\s([\d.]+) allocs/op)?`)

type key struct{ row, lib, procs string }

type sample struct{ ns, allocs []float64 }

func read(path string) (map[key]*sample, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data := map[key]*sample{}
	var rows []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		k := key{m[1], m[2], m[3]}
		if data[k] == nil {
			data[k] = &sample{}
			if !slices.Contains(rows, m[1]) {
				rows = append(rows, m[1])
			}
		}
		ns, _ := strconv.ParseFloat(m[4], 64)
		data[k].ns = append(data[k].ns, ns)
		if m[5] != "" {
			a, _ := strconv.ParseFloat(m[5], 64)
			data[k].allocs = append(data[k].allocs, a)
		}
	}
	return data, rows, sc.Err()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

var (
	ours  = []string{"breaker-count", "breaker-count-slow", "breaker-time", "breaker-time-slow"}
	peers = []string{"gobreaker", "failsafe", "hystrix"}
	// floors names, for each of our subjects, the floor with time.Now reads
	// and the floor with monotonic reads.
	floors = map[string][2]string{
		"breaker-count":      {"floor-call", "floor-call"},
		"breaker-count-slow": {"floor-now-2", "floor-mono-2"},
		"breaker-time":       {"floor-now-1", "floor-mono-1"},
		"breaker-time-slow":  {"floor-now-2", "floor-mono-2"},
	}
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ratios results.txt [scaling.txt [fleet.txt]]")
		os.Exit(2)
	}
	data, rows, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	procs := ""
	for k := range data {
		procs = k.procs
		break
	}
	ns := func(row, lib string) float64 {
		if s := data[key{row, lib, procs}]; s != nil {
			return median(s.ns)
		}
		return 0
	}

	fmt.Println("| scenario | breaker | ns/op | fastest peer | ns/op | ratio | floor (time.Now) | ratio | floor (monotonic) | ratio |")
	fmt.Println("| --- | --- | ---: | --- | ---: | ---: | --- | ---: | --- | ---: |")
	for _, row := range rows {
		best, bestNs := "", 0.0
		for _, p := range peers {
			if v := ns(row, p); v > 0 && (bestNs == 0 || v < bestNs) {
				best, bestNs = p, v
			}
		}
		for _, o := range ours {
			v := ns(row, o)
			if v == 0 {
				continue
			}
			cells := []string{row, o, f(v), best, f(bestNs), ratio(v, bestNs)}
			for _, fl := range floors[o] {
				if fv := ns(row, fl); fv > 0 {
					cells = append(cells, fmt.Sprintf("%s %s", fl, f(fv)), ratio(v, fv))
				} else {
					cells = append(cells, "", "")
				}
			}
			fmt.Println("| " + strings.Join(cells, " | ") + " |")
		}
	}

	fmt.Println()
	fmt.Println("| acceptance check | measured | target | |")
	fmt.Println("| --- | ---: | ---: | --- |")
	check := func(what string, got, limit float64) {
		verdict := "met"
		if got > limit {
			verdict = "**not met**"
		}
		fmt.Printf("| %s | %.2fx | ≤ %.2fx | %s |\n", what, got, limit, verdict)
	}
	check("closed, count window, slow tracking off, serial: vs gobreaker",
		ns("Closed/mode=serial", "breaker-count")/ns("Closed/mode=serial", "gobreaker"), 0.35)
	check("closed, slow tracking on, serial: vs floor (call + 2 time.Now)",
		ns("Closed/mode=serial", "breaker-count-slow")/ns("Closed/mode=serial", "floor-now-2"), 1.3)
	check("open rejection, serial: vs gobreaker",
		ns("Open/mode=serial", "breaker-count")/ns("Open/mode=serial", "gobreaker"), 0.5)
	check("closed, parallel on 2 cores: vs gobreaker",
		ns("Closed/mode=parallel", "breaker-count")/ns("Closed/mode=parallel", "gobreaker"), 0.6)
	zero := true
	for _, row := range []string{"Closed/mode=serial", "Closed/mode=parallel", "Open/mode=serial", "Open/mode=parallel", "HalfOpen/mode=serial"} {
		for _, o := range ours {
			if s := data[key{row, o, procs}]; s != nil && median(s.allocs) != 0 {
				zero = false
			}
		}
	}
	fmt.Printf("| allocations on the closed, open and half-open paths | %v | 0 | %s |\n",
		map[bool]string{true: "0", false: "some"}[zero], map[bool]string{true: "met", false: "**not met**"}[zero])

	if len(os.Args) > 2 {
		scaling(os.Args[2])
	}
	if len(os.Args) > 3 {
		fleet(os.Args[3])
	}
}

// fleetLine matches "BenchmarkFleet/goroutines=64/lib=x-2  100  50 ns/op  11.1 calls-per-second ...".
var fleetLine = regexp.MustCompile(`^BenchmarkFleet/goroutines=(\d+)/lib=(\S+?)(?:-\d+)?\s.*?\s([\d.]+) calls-per-second`)

// fleet prints the fleet benchmark's throughputs and the checks.
func fleet(path string) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	rates := map[[2]string][]float64{}
	var goroutines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := fleetLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		rates[[2]string{m[1], m[2]}] = append(rates[[2]string{m[1], m[2]}], v)
		if !slices.Contains(goroutines, m[1]) {
			goroutines = append(goroutines, m[1])
		}
	}
	fmt.Println()
	fmt.Println("| goroutines | breaker, shared | breaker, local | gobreaker distributed | shared ÷ gobreaker | local ÷ shared |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, g := range goroutines {
		shared := median(rates[[2]string{g, "breaker-shared"}])
		local := median(rates[[2]string{g, "breaker-local"}])
		gob := median(rates[[2]string{g, "gobreaker-distributed"}])
		fmt.Printf("| %s | %.0f | %.0f | %.1f | %.0fx | %.3fx |\n", g, shared, local, gob, shared/gob, local/shared)
	}
}

// scaling prints ns/op by GOMAXPROCS for the parallel closed and open paths.
func scaling(path string) {
	data, _, err := read(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var procs []int
	for k := range data {
		p := 1
		if k.procs != "" {
			p, _ = strconv.Atoi(k.procs)
		}
		if !slices.Contains(procs, p) {
			procs = append(procs, p)
		}
	}
	sort.Ints(procs)
	cols := []struct{ row, lib string }{
		{"Closed/mode=parallel", "breaker-count"}, {"Closed/mode=parallel", "gobreaker"},
		{"Open/mode=parallel", "breaker-count"}, {"Open/mode=parallel", "gobreaker"},
	}
	fmt.Println()
	fmt.Println("| GOMAXPROCS | closed: breaker | closed: gobreaker | open: breaker | open: gobreaker |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: |")
	for _, p := range procs {
		suffix := ""
		if p > 1 {
			suffix = strconv.Itoa(p)
		}
		cells := []string{strconv.Itoa(p)}
		for _, c := range cols {
			if s := data[key{c.row, c.lib, suffix}]; s != nil {
				cells = append(cells, f(median(s.ns)))
			} else {
				cells = append(cells, "")
			}
		}
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
}

func f(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func ratio(a, b float64) string {
	if b == 0 {
		return ""
	}
	return fmt.Sprintf("%.2fx", a/b)
}
