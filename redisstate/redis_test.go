package redisstate_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

// redisServer is a redis-server of the test's own, on a free loopback port,
// without persistence.
type redisServer struct {
	t    testing.TB
	bin  string
	addr string
	dir  string
	redisProcess
}

// startRedis starts a Redis for t. Without redis-server the test is
// skipped when run by hand, and fails in CI, which installs it.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed; .ci/run installs it")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server): skipping the Redis tests")
	}
	r := &redisServer{t: t, bin: bin, dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		r.addr = l.Addr().String()
		l.Close()
		if r.start() {
			break
		}
		require.Less(t, attempt, 5, "redis-server would not start")
	}
	t.Cleanup(r.kill)
	return r
}

// start runs redis-server on r.addr and reports whether it came up.
func (r *redisServer) start() bool {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	return r.run(r.t, r.bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--protected-mode", "yes", "--loglevel", "notice")
}

// redisProcess is a redis-server process of a test's own.
type redisProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
}

// run starts bin with args and reports whether it came up: it says so on
// its output.
func (p *redisProcess) run(t testing.TB, bin string, args ...string) bool {
	t.Helper()
	p.cmd = exec.Command(bin, args...)
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	ready := make(chan bool, 1)
	p.done = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				ready <- true
				signalled = true
			}
		}
		if !signalled {
			ready <- false
		}
		p.cmd.Wait()
		close(p.done)
	}()
	select {
	case ok := <-ready:
		return ok
	case <-time.After(20 * time.Second):
		t.Fatal("redis-server did not start")
		return false
	}
}

// kill stops the process at once, as a crash would.
func (p *redisProcess) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGCONT) // a paused server would not die
		p.cmd.Process.Kill()
		<-p.done
	}
}

// restart starts the server again, empty, on the same address.
func (r *redisServer) restart() {
	r.t.Helper()
	require.True(r.t, r.start(), "redis-server did not restart")
}

func (r *redisServer) pause()  { require.NoError(r.t, r.cmd.Process.Signal(syscall.SIGSTOP)) }
func (r *redisServer) resume() { require.NoError(r.t, r.cmd.Process.Signal(syscall.SIGCONT)) }

// client returns a plain client of r, for looking at keys.
func (r *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// testSync is the SyncInterval of the tests: short, so that they are quick.
const testSync = 20 * time.Millisecond

func newStore(t *testing.T, addr string, o redisstate.Options) *redisstate.Store {
	t.Helper()
	if o.SyncInterval == 0 {
		o.SyncInterval = testSync
	}
	s, err := redisstate.New(&redis.UniversalOptions{Addrs: []string{addr}}, o)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// watcher is a Listener that lets a test wait for events.
type watcher struct {
	mu      sync.Mutex
	events  []breaker.Event
	seen    int           // events that waitState has consumed
	changed chan struct{} // closed at the next event
}

func newWatcher() *watcher { return &watcher{changed: make(chan struct{})} }

func (w *watcher) OnEvent(e breaker.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, e)
	close(w.changed)
	w.changed = make(chan struct{})
}

// waitFor waits until ok holds for the events so far.
func (w *watcher) waitFor(t *testing.T, what string, ok func([]breaker.Event) bool) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		w.mu.Lock()
		done, changed := ok(w.events), w.changed
		w.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// waitState waits until the breaker enters s, after the state changes
// that earlier waits consumed.
func (w *watcher) waitState(t *testing.T, s breaker.State) {
	t.Helper()
	w.waitFor(t, "state "+s.String(), func(events []breaker.Event) bool {
		for i := w.seen; i < len(events); i++ {
			if events[i].Kind == breaker.EventStateChange && events[i].To == s {
				w.seen = i + 1
				return true
			}
		}
		return false
	})
}

// waitKind waits for more than n events of kind k.
func (w *watcher) waitKind(t *testing.T, k breaker.EventKind, n int) {
	t.Helper()
	w.waitFor(t, strconv.Itoa(n+1)+" "+k.String()+" events", func(events []breaker.Event) bool {
		return w.count(events, k) > n
	})
}

func (w *watcher) count(events []breaker.Event, k breaker.EventKind) int {
	n := 0
	for _, e := range events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// countKind counts the events of kind k so far.
func (w *watcher) countKind(k breaker.EventKind) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count(w.events, k)
}

// node is a breaker of a fleet, with a watcher.
type node struct {
	*breaker.Breaker[int]
	w *watcher
}

func newNode(t *testing.T, name string, s *redisstate.Store, cfg breaker.Config) node {
	t.Helper()
	w := newWatcher()
	cfg.Shared = s
	cfg.Listeners = append(cfg.Listeners, w)
	b, err := breaker.New[int](name, cfg)
	require.NoError(t, err)
	return node{b, w}
}

func (n node) call(err error) error {
	_, got := n.Execute(context.Background(), func(context.Context) (int, error) { return 1, err })
	return got
}

// netListener finds addresses nothing listens on.
type netListener struct{}

func (netListener) free() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// settle waits until n is in state s: at once if it is, or else for a
// change to s.
func (n node) settle(t *testing.T, s breaker.State) {
	t.Helper()
	n.w.mu.Lock()
	mark := len(n.w.events)
	n.w.mu.Unlock()
	if n.State() == s {
		return
	}
	n.w.waitFor(t, "state "+s.String(), func(events []breaker.Event) bool {
		for _, e := range events[mark:] {
			if e.Kind == breaker.EventStateChange && e.To == s {
				return true
			}
		}
		return false
	})
}

var bg = context.Background()

func fail(context.Context) (int, error) { return 0, errBoom }

func call(b *breaker.Breaker[int]) error {
	_, err := b.Execute(bg, func(context.Context) (int, error) { return 1, nil })
	return err
}

func redisOptions(addr string) *redis.UniversalOptions {
	return &redis.UniversalOptions{Addrs: []string{addr}}
}
