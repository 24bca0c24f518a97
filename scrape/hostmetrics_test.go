package scrape

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/config"
)

// seedEnvHM is what the seed's OpenTelemetryCollector resources set.
var seedEnvHM = map[string]string{
	"K8S_POD_IP":               "10.0.1.5",
	"K8S_NODE_NAME":            "node-a",
	"K8S_NODE_IP":              "127.0.0.1",
	"OTEL_RESOURCE_ATTRIBUTES": "host.name=node-a,host.ip=127.0.0.1",
	"METRICS_SCRAPE_INTERVAL":  "1m",
}

// seedReceiver decodes the seed agent's receiver block called id.
func seedReceiver(t testing.TB, id string, out any) {
	t.Helper()
	f, err := config.Load("../config/testdata/seed-agent.yaml", config.Options{LookupEnv: func(k string) (string, bool) {
		v, ok := seedEnvHM[k]
		return v, ok
	}})
	require.NoError(t, err)
	c, ok := f.Receivers[config.ID{Type: id}]
	require.True(t, ok, "seed has no %s receiver", id)
	require.NoError(t, config.Decode(c, out))
}

// seedHostConfig is the seed's hostmetrics block with root_path pointed
// at root (the seed's /hostfs does not exist on this machine).
func seedHostConfig(t testing.TB, root string) HostMetricsConfig {
	cfg := DefaultHostMetricsConfig()
	seedReceiver(t, "hostmetrics", &cfg)
	require.Equal(t, "/hostfs", cfg.RootPath)
	require.Equal(t, time.Minute, cfg.CollectionInterval)
	cfg.RootPath = root
	return cfg
}

type hmPoint struct {
	res   pcommon.Map
	attrs pcommon.Map
	v     float64
}

// points indexes every data point of md by metric name.
func hmPoints(md pmetric.Metrics) map[string][]hmPoint {
	out := map[string][]hmPoint{}
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		for j := 0; j < rm.ScopeMetrics().Len(); j++ {
			ms := rm.ScopeMetrics().At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				var dps pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				}
				for l := 0; l < dps.Len(); l++ {
					p := dps.At(l)
					v := p.DoubleValue()
					if p.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(p.IntValue())
					}
					out[m.Name()] = append(out[m.Name()], hmPoint{res: rm.Resource().Attributes(), attrs: p.Attributes(), v: v})
				}
			}
		}
	}
	return out
}

func hmAttr(m pcommon.Map, k string) string {
	v, _ := m.Get(k)
	return v.AsString()
}

// enabledNames lists every metric the config turns on.
func enabledNames(cfg HostMetricsConfig) []string {
	var out []string
	add := func(on bool, sw map[string]MetricSwitch, defs map[string]hmMetricDef) {
		if !on {
			return
		}
		for n, e := range hmEnabled(sw, defs) {
			if e {
				out = append(out, n)
			}
		}
	}
	s := cfg.Scrapers
	add(s.CPU != nil, sw(s.CPU), cpuDefs)
	add(s.Load != nil, sw(s.Load), loadDefs)
	add(s.Memory != nil, sw(s.Memory), memoryDefs)
	add(s.Paging != nil, sw(s.Paging), pagingDefs)
	add(s.Processes != nil, sw(s.Processes), processesDefs)
	if s.Filesystem != nil {
		add(true, s.Filesystem.Metrics, filesystemDefs)
	}
	if s.Disk != nil {
		add(true, s.Disk.Metrics, diskDefs)
	}
	if s.Network != nil {
		add(true, s.Network.Metrics, networkDefs)
	}
	if s.Process != nil {
		add(true, s.Process.Metrics, processDefs)
	}
	return out
}

func newTestHostCollector(t *testing.T, cfg HostMetricsConfig) *hostCollector {
	t.Helper()
	require.NoError(t, cfg.Validate())
	h, err := newHostCollector(&cfg, nil)
	require.NoError(t, err)
	return h
}

func hmHasSwap(t *testing.T, root string) bool {
	b, err := os.ReadFile(filepath.Join(root, "proc", "swaps"))
	require.NoError(t, err)
	return len(strings.Split(strings.TrimSpace(string(b)), "\n")) > 1
}

func TestHostMetricsSeedOnThisMachine(t *testing.T) {
	cfg := seedHostConfig(t, "/")
	h := newTestHostCollector(t, cfg)
	first, errs := h.collect(time.Now())
	require.Empty(t, errs)
	p1 := hmPoints(first)
	for _, n := range []string{"system.cpu.utilization", "system.filesystem.utilization", "process.cpu.utilization"} {
		if n == "system.filesystem.utilization" {
			continue // not a delta
		}
		require.Empty(t, p1[n], "%s on the first collection", n)
	}
	time.Sleep(200 * time.Millisecond)
	md, errs := h.collect(time.Now())
	require.Empty(t, errs)
	got := hmPoints(md)
	swap := hmHasSwap(t, "/")
	for _, n := range enabledNames(cfg) {
		if n == "system.paging.usage" && !swap {
			continue // no swap device on this machine: the kernel lists none
		}
		require.NotEmpty(t, got[n], "enabled metric %s missing", n)
	}
	for _, n := range []string{"system.cpu.time", "system.paging.faults", "system.disk.merged", "system.network.connections", "process.cpu.time"} {
		require.Empty(t, got[n], "%s is switched off by the seed", n)
	}

	t.Run("memory usage sums to MemTotal", func(t *testing.T) {
		total := meminfoKB(t, "/proc/meminfo", "MemTotal") * 1024
		var sum float64
		for _, p := range got["system.memory.usage"] {
			sum += p.v
		}
		require.InDelta(t, total, sum, 0.10*total)
		var util float64
		for _, p := range got["system.memory.utilization"] {
			util += p.v
		}
		require.InDelta(t, 1.0, util, 0.10)
	})

	t.Run("filesystem usage matches statfs", func(t *testing.T) {
		var st unix.Statfs_t
		require.NoError(t, unix.Statfs("/", &st))
		by := map[string]float64{}
		for _, p := range got["system.filesystem.usage"] {
			if hmAttr(p.attrs, "mountpoint") == "/" {
				by[hmAttr(p.attrs, "state")] = p.v
			}
		}
		require.Len(t, by, 3, "no / mount in %v", got["system.filesystem.usage"])
		bs := float64(st.Bsize)
		require.Equal(t, float64(st.Blocks)*bs, by["used"]+by["free"]+by["reserved"])
		require.InDelta(t, float64(st.Bavail)*bs, by["free"], 0.02*float64(st.Blocks)*bs)
		require.InDelta(t, float64(st.Bfree-st.Bavail)*bs, by["reserved"], 0.02*float64(st.Blocks)*bs)
	})

	t.Run("cpu utilization from deltas", func(t *testing.T) {
		perCPU := map[string]float64{}
		for _, p := range got["system.cpu.utilization"] {
			require.GreaterOrEqual(t, p.v, 0.0)
			require.LessOrEqual(t, p.v, 1.0)
			perCPU[hmAttr(p.attrs, "cpu")] += p.v
		}
		require.NotEmpty(t, perCPU)
		for cpu, sum := range perCPU {
			require.InDelta(t, 1.0, sum, 1e-9, cpu)
		}
	})

	t.Run("process metrics for this process", func(t *testing.T) {
		pid := int64(os.Getpid())
		var rss, util float64
		var found bool
		for _, p := range got["process.memory.usage"] {
			v, _ := p.res.Get("process.pid")
			if v.Int() == pid {
				found = true
				rss = p.v
				exe, _ := os.Executable()
				require.Equal(t, filepath.Base(exe), hmAttr(p.res, "process.executable.name"))
				require.Equal(t, int64(os.Getppid()), func() int64 { v, _ := p.res.Get("process.parent_pid"); return v.Int() }())
			}
		}
		require.True(t, found, "no process.memory.usage for pid %d", pid)
		status := meminfoKB(t, "/proc/self/status", "VmRSS") * 1024
		require.InDelta(t, status, rss, 0.5*status)
		for _, p := range got["process.cpu.utilization"] {
			v, _ := p.res.Get("process.pid")
			if v.Int() == pid {
				util += p.v
			}
		}
		require.GreaterOrEqual(t, util, 0.0)
		require.LessOrEqual(t, util, 1.0)
	})
}

// meminfoKB reads "Key:  N kB" from a /proc file.
func meminfoKB(t *testing.T, path, key string) float64 {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("%s: no %s", path, key)
	return 0
}

func allScrapers() HostScrapersConfig {
	return HostScrapersConfig{
		CPU:        &HostScraperConfig[cpuMetricSet]{Metrics: map[string]MetricSwitch{"system.cpu.utilization": {true}, "system.cpu.logical.count": {true}}},
		Load:       &HostScraperConfig[loadMetricSet]{},
		Memory:     &HostScraperConfig[memoryMetricSet]{Metrics: map[string]MetricSwitch{"system.memory.utilization": {true}}},
		Paging:     &HostScraperConfig[pagingMetricSet]{Metrics: map[string]MetricSwitch{"system.paging.utilization": {true}}},
		Filesystem: &FilesystemConfig{},
		Disk:       &HostDeviceConfig[diskMetricSet]{},
		Network:    &HostDeviceConfig[networkMetricSet]{},
		Processes:  &HostScraperConfig[processesMetricSet]{},
		Process:    &HostProcessConfig{MuteProcessAllErrors: true},
	}
}

func TestHostMetricsFixtureRoot(t *testing.T) {
	root, err := filepath.Abs("testdata/hostfs")
	require.NoError(t, err)
	cfg := DefaultHostMetricsConfig()
	cfg.RootPath = root
	cfg.Scrapers = allScrapers()
	cfg.Scrapers.Disk.Exclude = &MatchConfig{MatchType: "regexp", Devices: []string{"^loop"}}
	cfg.Scrapers.Network.Include = &MatchConfig{MatchType: "strict", Interfaces: []string{"eth0"}}
	h := newTestHostCollector(t, cfg)
	md, errs := h.collect(time.Now())
	require.Empty(t, errs)
	got := hmPoints(md)
	one := func(name string, kv ...string) float64 {
		t.Helper()
		var hits []float64
		for _, p := range got[name] {
			ok := true
			for i := 0; i+1 < len(kv); i += 2 {
				ok = ok && hmAttr(p.attrs, kv[i]) == kv[i+1]
			}
			if ok {
				hits = append(hits, p.v)
			}
		}
		require.Len(t, hits, 1, "%s %v in %v", name, kv, got[name])
		return hits[0]
	}
	tests := []struct {
		name string
		kv   []string
		want float64
	}{
		{"system.cpu.time", []string{"cpu", "cpu0", "state", "user"}, 6}, // 600 ticks of 1/100 s
		{"system.cpu.time", []string{"cpu", "cpu1", "state", "wait"}, 0.2},
		{"system.cpu.logical.count", nil, 2},
		{"system.cpu.load_average.1m", nil, 0.5},
		{"system.cpu.load_average.15m", nil, 0.1},
		{"system.memory.usage", []string{"state", "free"}, 2000000 * 1024},
		{"system.memory.usage", []string{"state", "used"}, (8000000 - 2000000 - 100000 - 2500000 - 300000 - 100000) * 1024},
		{"system.memory.usage", []string{"state", "slab_reclaimable"}, 300000 * 1024},
		{"system.memory.utilization", []string{"state", "free"}, 0.25},
		{"system.paging.usage", []string{"device", "/dev/sda2", "state", "used"}, 524286 * 1024},
		{"system.paging.utilization", []string{"device", "/dev/sda2", "state", "free"}, (1048572.0 - 524286) / 1048572},
		{"system.paging.operations", []string{"direction", "page_in", "type", "major"}, 30},
		{"system.paging.faults", []string{"type", "minor"}, 500000 - 1200},
		{"system.disk.io", []string{"device", "sda", "direction", "read"}, 80000 * 512},
		{"system.disk.operation_time", []string{"device", "sda", "direction", "write"}, 0.6},
		{"system.disk.pending_operations", []string{"device", "sda"}, 1},
		{"system.network.io", []string{"device", "eth0", "direction", "receive"}, 9876543},
		{"system.network.dropped", []string{"device", "eth0", "direction", "transmit"}, 5},
		{"system.network.connections", []string{"protocol", "tcp", "state", "LISTEN"}, 1},
		{"system.network.connections", []string{"protocol", "tcp", "state", "ESTABLISHED"}, 1},
		{"system.processes.count", []string{"status", "running"}, 3},
		{"system.processes.created", nil, 4321},
	}
	for _, tt := range tests {
		t.Run(tt.name+strings.Join(tt.kv, ","), func(t *testing.T) {
			require.InDelta(t, tt.want, one(tt.name, tt.kv...), 1e-9)
		})
	}
	for _, p := range got["system.disk.io"] {
		require.NotEqual(t, "loop0", hmAttr(p.attrs, "device"), "excluded device")
	}
	for _, p := range got["system.network.io"] {
		require.Equal(t, "eth0", hmAttr(p.attrs, "device"), "only the included interface")
	}
	mounts := map[string]bool{}
	for _, p := range got["system.filesystem.usage"] {
		mounts[hmAttr(p.attrs, "mountpoint")] = true
		require.Equal(t, "ext4", hmAttr(p.attrs, "type"))
	}
	require.Equal(t, map[string]bool{"/": true, "/data": true}, mounts, "proc is virtual and skipped")

	t.Run("exclude_mount_points and include_fs_types", func(t *testing.T) {
		cfg := cfg
		cfg.Scrapers.Filesystem = &FilesystemConfig{
			IncludeFSTypes:     &MatchConfig{MatchType: "strict", FSTypes: []string{"ext4"}},
			ExcludeMountPoints: &MatchConfig{MatchType: "regexp", MountPoints: []string{"^/data"}},
		}
		md, errs := newTestHostCollector(t, cfg).collect(time.Now())
		require.Empty(t, errs)
		for _, p := range hmPoints(md)["system.filesystem.usage"] {
			require.Equal(t, "/", hmAttr(p.attrs, "mountpoint"))
		}
	})
}

func TestHostMetricsConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *HostMetricsConfig)
		want string
	}{
		{"unknown metric", func(c *HostMetricsConfig) {
			c.Scrapers.CPU.Metrics = map[string]MetricSwitch{"system.cpu.nope": {true}}
		}, "scrapers.cpu.metrics.system.cpu.nope: unknown metric name"},
		{"metric of another scraper", func(c *HostMetricsConfig) {
			c.Scrapers.Memory.Metrics = map[string]MetricSwitch{"system.cpu.time": {false}}
		}, "scrapers.memory.metrics.system.cpu.time"},
		{"no scrapers", func(c *HostMetricsConfig) { c.Scrapers = HostScrapersConfig{} }, "scrapers: must specify"},
		{"interval", func(c *HostMetricsConfig) { c.CollectionInterval = 0 }, "collection_interval"},
		{"relative root", func(c *HostMetricsConfig) { c.RootPath = "hostfs" }, "root_path"},
		{"bad match type", func(c *HostMetricsConfig) {
			c.Scrapers.Disk.Include = &MatchConfig{MatchType: "glob", Devices: []string{"sd*"}}
		}, "scrapers.disk.include.match_type"},
		{"bad regexp", func(c *HostMetricsConfig) {
			c.Scrapers.Process.Exclude = &MatchConfig{MatchType: "regexp", Names: []string{"("}}
		}, "scrapers.process.exclude"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultHostMetricsConfig()
			cfg.Scrapers = allScrapers()
			tt.mod(&cfg)
			err := cfg.Validate()
			require.ErrorContains(t, err, tt.want)
		})
	}

	t.Run("unknown metric in YAML names the key", func(t *testing.T) {
		f, err := config.Parse("bad.yaml", []byte(`receivers:
  hostmetrics:
    scrapers:
      memory:
        metrics:
          system.memory.usages:
            enabled: true
exporters:
  debug:
service:
  pipelines:
    metrics:
      receivers: [hostmetrics]
      exporters: [debug]
`), config.Options{})
		require.NoError(t, err)
		cfg := DefaultHostMetricsConfig()
		err = config.Decode(f.Receivers[config.ID{Type: "hostmetrics"}], &cfg)
		require.ErrorContains(t, err, "line 6: system.memory.usages: unknown metric name")
		require.ErrorContains(t, err, "receivers.hostmetrics.scrapers.memory.metrics")
		t.Log(err)
	})

	t.Run("metric switch shape", func(t *testing.T) {
		for _, tt := range []struct{ yaml, want string }{
			{"system.cpu.time: {enable: true}", "line 1: system.cpu.time.enable: unknown key"},
			{"system.cpu.time: {enabled: maybe}", "system.cpu.time.enabled: want true or false"},
			{"system.cpu.time: true", "want a mapping with enabled"},
			{"system.memory.usage: {enabled: true}", "unknown metric name"},
		} {
			var m MetricSwitches[cpuMetricSet]
			require.ErrorContains(t, yaml.Unmarshal([]byte(tt.yaml), &m), tt.want, tt.yaml)
		}
		var m MetricSwitches[cpuMetricSet]
		require.NoError(t, yaml.Unmarshal([]byte("system.cpu.time: {enabled: false}\nsystem.cpu.utilization:\n"), &m))
		require.Equal(t, MetricSwitches[cpuMetricSet]{"system.cpu.time": {false}, "system.cpu.utilization": {false}}, m)
	})

	t.Run("missing root_path is an error at start", func(t *testing.T) {
		cfg := DefaultHostMetricsConfig()
		cfg.Scrapers = allScrapers()
		cfg.RootPath = filepath.Join(t.TempDir(), "hostfs")
		_, err := NewHostMetricsReceiver("hostmetrics", cfg, func(context.Context, actors.Batch, []actors.KV) error { return nil }, nil, nil)
		require.ErrorContains(t, err, "root_path")
		require.ErrorContains(t, err, cfg.RootPath)
	})
}

func TestHostMetricsReceiverRun(t *testing.T) {
	root, err := filepath.Abs("testdata/hostfs")
	require.NoError(t, err)
	cfg := DefaultHostMetricsConfig()
	cfg.RootPath = root
	cfg.CollectionInterval = 20 * time.Millisecond
	cfg.Scrapers = HostScrapersConfig{CPU: &HostScraperConfig[cpuMetricSet]{}, Load: &HostScraperConfig[loadMetricSet]{}}
	var mu sync.Mutex
	var batches []actors.Batch
	calls := 0
	consume := func(_ context.Context, b actors.Batch, extra []actors.KV) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 2 {
			return actors.ErrRefused
		}
		batches = append(batches, b)
		return nil
	}
	reg := prometheus.NewRegistry()
	r, err := NewHostMetricsReceiver("hostmetrics", cfg, consume, nil, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(batches) >= 3
	}, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	b := batches[0]
	mu.Unlock()
	require.Equal(t, actors.SignalMetrics, b.Signal)
	require.NotEmpty(t, hmPoints(b.Metrics)["system.cpu.load_average.5m"])
	mfs, err := reg.Gather()
	require.NoError(t, err)
	vals := map[string]float64{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetCounter() != nil {
			vals[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	perBatch := float64(b.Metrics.DataPointCount())
	require.Equal(t, perBatch, vals["otelcol_receiver_refused_metric_points"])
	require.GreaterOrEqual(t, vals["otelcol_receiver_accepted_metric_points"], 3*perBatch)
}

func FuzzParseKV(f *testing.F) {
	f.Add([]byte("pgpgin 1000\npgpgout 2000\n"))
	f.Add([]byte("pgfault -1\nbad\n x y z\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseKV(strings.NewReader(string(b)))
		if err == nil {
			for k := range m {
				require.NotContains(t, k, "\n")
			}
		}
	})
}

// BenchmarkHostMetricsCollect is one collection of every scraper (every
// metric on) on this machine's /proc and /sys.
func BenchmarkHostMetricsCollect(b *testing.B) {
	cfg := DefaultHostMetricsConfig()
	cfg.Scrapers = allScrapers()
	all := func(defs map[string]hmMetricDef) map[string]MetricSwitch {
		out := map[string]MetricSwitch{}
		for n := range defs {
			out[n] = MetricSwitch{true}
		}
		return out
	}
	cfg.Scrapers.CPU.Metrics = all(cpuDefs)
	cfg.Scrapers.Process.Metrics = all(processDefs)
	cfg.Scrapers.Filesystem.Metrics = all(filesystemDefs)
	h, err := newHostCollector(&cfg, nil)
	require.NoError(b, err)
	h.collect(time.Now())
	procs, err := h.proc.AllProcs()
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	var points int
	for i := 0; i < b.N; i++ {
		md, _ := h.collect(time.Now())
		points = md.DataPointCount()
	}
	b.ReportMetric(float64(points), "points/op")
	b.ReportMetric(float64(len(procs)), "processes")
}

// copyTree copies the fixture root (symlinks as symlinks) to a temporary
// directory the test may change.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, to)
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
	require.NoError(t, err)
	return dst
}

func TestHostMetricsDeltasOnCopiedRoot(t *testing.T) {
	root := copyTree(t, "testdata/hostfs")
	cfg := DefaultHostMetricsConfig()
	cfg.RootPath = root
	cfg.Scrapers = HostScrapersConfig{
		CPU: &HostScraperConfig[cpuMetricSet]{Metrics: map[string]MetricSwitch{"system.cpu.utilization": {true}}},
		Process: &HostProcessConfig{Metrics: map[string]MetricSwitch{
			"process.cpu.utilization": {true}, "process.threads": {true}, "process.context_switches": {true},
		}},
	}
	h := newTestHostCollector(t, cfg)
	t0 := time.Unix(1764100000, 0)
	md, errs := h.collect(t0)
	require.Empty(t, errs)
	got := hmPoints(md)
	require.Empty(t, got["system.cpu.utilization"], "first collection has no delta")
	require.Empty(t, got["process.cpu.utilization"], "first collection has no delta")

	// the fixture process: resource attributes and counters as the files say
	require.Len(t, got["process.memory.usage"], 1)
	p := got["process.memory.usage"][0]
	require.Equal(t, "nginx", hmAttr(p.res, "process.executable.name"))
	require.Equal(t, "/usr/sbin/nginx", hmAttr(p.res, "process.executable.path"))
	require.Equal(t, "nginx -g daemon off;", hmAttr(p.res, "process.command_line"))
	require.Equal(t, "root", hmAttr(p.res, "process.owner"))
	require.Equal(t, float64(2560*os.Getpagesize()), p.v)
	require.Equal(t, float64(104857600), got["process.memory.virtual"][0].v)
	require.Equal(t, 3.0, got["process.threads"][0].v)
	for _, c := range got["process.cpu.time"] {
		want := map[string]float64{"user": 3, "system": 1, "wait": 0.07}[hmAttr(c.attrs, "state")]
		require.InDelta(t, want, c.v, 1e-9, hmAttr(c.attrs, "state"))
	}
	for _, c := range got["process.disk.io"] {
		want := map[string]float64{"read": 4096, "write": 8192}[hmAttr(c.attrs, "direction")]
		require.Equal(t, want, c.v)
	}

	// ten seconds later: cpu0 spent 150 ticks in user of 1000; nginx 200
	// ticks of user and 50 of system on a 2-CPU host
	stat, err := os.ReadFile(filepath.Join(root, "proc", "stat"))
	require.NoError(t, err)
	next := strings.Replace(string(stat), "cpu0 600 10 200 2500 20 3 4 4 0 0", "cpu0 750 10 300 3250 20 3 4 4 0 0", 1)
	require.NotEqual(t, string(stat), next)
	require.NoError(t, os.WriteFile(filepath.Join(root, "proc", "stat"), []byte(next), 0o644))
	pstat := filepath.Join(root, "proc", "4242", "stat")
	ps, err := os.ReadFile(pstat)
	require.NoError(t, err)
	nextPS := strings.Replace(string(ps), " 12 0 300 100 ", " 12 0 500 150 ", 1)
	require.NotEqual(t, string(ps), nextPS)
	require.NoError(t, os.WriteFile(pstat, []byte(nextPS), 0o644))

	md, errs = h.collect(t0.Add(10 * time.Second))
	require.Empty(t, errs)
	got = hmPoints(md)
	util := map[string]float64{}
	for _, u := range got["system.cpu.utilization"] {
		util[hmAttr(u.attrs, "cpu")+"/"+hmAttr(u.attrs, "state")] = u.v
	}
	require.InDelta(t, 0.15, util["cpu0/user"], 1e-9)
	require.InDelta(t, 0.10, util["cpu0/system"], 1e-9)
	require.InDelta(t, 0.75, util["cpu0/idle"], 1e-9)
	require.NotContains(t, util, "cpu1/user", "cpu1 did not move: no utilization")
	putil := map[string]float64{}
	for _, u := range got["process.cpu.utilization"] {
		putil[hmAttr(u.attrs, "state")] = u.v
	}
	require.InDelta(t, 2.0/(10*2), putil["user"], 1e-9)
	require.InDelta(t, 0.5/(10*2), putil["system"], 1e-9)
}

// BenchmarkHostMetricsCollectSeed is one collection with the seed agent's
// hostmetrics block on this machine.
func BenchmarkHostMetricsCollectSeed(b *testing.B) {
	cfg := seedHostConfig(b, "/")
	h, err := newHostCollector(&cfg, nil)
	require.NoError(b, err)
	h.collect(time.Now())
	b.ReportAllocs()
	b.ResetTimer()
	var points int
	for i := 0; i < b.N; i++ {
		md, _ := h.collect(time.Now())
		points = md.DataPointCount()
	}
	b.ReportMetric(float64(points), "points/op")
}
