package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// apidiffVersion is the version of golang.org/x/exp/cmd/apidiff that
// compares the API of each published module with its previous release.
const apidiffVersion = "v0.0.0-20261113113407-e3970619a1a4"

// reportAPI prints the API changes of every published module since its
// previous release. Before v1 it only informs: a v0 minor version may break
// its API. From v1 on, an incompatible change fails the check unless v is a
// new major version.
func (r *repo) reportAPI(v, tmp string) error {
	var todo []*mod
	for _, m := range r.published() {
		if r.previous(m, v) == "" {
			logf("api: %s: no earlier release, nothing to compare", m.path)
		} else {
			todo = append(todo, m)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	bin := filepath.Join(tmp, "apibin")
	install := exec.Command("go", "install", "golang.org/x/exp/cmd/apidiff@"+apidiffVersion)
	install.Env = append(os.Environ(), "GOBIN="+bin, "GOWORK=off", "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		logf("api: no report: installing apidiff: %v\n%s", err, out)
		return nil
	}
	apidiff := filepath.Join(bin, "apidiff")
	trees := map[string]string{} // commit → its files, extracted
	var broken []string
	for _, m := range todo {
		prev := r.previous(m, v)
		tag := m.tagPrefix() + prev
		report, err := r.apiChanges(apidiff, m, tag, tmp, trees)
		if err != nil {
			logf("api: %s: no report (informational): %v", m.path, err)
			continue
		}
		if report == "" {
			logf("api: %s: no change since %s", m.path, tag)
			continue
		}
		logf("api: %s: changes since %s:\n\t%s", m.path, tag, strings.ReplaceAll(strings.TrimSpace(report), "\n", "\n\t"))
		if semver.Major(prev) != "v0" && semver.Major(prev) == semver.Major(v) && strings.Contains(report, "Incompatible changes:") {
			broken = append(broken, m.path)
		}
	}
	if len(broken) > 0 {
		return fmt.Errorf("incompatible API changes in %s within major version %s", strings.Join(broken, ", "), semver.Major(v))
	}
	return nil
}

// apiChanges returns apidiff's report on module m between tag and the
// working tree.
func (r *repo) apiChanges(apidiff string, m *mod, tag, tmp string, trees map[string]string) (string, error) {
	commit, err := r.git("rev-parse", tag+"^{commit}")
	if err != nil {
		return "", err
	}
	c := strings.TrimSpace(string(commit))
	old, ok := trees[c]
	if !ok {
		old = filepath.Join(tmp, "api-"+c)
		if err := r.extract(c, old); err != nil {
			return "", err
		}
		trees[c] = old
	}
	name := strings.ReplaceAll(m.dir, "/", "_")
	oldAPI, newAPI := filepath.Join(tmp, "api-"+name+".old"), filepath.Join(tmp, "api-"+name+".new")
	for _, w := range []struct{ tree, file string }{{old, oldAPI}, {r.root, newAPI}} {
		work, err := moduleWork(w.tree, m.dir, w.file+".work")
		if err != nil {
			return "", err
		}
		if _, err := runIn(filepath.Join(w.tree, m.dir), work, apidiff, "-m", "-w", w.file, m.path); err != nil {
			return "", err
		}
	}
	return runIn(r.root, "", apidiff, "-m", oldAPI, newAPI)
}

// moduleWork writes, in dir, a go.work that uses only the module in modDir
// of tree, with the replaces of tree's workspace file: apidiff -m then loads that
// module's packages, not those of the modules nested in it.
func moduleWork(tree, modDir, dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(tree, workFile))
	if err != nil {
		return "", err
	}
	wf, err := modfile.ParseWork(workFile, data, nil)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if wf.Go != nil {
		fmt.Fprintf(&b, "go %s\n", wf.Go.Version)
	}
	fmt.Fprintf(&b, "use %q\n", filepath.Join(tree, modDir))
	for _, rep := range wf.Replace {
		to := rep.New.Path
		if modfile.IsDirectoryPath(to) && !filepath.IsAbs(to) {
			to = filepath.Join(tree, to)
		}
		fmt.Fprintf(&b, "replace %s %s => %q %s\n", rep.Old.Path, rep.Old.Version, to, rep.New.Version)
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(tree, workFile+".sum"))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "go.work.sum"), sum, 0o666)
	}
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	work := filepath.Join(dir, "go.work")
	return work, os.WriteFile(work, []byte(b.String()), 0o666)
}

// runIn runs a command in dir, with the go.work given, if any.
func runIn(dir, work, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(interrupted, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if work != "" {
		cmd.Env = append(cmd.Env, "GOWORK="+work)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// extract writes the files of commit into dir.
func (r *repo) extract(commit, dir string) error {
	out, err := r.git("archive", "--format=tar", commit)
	if err != nil {
		return err
	}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		name := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(name, dir+string(filepath.Separator)) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(name, 0o777)
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				if err = os.MkdirAll(filepath.Dir(name), 0o777); err == nil {
					err = os.WriteFile(name, data, 0o666)
				}
			}
		}
		if err != nil {
			return err
		}
	}
}
