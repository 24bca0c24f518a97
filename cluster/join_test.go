package cluster

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// freePort finds a port free for both TCP and UDP on addr.
func freePort(t *testing.T, addr string) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(addr, strconv.Itoa(port)))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestJoinRetriesAndResolves: a member started before its seed is alone,
// keeps retrying with backoff, resolves the join name again each time and
// joins once the seed is up; the data path (Run's caller) never waits.
func TestJoinRetriesAndResolves(t *testing.T) {
	port := freePort(t, "127.0.0.1")
	joiner := startNode(t, testConfig("late-seed-joiner", "127.0.0.51", "localhost:"+strconv.Itoa(port)))
	require.Equal(t, []string{"late-seed-joiner"}, aliveNames(joiner.Node), "alone until the seed exists")
	time.Sleep(300 * time.Millisecond)

	scfg := testConfig("late-seed", "127.0.0.1")
	scfg.BindPort = port
	seed := startNode(t, scfg)
	both := []*testNode{seed, joiner}
	eventually(t, both, 6*time.Second, "the joiner must join the seed on a retry", func() bool {
		return agree(both, []string{"late-seed", "late-seed-joiner"})
	})
	require.Positive(t, testutil.ToFloat64(joiner.metrics.joins.WithLabelValues("error")))
	require.Equal(t, 1.0, testutil.ToFloat64(joiner.metrics.joins.WithLabelValues("ok")))
}

func memberlistNode(name string, meta Meta) *memberlist.Node {
	b, err := meta.encode()
	if err != nil {
		panic(err)
	}
	return &memberlist.Node{Name: name, Addr: net.ParseIP("127.0.0.1"), Port: 7946, Meta: b}
}

// TestOwnerByRole feeds membership events straight to a Node (no network):
// "all" members serve both roles, agents never own gateway keys.
func TestOwnerByRole(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeName, cfg.ClusterName = "gw-a", "c"
	n, err := New(cfg, nil, nil)
	require.NoError(t, err)
	sub, cancel := n.Subscribe()
	d := &delegate{n: n}

	_, ok := n.Owner("k", RoleGateway)
	require.False(t, ok, "no members yet")

	start := time.Unix(100, 0)
	d.NotifyJoin(memberlistNode("gw-a", Meta{Cluster: "c", Role: RoleGateway, Start: start}))
	d.NotifyJoin(memberlistNode("agent-1", Meta{Cluster: "c", Role: RoleAgent, Start: start}))
	d.NotifyJoin(memberlistNode("agent-2", Meta{Cluster: "c", Role: RoleAgent, Start: start}))
	d.NotifyJoin(memberlistNode("both", Meta{Cluster: "c", Role: RoleAll, Start: start}))
	select {
	case <-sub:
	default:
		t.Fatal("no change signal")
	}

	seen := map[Role]map[string]bool{RoleGateway: {}, RoleAgent: {}, RoleAll: {}}
	for _, k := range scrapeKeys(500) {
		for role := range seen {
			o, ok := n.Owner(k, role)
			require.True(t, ok)
			seen[role][o] = true
			m, ok := n.OwnerMember(k, role)
			require.True(t, ok)
			require.Equal(t, o, m.Name)
		}
	}
	require.Equal(t, map[string]bool{"gw-a": true, "both": true}, seen[RoleGateway])
	require.Equal(t, map[string]bool{"agent-1": true, "agent-2": true, "both": true}, seen[RoleAgent])
	require.Len(t, seen[RoleAll], 4)

	// A leaving member hands its keys over at once; once gone it is "left".
	n.markLeaving("both", start)
	for _, k := range scrapeKeys(500) {
		o, _ := n.Owner(k, RoleGateway)
		require.Equal(t, "gw-a", o)
		require.True(t, n.Owns(k, RoleGateway))
	}
	require.True(t, n.IsLeader(DefaultLeaderDuty))
	d.NotifyLeave(memberlistNode("both", Meta{Cluster: "c", Role: RoleAll, Start: start}))
	d.NotifyLeave(memberlistNode("agent-2", Meta{Cluster: "c", Role: RoleAgent, Start: start}))
	states := map[string]State{}
	for _, m := range n.Members() {
		states[m.Name] = m.State
	}
	require.Equal(t, map[string]State{"gw-a": StateAlive, "agent-1": StateAlive, "agent-2": StateDead, "both": StateLeft}, states)

	// A restart under the same name is a new member, alive again.
	d.NotifyJoin(memberlistNode("agent-2", Meta{Cluster: "c", Role: RoleAgent, Start: start.Add(time.Hour)}))
	n.markLeaving("agent-2", start) // stale announcement of the old process
	o, _ := n.Owner("x", RoleAgent)
	require.NotEmpty(t, o)
	for _, m := range n.Members() {
		if m.Name == "agent-2" {
			require.Equal(t, StateAlive, m.State)
		}
	}

	// Members of another cluster or with garbage metadata are refused.
	require.Error(t, d.NotifyAlive(memberlistNode("x", Meta{Cluster: "other", Role: RoleGateway})))
	require.Error(t, d.NotifyMerge([]*memberlist.Node{{Name: "y", Meta: []byte("garbage")}}))
	require.NoError(t, d.NotifyAlive(memberlistNode("z", Meta{Cluster: "c", Role: RoleGateway})))

	// Cancelled subscriptions get nothing.
	cancel()
	cancel()
	for len(sub) > 0 {
		<-sub
	}
	d.NotifyJoin(memberlistNode("gw-b", Meta{Cluster: "c", Role: RoleGateway, Start: start}))
	require.Empty(t, sub)

	n.SetOwned("scrape_targets", 42)
	v := n.Snapshot()
	require.Equal(t, 42, v.Owned["scrape_targets"])
	require.Contains(t, []string{"gw-a", "gw-b"}, v.Leaders[DefaultLeaderDuty])
}

func TestHandlerMethods(t *testing.T) {
	n, err := New(DefaultConfig(), nil, nil)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	n.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cluster", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	rec = httptest.NewRecorder()
	n.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cluster", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Contains(t, rec.Body.String(), `"members": []`)
}

func TestRunTwice(t *testing.T) {
	tn := startNode(t, testConfig("twice", "127.0.0.60"))
	require.ErrorContains(t, tn.Run(t.Context()), "already started")
}

func TestRunBindError(t *testing.T) {
	cfg := testConfig("nobind", "192.0.2.1") // TEST-NET-1: not a local address
	n, err := New(cfg, nil, nil)
	require.NoError(t, err)
	require.ErrorContains(t, n.Run(t.Context()), "start gossip on 192.0.2.1:0")
	select {
	case <-n.Ready():
		t.Fatal("ready must stay open when the listener failed")
	default:
	}
}
