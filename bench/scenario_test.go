package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"gopkg.in/yaml.v3"
)

func marshalMetrics(t testing.TB) ([]byte, int) {
	t.Helper()
	md := pmetric.NewMetrics()
	sms := md.ResourceMetrics().AppendEmpty().ScopeMetrics()
	sms.AppendEmpty() // an empty scope counts nothing
	ms := sms.AppendEmpty().Metrics()
	g := ms.AppendEmpty()
	g.SetName("g")
	gauge := g.SetEmptyGauge()
	for range 3 {
		gauge.DataPoints().AppendEmpty().SetDoubleValue(1)
	}
	s := ms.AppendEmpty()
	s.SetName("s")
	sum := s.SetEmptySum()
	sum.SetIsMonotonic(true)
	for range 4 {
		sum.DataPoints().AppendEmpty().SetIntValue(7)
	}
	h := ms.AppendEmpty()
	h.SetName("h")
	h.SetEmptyHistogram().DataPoints().AppendEmpty().BucketCounts().FromRaw([]uint64{1, 2})
	e := ms.AppendEmpty()
	e.SetName("e")
	e.SetEmptyExponentialHistogram().DataPoints().AppendEmpty()
	q := ms.AppendEmpty()
	q.SetName("q")
	q.SetEmptySummary().DataPoints().AppendEmpty().QuantileValues().AppendEmpty()
	md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptyGauge().DataPoints().AppendEmpty()
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	return b, md.DataPointCount()
}

func TestCountDataPoints(t *testing.T) {
	b, want := marshalMetrics(t)
	require.Equal(t, 11, want)
	n, err := countDataPoints(b)
	require.NoError(t, err)
	require.Equal(t, want, n)
	_, err = countDataPoints(b[:len(b)-2])
	require.Error(t, err)
}

// FuzzCountDataPoints: whenever pdata decodes the bytes, the walker counts
// pdata's data points in its re-encoding.
func FuzzCountDataPoints(f *testing.F) {
	b, _ := marshalMetrics(f)
	f.Add(b)
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = countDataPoints(b)
		req := pmetricotlp.NewExportRequest()
		if req.UnmarshalProto(b) != nil {
			return
		}
		again, err := req.MarshalProto()
		require.NoError(t, err)
		n, err := countDataPoints(again)
		require.NoError(t, err)
		require.Equal(t, req.Metrics().DataPointCount(), n)
	})
}

func TestRemoteWriteSinkCountsSamples(t *testing.T) {
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "a"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "b"}}, Samples: []prompb.Sample{{Value: 3, Timestamp: 3}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "c"}}},
	}}
	raw, err := wr.Marshal()
	require.NoError(t, err)
	n, err := countRemoteWriteSamples(raw)
	require.NoError(t, err)
	require.Equal(t, 3, n)

	s, err := newRWSink(nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.serve() }()
	defer func() { s.stop(); require.NoError(t, <-done) }()
	for _, tc := range []struct {
		name string
		body []byte
		code int
	}{
		{"snappy", snappy.Encode(nil, raw), http.StatusNoContent},
		{"garbage", []byte("not snappy"), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, s.url(), bytes.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Content-Encoding", "snappy")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.code, resp.StatusCode)
		})
	}
	require.EqualValues(t, 3, s.samples.Load())
	require.EqualValues(t, 2, s.requests.Load())
	require.EqualValues(t, 1, s.bad.Load())
}

// TestExposition: Prometheus' own text parser reads exactly series
// samples, with HELP and TYPE for every family.
func TestExposition(t *testing.T) {
	for _, series := range []int{1, 50, 1000, 1234} {
		t.Run(fmt.Sprint(series), func(t *testing.T) {
			b := exposition(series)
			p, err := textparse.New(b, "text/plain; version=0.0.4", labels.NewSymbolTable(), textparse.ParserOptions{})
			require.NoError(t, err)
			samples, types := 0, 0
			seen := map[string]bool{}
			for {
				e, err := p.Next()
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
				switch e {
				case textparse.EntrySeries:
					samples++
					var l labels.Labels
					p.Labels(&l)
					require.False(t, seen[l.String()], "duplicate series %s", l)
					seen[l.String()] = true
				case textparse.EntryType:
					types++
				}
			}
			require.Equal(t, series, samples)
			require.Equal(t, (series+49)/50, types)
		})
	}
}

// TestTargetsServeAndCount scrapes two targets over loopback.
func TestTargetsServeAndCount(t *testing.T) {
	body := exposition(10)
	tg, err := startTargets(2, body)
	require.NoError(t, err)
	defer tg.stop()
	require.Len(t, tg.addrs, 2)
	require.NotEqual(t, strings.Split(tg.addrs[0], ":")[0], strings.Split(tg.addrs[1], ":")[0], "each target has its own address")
	for _, a := range tg.addrs {
		resp, err := http.Get("http://" + a + "/metrics")
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, body, got)
	}
	require.EqualValues(t, 2, tg.scrapes.Load())
}

func TestPromScrapeConfigIsYAML(t *testing.T) {
	text := promScrapeConfig([]string{"127.0.0.2:80", "127.0.0.3:81"}, 5*time.Second, 6)
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		require.True(t, strings.HasPrefix(l, "      "), "indented: %q", l)
	}
	var c struct {
		Global        map[string]string `yaml:"global"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(promScrapeConfig([]string{"127.0.0.2:80", "127.0.0.3:81"}, 5*time.Second, 0)), &c))
	require.Equal(t, "5s", c.Global["scrape_interval"])
	require.Len(t, c.ScrapeConfigs, 1)
	require.Equal(t, []string{"127.0.0.2:80", "127.0.0.3:81"}, c.ScrapeConfigs[0].StaticConfigs[0].Targets)
}

var criRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) F level=\S+ .* seq=(\d+)`)

// TestWritePodLogs: every line is CRI, about 200 bytes, in a kubelet-like
// path, and the lines are spread over the files round robin.
func TestWritePodLogs(t *testing.T) {
	root := t.TempDir()
	paths, size, err := writePodLogs(root, 3, 300)
	require.NoError(t, err)
	require.Len(t, paths, 3)
	pathRE := regexp.MustCompile(`/var/log/pods/[a-z-]+_[a-z0-9-]+_[0-9a-f-]{36}/app/0\.log$`)
	var total int64
	for i, p := range paths {
		require.Regexp(t, pathRE, p)
		f, err := os.Open(p)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		n := 0
		for sc.Scan() {
			m := criRE.FindStringSubmatch(sc.Text())
			require.NotNil(t, m, "CRI line: %q", sc.Text())
			require.Equal(t, fmt.Sprint(i+3*n), m[2], "round robin")
			require.InDelta(t, 200, len(sc.Text())+1, 20)
			total += int64(len(sc.Text()) + 1)
			n++
		}
		require.NoError(t, sc.Err())
		f.Close()
		require.Equal(t, 100, n)
	}
	require.Equal(t, size, total)
	matches, err := filepath.Glob(filepath.Join(root, "var", "log", "pods", "*", "*", "*.log"))
	require.NoError(t, err)
	require.Len(t, matches, 3)
}

func TestScenarioSystems(t *testing.T) {
	for _, sc := range []string{"otlp", "scrape", "filelog"} {
		require.NotEmpty(t, scenarioSystems(sc))
	}
	require.Empty(t, scenarioSystems("nope"))
	require.Len(t, filelogSystems("obs", "otelcol", "/x/*.log"), 4)
	require.Len(t, scrapeSystems("obs", "otelcol", "vmagent", "bench", []string{"127.0.0.2:1"}, time.Second, "http://127.0.0.1:1/api/v1/write"), 4)
}

// TestPromFloorScrapes: the "Prometheus alone" row really scrapes (a row
// of an idle process would flatter obs' overhead above it): every target
// is scraped, and the floor stops when its context ends.
func TestPromFloorScrapes(t *testing.T) {
	tg, err := startTargets(3, exposition(50))
	require.NoError(t, err)
	defer tg.stop()
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	require.NoError(t, os.WriteFile(path, []byte(promScrapeConfig(tg.addrs, time.Second, 0)), 0o644))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- promFloor(ctx, path) }()
	require.Eventually(t, func() bool { return tg.scrapes.Load() >= 6 }, 30*time.Second, 50*time.Millisecond,
		"two rounds of three targets")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the floor did not stop")
	}
}
