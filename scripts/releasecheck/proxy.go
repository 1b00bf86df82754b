package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

// buildProxy lays out a file-system module proxy in dir holding every
// published module at v, made from the working tree with its requirements
// on the others rewritten to v, as scripts/release tags them; and, where
// the modules require a tagged version other than v, that version too,
// from its tag, as a public proxy would serve it once pushed.
func (r *repo) buildProxy(dir, v, required string) error {
	license, err := os.ReadFile(filepath.Join(r.root, "LICENSE"))
	if err != nil {
		return err
	}
	for _, m := range r.published() {
		gomod, err := requiring(path.Join(m.dir, "go.mod"), m.gomod, v)
		if err != nil {
			return err
		}
		var files []zip.File
		haveLicense := false
		for _, f := range r.filesOf(m.dir) {
			switch f {
			case "go.mod":
				files = append(files, dataFile{"go.mod", gomod})
				continue
			case "LICENSE":
				haveLicense = true
			}
			files = append(files, treeFile{f, filepath.Join(r.root, m.dir, filepath.FromSlash(f))})
		}
		if !haveLicense {
			// The go command puts the repository's LICENSE into the zip of a
			// module that has none of its own.
			files = append(files, dataFile{"LICENSE", license})
		}
		var z bytes.Buffer
		if err := zip.Create(&z, module.Version{Path: m.path, Version: v}, files); err != nil {
			return err
		}
		vs := []version{{v, gomod, z.Bytes()}}

		if required != "" && required != v && r.tagged(m, required) {
			tag := m.tagPrefix() + required
			subdir := ""
			if m.dir != "." {
				subdir = m.dir
			}
			var z bytes.Buffer
			if err := zip.CreateFromVCS(&z, module.Version{Path: m.path, Version: required}, r.root, tag, subdir); err != nil {
				return err
			}
			gomod, err := r.git("show", tag+":"+path.Join(subdir, "go.mod"))
			if err != nil {
				return err
			}
			vs = append(vs, version{required, gomod, z.Bytes()})
		}
		if err := writeModule(dir, m.path, vs); err != nil {
			return err
		}
	}
	return nil
}

type version struct {
	v     string
	gomod []byte
	zip   []byte
}

// writeModule writes the files a GOPROXY protocol server answers for the
// module p: @v/list, and the .info, .mod and .zip of each version.
func writeModule(dir, p string, vs []version) error {
	ep, err := module.EscapePath(p)
	if err != nil {
		return err
	}
	at := filepath.Join(dir, filepath.FromSlash(ep), "@v")
	if err := os.MkdirAll(at, 0o777); err != nil {
		return err
	}
	var list strings.Builder
	for _, v := range vs {
		ev, err := module.EscapeVersion(v.v)
		if err != nil {
			return err
		}
		info, err := json.Marshal(struct {
			Version string
			Time    time.Time
		}{v.v, time.Now().UTC().Truncate(time.Second)})
		if err != nil {
			return err
		}
		for ext, data := range map[string][]byte{".info": info, ".mod": v.gomod, ".zip": v.zip} {
			if err := os.WriteFile(filepath.Join(at, ev+ext), data, 0o666); err != nil {
				return err
			}
		}
		list.WriteString(v.v + "\n")
	}
	return os.WriteFile(filepath.Join(at, "list"), []byte(list.String()), 0o666)
}

// treeFile is a file of the working tree, for a module zip.
type treeFile struct{ name, abs string }

func (f treeFile) Path() string                 { return f.name }
func (f treeFile) Lstat() (fs.FileInfo, error)  { return os.Lstat(f.abs) }
func (f treeFile) Open() (io.ReadCloser, error) { return os.Open(f.abs) }

// dataFile is a file of a module zip held in memory.
type dataFile struct {
	name string
	data []byte
}

func (f dataFile) Path() string                 { return f.name }
func (f dataFile) Lstat() (fs.FileInfo, error)  { return dataInfo{f}, nil }
func (f dataFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type dataInfo struct{ f dataFile }

func (i dataInfo) Name() string       { return path.Base(i.f.name) }
func (i dataInfo) Size() int64        { return int64(len(i.f.data)) }
func (i dataInfo) Mode() fs.FileMode  { return 0o644 }
func (i dataInfo) ModTime() time.Time { return time.Time{} }
func (i dataInfo) IsDir() bool        { return false }
func (i dataInfo) Sys() any           { return nil }
