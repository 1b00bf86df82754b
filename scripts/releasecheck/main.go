// Command releasecheck checks that this repository's modules can be
// released: that each published module, fetched from a module proxy at the
// would-be version, builds in a module outside the repository, together
// with every Go snippet of the README. It also checks that every go.mod is
// tidy, and reports API changes since the previous release.
//
// The proxy is a file-system one (GOPROXY=file://...) that it builds from
// the working tree, so nothing needs to be tagged or pushed first; the
// go commands it runs use their own module cache, so that the would-be
// versions never reach the developer's. See RELEASING.md.
//
// Usage, from the repository root:
//
//	go run ./scripts/releasecheck                  # the check, as ./scripts/test runs it
//	go run ./scripts/releasecheck -tidy            # tidy every go.mod and go.sum
//	go run ./scripts/releasecheck -set-version v0.2.0 # require v0.2.0 of each other, then tidy
//	go run ./scripts/releasecheck -list            # the published modules: directory, path
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ourPath is the path of the core module; the others' paths are below it.
const ourPath = "github.com/seed18491788/breaker"

// workFile is the workspace that joins the modules for development, at the
// repository's root. It is not named go.work, which the go command would
// pick up by itself: then every command at the root, "go list -m all"
// included, would see the integrations' requirements as the core's.
// scripts/test sets GOWORK to it.
const workFile = "dev.work"

// unpublished are the directories of the modules that are never tagged:
// they may require the others, but nothing outside requires them.
var unpublished = map[string]bool{
	"bench":                true,
	"scripts/releasecheck": true,
}

// readmeSnippets is where the README's Go snippets live as code, relative
// to the repository root.
const readmeSnippets = "scripts/releasecheck/testdata/readme"

var verbose = flag.Bool("v", false, "print each go command the check runs, and how long it took")

// interrupted is done once the check is told to stop.
var interrupted = context.Background()

func main() {
	version := flag.String("version", "", "the would-be `version` of every published module (default: the version the modules require of each other while untagged, else the minor version after the latest tag)")
	tidy := flag.Bool("tidy", false, "tidy every go.mod and go.sum against the would-be release instead of checking")
	setVersion := flag.String("set-version", "", "make the modules require each other at `version`, and the go.work resolve it here, then tidy")
	list := flag.Bool("list", false, "print the published modules, core first: directory and module path, one a line")
	keep := flag.Bool("keep", false, "keep the temporary directory (proxy, module cache, outside module)")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	// An interrupt stops the go commands, and the check then removes its
	// temporary directory (hundreds of MB) on its way out.
	var stop context.CancelFunc
	interrupted, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	r, err := load()
	if err == nil {
		switch {
		case *list:
			for _, m := range r.published() {
				fmt.Printf("%s %s\n", m.dir, m.path)
			}
			return
		case *setVersion != "":
			err = r.setVersion(*setVersion, *keep)
		case *tidy:
			err = r.tidy(*version, *keep)
		default:
			err = r.check(*version, *keep)
			if err == nil {
				logf("passed in %s", time.Since(start).Round(100*time.Millisecond))
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "releasecheck: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("releasecheck: "+format+"\n", args...)
}
