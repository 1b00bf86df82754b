package redisstate_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/seed18491788/breaker"
	"github.com/seed18491788/breaker/redisstate"
)

// clusterNodeTimeout is the cluster's node timeout: short, so that the
// others mark a killed master as failed within the test.
const clusterNodeTimeout = 1000 * time.Millisecond

// redisCluster is a Redis Cluster of the test's own: three masters, no
// replicas, on loopback. It keeps serving the slots of its live masters
// when one is down (cluster-require-full-coverage no), as a cluster whose
// dead master has no replica to fail over to can be told to.
type redisCluster struct {
	t     testing.TB
	nodes []*clusterNode
	rc    *redis.ClusterClient
	slots []redis.ClusterSlot // which node serves which slots
}

// clusterNode is one master of a redisCluster.
type clusterNode struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	addr string
	redisProcess
}

// startCluster starts a 3-master Redis Cluster for t and waits until every
// master says it is ok. Without redis-server or redis-cli the test is
// skipped when run by hand, and fails in CI, which installs both.
func startCluster(t testing.TB) *redisCluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	cli, cliErr := exec.LookPath("redis-cli")
	if err != nil || cliErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server or redis-cli is not installed; .ci/run installs them")
		}
		t.Skip("redis-server or redis-cli is not installed (apt-get install redis-server redis-tools): skipping the Redis Cluster tests")
	}
	c := &redisCluster{t: t}
	dir := t.TempDir()
	for range 3 {
		n := &clusterNode{t: t, bin: bin, dir: dir}
		for attempt := 0; ; attempt++ {
			n.port = freeClusterPort(t)
			n.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
			if n.start() {
				break
			}
			require.Less(t, attempt, 5, "redis-server would not start in cluster mode")
		}
		t.Cleanup(n.kill)
		c.nodes = append(c.nodes, n)
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.nodes {
		args = append(args, n.addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create: %s", out)
	c.waitOK()
	c.rc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs()})
	t.Cleanup(func() { c.rc.Close() })
	c.slots, err = c.rc.ClusterSlots(bg).Result()
	require.NoError(t, err)
	return c
}

// freeClusterPort returns a loopback port that is free, and whose cluster
// bus port, 10000 above it, is free too. Both are below the usual
// ephemeral range (from 32768), so that no client connection takes them
// while a killed node is down.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 10000 + rand.IntN(12000)
		l1, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// start runs redis-server on n.port, with n's nodes.conf, and reports
// whether it came up. (kill, from redisProcess, keeps its nodes.conf.)
func (n *clusterNode) start() bool {
	n.t.Helper()
	port := strconv.Itoa(n.port)
	return n.run(n.t, n.bin,
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(n.dir, "nodes-"+port+".conf"),
		"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())),
		"--cluster-require-full-coverage", "no",
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", n.dir, "--dbfilename", "dump-"+port+".rdb", "--loglevel", "notice")
}

// restart starts the node again on its port with its nodes.conf: it comes
// back with its slots, and no data.
func (n *clusterNode) restart() {
	n.t.Helper()
	require.True(n.t, n.start(), "redis-server did not restart")
}

// client returns a plain client of n alone, for looking at its keys; t
// closes it.
func (n *clusterNode) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: n.addr, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

func (c *redisCluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.addr)
	}
	return out
}

// waitOK waits until every node says cluster_state:ok and none sees
// another as failed, as after a node's restart the others take a while to
// clear their failure flag.
func (c *redisCluster) waitOK() {
	c.t.Helper()
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = n.client(c.t)
	}
	var last string
	require.Eventually(c.t, func() bool {
		for _, rc := range clients {
			info, err := rc.ClusterInfo(bg).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				last = fmt.Sprint(info, err)
				return false
			}
			nodes, err := rc.ClusterNodes(bg).Result()
			if err != nil || strings.Contains(nodes, "fail") {
				last = fmt.Sprint(nodes, err)
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "the cluster never became ok: %s", &last)
}

// owner returns the node that serves key's slot, by CLUSTER KEYSLOT.
func (c *redisCluster) owner(t *testing.T, key string) *clusterNode {
	t.Helper()
	slot := int(clusterSlot(t, c.rc, key))
	for _, r := range c.slots {
		if r.Start <= slot && slot <= r.End {
			for _, n := range c.nodes {
				if n.addr == r.Nodes[0].Addr {
					return n
				}
			}
		}
	}
	t.Fatalf("no node serves slot %d", slot)
	return nil
}

func clusterSlot(t *testing.T, c *redis.ClusterClient, key string) int64 {
	t.Helper()
	slot, err := c.ClusterKeySlot(bg, key).Result()
	require.NoError(t, err)
	return slot
}

// clusterTimeout is the CommandTimeout of the cluster tests: roomier than
// the default, so that a CI machine busy with -race does not cut a Store
// off from a master that is up.
const clusterTimeout = 250 * time.Millisecond

// newClusterStore makes a Store of the cluster c.
func newClusterStore(t *testing.T, c *redisCluster, o redisstate.Options) *redisstate.Store {
	t.Helper()
	if o.SyncInterval == 0 {
		o.SyncInterval = testSync
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = clusterTimeout
	}
	s, err := redisstate.New(&redis.UniversalOptions{Addrs: c.addrs()}, o)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// clusterConfig: a breaker trips alone at half of at least 4 of its own
// calls in the last minute, or at 3 failures in a row; its fleet trips at
// half of at least 4 calls of all its breakers. Open, both stay so until
// told.
var clusterConfig = breaker.Config{
	Window: breaker.TimeWindow, WindowDuration: time.Minute, MinimumCalls: 4,
	ConsecutiveFailures: 3, OpenTimeout: time.Hour,
}

// waitFleet waits until n enters s because its fleet did (ReasonFleet),
// after the state changes that earlier waits consumed: n's own changes do
// not count.
func (n node) waitFleet(t *testing.T, s breaker.State) {
	t.Helper()
	w := n.w
	w.waitFor(t, "the fleet's state "+s.String(), func(events []breaker.Event) bool {
		for i := w.seen; i < len(events); i++ {
			if e := events[i]; e.Kind == breaker.EventStateChange && e.To == s && e.Reason.Kind == breaker.ReasonFleet {
				w.seen = i + 1
				return true
			}
		}
		return false
	})
}

// detachments returns the errors of the EventDetached n heard.
func (n node) detachments() []error {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	var errs []error
	for _, e := range n.w.events {
		if e.Kind == breaker.EventDetached {
			errs = append(errs, e.Err)
		}
	}
	return errs
}

// lastLinkEvent returns the last EventDetached or EventAttached n heard.
func (n node) lastLinkEvent() breaker.EventKind {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	for i := len(n.w.events) - 1; i >= 0; i-- {
		if k := n.w.events[i].Kind; k == breaker.EventDetached || k == breaker.EventAttached {
			return k
		}
	}
	return 0
}

// fleetWindow returns the calls and failures in the fleet window of name.
func fleetWindow(t *testing.T, c redis.Cmdable, name string) (calls, failures int) {
	t.Helper()
	for field, v := range c.HGetAll(bg, redisstate.KeyTag("breaker", name)+"window").Val() {
		if strings.HasPrefix(field, "m:") {
			continue // a member's last push
		}
		i, err := strconv.Atoi(v)
		require.NoError(t, err)
		switch {
		case strings.HasSuffix(field, ":c"):
			calls += i
		case strings.HasSuffix(field, ":f"):
			failures += i
		}
	}
	return calls, failures
}

// windowHolds reports whether the fleet window of name holds calls calls
// and failures failures.
func windowHolds(t *testing.T, c redis.Cmdable, name string, calls, failures int) func() bool {
	return func() bool {
		n, f := fleetWindow(t, c, name)
		return n == calls && f == failures
	}
}

// fleetState returns the fleet's state of name as Redis holds it ("0"
// closed, "1" open...), or "" if there is none.
func fleetState(c redis.Cmdable, name string) string {
	return c.HGet(bg, redisstate.KeyTag("breaker", name)+"state", "s").Val()
}

// waitRounds waits until each store has done k more sync rounds.
func waitRounds(t *testing.T, k int64, stores ...*redisstate.Store) {
	t.Helper()
	for _, s := range stores {
		r := redisstate.Rounds(s)
		require.Eventually(t, func() bool { return redisstate.Rounds(s) >= r+k }, 10*time.Second, testSync/2)
	}
}

// namesOn returns k names starting with prefix whose slots the node serves.
func namesOn(t *testing.T, c *redisCluster, n *clusterNode, prefix string, k int) []string {
	t.Helper()
	var names []string
	for i := 0; len(names) < k; i++ {
		require.Less(t, i, 10000)
		name := prefix + strconv.Itoa(i)
		if c.owner(t, redisstate.KeyTag("breaker", name)+"window") == n {
			names = append(names, name)
		}
	}
	return names
}

// killMaster kills n and waits until the other masters mark it failed, so
// that the outage is the cluster's, not just a closed port.
func (c *redisCluster) killMaster(t *testing.T, n *clusterNode) {
	t.Helper()
	n.kill()
	for _, other := range c.nodes {
		if other == n {
			continue
		}
		oc := other.client(t)
		require.Eventually(t, func() bool {
			nodes, err := oc.ClusterNodes(bg).Result()
			return err == nil && strings.Contains(nodes, " master,fail ")
		}, 20*time.Second, 20*time.Millisecond, "%s marks %s failed", other.addr, n.addr)
	}
}

// waitWritten waits until each store has written to node n: a breaker of
// its own, named for n, has a window there.
func waitWritten(t *testing.T, c *redisCluster, n *clusterNode, stores ...*redisstate.Store) {
	t.Helper()
	nc := n.client(t)
	for i, name := range namesOn(t, c, n, "probe-", len(stores)) {
		probe := newNode(t, name, stores[i], clusterConfig)
		window := redisstate.KeyTag("breaker", name) + "window"
		require.NoError(t, probe.call(nil))
		require.Eventually(t, func() bool { return nc.Exists(bg, window).Val() == 1 },
			10*time.Second, testSync, "store %d writes to %s", i, n.addr)
	}
}

// TestClusterOddNamesShareOneSlot: names that are empty, hold braces or
// are 10 KB long each keep their keys in one slot, on the master of that
// slot, and work across two Stores.
func TestClusterOddNamesShareOneSlot(t *testing.T) {
	c := startCluster(t)
	ignore := goleak.IgnoreCurrent()
	sa := newClusterStore(t, c, redisstate.Options{})
	sb := newClusterStore(t, c, redisstate.Options{})
	rc := c.rc
	for _, name := range []string{"", "}x", "{", strings.Repeat("n", 10<<10)} {
		t.Run(fmt.Sprintf("%.12q(%d)", name, len(name)), func(t *testing.T) {
			tag := redisstate.KeyTag("breaker", name)
			state, window := tag+"state", tag+"window"
			require.Equal(t, clusterSlot(t, rc, state), clusterSlot(t, rc, window), "one slot for state and window")
			a := newNode(t, name, sa, clusterConfig)
			b := newNode(t, name, sb, clusterConfig)

			// The counts of both reach the fleet's window, on its slot's master.
			require.NoError(t, a.call(nil))
			require.ErrorIs(t, b.call(errBoom), errBoom)
			require.Eventually(t, windowHolds(t, rc, name, 2, 1), 10*time.Second, testSync, "both counts are in the window")
			owner := c.owner(t, window).client(t)
			assert.Equal(t, int64(1), owner.Exists(bg, window).Val(), "the window is on the master of its slot")
			assert.Equal(t, int64(1), owner.Exists(bg, state).Val(), "and so is the state")

			// Manual changes spread both ways.
			a.ForceOpen()
			b.waitFleet(t, breaker.StateForcedOpen)
			b.Reset()
			a.waitFleet(t, breaker.StateClosed)
			b.Disable()
			a.waitFleet(t, breaker.StateDisabled)
			a.Reset()
			b.waitFleet(t, breaker.StateClosed)
			assert.Equal(t, "0", fleetState(rc, name), "the fleet is closed")
			assert.Empty(t, a.detachments(), "a never detached")
			assert.Empty(t, b.detachments(), "b never detached")
		})
	}
	require.NoError(t, sa.Close())
	require.NoError(t, sb.Close())
	goleak.VerifyNone(t, ignore)
}

// TestClusterManyNames: 300 names, spread over every master, each trip on
// the aggregate of two Stores, and each Reset spreads.
func TestClusterManyNames(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	o := redisstate.Options{SyncInterval: 50 * time.Millisecond}
	sa, sb := newClusterStore(t, c, o), newClusterStore(t, c, o)
	const n = 300
	as, bs := make([]node, n), make([]node, n)
	windows := map[*clusterNode][]string{} // window keys by master
	for i := range n {
		name := "svc-" + strconv.Itoa(i)
		as[i] = newNode(t, name, sa, clusterConfig)
		bs[i] = newNode(t, name, sb, clusterConfig)
		window := redisstate.KeyTag("breaker", name) + "window"
		owner := c.owner(t, window)
		windows[owner] = append(windows[owner], window)
		require.NoError(t, as[i].call(nil))
	}
	require.Len(t, windows, 3, "the names spread over every master")
	for owner, keys := range windows {
		oc := owner.client(t)
		require.Eventually(t, func() bool {
			for _, k := range keys { // one by one: EXISTS of many keys must be of one slot
				if oc.Exists(bg, k).Val() != 1 {
					return false
				}
			}
			return true
		}, 10*time.Second, 50*time.Millisecond, "every window of %s is there", owner.addr)
	}

	// a fails twice and b once: 3 failures in 4 calls trip the fleet,
	// though neither breaker has the 4 calls it needs to trip alone.
	for i := range n {
		require.ErrorIs(t, as[i].call(errBoom), errBoom)
		require.ErrorIs(t, as[i].call(errBoom), errBoom)
		require.Equal(t, breaker.StateClosed, as[i].State(), "3 calls do not trip a alone")
	}
	for i := range n {
		require.ErrorIs(t, bs[i].call(errBoom), errBoom)
	}
	for i := range n {
		as[i].waitFleet(t, breaker.StateOpen)
		bs[i].waitFleet(t, breaker.StateOpen)
	}
	for i := range n {
		assert.Equal(t, "1", fleetState(c.rc, as[i].Name()), "%s: the fleet is open", as[i].Name())
	}

	// Every Reset on b spreads to a.
	for i := range n {
		bs[i].Reset()
	}
	for i := range n {
		as[i].waitFleet(t, breaker.StateClosed)
		assert.Empty(t, as[i].detachments(), as[i].Name())
		assert.Empty(t, bs[i].detachments(), bs[i].Name())
	}
}

// TestClusterMasterRestart kills a master and starts it again: calls
// through its breakers never wait for it, the other masters' breakers go
// on sharing, and once it is back its breakers share again, and what they
// counted meanwhile reaches its window.
func TestClusterMasterRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	victim, survivor := c.nodes[0], c.nodes[1]
	sa, sb := newClusterStore(t, c, redisstate.Options{}), newClusterStore(t, c, redisstate.Options{})
	names := namesOn(t, c, victim, "down-", 2)
	downName, loneName, upName := names[0], names[1], namesOn(t, c, survivor, "up-", 1)[0]
	downA, downB := newNode(t, downName, sa, clusterConfig), newNode(t, downName, sb, clusterConfig)
	loneCfg := clusterConfig
	loneCfg.OpenTimeout = 500 * time.Millisecond
	lone := newNode(t, loneName, sa, loneCfg)
	upA, upB := newNode(t, upName, sa, clusterConfig), newNode(t, upName, sb, clusterConfig)
	for _, nd := range []node{downA, downB, lone, upA, upB} {
		require.NoError(t, nd.call(nil))
	}
	rc := c.rc
	require.Eventually(t, func() bool {
		return windowHolds(t, rc, downName, 2, 0)() && windowHolds(t, rc, loneName, 1, 0)() && windowHolds(t, rc, upName, 2, 0)()
	}, 10*time.Second, testSync, "the counts are in the windows")

	c.killMaster(t, victim)
	for _, nd := range []node{downA, downB, lone} {
		nd.w.waitKind(t, breaker.EventDetached, 0)
	}
	// Calls through the victim's breakers never wait for it: not while
	// closed, nor when they trip, nor while open or half-open.
	bound := clusterTimeout + 500*time.Millisecond
	assert.Less(t, slowest(t, downA, 200, nil, nil), bound, "closed")
	assert.Less(t, slowest(t, lone, 3, errBoom, errBoom), bound, "tripping")
	require.Equal(t, breaker.StateOpen, lone.State(), "lone trips alone")
	assert.Less(t, slowest(t, lone, 50, nil, breaker.ErrOpen), bound, "open")
	require.Eventually(t, func() bool { return lone.State() == breaker.StateHalfOpen }, 5*time.Second, testSync)
	assert.Less(t, slowest(t, lone, 1, nil, nil), bound, "a trial call asks the dead master for no permit")
	assert.Equal(t, breaker.StateClosed, lone.State(), "lone's own trial closed it")

	// The other masters' breakers go on counting and sharing.
	assert.Less(t, slowest(t, upA, 200, nil, nil), bound)
	require.Eventually(t, windowHolds(t, rc, upName, 202, 0), 10*time.Second, testSync, "upA's counts reach its window")
	waitRounds(t, 3, sa, sb)
	assert.True(t, windowHolds(t, rc, upName, 202, 0)(), "and are counted once")
	upA.ForceOpen()
	upB.waitFleet(t, breaker.StateForcedOpen)
	upB.Reset()
	upA.waitFleet(t, breaker.StateClosed)
	assert.Empty(t, upA.detachments(), "a master down cuts off only its own names")
	assert.Empty(t, upB.detachments(), "a master down cuts off only its own names")

	victim.restart()
	c.waitOK()
	downA.w.waitKind(t, breaker.EventAttached, 0)
	downB.w.waitKind(t, breaker.EventAttached, 0)
	// The victim came back empty; downA's 200 calls made while it was down
	// are in its window now.
	require.Eventually(t, windowHolds(t, rc, downName, 200, 0), 10*time.Second, testSync, "the counts kept reach the window")
	assert.Equal(t, "0", fleetState(rc, downName), "200 successes leave the fleet closed")
	// And manual changes spread again, both ways.
	downA.ForceOpen()
	downB.waitFleet(t, breaker.StateForcedOpen)
	downB.Reset()
	downA.waitFleet(t, breaker.StateClosed)
}

// TestClusterCountsMadeWhileDownReachTheFleet is TestRedisKilledAndRestarted
// on a cluster: two breakers fail while their master is down, too few
// times to trip alone; once it is back, their counts together trip the
// fleet.
func TestClusterCountsMadeWhileDownReachTheFleet(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	victim := c.nodes[0]
	name := namesOn(t, c, victim, "counts-", 1)[0]
	a := newNode(t, name, newClusterStore(t, c, redisstate.Options{}), clusterConfig)
	b := newNode(t, name, newClusterStore(t, c, redisstate.Options{}), clusterConfig)
	require.NoError(t, a.call(nil))
	require.NoError(t, b.call(nil))
	rc := c.rc
	require.Eventually(t, windowHolds(t, rc, name, 2, 0), 10*time.Second, testSync)

	c.killMaster(t, victim)
	a.w.waitKind(t, breaker.EventDetached, 0)
	b.w.waitKind(t, breaker.EventDetached, 0)
	for _, nd := range []node{a, b} {
		require.ErrorIs(t, nd.call(errBoom), errBoom)
		require.ErrorIs(t, nd.call(errBoom), errBoom)
		require.Equal(t, breaker.StateClosed, nd.State(), "3 calls do not trip a breaker alone")
	}

	victim.restart()
	c.waitOK()
	// The victim came back empty: 4 failures in 4 calls, 2 from each
	// Store, trip the fleet, and it opens both.
	a.waitFleet(t, breaker.StateOpen)
	b.waitFleet(t, breaker.StateOpen)
	calls, failures := fleetWindow(t, rc, name)
	assert.Equal(t, 4, calls, "the calls made while down are in the window")
	assert.Equal(t, 4, failures, "and so are their failures")
	assert.Equal(t, "1", fleetState(rc, name), "the fleet is open")
}

// TestClusterLinkEventsEndAttached: once a master is back and every Store
// writes to it, the last link event each of its breakers heard is
// EventAttached, and stays so. Calls go on through the outage and the
// return, some of them trial calls that ask for permits.
func TestClusterLinkEventsEndAttached(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	victim := c.nodes[0]
	sa, sb := newClusterStore(t, c, redisstate.Options{}), newClusterStore(t, c, redisstate.Options{})
	cfg := clusterConfig
	cfg.OpenTimeout = 20 * time.Millisecond // tripped, they soon make trial calls
	var nodes []node
	for _, name := range namesOn(t, c, victim, "link-", 3) {
		nodes = append(nodes, newNode(t, name, sa, cfg), newNode(t, name, sb, cfg))
	}
	for _, nd := range nodes {
		require.NoError(t, nd.call(nil))
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // calls through every breaker, the first name's failing
		defer close(stopped)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for i, nd := range nodes {
				if i < 2 {
					nd.call(errBoom)
				} else {
					nd.call(nil)
				}
			}
		}
	}()
	defer func() { close(stop); <-stopped }()

	c.killMaster(t, victim)
	for _, nd := range nodes {
		nd.w.waitKind(t, breaker.EventDetached, 0)
	}
	victim.restart()
	c.waitOK()
	waitWritten(t, c, victim, sa, sb)
	for _, nd := range nodes {
		require.Eventually(t, func() bool { return nd.lastLinkEvent() == breaker.EventAttached },
			5*time.Second, testSync, "%s: the last link event is EventAttached", nd.Name())
	}
	detached := make([]int, len(nodes))
	for i, nd := range nodes {
		detached[i] = nd.w.countKind(breaker.EventDetached)
	}
	waitRounds(t, 5, sa, sb)
	for i, nd := range nodes {
		assert.Equal(t, breaker.EventAttached, nd.lastLinkEvent(), "%s stays attached", nd.Name())
		assert.Equal(t, detached[i], nd.w.countKind(breaker.EventDetached), "%s: no EventDetached once back", nd.Name())
	}
}

// TestClusterResetWhileAnotherMasterIsDown resets a fleet whose master is
// up while another master is down: the Reset spreads, and sticks.
func TestClusterResetWhileAnotherMasterIsDown(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	victim, survivor := c.nodes[0], c.nodes[1]
	sa, sb := newClusterStore(t, c, redisstate.Options{}), newClusterStore(t, c, redisstate.Options{})
	downName, upName := namesOn(t, c, victim, "down-", 1)[0], namesOn(t, c, survivor, "up-", 1)[0]
	down := []node{newNode(t, downName, sa, clusterConfig), newNode(t, downName, sb, clusterConfig)}
	a, b := newNode(t, upName, sa, clusterConfig), newNode(t, upName, sb, clusterConfig)
	c.killMaster(t, victim)
	for _, nd := range down {
		nd.w.waitKind(t, breaker.EventDetached, 0)
	}
	rc := survivor.client(t)
	for round := range 5 {
		a.ForceOpen()
		b.waitFleet(t, breaker.StateForcedOpen)
		a.Reset()
		b.waitFleet(t, breaker.StateClosed)
		waitRounds(t, 2, sa, sb)
		require.Equal(t, "0", fleetState(rc, upName), "round %d: the fleet takes the Reset", round)
		require.Equal(t, breaker.StateClosed, a.State(), "round %d: a stays closed", round)
		require.Equal(t, breaker.StateClosed, b.State(), "round %d: b stays closed", round)
	}
	assert.Empty(t, a.detachments(), "a master down cuts off only its own names")
	assert.Empty(t, b.detachments(), "a master down cuts off only its own names")
}

// TestClusterScriptsLostWhileAnotherMasterIsDown: one master lost its
// scripts (SCRIPT FLUSH, as after a restart) while another is down: its
// names go on syncing, for the scripts are loaded where they run.
func TestClusterScriptsLostWhileAnotherMasterIsDown(t *testing.T) {
	c := startCluster(t)
	flushed, dead := c.nodes[0], c.nodes[1]
	s := newClusterStore(t, c, redisstate.Options{})
	name := namesOn(t, c, flushed, "flushed-", 1)[0]
	nd := newNode(t, name, s, clusterConfig)
	require.NoError(t, nd.call(nil))
	rc := c.rc
	require.Eventually(t, windowHolds(t, rc, name, 1, 0), 10*time.Second, testSync)

	c.killMaster(t, dead)
	require.NoError(t, flushed.client(t).ScriptFlush(bg).Err())
	require.NoError(t, nd.call(nil))
	assert.Eventually(t, windowHolds(t, rc, name, 2, 0), 3*time.Second, testSync, "its count reaches its own, live master")
	assert.Empty(t, nd.detachments(), "a master down cuts off only its own names")
}
