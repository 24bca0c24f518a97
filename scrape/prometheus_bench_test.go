package scrape

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/scrape/discard"
)

// BenchmarkScrapeLoop runs Prometheus' scrape manager with obs' options
// over 50 loopback targets × 1,000 series scraped every second, once with
// an appender that discards (Prometheus' own cost) and once with obs'
// appender (consume keeps nothing, so the pipeline and WAL are not in it).
// One iteration is one round of scrapes. It reports this process' CPU
// per million samples (getrusage; the targets' HTTP serving is in it for
// both) and the live heap per series after a GC. Run with
// -benchtime 20x; it takes about 2 × (N + 3) seconds.
func BenchmarkScrapeLoop(b *testing.B) {
	const nTargets, nSeries = 50, 1000
	body := []byte(benchExposition(nSeries))
	var served atomic.Int64
	var addrs []string
	var wg sync.WaitGroup
	b.Cleanup(wg.Wait) // runs last: cleanups run in reverse order
	for range nTargets {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			if _, err := w.Write(body); err == nil {
				served.Add(1)
			}
		})}
		addrs = append(addrs, ln.Addr().String())
		wg.Go(func() { _ = srv.Serve(ln) })
		b.Cleanup(func() { _ = srv.Close() })
	}

	m, err := newMetrics(prometheus.NewRegistry(), "prometheus")
	if err != nil {
		b.Fatal(err)
	}
	for _, variant := range []string{"discard", "obs"} {
		b.Run(variant, func(b *testing.B) {
			var app storage.AppendableV2 = discard.Appendable{}
			if variant == "obs" {
				consume := func(context.Context, actors.Batch, []actors.KV) error { return nil }
				app = newAppendable(consume, newSharder(ShardNone, Sharding{}, nil, m, nil), m, nil, time.Second, nil)
			}
			runScrapeRounds(b, app, addrs, &served, nSeries)
		})
	}
}

func runScrapeRounds(b *testing.B, app storage.AppendableV2, addrs []string, served *atomic.Int64, nSeries int) {
	cfg, err := loadPromConfig(promNode(b, staticJob("bench", "1s")), false, nil)
	if err != nil {
		b.Fatal(err)
	}
	mgr, err := promscrape.NewManager(ManagerOptions(), nil, nil, nil, app, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	if err := mgr.ApplyConfig(cfg); err != nil {
		b.Fatal(err)
	}
	tg := &targetgroup.Group{Source: "bench"}
	for _, a := range addrs {
		tg.Targets = append(tg.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
	}
	ch := make(chan map[string][]*targetgroup.Group, 1)
	ch <- map[string][]*targetgroup.Group{"bench": {tg}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Run(ch)
	}()
	defer func() {
		mgr.Stop()
		<-done
	}()

	round := func(rounds int) {
		want := served.Load() + int64(rounds*len(addrs))
		deadline := time.Now().Add(time.Duration(rounds+5) * 2 * time.Second)
		for served.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("targets served %d scrapes, want %d", served.Load(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	round(3) // every target in steady state (series cached)
	start, cpu0 := served.Load(), cpuSeconds()
	b.ResetTimer()
	round(b.N)
	b.StopTimer()
	cpu, scrapes := cpuSeconds()-cpu0, served.Load()-start
	runtime.GC()
	runtime.GC() // twice: sync.Pool's victim cache goes too
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(cpu/(float64(scrapes)*float64(nSeries)/1e6), "cpu-s/Msamples")
	b.ReportMetric(float64(ms.HeapAlloc)/float64(len(addrs)*nSeries), "live-B/series")
}

// cpuSeconds is this process' user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
