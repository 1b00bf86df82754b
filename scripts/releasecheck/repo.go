package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// repo is the working tree: its files as git sees them (tracked, or
// untracked and not ignored: what a commit would hold) and its modules.
type repo struct {
	root    string
	files   []string // slash paths relative to root, sorted
	modules []*mod   // the root module first, then by directory
	tags    []string
}

// mod is one module of the repository.
type mod struct {
	dir       string // slash path relative to the root; "." for the root
	path      string
	published bool
	gomod     []byte
	file      *modfile.File
}

// tagPrefix is what comes before the version in m's tags: nothing for
// the root module, "prommetrics/" for prommetrics.
func (m *mod) tagPrefix() string {
	if m.dir == "." {
		return ""
	}
	return m.dir + "/"
}

// pathFor returns the module path that the tags of a module in dir find.
func pathFor(dir string) string {
	if dir == "." {
		return ourPath
	}
	return ourPath + "/" + dir
}

// isOurs reports whether p is the path of one of this repository's modules.
func isOurs(p string) bool {
	return p == ourPath || strings.HasPrefix(p, ourPath+"/")
}

func load() (*repo, error) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return nil, fmt.Errorf("finding the repository: git rev-parse: %v", err)
	}
	r := &repo{root: strings.TrimSpace(string(top))}
	out, err := r.git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		// A tracked file deleted from the working tree is not in a commit made now.
		if info, err := os.Lstat(filepath.Join(r.root, f)); err == nil && info.Mode().IsRegular() {
			r.files = append(r.files, f)
		}
	}
	sort.Strings(r.files)
	for _, f := range r.files {
		if path.Base(f) != "go.mod" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(r.root, f))
		if err != nil {
			return nil, err
		}
		mf, err := modfile.Parse(f, data, nil)
		if err != nil {
			return nil, err
		}
		dir := path.Dir(f)
		r.modules = append(r.modules, &mod{
			dir:       dir,
			path:      mf.Module.Mod.Path,
			published: !unpublished[dir],
			gomod:     data,
			file:      mf,
		})
	}
	sort.SliceStable(r.modules, func(i, j int) bool {
		return r.modules[i].dir == "." && r.modules[j].dir != "."
	})
	if len(r.modules) == 0 || r.modules[0].dir != "." || r.modules[0].path != ourPath {
		return nil, fmt.Errorf("the repository root holds no module %s", ourPath)
	}
	out, err = r.git("tag", "--list")
	if err != nil {
		return nil, err
	}
	r.tags = strings.Fields(string(out))
	return r, nil
}

func (r *repo) git(args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (r *repo) published() []*mod {
	var ms []*mod
	for _, m := range r.modules {
		if m.published {
			ms = append(ms, m)
		}
	}
	return ms
}

func (r *repo) module(p string) *mod {
	for _, m := range r.modules {
		if m.path == p {
			return m
		}
	}
	return nil
}

// filesOf returns the files of the module in dir, relative to dir; files
// of nested modules are among them (a module zip leaves them out).
func (r *repo) filesOf(dir string) []string {
	if dir == "." {
		return r.files
	}
	var fs []string
	for _, f := range r.files {
		if rel, ok := strings.CutPrefix(f, dir+"/"); ok {
			fs = append(fs, rel)
		}
	}
	return fs
}

// versions returns the released versions of m, from its tags, in
// ascending order.
func (r *repo) versions(m *mod) []string {
	var vs []string
	for _, t := range r.tags {
		if v, ok := strings.CutPrefix(t, m.tagPrefix()); ok && semver.IsValid(v) && semver.Canonical(v) == v {
			vs = append(vs, v)
		}
	}
	semver.Sort(vs)
	return vs
}

func (r *repo) tagged(m *mod, v string) bool {
	return slices.Contains(r.versions(m), v)
}

// required returns the single version at which the modules of this
// repository require each other ("" if none does).
func (r *repo) required() (string, error) {
	seen := map[string][]string{}
	for _, m := range r.modules {
		for _, req := range m.file.Require {
			if isOurs(req.Mod.Path) {
				seen[req.Mod.Version] = append(seen[req.Mod.Version], m.dir+"/go.mod")
			}
		}
	}
	var vs []string
	for v := range seen {
		vs = append(vs, v)
	}
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	sort.Strings(vs)
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "\n\t%s in %s", v, strings.Join(seen[v], ", "))
	}
	return "", fmt.Errorf("the modules require each other at more than one version (releases are in lock step; run releasecheck -set-version):%s", b.String())
}

// wouldBe returns the version to check: the one asked for, else the one
// the modules require of each other while it is untagged, else the minor
// version after the latest tag of the core.
func (r *repo) wouldBe(asked, required string) (string, error) {
	if asked != "" {
		if !semver.IsValid(asked) || semver.Canonical(asked) != asked || semver.Build(asked) != "" {
			return "", fmt.Errorf("-version %q is not a canonical semantic version such as v0.2.0", asked)
		}
		if m := semver.Major(asked); m != "v0" && m != "v1" {
			return "", fmt.Errorf("-version %s: a major version above v1 needs a /%s suffix on every module path", asked, m)
		}
		return asked, nil
	}
	core := r.modules[0]
	if required != "" && !r.tagged(core, required) {
		return required, nil
	}
	vs := r.versions(core)
	if len(vs) == 0 {
		return "v0.1.0", nil
	}
	var major, minor int
	fmt.Sscanf(semver.MajorMinor(vs[len(vs)-1]), "v%d.%d", &major, &minor)
	return fmt.Sprintf("v%d.%d.0", major, minor+1), nil
}

// previous returns the latest tagged version of m below v, or "".
func (r *repo) previous(m *mod, v string) string {
	prev := ""
	for _, t := range r.versions(m) {
		if semver.Compare(t, v) < 0 {
			prev = t
		}
	}
	return prev
}

// lint checks what needs no go command: the go.mod files, go.sum files and
// go.work agree with a release of the published modules at required.
func (r *repo) lint(required string) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, m := range r.modules {
		gomod := path.Join(m.dir, "go.mod")
		for _, rep := range m.file.Replace {
			// A user's build ignores a dependency's replace directives, so a
			// published module that needs one cannot be built outside.
			add("%s: replace %s: no module here may replace; the go.work joins the modules for development", gomod, rep.Old.Path)
		}
		if m.published && m.path != pathFor(m.dir) {
			add("%s: module %s: a published module's path is %s followed by its directory, or its tags would not find it", gomod, m.path, ourPath)
		}
		for _, req := range m.file.Require {
			if !isOurs(req.Mod.Path) {
				continue
			}
			dep := r.module(req.Mod.Path)
			switch {
			case dep == nil:
				add("%s: requires %s, which is no module of this repository", gomod, req.Mod.Path)
			case m.published && !dep.published:
				add("%s: requires %s, which is never published", gomod, req.Mod.Path)
			case module.IsPseudoVersion(req.Mod.Version):
				add("%s: requires %s at the pseudo-version %s; require a release version", gomod, req.Mod.Path, req.Mod.Version)
			}
		}
		sum, err := os.ReadFile(filepath.Join(r.root, m.dir, "go.sum"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(sum))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && isOurs(f[0]) {
				// Until a version is tagged its zip, and so its hash, changes
				// with every commit; the workspace needs no such lines.
				add("%s: lists %s; run releasecheck -tidy, which leaves this repository's modules out of go.sum files", path.Join(m.dir, "go.sum"), f[0])
				break
			}
		}
	}
	errs = append(errs, r.lintWork(required)...)
	return errors.Join(errs...)
}

// lintWork checks that go.work uses every module, and resolves the version
// the modules require of each other to their directories, and no more.
func (r *repo) lintWork(required string) []error {
	data, err := os.ReadFile(filepath.Join(r.root, workFile))
	if err != nil {
		return []error{fmt.Errorf("%s: %v", workFile, err)}
	}
	wf, err := modfile.ParseWork(workFile, data, nil)
	if err != nil {
		return []error{err}
	}
	var errs []error
	uses := map[string]bool{}
	for _, u := range wf.Use {
		uses[path.Clean(u.Path)] = true
	}
	for _, m := range r.modules {
		if !uses[m.dir] {
			errs = append(errs, fmt.Errorf(workFile+": no use of ./%s (go work use ./%s)", strings.TrimPrefix(m.dir, "."), m.dir))
		}
	}
	want := map[string]string{} // "path version" → directory
	if required != "" {
		for _, m := range r.published() {
			want[m.path+" "+required] = m.dir
		}
	}
	for _, rep := range wf.Replace {
		key := rep.Old.Path + " " + rep.Old.Version
		if dir, ok := want[key]; ok && path.Clean(rep.New.Path) == dir && rep.New.Version == "" {
			delete(want, key)
			continue
		}
		errs = append(errs, fmt.Errorf(workFile+": replace %s %s => %s: the go.work only resolves the published modules at %q, the version they require of each other, to their directories",
			rep.Old.Path, rep.Old.Version, rep.New.Path, required))
	}
	for key, dir := range want {
		errs = append(errs, fmt.Errorf(workFile+": missing replace %s => ./%s (releasecheck -set-version %s writes it)", key, strings.TrimPrefix(dir, "."), required))
	}
	return errs
}

// requiring rewrites the requirements of gomod on this repository's
// modules to version v; it returns gomod itself when they are at v already.
func requiring(name string, gomod []byte, v string) ([]byte, error) {
	f, err := modfile.Parse(name, gomod, nil)
	if err != nil {
		return nil, err
	}
	var ours []string
	for _, req := range f.Require {
		if isOurs(req.Mod.Path) && req.Mod.Version != v {
			ours = append(ours, req.Mod.Path)
		}
	}
	if len(ours) == 0 {
		return gomod, nil
	}
	for _, p := range ours {
		if err := f.AddRequire(p, v); err != nil {
			return nil, err
		}
	}
	f.Cleanup()
	return f.Format()
}

// setVersion makes every module require the others at v and the go.work
// resolve v here, then tidies.
func (r *repo) setVersion(v string, keep bool) error {
	if _, err := r.wouldBe(v, ""); err != nil {
		return err
	}
	for _, m := range r.modules {
		data, err := requiring(path.Join(m.dir, "go.mod"), m.gomod, v)
		if err != nil {
			return err
		}
		if !bytes.Equal(data, m.gomod) {
			if err := os.WriteFile(filepath.Join(r.root, m.dir, "go.mod"), data, 0o666); err != nil {
				return err
			}
			m.gomod = data
			if m.file, err = modfile.Parse(m.dir+"/go.mod", data, nil); err != nil {
				return err
			}
			logf("%s/go.mod: requires this repository's modules at %s", m.dir, v)
		}
	}
	name := filepath.Join(r.root, workFile)
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	wf, err := modfile.ParseWork(workFile, data, nil)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, rep := range slices.Clone(wf.Replace) {
		if !isOurs(rep.Old.Path) {
			continue
		}
		m := r.module(rep.Old.Path)
		if m == nil || !m.published || have[m.path] {
			if err := wf.DropReplace(rep.Old.Path, rep.Old.Version); err != nil {
				return err
			}
			continue
		}
		// Edited in place, so that the block and its comment stay.
		have[m.path] = true
		tok := rep.Syntax.Token
		i := slices.Index(tok, rep.Old.Path) + 1
		if tok[i] == "=>" {
			tok = slices.Insert(tok, i, v)
		} else {
			tok[i] = v
		}
		tok[len(tok)-1] = "./" + strings.TrimPrefix(m.dir, ".")
		rep.Syntax.Token = tok
	}
	for _, m := range r.published() {
		if !have[m.path] {
			if err := wf.AddReplace(m.path, v, "./"+strings.TrimPrefix(m.dir, "."), ""); err != nil {
				return err
			}
		}
	}
	if out := modfile.Format(wf.Syntax); !bytes.Equal(out, data) {
		if err := os.WriteFile(name, out, 0o666); err != nil {
			return err
		}
		logf(workFile+": resolves the published modules at %s here", v)
	}
	return r.tidy(v, keep)
}
