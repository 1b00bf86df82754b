package main

import (
	"fmt"
	"strings"
	"time"
)

// sandbox makes a sandbox whose proxy serves the published modules at v
// (and at required, when that is an earlier tag).
func (r *repo) sandbox(v, required string) (*sandbox, error) {
	if required != "" && required != v && !r.tagged(r.modules[0], required) {
		return nil, fmt.Errorf("the modules require each other at %s, which is neither tagged nor the would-be release %s: go run ./scripts/releasecheck -set-version %s", required, v, v)
	}
	s, err := newSandbox()
	if err != nil {
		return nil, err
	}
	if err := r.buildProxy(s.proxy, v, required); err != nil {
		s.remove(false)
		return nil, err
	}
	return s, nil
}

// check runs the whole release check, and prints what it found.
func (r *repo) check(asked string, keep bool) error {
	required, err := r.required()
	if err != nil {
		return err
	}
	v, err := r.wouldBe(asked, required)
	if err != nil {
		return err
	}
	var names []string
	for _, m := range r.published() {
		names = append(names, m.tagPrefix()+v)
	}
	logf("would-be release %s: tags %s", v, strings.Join(names, " "))

	if err := r.lint(required); err != nil {
		return err
	}
	logf("go.mod files: no replace directive; the modules require each other at %s, which go.work resolves here", required)

	n, err := r.checkReadme()
	if err != nil {
		return err
	}
	logf("README.md: its %d Go snippets are the regions of %s", n, readmeSnippets)

	step := time.Now()
	s, err := r.sandbox(v, required)
	if err != nil {
		return err
	}
	defer s.remove(keep)
	logf("proxy: %d modules at %s in %s", len(r.published()), v, "file://"+s.proxy)

	if err := r.checkTidy(s, v); err != nil {
		return err
	}
	logf("go mod tidy: %d go.mod files tidy (GOWORK=off, against the proxy) in %s", len(r.modules), since(step))

	step = time.Now()
	built, err := r.checkOutside(s, v)
	if err != nil {
		return err
	}
	logf("outside the repository (GOWORK=off, GOPROXY=proxy): go get of the %d published modules @%s; built %d packages and the README's snippets in %s",
		len(r.published()), v, built, since(step))

	step = time.Now()
	if err := r.reportAPI(v, s.tmp); err != nil {
		return err
	}
	logf("api: reported in %s", since(step))
	return nil
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(100 * time.Millisecond)
}
