// Package scrape runs real obs gateway processes on loopback addresses
// 127.0.0.2 … 127.0.0.5 that shard one Prometheus job of 200 synthetic
// targets (127.0.0.10 … 127.0.0.209, one HTTP server each, counting its own
// scrapes) by rendezvous over the live gateways, and exports OTLP to a
// real otelcol sink. It checks at the targets that every one is scraped
// once per interval through a kill -9 and a join, and checks the Target
// Allocator API (/jobs). TestMain builds obs once per run, or takes the
// binary named by OBS_BIN (test/obsproc).
package scrape

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/obs-dev/obs/test/obsproc"
)

func TestMain(m *testing.M) { obsproc.Main(m) }

// gateway is one obs gateway process with its own loopback address.
type gateway = obsproc.Proc

// newGateway prepares (does not start) a gateway named name on ip with
// gossip on a fresh port of ip, joining join (none if empty): the
// prometheus receiver with promConfig (Prometheus' YAML, indented for
// "config:") and an OTLP exporter to sinkAddr.
func newGateway(t testing.TB, name, ip, join, promConfig, sinkAddr string) *gateway {
	t.Helper()
	cfg := fmt.Sprintf(`receivers:
  prometheus:
    config:
%sexporters:
  otlp/sink:
    endpoint: %q
    tls:
      insecure: true
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 1s
      max_elapsed_time: 0s
service:
  pipelines:
    metrics:
      receivers: [prometheus]
      exporters: [otlp/sink]
`, promConfig, sinkAddr)
	o := obsproc.Options{Role: "gateway", Name: name, IP: ip, Cluster: true, Config: cfg}
	if join != "" {
		o.Join = []string{join}
	}
	return obsproc.New(t, o)
}

// clusterView is the part of GET /cluster the test reads.
type clusterView struct {
	Members []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"members"`
}

func (v clusterView) alive() []string {
	var out []string
	for _, m := range v.Members {
		if m.State == "alive" {
			out = append(out, m.Name)
		}
	}
	sort.Strings(out)
	return out
}

// target is one synthetic scrape target: an HTTP server on its own
// loopback address that records the time of every scrape.
type target struct {
	addr string
	srv  *http.Server
	done chan struct{}

	mu    sync.Mutex
	times []time.Time
}

func (tg *target) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	tg.mu.Lock()
	tg.times = append(tg.times, now)
	n := len(tg.times)
	tg.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# HELP synth_scrapes_total Scrapes this target answered.\n# TYPE synth_scrapes_total counter\nsynth_scrapes_total %d\n"+
		"# HELP synth_temperature_celsius A gauge.\n# TYPE synth_temperature_celsius gauge\nsynth_temperature_celsius 21.5\n", n)
}

// scrapes returns a copy of the scrape times.
func (tg *target) scrapes() []time.Time {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]time.Time(nil), tg.times...)
}

// startTargets starts n targets on 127.0.0.<first> … with one port shared
// by all, so target identities (and so their owners) are the same on
// every run. It tries a few fixed ports before falling back to any.
func startTargets(t testing.TB, n, first int) []*target {
	t.Helper()
	for _, port := range []int{19100, 19200, 19300, 29100, 39100} {
		ts, err := listenTargets(n, first, port)
		if err == nil {
			t.Cleanup(func() { stopTargets(ts) })
			return ts
		}
	}
	t.Fatalf("no port free on all of 127.0.0.%d-%d", first, first+n-1)
	return nil
}

func listenTargets(n, first, port int) ([]*target, error) {
	var ts []*target
	for i := range n {
		addr := net.JoinHostPort(fmt.Sprintf("127.0.0.%d", first+i), strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			stopTargets(ts)
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		tg := &target{addr: addr, done: make(chan struct{})}
		tg.srv = &http.Server{Handler: tg, ReadHeaderTimeout: 5 * time.Second}
		go func() { // owned by tg: stopTargets closes the server and waits
			defer close(tg.done)
			if err := tg.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(os.Stderr, "target %s: %v\n", addr, err)
			}
		}()
		ts = append(ts, tg)
	}
	return ts, nil
}

func stopTargets(ts []*target) {
	for _, tg := range ts {
		_ = tg.srv.Close()
		<-tg.done
	}
}
