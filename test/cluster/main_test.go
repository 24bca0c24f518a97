// Package cluster runs several real obs processes on loopback addresses
// 127.0.0.2 … 127.0.0.6 (Linux routes all of 127/8 to lo) and checks what
// their gossip membership reports on each member's GET /cluster: joining
// through one seed, failure detection after SIGKILL, a graceful leave after
// SIGTERM, one leader of "k8s-events", and refusal of members with another
// cluster name or gossip key. TestMain builds obs once per run.
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
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
	dir, err := os.MkdirTemp("", "obs-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster: create temp dir:", err)
		os.Exit(1)
	}
	if err := buildObs(dir); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
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

// member is one obs gateway process with its own loopback address.
type member struct {
	t         testing.TB
	name, ip  string
	gossip    string // ip:port of --cluster-bind
	admin     string // ip:port of --admin-addr
	config    string
	dataDir   string
	extraArgs []string
	out       *syncBuffer
	cmd       *exec.Cmd
	done      chan struct{}
}

// newMember writes the config of a gateway on ip: an OTLP gRPC receiver
// and a debug exporter (the data path is not under test here), gossip and
// admin on free ports of ip. The process is killed at cleanup, and its
// output logged if the test failed.
func newMember(t testing.TB, name, ip string, extraArgs ...string) *member {
	t.Helper()
	dir := t.TempDir()
	// Three distinct ports: a port freed by one freePort call can be
	// handed out again by the next.
	ports := map[int]bool{}
	for len(ports) < 3 {
		ports[freePort(t, ip)] = true
	}
	var p []int
	for port := range ports {
		p = append(p, port)
	}
	m := &member{
		t: t, name: name, ip: ip,
		gossip:    net.JoinHostPort(ip, strconv.Itoa(p[0])),
		admin:     net.JoinHostPort(ip, strconv.Itoa(p[1])),
		config:    filepath.Join(dir, "obs.yaml"),
		dataDir:   filepath.Join(dir, "data"),
		extraArgs: extraArgs,
		out:       &syncBuffer{},
	}
	grpc := net.JoinHostPort(ip, strconv.Itoa(p[2]))
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
exporters:
  debug: {}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`, grpc)
	require.NoError(t, os.WriteFile(m.config, []byte(cfg), 0o600))
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", m.name, tail(m.out.String(), 12000))
		}
	})
	return m
}

// start runs the member (default timing flags) and waits, bounded, until
// its GET /cluster answers.
func (m *member) start() {
	t := m.t
	t.Helper()
	require.Nil(t, m.cmd, "%s already running", m.name)
	args := append([]string{"run", "--role", "gateway", "--config", m.config, "--data-dir", m.dataDir,
		"--admin-addr", m.admin, "--node-name", m.name, "--cluster-bind", m.gossip,
		"--shutdown-timeout", "10s"}, m.extraArgs...)
	cmd := exec.Command(obsBin, args...)
	fmt.Fprintf(m.out, "----- obs %s\n", strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = m.out, m.out
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "NO_PROXY=*", "no_proxy=*")
	require.NoError(t, cmd.Start())
	m.cmd = cmd
	done := make(chan struct{})
	m.done = done
	go func() { // reaps the process; kill and stop wait for it
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			m.cmd = nil
			t.Fatalf("%s exited during start: %s\n%s", m.name, cmd.ProcessState, tail(m.out.String(), 4000))
		default:
		}
		if _, err := m.view(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET /cluster did not answer within 20s", m.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is reaped.
func (m *member) kill() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	m.cmd = nil
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (m *member) stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.t.Errorf("%s did not stop within 20s of SIGTERM", m.name)
		m.kill()
		return
	}
	require.True(m.t, m.cmd.ProcessState.Success(), "%s exit after SIGTERM: %s", m.name, m.cmd.ProcessState)
	m.cmd = nil
}

// clusterView is the part of GET /cluster the tests read.
type clusterView struct {
	Self    string            `json:"self"`
	Cluster string            `json:"cluster"`
	Role    string            `json:"role"`
	Members []viewMember      `json:"members"`
	Leaders map[string]string `json:"leaders"`
}

type viewMember struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	State   string `json:"state"`
	Address string `json:"address"`
}

// states maps member name to state.
func (v clusterView) states() map[string]string {
	out := make(map[string]string, len(v.Members))
	for _, m := range v.Members {
		out[m.Name] = m.State
	}
	return out
}

// alive lists the alive members, sorted.
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

// httpClient never uses a proxy: every address is loopback.
var httpClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}

func (m *member) view() (clusterView, error) {
	var v clusterView
	rsp, err := httpClient.Get("http://" + m.admin + "/cluster")
	if err != nil {
		return v, fmt.Errorf("get %s /cluster: %w", m.name, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return v, fmt.Errorf("read %s /cluster: %w", m.name, err)
	}
	if rsp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("get %s /cluster: %s: %s", m.name, rsp.Status, body)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("decode %s /cluster: %w", m.name, err)
	}
	return v, nil
}

// views polls every member once.
func views(ms []*member) (map[string]clusterView, error) {
	out := make(map[string]clusterView, len(ms))
	for _, m := range ms {
		v, err := m.view()
		if err != nil {
			return nil, err
		}
		out[m.name] = v
	}
	return out, nil
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
