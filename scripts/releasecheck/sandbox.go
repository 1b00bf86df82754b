package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// sandbox runs go commands as a user outside the repository would, except
// that the would-be versions of this repository's modules come from a
// file-system proxy: no go.work, a module cache of its own (the would-be
// versions must not reach the developer's, where a later real release
// would not match them), and no checksum database for this repository's
// modules, which it cannot know yet.
type sandbox struct {
	tmp   string
	proxy string
	env   []string
}

func newSandbox() (*sandbox, error) {
	tmp, err := os.MkdirTemp("", "releasecheck-")
	if err != nil {
		return nil, err
	}
	s := &sandbox{tmp: tmp, proxy: filepath.Join(tmp, "proxy")}
	out, err := exec.Command("go", "env", "-json", "GOMODCACHE", "GOPROXY", "GONOSUMDB").Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %v", err)
	}
	var user struct{ GOMODCACHE, GOPROXY, GONOSUMDB string }
	if err := json.Unmarshal(out, &user); err != nil {
		return nil, err
	}
	nosumdb := ourPath
	if user.GONOSUMDB != "" {
		nosumdb += "," + user.GONOSUMDB
	}
	set := map[string]string{
		"GOWORK":     "off",
		"GOMODCACHE": filepath.Join(tmp, "modcache"),
		// Then the developer's module cache, read as a proxy, spares
		// downloading again what the tests fetched; then the usual proxy.
		"GOPROXY":     "file://" + filepath.ToSlash(s.proxy) + ",file://" + filepath.ToSlash(filepath.Join(user.GOMODCACHE, "cache", "download")) + "," + user.GOPROXY,
		"GONOSUMDB":   nosumdb,
		"GOPRIVATE":   "",
		"GONOPROXY":   "",
		"GOFLAGS":     "-modcacherw", // so that the module cache can be removed
		"GOTOOLCHAIN": "local",
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !hasKey(set, k) {
			s.env = append(s.env, kv)
		}
	}
	for k, v := range set {
		s.env = append(s.env, k+"="+v)
	}
	return s, nil
}

func (s *sandbox) remove(keep bool) {
	if keep {
		logf("kept %s", s.tmp)
		return
	}
	os.RemoveAll(s.tmp)
}

// run runs the go command in dir and returns its standard output; an error
// carries its standard error.
func (s *sandbox) run(dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(interrupted, "go", args...)
	cmd.Dir = dir
	cmd.Env = s.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	defer func() {
		if *verbose {
			logf("  %s: go %s (%s)", filepath.Base(dir), strings.Join(args, " "), since(t0))
		}
	}()
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("in %s: go %s: %v\n%s", dir, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
