package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadmeBlocks(t *testing.T) {
	md := "# t\n\n```sh\ngo get x\n```\n\n```go\na := 1\n\tb(a)\n```\ntext\n```go\nc()\n```\n"
	assert.Equal(t, []snippet{
		{where: "R.md:7", text: "a := 1\n\tb(a)"},
		{where: "R.md:12", text: "c()"},
	}, readmeBlocks("R.md", md))
}

func TestRegions(t *testing.T) {
	src := "package main\n\nfunc f() {\n\t// readme:begin\n\ta := `\n\t  x`\n\n\tif a != \"\" {\n\t\tb()\n\t}\n\t// readme:end\n}\n"
	rs, err := regions("f.go", src)
	require.NoError(t, err)
	assert.Equal(t, []snippet{{where: "f.go:5", text: "a := `\n  x`\n\nif a != \"\" {\n\tb()\n}"}}, rs)

	for name, src := range map[string]string{
		"begin inside":  "\t// readme:begin\n\t// readme:begin\n\t// readme:end\n",
		"end alone":     "\t// readme:end\n",
		"no end":        "\t// readme:begin\n\tx()\n",
		"less indented": "\t\t// readme:begin\n\tx()\n\t\t// readme:end\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := regions("f.go", src)
			assert.Error(t, err)
		})
	}
}

func TestMatchSnippets(t *testing.T) {
	blocks := []snippet{{"R.md:1", "a()\nb()"}, {"R.md:9", "c()"}}
	assert.NoError(t, matchSnippets(blocks, []snippet{{"f.go:3", "c()"}, {"f.go:9", "a()\nb()"}}))

	err := matchSnippets(blocks, []snippet{{"f.go:3", "c()"}, {"f.go:9", "a()\nB()"}, {"f.go:20", "d()"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `R.md:1: this Go block is no region of`)
	assert.Contains(t, err.Error(), `(nearest: f.go:9, whose line 2 is "B()" where the README has "b()")`)
	assert.Contains(t, err.Error(), "f.go:20: this region is no Go block of README.md")
}

func TestForeignDiff(t *testing.T) {
	diff := strings.Join([]string{
		"diff current/go.mod tidy/go.mod",
		"--- current/go.mod",
		"+++ tidy/go.mod",
		"@@ -1,3 +1,3 @@",
		" module x",
		"-\tgithub.com/google/uuid v1.6.0",
		"--- current/go.sum",
		"+++ tidy/go.sum",
		"@@ -1,3 +1,5 @@",
		"+github.com/seed18491788/breaker v0.1.0 h1:abc=",
		"+github.com/seed18491788/breaker/prommetrics v0.1.0/go.mod h1:def=",
		"-golang.org/x/sys v0.1.0 h1:ghi=",
		"",
	}, "\n")
	assert.Equal(t, "\tgo.mod: -\tgithub.com/google/uuid v1.6.0\n\tgo.sum: -golang.org/x/sys v0.1.0 h1:ghi=", foreignDiff(diff))

	ours := "--- current/go.sum\n+++ tidy/go.sum\n@@ -1 +1,2 @@\n+github.com/seed18491788/breaker v0.1.0/go.mod h1:x=\n"
	assert.Empty(t, foreignDiff(ours))
}

func TestRequiring(t *testing.T) {
	gomod := "module github.com/seed18491788/breaker/prommetrics\n\ngo 1.24\n\nrequire (\n" +
		"\tgithub.com/prometheus/client_golang v1.23.2\n" +
		"\tgithub.com/seed18491788/breaker v0.1.0\n)\n"
	out, err := requiring("go.mod", []byte(gomod), "v0.2.0")
	require.NoError(t, err)
	assert.Equal(t, strings.Replace(gomod, "breaker v0.1.0", "breaker v0.2.0", 1), string(out))

	same, err := requiring("go.mod", []byte(gomod), "v0.1.0")
	require.NoError(t, err)
	assert.Equal(t, gomod, string(same))
}

func TestWouldBe(t *testing.T) {
	for _, tc := range []struct {
		name, asked, required string
		tags                  []string
		want                  string
	}{
		{"first release", "", "v0.1.0", nil, "v0.1.0"},
		{"nothing required, no tag", "", "", nil, "v0.1.0"},
		{"required is tagged: the next minor", "", "v0.1.0", []string{"v0.1.0", "prommetrics/v0.1.0"}, "v0.2.0"},
		{"the latest tag counts", "", "v0.1.0", []string{"v0.1.0", "v0.3.1", "v0.2.0", "prommetrics/v0.9.0"}, "v0.4.0"},
		{"asked", "v0.1.1", "v0.1.0", []string{"v0.1.0"}, "v0.1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &repo{modules: []*mod{{dir: ".", path: ourPath}}, tags: tc.tags}
			v, err := r.wouldBe(tc.asked, tc.required)
			require.NoError(t, err)
			assert.Equal(t, tc.want, v)
		})
	}
	r := &repo{modules: []*mod{{dir: ".", path: ourPath}}}
	for _, bad := range []string{"0.1.0", "v0.1", "v2.0.0", "v0.1.0+build"} {
		_, err := r.wouldBe(bad, "")
		assert.Error(t, err, bad)
	}
}

func TestPrevious(t *testing.T) {
	r := &repo{tags: []string{"v0.1.0", "v0.2.0", "prommetrics/v0.1.0", "prommetrics/v0.1.1", "prommetrics/x", "v0.3.0-rc.1"}}
	core, prom := &mod{dir: "."}, &mod{dir: "prommetrics"}
	assert.Equal(t, "v0.3.0-rc.1", r.previous(core, "v0.3.0"))
	assert.Equal(t, "v0.2.0", r.previous(core, "v0.2.1"))
	assert.Equal(t, "v0.1.0", r.previous(core, "v0.2.0"))
	assert.Equal(t, "", r.previous(core, "v0.1.0"))
	assert.Equal(t, "v0.1.1", r.previous(prom, "v0.2.0"))
}

// The repository itself: its README's snippets and their compiled copies
// agree, and its go.mod files and go.work pass the checks that need no
// go command. The build outside the repository is left to the check.
func TestRepository(t *testing.T) {
	r, err := load()
	require.NoError(t, err)
	n, err := r.checkReadme()
	require.NoError(t, err)
	assert.Positive(t, n)
	required, err := r.required()
	require.NoError(t, err)
	assert.NoError(t, r.lint(required))
}
