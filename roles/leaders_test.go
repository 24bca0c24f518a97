package roles

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/cluster"
)

// `obs members` lists every duty, the per-namespace ones of k8s_events
// shard_by: namespace included, one line per owner (count and the first
// names), from a real member's /cluster.
func TestPrintMembersShowsDuties(t *testing.T) {
	cfg := cluster.DefaultConfig()
	cfg.NodeName, cfg.ClusterName = "gw-0", "leaders-test"
	cfg.BindAddr, cfg.BindPort = "127.0.0.1", 0
	cfg.Role = cluster.RoleGateway
	cfg.Profile = cluster.ProfileLocal
	n, err := cluster.New(cfg, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("node did not stop")
		}
	}()
	select {
	case <-n.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("node not ready")
	}
	var keys []string
	for i := range 30 {
		keys = append(keys, fmt.Sprintf("k8s-events/ns-%02d", i))
	}
	n.SetDuties("k8s_events", keys)
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()

	var out bytes.Buffer
	require.Eventually(t, func() bool {
		out.Reset()
		require.NoError(t, PrintMembers(ctx, &out, strings.TrimPrefix(srv.URL, "http://")))
		return strings.Contains(out.String(), "duties of gw-0 (31): ")
	}, 5*time.Second, 50*time.Millisecond, "once the member sees itself alive it owns all 31 duties")
	require.Contains(t, out.String(), "leader of k8s-events: gw-0\n")
	require.Contains(t, out.String(), "duties of gw-0 (31): k8s-events, k8s-events/ns-00, ")
	require.Contains(t, out.String(), ", … 21 more\n", "ten names shown, the rest counted")
}

func TestStatusPageDutiesTable(t *testing.T) {
	type row struct {
		Member string
		Count  int
		List   string
	}
	var b strings.Builder
	require.NoError(t, statusTmpl.Execute(&b, map[string]any{
		"Node": "gw-0", "Members": []cluster.Member{{Name: "gw-0", State: cluster.StateAlive}},
		"Duties": []row{{"", 1, "k8s-events/x"}, {"gw-0", 2, shortList([]string{"k8s-events", "k8s-events/a"}, 20)}},
	}))
	page := b.String()
	require.Contains(t, page, `<tr><td>gw-0</td><td>2</td><td>k8s-events, k8s-events/a</td></tr>`)
	require.Contains(t, page, `<span class="bad">no gateway</span></td><td>1</td>`)
}

func TestShortList(t *testing.T) {
	require.Equal(t, "a, b", shortList([]string{"a", "b"}, 2))
	require.Equal(t, "a, … 2 more", shortList([]string{"a", "b", "c"}, 1))
	require.Empty(t, shortList(nil, 3))
}
