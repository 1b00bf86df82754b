package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// A snippet is a piece of Go code and where it was found.
type snippet struct {
	where string // file:line
	text  string
}

// Markers enclose a README snippet in the files of readmeSnippets; the
// lines between them, less the markers' indentation, are the snippet.
const (
	beginMarker = "// readme:begin"
	endMarker   = "// readme:end"
)

// readmeBlocks returns the ```go blocks of a Markdown file.
func readmeBlocks(name, text string) []snippet {
	var blocks []snippet
	var cur *snippet
	var lines []string
	for i, line := range strings.Split(text, "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &snippet{where: fmt.Sprintf("%s:%d", name, i+1)}
			lines = nil
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = strings.Join(lines, "\n")
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			lines = append(lines, line)
		}
	}
	return blocks
}

// regions returns the marked regions of a Go file.
func regions(name, src string) ([]snippet, error) {
	var rs []snippet
	var cur *snippet
	var indent string
	var lines []string
	for i, line := range strings.Split(src, "\n") {
		where := fmt.Sprintf("%s:%d", name, i+1)
		switch strings.TrimSpace(line) {
		case beginMarker:
			if cur != nil {
				return nil, fmt.Errorf("%s: %s inside the region begun at %s", where, beginMarker, cur.where)
			}
			cur = &snippet{where: fmt.Sprintf("%s:%d", name, i+2)}
			indent = line[:len(line)-len(strings.TrimLeft(line, " \t"))]
			lines = nil
			continue
		case endMarker:
			if cur == nil {
				return nil, fmt.Errorf("%s: %s with no %s before it", where, endMarker, beginMarker)
			}
			cur.text = strings.Join(lines, "\n")
			rs = append(rs, *cur)
			cur = nil
			continue
		}
		if cur == nil {
			continue
		}
		if line != "" && !strings.HasPrefix(line, indent) {
			return nil, fmt.Errorf("%s: indented less than the %s above it", where, beginMarker)
		}
		lines = append(lines, strings.TrimPrefix(line, indent))
	}
	if cur != nil {
		return nil, fmt.Errorf("%s: region with no %s", cur.where, endMarker)
	}
	return rs, nil
}

// matchSnippets checks that the README's blocks and the code's regions
// are the same texts, one for one.
func matchSnippets(blocks, code []snippet) error {
	used := make([]bool, len(code))
	var problems []string
outer:
	for _, b := range blocks {
		for i, c := range code {
			if !used[i] && c.text == b.text {
				used[i] = true
				continue outer
			}
		}
		problems = append(problems, fmt.Sprintf("%s: this Go block is no region of %s%s", b.where, readmeSnippets, closest(b, code, used)))
	}
	for i, c := range code {
		if !used[i] {
			problems = append(problems, fmt.Sprintf("%s: this region is no Go block of README.md", c.where))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the README's Go snippets and their compiled copies differ (edit both):\n\t%s", strings.Join(problems, "\n\t"))
	}
	return nil
}

// closest describes the first difference from the unused region that
// begins with the same line as b, if there is one.
func closest(b snippet, code []snippet, used []bool) string {
	bl := strings.Split(b.text, "\n")
	for i, c := range code {
		cl := strings.Split(c.text, "\n")
		if used[i] || cl[0] != bl[0] {
			continue
		}
		for j := range max(len(bl), len(cl)) {
			if j >= len(bl) || j >= len(cl) || bl[j] != cl[j] {
				got, want := "(end)", "(end)"
				if j < len(bl) {
					got = fmt.Sprintf("%q", bl[j])
				}
				if j < len(cl) {
					want = fmt.Sprintf("%q", cl[j])
				}
				return fmt.Sprintf(" (nearest: %s, whose line %d is %s where the README has %s)", c.where, j+1, want, got)
			}
		}
	}
	return ""
}

// checkReadme checks that every Go block of README.md is a region of the
// files in readmeSnippets, which the outside build compiles.
func (r *repo) checkReadme() (int, error) {
	readme, err := os.ReadFile(filepath.Join(r.root, "README.md"))
	if err != nil {
		return 0, err
	}
	blocks := readmeBlocks("README.md", string(readme))
	if err := r.checkFirstExample(blocks); err != nil {
		return 0, err
	}
	var code []snippet
	files, err := r.snippetFiles()
	if err != nil {
		return 0, err
	}
	for _, f := range files {
		src, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(f)))
		if err != nil {
			return 0, err
		}
		rs, err := regions(f, string(src))
		if err != nil {
			return 0, err
		}
		code = append(code, rs...)
	}
	return len(blocks), matchSnippets(blocks, code)
}

// snippetFiles returns the Go files of readmeSnippets, relative to the root.
func (r *repo) snippetFiles() ([]string, error) {
	var fs []string
	for _, f := range r.files {
		if rest, ok := strings.CutPrefix(f, readmeSnippets+"/"); ok && !strings.Contains(rest, "/") && strings.HasSuffix(f, ".go") {
			fs = append(fs, f)
		}
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("%s holds no Go file", readmeSnippets)
	}
	sort.Strings(fs)
	return fs, nil
}

// checkFirstExample checks that the breaker the README's first example
// makes, up to the line that closes its New call, is the one ExampleFailOn
// makes and shows tripping on 5xx answers: an earlier version of that
// example never tripped on them.
func (r *repo) checkFirstExample(blocks []snippet) error {
	if len(blocks) == 0 {
		return fmt.Errorf("README.md has no Go block")
	}
	lines := strings.Split(blocks[0].text, "\n")
	end := slices.Index(lines, "}))")
	if end < 0 {
		return fmt.Errorf("%s: the first Go block has no line \"}))\" that ends its breaker.New call", blocks[0].where)
	}
	src, err := os.ReadFile(filepath.Join(r.root, "example_test.go"))
	if err != nil {
		return err
	}
	want := "\n\t" + strings.Join(lines[:end+1], "\n\t") + "\n"
	fn := string(src)
	if i := strings.Index(fn, "\nfunc ExampleFailOn() {"); i >= 0 {
		fn = fn[i:]
		if j := strings.Index(fn, "\n}\n"); j >= 0 && strings.Contains(fn[:j+1], want) {
			return nil
		}
	}
	return fmt.Errorf("%s: the breaker of the first Go block, up to its \"}))\" line, is not the one ExampleFailOn in example_test.go makes and tests: keep them the same", blocks[0].where)
}
