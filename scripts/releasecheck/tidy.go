package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// checkTidy runs go mod tidy -diff in every module, against the proxy: go
// mod tidy ignores go.work, and no public proxy serves the would-be
// versions yet. The checksums of this repository's own modules, which
// tidy would add, are left out of go.sum files on purpose (see lint), and
// so out of the comparison.
func (r *repo) checkTidy(s *sandbox, v string) error {
	var errs []error
	for _, m := range r.modules {
		// Tidy as the release will tag it: requiring the others at v.
		gomod, err := requiring(path.Join(m.dir, "go.mod"), m.gomod, v)
		if err != nil {
			return err
		}
		tdir := filepath.Join(s.tmp, "tidy", filepath.FromSlash(m.dir))
		if err := os.MkdirAll(tdir, 0o777); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tdir, "go.mod"), gomod, 0o666); err != nil {
			return err
		}
		if sum, err := os.ReadFile(filepath.Join(r.root, m.dir, "go.sum")); err == nil {
			if err := os.WriteFile(filepath.Join(tdir, "go.sum"), sum, 0o666); err != nil {
				return err
			}
		}
		out, err := s.run(filepath.Join(r.root, m.dir), "mod", "tidy", "-diff", "-modfile="+filepath.Join(tdir, "go.mod"))
		if err != nil && out == "" {
			errs = append(errs, err)
			continue
		}
		if d := foreignDiff(out); d != "" {
			errs = append(errs, fmt.Errorf("%s/go.mod is not tidy; go run ./scripts/releasecheck -tidy tidies it:\n%s", m.dir, d))
		}
	}
	return errors.Join(errs...)
}

// foreignDiff returns the lines of a go mod tidy -diff that add or remove
// something other than a go.sum line of this repository's modules.
func foreignDiff(diff string) string {
	var b strings.Builder
	file := ""
	for line := range strings.Lines(diff) {
		switch {
		case strings.HasPrefix(line, "+++ "), strings.HasPrefix(line, "--- "):
			file = path.Base(strings.TrimSpace(line[4:]))
			continue
		case !strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "-"):
			continue
		case strings.HasSuffix(file, "go.sum") && isOurs(strings.SplitN(line[1:], " ", 2)[0]):
			continue
		}
		fmt.Fprintf(&b, "\t%s: %s", file, line)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// tidy runs go mod tidy in every module against the proxy, then drops this
// repository's own modules from the go.sum files.
func (r *repo) tidy(asked string, keep bool) error {
	required, err := r.required()
	if err != nil {
		return err
	}
	v, err := r.wouldBe(asked, required)
	if err != nil {
		return err
	}
	s, err := r.sandbox(v, required)
	if err != nil {
		return err
	}
	defer s.remove(keep)
	for _, m := range r.modules {
		dir := filepath.Join(r.root, m.dir)
		if _, err := s.run(dir, "mod", "tidy"); err != nil {
			return err
		}
		// Tidy may raise a requirement on our modules to v, which the
		// go.work does not resolve; keep them at the version it does.
		if required != "" {
			name := filepath.Join(dir, "go.mod")
			data, err := os.ReadFile(name)
			if err != nil {
				return err
			}
			if data, err = requiring(name, data, required); err != nil {
				return err
			}
			if err := os.WriteFile(name, data, 0o666); err != nil {
				return err
			}
		}
		if err := dropOurSums(filepath.Join(dir, "go.sum")); err != nil {
			return err
		}
	}
	logf("tidied %d modules", len(r.modules))
	return nil
}

func dropOurSums(name string) error {
	data, err := os.ReadFile(name)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	var keep strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 0 || !isOurs(f[0]) {
			keep.WriteString(sc.Text() + "\n")
		}
	}
	if keep.Len() == 0 {
		return os.Remove(name)
	}
	return os.WriteFile(name, []byte(keep.String()), 0o666)
}
