package scrape

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/storage"

	"github.com/obs-dev/obs/actors"
)

// benchExposition is the bench scenario's target (bench/scrape.go): 1,000
// series in families of 50, counters and gauges alternating.
func benchExposition(series int) string {
	var b strings.Builder
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	codes := []string{"200", "201", "400", "404", "500"}
	for i := 0; i < series; {
		fam := i / 50
		name, typ := fmt.Sprintf("bench_http_requests_%02d", fam), "gauge"
		if fam%2 == 0 {
			name, typ = name+"_total", "counter"
		}
		fmt.Fprintf(&b, "# HELP %s Synthetic series of family %d.\n# TYPE %s %s\n", name, fam, name, typ)
		for j := 0; j < 50 && i < series; j++ {
			fmt.Fprintf(&b, "%s{handler=\"/api/v1/resource/%d\",method=%q,code=%q} %d.%03d\n",
				name, j, methods[j%len(methods)], codes[j%len(codes)], 1000+i*37, i%1000)
			i++
		}
	}
	return b.String()
}

// scrapedSample is one parsed sample as the scrape loop hands it over,
// with the series ref the appender returned last time (Prometheus' scrape
// cache does the same).
type scrapedSample struct {
	ref    storage.SeriesRef
	ls     labels.Labels
	v      float64
	family string
	md     metadata.Metadata
}

// BenchmarkAppender measures obs' part of a scrape: one target's 1,000
// samples appended with their cached refs, then Commit, which hands the
// batch to a consume func that only keeps it. Parsing is not included.
func BenchmarkAppender(b *testing.B) {
	m, err := newMetrics(prometheus.NewRegistry(), "prometheus")
	if err != nil {
		b.Fatal(err)
	}
	var points int
	consume := func(_ context.Context, bt actors.Batch, _ []actors.KV) error {
		points += bt.Items()
		return nil
	}
	a := newAppendable(consume, newSharder(ShardNone, Sharding{}, nil, m, nil), m, nil, time.Second, nil)
	samples := parseForBench(b, benchExposition(1000), "bench", "127.0.0.2:9100")
	b.ReportAllocs()
	b.ResetTimer()
	t := time.Now().UnixMilli()
	for i := 0; i < b.N; i++ {
		t += 5000
		app := a.AppenderV2(context.Background())
		for k := range samples {
			s := &samples[k]
			ref, err := app.Append(s.ref, s.ls, 0, t, s.v+float64(i), nil, nil,
				storage.AOptions{MetricFamilyName: s.family, Metadata: s.md})
			if err != nil {
				b.Fatal(err)
			}
			s.ref = ref
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if points != b.N*len(samples) {
		b.Fatalf("consumed %d points, want %d", points, b.N*len(samples))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(samples)), "ns/sample")
}

func parseForBench(tb testing.TB, text, job, instance string) []scrapedSample {
	tb.Helper()
	p, err := textparse.New([]byte(text), "text/plain; version=0.0.4", labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	var (
		out    []scrapedSample
		family string
		md     metadata.Metadata
		ls     labels.Labels
	)
	for {
		et, err := p.Next()
		if err != nil {
			break
		}
		switch et {
		case textparse.EntryType:
			name, typ := p.Type()
			family, md.Type = string(name), typ
			continue
		case textparse.EntryHelp:
			_, help := p.Help()
			md.Help = string(help)
			continue
		case textparse.EntrySeries:
		default:
			continue
		}
		_, _, v := p.Series()
		p.Labels(&ls)
		lb := labels.NewBuilder(ls)
		lb.Set(model.JobLabel, job)
		lb.Set(model.InstanceLabel, instance)
		out = append(out, scrapedSample{ls: lb.Labels(), v: v, family: family, md: md})
	}
	return out
}
