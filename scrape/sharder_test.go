package scrape

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// members is a membership both test receivers share: rendezvous hashing
// over a mutable set, with a change signal per receiver.
type members struct {
	mu    sync.Mutex
	names []string
	chans []chan struct{}
}

func (m *members) owner(key string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best string
	var bestH uint64
	for _, n := range m.names {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(n))
		if v := h.Sum64(); best == "" || v > bestH {
			best, bestH = n, v
		}
	}
	return best, best != ""
}

func (m *members) sharding(self string) Sharding {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.chans = append(m.chans, ch)
	m.mu.Unlock()
	return Sharding{Mode: ShardCluster, Owner: m.owner, Members: m.list, Self: self, Changed: ch, Seed: "test-cluster", HandoffDelay: 200 * time.Millisecond}
}

func (m *members) list() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.names))
	for _, n := range m.names {
		out = append(out, Member{Name: n})
	}
	return out
}

func (m *members) set(names ...string) {
	m.mu.Lock()
	m.names = names
	chans := m.chans
	m.mu.Unlock()
	for _, ch := range chans {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// instances returns the service.instance.id values of the batches, and
// whether any point was flagged "no recorded value" (a staleness marker).
func (c *collector) instances(since int) (map[string]bool, int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	stale := 0
	for _, md := range c.batches[since:] {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			v, _ := rms.At(i).Resource().Attributes().Get("service.instance.id")
			seen[v.Str()] = true
			ms := rms.At(i).ScopeMetrics().At(0).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if m := ms.At(k); m.Type() == pmetric.MetricTypeGauge {
					dps := m.Gauge().DataPoints()
					for d := 0; d < dps.Len(); d++ {
						if dps.At(d).Flags().NoRecordedValue() {
							stale++
						}
					}
				}
			}
		}
	}
	return seen, stale, len(c.batches)
}

func TestShardingSplitsAndHandsOff(t *testing.T) {
	// 24 targets: with 12, both members' shares must be non-empty and all
	// went to one member about once in 2,000 runs (it happened in CI).
	const n = 24
	var addrs []string
	for i := 0; i < n; i++ {
		srv := serve(t, "text/plain; version=0.0.4", fmt.Sprintf("# TYPE target_value gauge\ntarget_value %d\n", i))
		addrs = append(addrs, hostOf(srv))
	}
	cfg := staticJob("sharded", "200ms", addrs...)
	m := &members{}
	m.set("a", "b")
	ca, cb := &collector{}, &collector{}
	ra, _ := runReceiver(t, cfg, m.sharding("a"), ca)
	_, regB := runReceiver(t, cfg, m.sharding("b"), cb)

	// Each target is scraped by exactly the member that owns it.
	want := map[string]map[string]bool{"a": {}, "b": {}}
	for _, a := range addrs {
		o, _ := m.owner(targetKey("sharded", mustTargetLabels(t, ra, a)))
		want[o][a] = true
	}
	require.NotEmpty(t, want["a"])
	require.NotEmpty(t, want["b"])
	require.Eventually(t, func() bool {
		sa, _, _ := ca.instances(0)
		sb, _, _ := cb.instances(0)
		return len(sa) == len(want["a"]) && len(sb) == len(want["b"])
	}, 10*time.Second, 20*time.Millisecond)
	sa, _, _ := ca.instances(0)
	sb, _, _ := cb.instances(0)
	require.Equal(t, want["a"], sa)
	require.Equal(t, want["b"], sb)

	// The Target Allocator view agrees, from either member.
	for _, ti := range ra.Targets("sharded") {
		require.True(t, want[ti.Owner][ti.Address], "%s owned by %s", ti.Address, ti.Owner)
	}

	// b leaves the membership (as seen by both): a takes every target, and
	// b writes no staleness markers for the targets that only moved.
	_, _, markB := cb.instances(0)
	_, _, markA := ca.instances(0)
	m.set("a")
	require.Eventually(t, func() bool {
		s, _, _ := ca.instances(markA)
		return len(s) == n
	}, 10*time.Second, 20*time.Millisecond)
	// End-of-run staleness would come 1-2 intervals after a loop stops, and
	// reach the sink up to commitLinger later.
	time.Sleep(3*200*time.Millisecond + commitLinger)
	_, staleB, _ := cb.instances(markB)
	require.Zero(t, staleB, "staleness markers for targets that only moved")
	require.Equal(t, float64(len(want["b"])), gatherValue(t, regB, "obs_scrape_target_handoffs_total", map[string]string{"direction": "out"}))
	require.Equal(t, 0.0, gatherValue(t, regB, "obs_scrape_targets_owned", nil))
}

func gatherValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// mustTargetLabels waits until the receiver discovered addr and returns
// its labels after relabelling.
func mustTargetLabels(t *testing.T, r *PrometheusReceiver, addr string) (ls labels.Labels) {
	t.Helper()
	require.Eventually(t, func() bool {
		r.shard.mu.Lock()
		defer r.shard.mu.Unlock()
		for _, st := range r.shard.targets["sharded"] {
			if st.lset.Get(model.AddressLabel) == addr {
				ls = st.lset
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	return ls
}

func TestSharderUnit(t *testing.T) {
	pc, err := PrometheusConfig{Config: promNode(t, staticJob("j", "1s", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"))}.load(nil)
	require.NoError(t, err)
	scs, err := pc.GetScrapeConfigs()
	require.NoError(t, err)
	scfgs := map[string]*promconfig.ScrapeConfig{"j": scs[0]}
	m, err := newMetrics(prometheus.NewRegistry(), "prometheus")
	require.NoError(t, err)
	mem := &members{}
	mem.set("a", "b")
	sh := newSharder(ShardCluster, Sharding{Owner: mem.owner, Self: "a", HandoffDelay: time.Second}, scfgs, m, nil)
	now := time.Unix(1000, 0)
	sh.now = func() time.Time { return now }

	out, _ := sh.update()
	require.Nil(t, out, "nothing before the first discovery result")

	groups := map[string][]*targetgroup.Group{"j": {{Source: "0", Targets: []model.LabelSet{
		{model.AddressLabel: "10.0.0.1:80"}, {model.AddressLabel: "10.0.0.2:80"}, {model.AddressLabel: "10.0.0.3:80"},
	}}}}
	sh.setDiscovered(groups)
	keys := map[string]string{}
	for _, st := range sh.targets["j"] {
		o, _ := mem.owner(st.key)
		keys[st.lset.Get(model.AddressLabel)] = o
	}

	// Newly owned targets wait for the hand-off delay.
	out, wait := sh.update()
	require.Contains(t, out, "j")
	require.Empty(t, out["j"], "job key present, no targets yet")
	mine := 0
	for _, o := range keys {
		if o == "a" {
			mine++
		}
	}
	if mine > 0 {
		require.Equal(t, time.Second, wait)
	}
	now = now.Add(time.Second)
	out, wait = sh.update()
	require.Zero(t, wait)
	require.Equal(t, mine, countTargets(out["j"]))

	// a is now alone: every target is a's after the delay; b's former
	// targets count as handed off in.
	mem.set("a")
	out, wait = sh.update()
	require.Equal(t, mine, countTargets(out["j"]), "taken-over targets wait")
	if mine < 3 {
		require.Equal(t, time.Second, wait)
	}
	now = now.Add(time.Second)
	out, _ = sh.update()
	require.Equal(t, 3, countTargets(out["j"]))
	require.Equal(t, float64(3-mine), gatherMetric(m.handoffs.WithLabelValues("j", "in")))

	// b is back and a lost some: a scrapes them until the hand-off delay
	// has passed (b starts then), and they are "handed off".
	mem.set("a", "b")
	out, wait = sh.update()
	require.Equal(t, 3, countTargets(out["j"]), "kept until the hand-off point")
	if mine < 3 {
		require.Equal(t, time.Second, wait)
	}
	now = now.Add(time.Second)
	out, _ = sh.update()
	require.Equal(t, mine, countTargets(out["j"]))
	for addr, o := range keys {
		for _, st := range sh.targets["j"] {
			if st.lset.Get(model.AddressLabel) == addr {
				require.Equal(t, o == "b", sh.handedOff(st.key), addr)
			}
		}
	}

	// A target gone from discovery is not handed off: its markers are due.
	sh.setDiscovered(map[string][]*targetgroup.Group{"j": {}})
	out, _ = sh.update()
	require.Contains(t, out, "j")
	require.Zero(t, countTargets(out["j"]))
	require.Empty(t, sh.moved, "a vanished target is not handed off: its staleness markers are due")
}

func countTargets(gs []*targetgroup.Group) int {
	n := 0
	for _, g := range gs {
		n += len(g.Targets)
	}
	return n
}

func gatherMetric(c prometheus.Counter) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	_ = (<-ch).Write(&m)
	return m.GetCounter().GetValue()
}

func TestNodeModeLocality(t *testing.T) {
	pc, err := PrometheusConfig{Config: promNode(t, staticJob("n", "1s", "127.0.0.1:9100"))}.load(nil)
	require.NoError(t, err)
	scs, _ := pc.GetScrapeConfigs()
	m, _ := newMetrics(prometheus.NewRegistry(), "prometheus")
	sh := newSharder(ShardNode, Sharding{NodeName: "node-1", Self: "agent-1"}, map[string]*promconfig.ScrapeConfig{"n": scs[0]}, m, nil)
	sh.localIPs, sh.hostname = map[string]bool{"10.1.1.1": true}, "host-x"
	tests := []struct {
		target model.LabelSet
		local  bool
	}{
		{model.LabelSet{model.AddressLabel: "127.0.0.1:9100"}, true},
		{model.LabelSet{model.AddressLabel: "[::1]:9100"}, true},
		{model.LabelSet{model.AddressLabel: "10.1.1.1:9100"}, true},
		{model.LabelSet{model.AddressLabel: "host-x:9100"}, true},
		{model.LabelSet{model.AddressLabel: "10.9.9.9:9100"}, false},
		{model.LabelSet{model.AddressLabel: "10.9.9.9:9100", "__meta_kubernetes_pod_node_name": "node-1"}, true},
		{model.LabelSet{model.AddressLabel: "127.0.0.1:9100", "__meta_kubernetes_pod_node_name": "node-2"}, false},
		{model.LabelSet{model.AddressLabel: "10.9.9.9:10250", "__meta_kubernetes_node_name": "node-1"}, true},
	}
	for _, tc := range tests {
		t.Run(string(tc.target[model.AddressLabel])+"/"+fmt.Sprint(tc.local), func(t *testing.T) {
			sh.setDiscovered(map[string][]*targetgroup.Group{"n": {{Source: "0", Targets: []model.LabelSet{tc.target}}}})
			out, _ := sh.update()
			require.Equal(t, tc.local, countTargets(out["n"]) == 1)
		})
	}
}

func TestOffsetSeedField(t *testing.T) {
	// Two receivers with the same seed get the same Prometheus offset
	// seed, whatever the host; another seed gives another one.
	cfg := staticJob("j", "1s", "127.0.0.1:1")
	seedOf := func(seed string) uint64 {
		r, err := NewPrometheusReceiver("p", PrometheusConfig{Config: promNode(t, cfg)}, (&collector{}).consume,
			Sharding{Seed: seed}, nil, prometheus.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, r.scrapeM.ApplyConfig(r.cfg))
		t.Cleanup(r.discCancel)
		return reflect.ValueOf(r.scrapeM).Elem().FieldByName("offsetSeed").Uint()
	}
	pc, err := PrometheusConfig{Config: promNode(t, cfg)}.load(nil)
	require.NoError(t, err)
	a, b, c := seedOf("cluster-1"), seedOf("cluster-1"), seedOf("cluster-2")
	require.Equal(t, a, b)
	require.Equal(t, offsetSeed("cluster-1", pc), a)
	require.NotEqual(t, a, c)
}

func TestSameSeedSamePhase(t *testing.T) {
	// Two receivers scrape one target with the same seed: their scrapes
	// fall at the same phase of the interval, so a hand-off neither
	// doubles nor skips a slot.
	var mu sync.Mutex
	arrivals := map[string][]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals[r.RemoteAddr] = append(arrivals[r.RemoteAddr], time.Now())
		mu.Unlock()
		_, _ = w.Write([]byte("x 1\n"))
	}))
	t.Cleanup(srv.Close)
	cfg := staticJob("phase", "500ms", hostOf(srv))
	runReceiver(t, cfg, Sharding{Seed: "same"}, &collector{})
	runReceiver(t, cfg, Sharding{Seed: "same"}, &collector{})
	var phases [][]time.Duration
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		phases = phases[:0]
		for _, ts := range arrivals {
			if len(ts) < 3 {
				return false
			}
			var ps []time.Duration
			for _, a := range ts[1:] {
				ps = append(ps, time.Duration(a.UnixNano()%int64(500*time.Millisecond)))
			}
			phases = append(phases, ps)
		}
		return len(phases) == 2
	}, 10*time.Second, 20*time.Millisecond)
	d := phases[0][0] - phases[1][0]
	d = min(absDur(d), 500*time.Millisecond-absDur(d))
	require.Less(t, d, 60*time.Millisecond, "phases %v", phases)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func TestDiscoveryDropsRemovedJobsTargets(t *testing.T) {
	// The sharder always sends every job key, so a job whose targets all
	// vanished is emptied in the scrape manager.
	pc, err := PrometheusConfig{Config: promNode(t, staticJob("a", "1s", "127.0.0.1:1")+
		"- job_name: b\n  static_configs: [{targets: ['127.0.0.1:2']}]\n")}.load(nil)
	require.NoError(t, err)
	scs, _ := pc.GetScrapeConfigs()
	m, _ := newMetrics(prometheus.NewRegistry(), "prometheus")
	sh := newSharder(ShardNone, Sharding{}, map[string]*promconfig.ScrapeConfig{"a": scs[0], "b": scs[1]}, m, nil)
	sh.setDiscovered(map[string][]*targetgroup.Group{"a": {{Source: "0", Targets: []model.LabelSet{{model.AddressLabel: "127.0.0.1:1"}}}}})
	out, _ := sh.update()
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	require.Equal(t, []string{"a", "b"}, keys)
	require.Equal(t, 1, countTargets(out["a"]))
	require.Zero(t, countTargets(out["b"]))
}

func TestHandoffPhaseMatchesScrapes(t *testing.T) {
	// The sharder's idea of a target's phase is where Prometheus really
	// scrapes it: hand-off points half-way between scrapes depend on it.
	const iv = 500 * time.Millisecond
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		_, _ = w.Write([]byte("x 1\n"))
	}))
	t.Cleanup(srv.Close)
	r, _ := runReceiver(t, staticJob("phase", iv.String(), hostOf(srv)), Sharding{Seed: "cluster-x"}, &collector{})
	require.True(t, r.shard.aligned)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrivals) >= 4
	}, 10*time.Second, 20*time.Millisecond)
	r.shard.mu.Lock()
	st := r.shard.targets["phase"][0]
	r.shard.mu.Unlock()
	want := r.shard.phase(st)
	mu.Lock()
	defer mu.Unlock()
	for _, a := range arrivals[1:] {
		d := absDur(time.Duration(a.UnixNano()%int64(iv)) - want)
		d = min(d, iv-d)
		require.Less(t, d, 50*time.Millisecond, "scrape at phase %s, computed %s", time.Duration(a.UnixNano()%int64(iv)), want)
	}
	// The hand-off point lies half-way between two scrapes, at or after
	// the delay.
	now := time.Now()
	at := r.shard.handoffAt(st, now, time.Time{})
	require.False(t, at.Before(now.Add(r.shard.delay)))
	require.Less(t, at.Sub(now.Add(r.shard.delay)), iv)
	require.Equal(t, int64((want+iv/2)%iv), at.UnixNano()%int64(iv))
}

func TestSharderHandoffTiming(t *testing.T) {
	// Two members see a join at different moments; both move each target
	// at the same instant, half-way between two scrapes, counted from the
	// joiner's start. A target of a member that died is taken at once.
	pc, err := PrometheusConfig{Config: promNode(t, staticJob("j", "2s", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80", "10.0.0.6:80"))}.load(nil)
	require.NoError(t, err)
	scs, err := pc.GetScrapeConfigs()
	require.NoError(t, err)
	scfgs := map[string]*promconfig.ScrapeConfig{"j": scs[0]}
	groups := map[string][]*targetgroup.Group{"j": {{Source: "0", Targets: []model.LabelSet{
		{model.AddressLabel: "10.0.0.1:80"}, {model.AddressLabel: "10.0.0.2:80"}, {model.AddressLabel: "10.0.0.3:80"},
		{model.AddressLabel: "10.0.0.4:80"}, {model.AddressLabel: "10.0.0.5:80"}, {model.AddressLabel: "10.0.0.6:80"},
	}}}}
	mem := &members{}
	mem.set("a")
	var starts sync.Map // name → start
	start := time.Unix(1000, 0)
	starts.Store("a", start)
	list := func() []Member {
		var out []Member
		for _, m := range mem.list() {
			st, _ := starts.Load(m.Name)
			out = append(out, Member{Name: m.Name, Start: st.(time.Time)})
		}
		return out
	}
	newAt := func(self string, now *time.Time) *sharder {
		m, err := newMetrics(prometheus.NewRegistry(), "prometheus")
		require.NoError(t, err)
		sh := newSharder(ShardCluster, Sharding{Owner: mem.owner, Members: list, Self: self, HandoffDelay: 2 * time.Second}, scfgs, m, nil)
		sh.aligned, sh.phaseSeed = true, offsetSeed("c", pc)
		sh.now = func() time.Time { return *now }
		sh.setDiscovered(groups)
		return sh
	}
	nowA := start.Add(5 * time.Second)
	a := newAt("a", &nowA)
	out, wait := a.update()
	require.Zero(t, countTargets(out["j"]), "a's first targets wait for the hand-off point")
	nowA = nowA.Add(wait)
	for range 6 {
		out, wait = a.update()
		if wait == 0 {
			break
		}
		nowA = nowA.Add(wait)
	}
	require.Equal(t, 6, countTargets(out["j"]))

	// b starts; a learns of it 300 ms later, b itself 800 ms later.
	bStart := nowA.Add(10 * time.Second)
	starts.Store("b", bStart)
	mem.set("a", "b")
	nowA = bStart.Add(300 * time.Millisecond)
	nowB := bStart.Add(800 * time.Millisecond)
	b := newAt("b", &nowB)
	released := map[string]time.Time{}
	started := map[string]time.Time{}
	for range 20 {
		_, wa := a.update()
		_, wb := b.update()
		a.mu.Lock()
		for k := range a.owners {
			if o := a.owners[k]; o == "b" && !a.active[k] {
				if _, ok := released[k]; !ok {
					released[k] = nowA
				}
			}
		}
		a.mu.Unlock()
		b.mu.Lock()
		for k := range b.active {
			if _, ok := started[k]; !ok {
				started[k] = nowB
			}
		}
		b.mu.Unlock()
		if wa == 0 && wb == 0 {
			break
		}
		if wa > 0 {
			nowA = nowA.Add(wa)
		}
		if wb > 0 {
			nowB = nowB.Add(wb)
		}
	}
	require.NotEmpty(t, started, "b owns some of the six targets")
	require.Equal(t, started, released, "a stops each target at the instant b starts it")
	for k, at := range started {
		require.False(t, at.Before(bStart.Add(2*time.Second)), k)
		require.Less(t, at.Sub(bStart.Add(2*time.Second)), 2*time.Second, k)
	}

	// A target discovered after the join settled starts at once on its
	// owner: no other member scrapes it.
	more := map[string][]*targetgroup.Group{"j": {{Source: "0", Targets: append(slices.Clone(groups["j"][0].Targets),
		model.LabelSet{model.AddressLabel: "10.0.0.7:80"}, model.LabelSet{model.AddressLabel: "10.0.0.8:80"},
		model.LabelSet{model.AddressLabel: "10.0.0.9:80"}, model.LabelSet{model.AddressLabel: "10.0.0.10:80"})}}}
	a.setDiscovered(more)
	b.setDiscovered(more)
	outA, wa := a.update()
	outB, wb := b.update()
	require.Zero(t, wa)
	require.Zero(t, wb)
	require.Equal(t, 10, countTargets(outA["j"])+countTargets(outB["j"]))

	// b dies: a takes its targets at once, no hand-off point to wait for.
	mem.set("a")
	out, wait = a.update()
	require.Equal(t, 10, countTargets(out["j"]))
	require.Zero(t, wait)
}
