package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Timing for the loopback tests ("local" profile, tightened): a probe every
// 300 ms with a 200 ms timeout, suspicion multiplier 3. On loopback an ack
// takes well under a millisecond, but this machine is shared with other
// builds, and 100 ms timeouts produced false suspicions under load; 200 ms
// did not. A dead member is probed within about one interval by one of four
// survivors, then suspected for 3 × 300 ms (up to 6× that without peer
// confirmations): detection lands around 1–3 s, inside the 10 s the tests
// allow, while the package's tests stay well under a minute. Gossip of a
// join is sent only a few times (RetransmitMult × log10(N+1)) and with five
// members joining at once it sometimes missed a member; push/pull every
// second repairs that well inside the 5 s the join is allowed.
const (
	testProbeInterval = 300 * time.Millisecond
	testProbeTimeout  = 200 * time.Millisecond
	testSuspicionMult = 3
	testGossip        = 50 * time.Millisecond
	testPushPull      = time.Second
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testNode struct {
	*Node
	logs   *syncBuffer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// stop stops the node; crash=true shuts down without leaving (others see
// it dead).
func (tn *testNode) stop(t *testing.T, crash bool) {
	t.Helper()
	if tn.done == nil {
		return
	}
	tn.skipLeave.Store(crash)
	tn.cancel()
	select {
	case err := <-tn.done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("node %s did not stop", tn.Name())
	}
	tn.done = nil
}

func testConfig(name, addr string, join ...string) Config {
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.ClusterName = "test"
	cfg.BindAddr = addr
	cfg.BindPort = 0
	cfg.Role = RoleGateway
	cfg.Profile = ProfileLocal
	cfg.ProbeInterval = testProbeInterval
	cfg.ProbeTimeout = testProbeTimeout
	cfg.SuspicionMult = testSuspicionMult
	cfg.GossipInterval = testGossip
	cfg.PushPullInterval = testPushPull
	cfg.LeaveTimeout = 2 * time.Second
	cfg.Join = join
	cfg.Meta.Version = "test"
	return cfg
}

func startNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	n, err := New(cfg, logger, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, logs: logs, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-tn.done:
		t.Fatalf("node %s: %v", cfg.NodeName, err)
	case <-time.After(5 * time.Second):
		t.Fatalf("node %s not ready", cfg.NodeName)
	}
	t.Cleanup(func() { tn.stop(t, true) })
	return tn
}

// aliveNames is the member list a node sees: names of alive members.
func aliveNames(n *Node) []string {
	var out []string
	for _, m := range n.Members() {
		if m.State == StateAlive {
			out = append(out, m.Name)
		}
	}
	sort.Strings(out)
	return out
}

// agree reports whether every node sees exactly want alive.
func agree(nodes []*testNode, want []string) bool {
	for _, n := range nodes {
		if fmt.Sprint(aliveNames(n.Node)) != fmt.Sprint(want) {
			return false
		}
	}
	return true
}

func namesOf(nodes []*testNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name())
	}
	sort.Strings(out)
	return out
}

// selfLeaders counts the nodes that believe they lead the duty.
func selfLeaders(nodes []*testNode, duty string) int {
	c := 0
	for _, n := range nodes {
		if n.IsLeader(duty) {
			c++
		}
	}
	return c
}

// overlappingLeaders counts nodes that believed they led at one instant.
// Reading nodes one after the other could catch an old leader before and
// its successor after a clean hand-off, so claimers are read again in
// reverse order: a node that claims on both reads claimed throughout (a
// member gives leadership up at most once here), so it overlapped with
// every claimer read in between.
func overlappingLeaders(nodes []*testNode, duty string) int {
	var claim []*testNode
	for _, n := range nodes {
		if n.IsLeader(duty) {
			claim = append(claim, n)
		}
	}
	if len(claim) < 2 {
		return len(claim)
	}
	c := 0
	for i := len(claim) - 1; i >= 0; i-- {
		if claim[i].IsLeader(duty) {
			c++
		}
	}
	return c
}

func TestLoopbackCluster(t *testing.T) {
	const duty = DefaultLeaderDuty
	seed := startNode(t, testConfig("m0", "127.0.0.10"))
	sub, cancelSub := seed.Subscribe()
	defer cancelSub()
	nodes := []*testNode{seed}
	for i := 1; i < 5; i++ {
		nodes = append(nodes, startNode(t, testConfig(fmt.Sprintf("m%d", i), fmt.Sprintf("127.0.0.%d", 10+i), seed.Addr())))
	}

	start := time.Now()
	eventually(t, nodes, 5*time.Second, "five members must agree on the member list within 5 s",
		func() bool { return agree(nodes, namesOf(nodes)) })
	t.Logf("five members agreed in %v", time.Since(start).Round(time.Millisecond))
	select {
	case <-sub:
	default:
		t.Fatal("subscriber got no change signal")
	}

	// Every member computes the same owner for every key, and exactly one
	// of them leads.
	for _, k := range scrapeKeys(200) {
		want, ok := seed.Owner(k, RoleGateway)
		require.True(t, ok)
		for _, n := range nodes[1:] {
			got, _ := n.Owner(k, RoleGateway)
			require.Equal(t, want, got)
		}
	}
	require.Equal(t, 1, selfLeaders(nodes, duty))
	leader, _ := seed.Leader(duty)

	// Watch leadership continuously from here on: never two leaders.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var watch sync.WaitGroup
	var mu sync.Mutex
	live := append([]*testNode(nil), nodes...)
	maxLeaders := 0
	watch.Add(1)
	go func() {
		defer watch.Done()
		for watchCtx.Err() == nil {
			mu.Lock()
			maxLeaders = max(maxLeaders, overlappingLeaders(live, duty))
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	setLive := func(ns []*testNode) {
		mu.Lock()
		live = ns
		mu.Unlock()
	}

	// Crash a member that does not lead: Shutdown without Leave.
	var victim *testNode
	var survivors []*testNode
	for _, n := range nodes {
		if victim == nil && n != seed && n.Name() != leader {
			victim = n
			continue
		}
		survivors = append(survivors, n)
	}
	setLive(survivors)
	victim.stop(t, true)
	start = time.Now()
	eventually(t, survivors, 10*time.Second, "four survivors must agree once failure detection declares the crashed member dead",
		func() bool { return agree(survivors, namesOf(survivors)) })
	t.Logf("crash of %s detected by all survivors in %v", victim.Name(), time.Since(start).Round(time.Millisecond))
	for _, n := range survivors {
		require.Equal(t, StateDead, stateOf(n.Node, victim.Name()), "seen by %s", n.Name())
	}
	require.Equal(t, 1, selfLeaders(survivors, duty))
	probeFailures, leaderFlags := 0.0, 0.0
	for _, n := range survivors {
		probeFailures += testutil.ToFloat64(n.metrics.probeFailures)
		leaderFlags += testutil.ToFloat64(n.metrics.leader.WithLabelValues(duty))
	}
	require.Positive(t, probeFailures, "the crash must show up as failed probes")
	require.Equal(t, 1.0, leaderFlags, "exactly one obs_cluster_leader flag set")

	// Stop the leader gracefully: seen as "left", and a new leader takes over.
	var leaderNode *testNode
	var rest []*testNode
	for _, n := range survivors {
		if n.Name() == leader {
			leaderNode = n
		} else {
			rest = append(rest, n)
		}
	}
	require.NotNil(t, leaderNode)
	leaderNode.stop(t, false)
	setLive(rest)
	start = time.Now()
	eventually(t, append(rest, leaderNode), 10*time.Second, "a graceful stop must be seen as left and a new leader chosen", func() bool {
		for _, n := range rest {
			if stateOf(n.Node, leader) != StateLeft {
				return false
			}
		}
		return agree(rest, namesOf(rest)) && selfLeaders(rest, duty) == 1
	})
	t.Logf("graceful leave of leader %s seen by all in %v", leader, time.Since(start).Round(time.Millisecond))
	newLeader, _ := rest[0].Leader(duty)
	require.NotEqual(t, leader, newLeader)

	stopWatch()
	watch.Wait()
	require.LessOrEqual(t, maxLeaders, 1, "two members believed they led at the same time")

	// Metrics and the /cluster view.
	require.Equal(t, 3.0, testutil.ToFloat64(seed.metrics.members.WithLabelValues("gateway", "alive")))
	require.Equal(t, 1.0, testutil.ToFloat64(seed.metrics.members.WithLabelValues("gateway", "dead")))
	require.Equal(t, 1.0, testutil.ToFloat64(seed.metrics.members.WithLabelValues("gateway", "left")))
	rec := httptest.NewRecorder()
	seed.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cluster", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var v View
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v))
	require.Equal(t, "m0", v.Self)
	require.Len(t, v.Members, 5)
	require.Equal(t, newLeader, v.Leaders[duty])
	states := map[string]State{}
	for _, m := range v.Members {
		states[m.Name] = m.State
		require.Equal(t, RoleGateway, m.Role)
		require.Equal(t, "test", m.Version)
		require.NotEmpty(t, m.Address)
	}
	require.Equal(t, StateDead, states[victim.Name()])
	require.Equal(t, StateLeft, states[leader])
}

func stateOf(n *Node, name string) State {
	for _, m := range n.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func TestRefusals(t *testing.T) {
	keyA := bytes.Repeat([]byte{1}, 32)
	keyB := bytes.Repeat([]byte{2}, 32)
	tests := []struct {
		name       string
		seedKeys   [][]byte
		joinerKeys [][]byte
		joinerName string // cluster name
		joins      bool
		seedLog    string
		joinerLog  string
		refusedWhy string
	}{
		{
			name: "wrong cluster name", joinerName: "other",
			seedLog:    `refusing member j: cluster name \"other\", want \"test\"`,
			joinerLog:  `refusing member s: cluster name \"test\", want \"other\"`,
			refusedWhy: "cluster_name",
		},
		{
			name: "wrong gossip key", seedKeys: [][]byte{keyA}, joinerKeys: [][]byte{keyB},
			seedLog:    "could not be decrypted: wrong or missing cluster key",
			joinerLog:  "could not be decrypted: wrong or missing cluster key",
			refusedWhy: "key",
		},
		{
			name: "missing gossip key", seedKeys: [][]byte{keyA},
			seedLog:    "could not be decrypted: wrong or missing cluster key",
			joinerLog:  "could not be decrypted: wrong or missing cluster key",
			refusedWhy: "key",
		},
		{
			name: "rotated keys overlap", seedKeys: [][]byte{keyA, keyB}, joinerKeys: [][]byte{keyB, keyA},
			joins: true,
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scfg := testConfig("s", fmt.Sprintf("127.0.0.%d", 20+2*i))
			scfg.Keys = tc.seedKeys
			seed := startNode(t, scfg)
			jcfg := testConfig("j", fmt.Sprintf("127.0.0.%d", 21+2*i), seed.Addr())
			jcfg.Keys = tc.joinerKeys
			if tc.joinerName != "" {
				jcfg.ClusterName = tc.joinerName
			}
			joiner := startNode(t, jcfg)
			both := []*testNode{seed, joiner}
			if tc.joins {
				require.Eventually(t, func() bool { return agree(both, []string{"j", "s"}) }, 5*time.Second, 20*time.Millisecond)
				return
			}
			require.Eventually(t, func() bool {
				return strings.Contains(seed.logs.String(), tc.seedLog) && strings.Contains(joiner.logs.String(), tc.joinerLog)
			}, 5*time.Second, 20*time.Millisecond, "seed log:\n%s\njoiner log:\n%s", seed.logs, joiner.logs)
			require.Equal(t, []string{"s"}, aliveNames(seed.Node))
			require.Equal(t, []string{"j"}, aliveNames(joiner.Node))
			require.Positive(t, testutil.ToFloat64(seed.metrics.refused.WithLabelValues(tc.refusedWhy)))
			require.Positive(t, testutil.ToFloat64(joiner.metrics.refused.WithLabelValues(tc.refusedWhy)))
		})
	}
}

// eventually waits for cond and, if it never holds, fails with what every
// node saw.
func eventually(t *testing.T, nodes []*testNode, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s\n%s", msg, dump(nodes))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dump(nodes []*testNode) string {
	var b strings.Builder
	for _, n := range nodes {
		l, _ := n.Leader(DefaultLeaderDuty)
		fmt.Fprintf(&b, "%s: leader %s\n", n.Name(), l)
		for _, m := range n.Members() {
			fmt.Fprintf(&b, "  %s %s leaving=%v\n", m.Name, m.State, m.Meta.Leaving)
		}
		for _, line := range strings.Split(n.logs.String(), "\n") {
			if !strings.Contains(line, "Stream connection") && !strings.Contains(line, "push/pull sync") {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	return b.String()
}
