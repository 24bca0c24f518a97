package scrape

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"

	"github.com/obs-dev/obs/actors"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Process-wide pools and caches of libraries Prometheus pulls in.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
	)
}

// collector is the consume func of a test: it keeps every batch.
type collector struct {
	mu      sync.Mutex
	batches []pmetric.Metrics
	refuse  bool
}

func (c *collector) consume(_ context.Context, b actors.Batch, _ []actors.KV) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse {
		return &actors.RefusedError{Reason: "test"}
	}
	if err := b.Decode(); err != nil { // the appender sends encoded OTLP
		return err
	}
	c.batches = append(c.batches, b.Metrics)
	return nil
}

// point is one data point seen by the collector, flattened for checks.
type point struct {
	res    pcommon.Map
	metric pmetric.Metric
	attrs  pcommon.Map
	ts     pcommon.Timestamp
	start  pcommon.Timestamp
	flags  pmetric.DataPointFlags
	value  float64
	index  int // of its batch
}

// points returns every data point of the metric with this name.
func (c *collector) points(name string) []point {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []point
	for bi, md := range c.batches {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			rm := rms.At(i)
			sms := rm.ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					if m.Name() != name {
						continue
					}
					add := func(attrs pcommon.Map, ts, st pcommon.Timestamp, fl pmetric.DataPointFlags, v float64) {
						out = append(out, point{res: rm.Resource().Attributes(), metric: m, attrs: attrs, ts: ts, start: st, flags: fl, value: v, index: bi})
					}
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						dps := m.Gauge().DataPoints()
						for d := 0; d < dps.Len(); d++ {
							p := dps.At(d)
							add(p.Attributes(), p.Timestamp(), p.StartTimestamp(), p.Flags(), p.DoubleValue())
						}
					case pmetric.MetricTypeSum:
						dps := m.Sum().DataPoints()
						for d := 0; d < dps.Len(); d++ {
							p := dps.At(d)
							add(p.Attributes(), p.Timestamp(), p.StartTimestamp(), p.Flags(), p.DoubleValue())
						}
					case pmetric.MetricTypeHistogram:
						dps := m.Histogram().DataPoints()
						for d := 0; d < dps.Len(); d++ {
							p := dps.At(d)
							add(p.Attributes(), p.Timestamp(), p.StartTimestamp(), p.Flags(), float64(p.Count()))
						}
					case pmetric.MetricTypeExponentialHistogram:
						dps := m.ExponentialHistogram().DataPoints()
						for d := 0; d < dps.Len(); d++ {
							p := dps.At(d)
							add(p.Attributes(), p.Timestamp(), p.StartTimestamp(), p.Flags(), float64(p.Count()))
						}
					case pmetric.MetricTypeSummary:
						dps := m.Summary().DataPoints()
						for d := 0; d < dps.Len(); d++ {
							p := dps.At(d)
							add(p.Attributes(), p.Timestamp(), p.StartTimestamp(), p.Flags(), float64(p.Count()))
						}
					}
				}
			}
		}
	}
	return out
}

// waitPoints waits (bounded) until the metric has at least n points.
func (c *collector) waitPoints(t *testing.T, name string, n int) []point {
	t.Helper()
	var ps []point
	require.Eventually(t, func() bool {
		ps = c.points(name)
		return len(ps) >= n
	}, 15*time.Second, 20*time.Millisecond, "metric %s: want %d points", name, n)
	return ps
}

func promNode(t testing.TB, text string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(text), &doc))
	return doc.Content[0]
}

// runReceiver starts a receiver and stops it when the test ends.
func runReceiver(t *testing.T, cfgText string, sh Sharding, c *collector) (*PrometheusReceiver, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := NewPrometheusReceiver("prometheus", PrometheusConfig{Config: promNode(t, cfgText)}, c.consume, sh, nil, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("receiver did not stop")
		}
	})
	return r, reg
}

func staticJob(job, interval string, targets ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "scrape_configs:\n- job_name: %s\n  scrape_interval: %s\n  scrape_timeout: %s\n  static_configs:\n  - targets: [", job, interval, interval)
	for i, tg := range targets {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", tg)
	}
	b.WriteString("]\n")
	return b.String()
}

func serve(t *testing.T, contentType, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func hostOf(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

const textFixture = `# HELP temp_celsius Room temperature.
# TYPE temp_celsius gauge
temp_celsius{room="a"} 21.5
# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{code="200"} 1027
http_requests_total{code="500"} 3
# HELP rpc_duration_seconds RPC latency.
# TYPE rpc_duration_seconds histogram
rpc_duration_seconds_bucket{le="0.1"} 2
rpc_duration_seconds_bucket{le="0.5"} 5
rpc_duration_seconds_bucket{le="1"} 7
rpc_duration_seconds_bucket{le="+Inf"} 8
rpc_duration_seconds_sum 3.5
rpc_duration_seconds_count 8
# HELP gc_pause_seconds GC pauses.
# TYPE gc_pause_seconds summary
gc_pause_seconds{quantile="0.5"} 0.01
gc_pause_seconds{quantile="0.99"} 0.2
gc_pause_seconds_sum 1.5
gc_pause_seconds_count 40
untyped_thing 42
`

func TestScrapeTextFixture(t *testing.T) {
	srv := serve(t, "text/plain; version=0.0.4", textFixture)
	c := &collector{}
	runReceiver(t, staticJob("app", "300ms", hostOf(srv)), Sharding{}, c)

	ps := c.waitPoints(t, "http_requests_total", 4) // two scrapes
	first := ps[0]
	require.Equal(t, pmetric.MetricTypeSum, first.metric.Type())
	require.True(t, first.metric.Sum().IsMonotonic())
	require.Equal(t, pmetric.AggregationTemporalityCumulative, first.metric.Sum().AggregationTemporality())
	require.Equal(t, "Requests served.", first.metric.Description())
	// Resource attributes as the Collector sets them.
	host, port := splitHostPortT(t, hostOf(srv))
	require.Equal(t, map[string]any{
		"service.name": "app", "service.instance.id": hostOf(srv),
		"server.address": host, "server.port": int64(port), "url.scheme": "http",
	}, first.res.AsRaw())
	code, _ := first.attrs.Get("code")
	require.Contains(t, []string{"200", "500"}, code.Str())
	require.Equal(t, 1, first.attrs.Len(), "job and instance are resource attributes, not point attributes")
	// Start timestamps: synthesised as the first time obs saw the series.
	byCode := map[string][]point{}
	for _, p := range ps {
		v, _ := p.attrs.Get("code")
		byCode[v.Str()] = append(byCode[v.Str()], p)
	}
	s200 := byCode["200"]
	require.GreaterOrEqual(t, len(s200), 2)
	require.Equal(t, s200[0].ts, s200[0].start)
	require.Equal(t, s200[0].ts, s200[1].start)
	require.Greater(t, s200[1].ts, s200[1].start)
	require.Equal(t, 1027.0, s200[1].value)

	g := c.waitPoints(t, "temp_celsius", 1)[0]
	require.Equal(t, pmetric.MetricTypeGauge, g.metric.Type())
	require.Equal(t, 21.5, g.value)

	h := c.waitPoints(t, "rpc_duration_seconds", 1)[0]
	require.Equal(t, pmetric.MetricTypeHistogram, h.metric.Type())
	hp := h.metric.Histogram().DataPoints().At(0)
	require.Equal(t, []float64{0.1, 0.5, 1}, hp.ExplicitBounds().AsRaw())
	require.Equal(t, []uint64{2, 3, 2, 1}, hp.BucketCounts().AsRaw())
	require.Equal(t, uint64(8), hp.Count())
	require.Equal(t, 3.5, hp.Sum())
	require.NotZero(t, hp.StartTimestamp())
	require.Equal(t, 0, hp.Attributes().Len())

	s := c.waitPoints(t, "gc_pause_seconds", 1)[0]
	require.Equal(t, pmetric.MetricTypeSummary, s.metric.Type())
	sp := s.metric.Summary().DataPoints().At(0)
	require.Equal(t, uint64(40), sp.Count())
	require.Equal(t, 1.5, sp.Sum())
	require.Equal(t, 2, sp.QuantileValues().Len())
	require.Equal(t, 0.99, sp.QuantileValues().At(1).Quantile())
	require.Equal(t, 0.2, sp.QuantileValues().At(1).Value())

	u := c.waitPoints(t, "untyped_thing", 1)[0]
	require.Equal(t, pmetric.MetricTypeGauge, u.metric.Type())

	up := c.waitPoints(t, "up", 1)[0]
	require.Equal(t, pmetric.MetricTypeGauge, up.metric.Type())
	require.Equal(t, 1.0, up.value)
	for _, name := range []string{"scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"} {
		c.waitPoints(t, name, 1)
	}
}

const omFixture = `# TYPE process_cpu_seconds counter
# UNIT process_cpu_seconds seconds
# HELP process_cpu_seconds CPU time.
process_cpu_seconds_total 12.5
process_cpu_seconds_created 1700000000.0
# TYPE queue_length gauge
queue_length{queue="q1"} 4
# TYPE request_size_bytes histogram
# UNIT request_size_bytes bytes
request_size_bytes_bucket{le="100.0"} 1
request_size_bytes_bucket{le="1000.0"} 3
request_size_bytes_bucket{le="+Inf"} 4
request_size_bytes_sum 2500.0
request_size_bytes_count 4
request_size_bytes_created 1700000100.0
# TYPE latency_seconds summary
latency_seconds{quantile="0.9"} 0.3
latency_seconds_sum 9.0
latency_seconds_count 30
latency_seconds_created 1700000200.0
# TYPE build info
build_info{version="1.2"} 1
# EOF
`

func TestScrapeOpenMetricsFixture(t *testing.T) {
	srv := serve(t, "application/openmetrics-text; version=1.0.0; charset=utf-8", omFixture)
	c := &collector{}
	runReceiver(t, staticJob("om", "300ms", hostOf(srv)), Sharding{}, c)

	p := c.waitPoints(t, "process_cpu_seconds_total", 1)[0]
	require.Equal(t, pmetric.MetricTypeSum, p.metric.Type())
	require.Equal(t, "seconds", p.metric.Unit())
	require.Equal(t, "CPU time.", p.metric.Description())
	require.Equal(t, pcommon.Timestamp(1700000000*time.Second), p.start, "_created is the start time")
	require.Empty(t, c.points("process_cpu_seconds_created"), "_created is a start time, not a series")

	h := c.waitPoints(t, "request_size_bytes", 1)[0]
	require.Equal(t, pmetric.MetricTypeHistogram, h.metric.Type())
	require.Equal(t, "bytes", h.metric.Unit())
	hp := h.metric.Histogram().DataPoints().At(0)
	require.Equal(t, pcommon.Timestamp(1700000100*time.Second), hp.StartTimestamp())
	require.Empty(t, c.points("request_size_bytes_created"))
	require.Equal(t, []uint64{1, 2, 1}, hp.BucketCounts().AsRaw())

	g := c.waitPoints(t, "queue_length", 1)[0]
	require.Equal(t, pmetric.MetricTypeGauge, g.metric.Type())
	s := c.waitPoints(t, "latency_seconds", 1)[0]
	require.Equal(t, pmetric.MetricTypeSummary, s.metric.Type())
	require.Equal(t, pcommon.Timestamp(1700000200*time.Second), s.start)
	require.Empty(t, c.points("latency_seconds_created"))
	i := c.waitPoints(t, "build_info", 1)[0]
	require.Equal(t, pmetric.MetricTypeGauge, i.metric.Type())
	v, _ := i.attrs.Get("version")
	require.Equal(t, "1.2", v.Str())
}

func TestScrapeNativeHistogramProtobuf(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "native_latency_seconds", Help: "Native.", NativeHistogramBucketFactor: 1.1,
	})
	reg.MustRegister(h)
	for _, v := range []float64{0.001, 0.01, 0.01, 0.5, 2, -1, 0} {
		h.Observe(v)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	cfg := staticJob("native", "300ms", hostOf(srv)) + "  scrape_native_histograms: true\n"
	c := &collector{}
	runReceiver(t, cfg, Sharding{}, c)

	p := c.waitPoints(t, "native_latency_seconds", 1)[0]
	require.Equal(t, pmetric.MetricTypeExponentialHistogram, p.metric.Type())
	dp := p.metric.ExponentialHistogram().DataPoints().At(0)
	require.Equal(t, pmetric.AggregationTemporalityCumulative, p.metric.ExponentialHistogram().AggregationTemporality())
	require.Equal(t, uint64(7), dp.Count())
	require.InDelta(t, 1.521, dp.Sum(), 1e-9)
	require.Equal(t, int32(3), dp.Scale(), "factor 1.1 is schema 3")
	require.Equal(t, uint64(1), dp.ZeroCount())
	var pos, neg uint64
	for _, n := range dp.Positive().BucketCounts().AsRaw() {
		pos += n
	}
	for _, n := range dp.Negative().BucketCounts().AsRaw() {
		neg += n
	}
	require.Equal(t, uint64(5), pos)
	require.Equal(t, uint64(1), neg)
	// At scale 3 the base is 2^(1/8), and 0.5 = base^-8. OTLP bucket i
	// covers (base^i, base^(i+1)], so 0.5 is in bucket -9 (Prometheus'
	// bucket -8, which covers (base^-9, base^-8]); 2 = base^8 is in 7.
	off := dp.Positive().Offset()
	counts := dp.Positive().BucketCounts().AsRaw()
	for _, want := range []int{-9, 7} {
		idx := want - int(off)
		require.True(t, idx >= 0 && idx < len(counts) && counts[idx] == 1, "bucket %d (offset %d, counts %v)", want, off, counts)
	}
	require.NotZero(t, dp.StartTimestamp())
	require.LessOrEqual(t, dp.StartTimestamp(), dp.Timestamp())
}

func TestScrapeGarbageTarget(t *testing.T) {
	srv := serve(t, "text/plain; version=0.0.4", "this is {{{ not prometheus\n\x00\x01 at all")
	c := &collector{}
	_, reg := runReceiver(t, staticJob("bad", "300ms", hostOf(srv)), Sharding{}, c)

	ups := c.waitPoints(t, "up", 2)
	for _, u := range ups {
		require.Equal(t, 0.0, u.value)
	}
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(counterWith(t, reg, "obs_scrape_failed_scrapes_total", "bad")) >= 2
	}, 5*time.Second, 20*time.Millisecond)
}

func TestScrapeParserPanicInput(t *testing.T) {
	// This OpenMetrics input makes Prometheus' parser panic when start
	// timestamps are parsed; obs must survive it.
	srv := serve(t, "application/openmetrics-text; version=1.0.0", "# TYPE A0000000000000000 counter\nA 0\n0")
	c := &collector{}
	runReceiver(t, staticJob("panic", "200ms", hostOf(srv)), Sharding{}, c)
	c.waitPoints(t, "up", 2)
}

func TestScrapeRefusedIsCounted(t *testing.T) {
	srv := serve(t, "text/plain; version=0.0.4", "a_metric 1\n")
	c := &collector{refuse: true}
	_, reg := runReceiver(t, staticJob("full", "200ms", hostOf(srv)), Sharding{}, c)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(droppedWith(reg, "full", "refused")) >= 6 // a_metric + up + 4 scrape_*
	}, 5*time.Second, 20*time.Millisecond)
}

func TestScrapeSampleLimitCounted(t *testing.T) {
	srv := serve(t, "text/plain; version=0.0.4", "a 1\nb 2\nc 3\nd 4\n")
	c := &collector{}
	cfg := staticJob("limited", "200ms", hostOf(srv)) + "  sample_limit: 2\n"
	_, reg := runReceiver(t, cfg, Sharding{}, c)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(droppedWith(reg, "limited", "sample_limit")) >= 4
	}, 5*time.Second, 20*time.Millisecond)
	require.Empty(t, c.points("a"), "a scrape over sample_limit stores nothing")
	require.Equal(t, 0.0, c.waitPoints(t, "up", 1)[0].value)
}

func counterWith(t *testing.T, reg *prometheus.Registry, name, job string) prometheus.Collector {
	t.Helper()
	return gathered{reg: reg, name: name, labels: map[string]string{"job": job}}
}

func droppedWith(reg *prometheus.Registry, job, reason string) prometheus.Collector {
	return gathered{reg: reg, name: "obs_scrape_samples_dropped_total", labels: map[string]string{"job": job, "reason": reason}}
}

// gathered reads one series from a registry as a Collector, for testutil.
type gathered struct {
	reg    *prometheus.Registry
	name   string
	labels map[string]string
}

func (g gathered) Describe(ch chan<- *prometheus.Desc) {}

func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, err := g.reg.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range g.labels {
				if have[k] != v {
					continue next
				}
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.UntypedValue, v)
			return
		}
	}
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.UntypedValue, 0)
}

func splitHostPortT(t *testing.T, hp string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(hp, ':')
	var port int
	_, err := fmt.Sscanf(hp[i+1:], "%d", &port)
	require.NoError(t, err)
	return hp[:i], port
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		want []string
	}{
		{"timeout over interval", `
scrape_configs:
- job_name: good
  static_configs: [{targets: ["127.0.0.1:1"]}]
- job_name: broken
  scrape_interval: 1s
  scrape_timeout: 5s
  static_configs: [{targets: ["127.0.0.1:2"]}]
`, []string{`scrape_configs[1]`, `job "broken"`, "line 5", "scrape timeout"}},
		{"unknown key", `
scrape_configs:
- job_name: typo
  scrape_intervall: 1s
`, []string{`job "typo"`, "line 3", "scrape_intervall"}},
		{"bad relabel regex", `
scrape_configs:
- job_name: ok
- job_name: rx
  relabel_configs:
  - source_labels: [a]
    regex: "(["
`, []string{`job "rx"`, "line 4"}},
		{"bad global", `
global:
  scrape_interval: forever
`, []string{"config (line 2)", "forever"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := PrometheusConfig{Config: promNode(t, tc.cfg)}.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
	t.Run("missing config", func(t *testing.T) {
		require.ErrorContains(t, PrometheusConfig{}.Validate(), "config: missing")
	})
	t.Run("bad sharding", func(t *testing.T) {
		require.ErrorContains(t, PrometheusConfig{Config: promNode(t, "scrape_configs: []"), Sharding: "ring"}.Validate(), "sharding")
	})
}

func TestConfigEnvAndDollar(t *testing.T) {
	// obs expands ${env:...} and $$ before Prometheus sees the text; a $1
	// left for relabel replacements reaches Prometheus unchanged.
	cfg := promNode(t, `
scrape_configs:
- job_name: j
  scrape_interval: 7s
  relabel_configs:
  - source_labels: [__address__]
    target_label: host
    regex: "(.*):.*"
    replacement: "$1"
`)
	pc, err := PrometheusConfig{Config: cfg}.load(nil)
	require.NoError(t, err)
	scs, err := pc.GetScrapeConfigs()
	require.NoError(t, err)
	require.Equal(t, "7s", scs[0].ScrapeInterval.String())
	require.Equal(t, "$1", scs[0].RelabelConfigs[0].Replacement)
	require.Equal(t, "7s", scs[0].ScrapeTimeout.String(), "defaults filled by Prometheus")
}
