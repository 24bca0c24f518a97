// Package scrape runs real obs gateway processes on loopback addresses
// 127.0.0.2 … 127.0.0.5 that shard one Prometheus job of 200 synthetic
// targets (127.0.0.10 … 127.0.0.209, one HTTP server each, counting its own
// scrapes) by rendezvous over the live gateways, and exports OTLP to a
// real otelcol sink. It checks at the targets that every one is scraped
// once per interval through a kill -9 and a join, and checks the Target
// Allocator API (/jobs). TestMain builds obs once per run, or takes the
// binary named by OBS_BIN.
package scrape

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// obsBin is the obs binary TestMain built; set once before any test runs.
var obsBin string

func TestMain(m *testing.M) {
	if p := os.Getenv("OBS_BIN"); p != "" {
		// A prebuilt obs (e.g. with a change outside this folder).
		obsBin = p
		goleak.VerifyTestMain(m)
		return
	}
	dir, err := os.MkdirTemp("", "obs-scrape-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "scrape: create temp dir:", err)
		os.Exit(1)
	}
	if err := buildObs(dir); err != nil {
		fmt.Fprintln(os.Stderr, "scrape:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// buildObs builds github.com/obs-dev/obs into dir/obs from the module root.
func buildObs(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("run go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return fmt.Errorf("find module root: go env GOMOD printed %q", gomod)
	}
	obsBin = filepath.Join(dir, "obs")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", obsBin, "github.com/obs-dev/obs")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build obs: %w\n%s", err, b)
	}
	return nil
}

// syncBuffer is an io.Writer safe for the process's copy goroutines and
// the test reading it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// freePort returns a port free for TCP and UDP on ip a moment ago.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatalf("no free port on %s", ip)
	return 0
}

// httpClient never uses a proxy: every address is loopback.
var httpClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}

// getJSON decodes GET http://addr+path into v.
func getJSON(addr, path string, v any) error {
	rsp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return fmt.Errorf("get %s%s: %w", addr, path, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return fmt.Errorf("read %s%s: %w", addr, path, err)
	}
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s%s: %s: %s", addr, path, rsp.Status, body)
	}
	if ct := rsp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("get %s%s: content type %q, want application/json", addr, path, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s%s: %w: %s", addr, path, err, tail(string(body), 300))
	}
	return nil
}

// gateway is one obs gateway process with its own loopback address.
type gateway struct {
	t        testing.TB
	name, ip string
	gossip   string // ip:port of --cluster-bind
	admin    string // ip:port of --admin-addr
	join     string // seed's gossip address; empty for the seed
	config   string
	dataDir  string
	out      *syncBuffer
	cmd      *exec.Cmd
	done     chan struct{}
}

// newGateway writes the config of a gateway on ip: the prometheus
// receiver with promConfig (Prometheus' YAML, indented for "config:") and
// an OTLP exporter to sinkAddr. The process is killed at cleanup, and its
// output logged if the test failed.
func newGateway(t testing.TB, name, ip, join, promConfig, sinkAddr string) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{
		t: t, name: name, ip: ip, join: join,
		gossip:  net.JoinHostPort(ip, strconv.Itoa(freePort(t, ip))),
		admin:   net.JoinHostPort(ip, strconv.Itoa(freePort(t, ip))),
		config:  filepath.Join(dir, "obs.yaml"),
		dataDir: filepath.Join(dir, "data"),
		out:     &syncBuffer{},
	}
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
	require.NoError(t, os.WriteFile(g.config, []byte(cfg), 0o600))
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", g.name, tail(g.out.String(), 8000))
		}
	})
	return g
}

// start runs the gateway and waits, bounded, until its GET /cluster
// answers.
func (g *gateway) start() {
	t := g.t
	t.Helper()
	require.Nil(t, g.cmd, "%s already running", g.name)
	args := []string{"run", "--role", "gateway", "--config", g.config, "--data-dir", g.dataDir,
		"--admin-addr", g.admin, "--node-name", g.name, "--cluster-bind", g.gossip, "--shutdown-timeout", "10s"}
	if g.join != "" {
		args = append(args, "--join", g.join)
	}
	cmd := exec.Command(obsBin, args...)
	fmt.Fprintf(g.out, "----- obs %s\n", strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = g.out, g.out
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "NO_PROXY=*", "no_proxy=*")
	require.NoError(t, cmd.Start())
	g.cmd = cmd
	done := make(chan struct{})
	g.done = done
	go func() { // reaps the process; kill waits for it
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			g.cmd = nil
			t.Fatalf("%s exited during start: %s\n%s", g.name, cmd.ProcessState, tail(g.out.String(), 4000))
		default:
		}
		var v clusterView
		if err := getJSON(g.admin, "/cluster", &v); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET /cluster did not answer within 20s", g.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is reaped.
func (g *gateway) kill() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
	g.cmd = nil
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

// waitFor polls cond every 50ms until it holds or within passes; it
// returns how long that took, and fails the test with the last reason.
func waitFor(t testing.TB, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	reason := "never evaluated"
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		reason = why
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s: %s", what, within, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
