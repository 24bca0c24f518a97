package scrape

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func getJSON(t *testing.T, srv *httptest.Server, path string, v any) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v), string(b))
}

func TestTargetAllocatorAPI(t *testing.T) {
	var addrs []string
	for i := 0; i < 8; i++ {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", 20000+i)) // never scraped successfully; only discovered
	}
	cfg := staticJob("job one", "1s", addrs...) + `  relabel_configs:
  - target_label: team
    replacement: blue
- job_name: other
  static_configs: [{targets: ["127.0.0.1:21000"], labels: {zone: z1}}]
  basic_auth: {username: u, password: hunter2}
`
	m := &members{}
	m.set("gw-0", "gw-1", "gw-2")
	r, _ := runReceiver(t, cfg, m.sharding("gw-0"), &collector{})
	srv := httptest.NewServer(Handler(r))
	t.Cleanup(srv.Close)
	require.Eventually(t, func() bool { return len(r.Targets("job one")) == len(addrs) }, 10*time.Second, 10*time.Millisecond)

	// GET /jobs: {job: {"_link": "/jobs/<job>/targets"}}
	var jobs map[string]map[string]string
	getJSON(t, srv, "/jobs", &jobs)
	require.Equal(t, map[string]map[string]string{
		"job one": {"_link": "/jobs/job+one/targets"},
		"other":   {"_link": "/jobs/other/targets"},
	}, jobs)

	// GET /jobs/{job}/targets: {collector: {"_link", "targets": [{"targets": [addr], "labels": {...}}]}}
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	type coll struct {
		Link    string  `json:"_link"`
		Targets []group `json:"targets"`
	}
	var byCollector map[string]coll
	getJSON(t, srv, "/jobs/"+url.PathEscape("job one")+"/targets", &byCollector)
	seen := map[string]int{}
	for name, c := range byCollector {
		require.Equal(t, "/jobs/job+one/targets?collector_id="+name, c.Link)
		for _, g := range c.Targets {
			require.Len(t, g.Targets, 1)
			seen[g.Targets[0]]++
			require.Equal(t, "job one", g.Labels["job"])
			require.Equal(t, g.Targets[0], g.Labels["__address__"], "discovered labels, as the allocator reports them")
			owner, _ := m.owner(targetKey("job one", labelsOf(t, r, "job one", g.Targets[0])))
			require.Equal(t, owner, name)
		}
	}
	require.Len(t, seen, len(addrs))
	for a, n := range seen {
		require.Equal(t, 1, n, "%s appears once across collectors", a)
	}

	// Every live member is a collector, idle ones with an empty list (not
	// null): job "other" has one target, so two of three members are idle.
	var raw map[string]json.RawMessage
	getJSON(t, srv, "/jobs/other/targets", &raw)
	require.Len(t, raw, 3, "every member listed")
	idle := 0
	for name, b := range raw {
		var c coll
		require.NoError(t, json.Unmarshal(b, &c))
		require.Equal(t, "/jobs/other/targets?collector_id="+name, c.Link)
		require.Contains(t, string(b), `"targets":[`, "%s: targets is a list, never null", name)
		if len(c.Targets) == 0 {
			idle++
		}
	}
	require.Equal(t, 2, idle)
	// A member that joins is listed at once, with the targets it now owns.
	m.set("gw-0", "gw-1", "gw-2", "gw-3")
	getJSON(t, srv, "/jobs/other/targets", &raw)
	require.Len(t, raw, 4)
	require.Contains(t, raw, "gw-3")
	m.set("gw-0", "gw-1", "gw-2")

	// ?collector_id=NAME: that collector's list, [] when it has none.
	total := 0
	for _, name := range []string{"gw-0", "gw-1", "gw-2"} {
		var list []group
		getJSON(t, srv, "/jobs/job%20one/targets?collector_id="+name, &list)
		require.NotNil(t, list)
		total += len(list)
	}
	require.Equal(t, len(addrs), total)
	var none []group
	getJSON(t, srv, "/jobs/job%20one/targets?collector_id=nobody", &none)
	require.NotNil(t, none)
	require.Empty(t, none)

	// GET /scrape_configs: {job: scrape config as JSON}, secrets hidden.
	var scs map[string]map[string]any
	getJSON(t, srv, "/scrape_configs", &scs)
	require.Contains(t, scs, "job one")
	require.Equal(t, "job one", scs["job one"]["job_name"])
	require.Equal(t, "1s", scs["job one"]["scrape_interval"])
	ba := scs["other"]["basic_auth"].(map[string]any)
	require.Equal(t, "<secret>", ba["password"])

	// obs targets prints who scrapes what.
	table := TargetsTable([]*PrometheusReceiver{r}, "other")
	require.Contains(t, table, "127.0.0.1:21000")
	require.Equal(t, 2, strings.Count(table, "\n"))
}

func labelsOf(t *testing.T, r *PrometheusReceiver, job, addr string) (ls labelsT) {
	t.Helper()
	r.shard.mu.Lock()
	defer r.shard.mu.Unlock()
	for _, st := range r.shard.targets[job] {
		if st.lset.Get("__address__") == addr {
			return st.lset
		}
	}
	t.Fatalf("no target %s", addr)
	return ls
}
