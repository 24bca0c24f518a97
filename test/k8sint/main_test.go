// Package k8sint runs real obs gateway processes against a real
// kube-apiserver (test/k8s): Kubernetes service discovery through the
// scrape sharder, and the gateway's shipped ClusterRole being enough (and
// no more than needed) for k8sattributes and k8s_events. TestMain builds
// obs once per run, or takes the binary named by OBS_BIN.
package k8sint

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// obsBin is the obs binary TestMain built; set once before any test runs.
var obsBin string

func TestMain(m *testing.M) {
	if p := os.Getenv("OBS_BIN"); p != "" {
		obsBin = p
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "obs-k8sint-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8sint: create temp dir:", err)
		os.Exit(1)
	}
	if err := buildObs(dir); err != nil {
		fmt.Fprintln(os.Stderr, "k8sint:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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

// get returns the status and body of GET http://addr+path.
func get(addr, path string) (int, []byte, error) {
	rsp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0, nil, fmt.Errorf("get %s%s: %w", addr, path, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s%s: %w", addr, path, err)
	}
	return rsp.StatusCode, body, nil
}

func getJSON(addr, path string, v any) error {
	code, body, err := get(addr, path)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("get %s%s: %d: %s", addr, path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s%s: %w: %s", addr, path, err, tail(string(body), 300))
	}
	return nil
}

// gateway is one obs gateway process.
type gateway struct {
	t          testing.TB
	name       string
	gossip     string
	admin      string
	join       string
	config     string
	dataDir    string
	kubeconfig string   // as KUBECONFIG; "" = none in the environment
	args       []string // more flags for obs run
	out        *syncBuffer
	cmd        *exec.Cmd
	done       chan struct{}
}

// newGateway writes cfg as the gateway's config; the process is killed at
// cleanup and its output logged if the test failed.
func newGateway(t testing.TB, name, ip, join, kubeconfig, cfg string) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{t: t, name: name, join: join, kubeconfig: kubeconfig,
		gossip:  net.JoinHostPort(ip, strconv.Itoa(freePort(t, ip))),
		admin:   net.JoinHostPort(ip, strconv.Itoa(freePort(t, ip))),
		config:  filepath.Join(dir, "obs.yaml"),
		dataDir: filepath.Join(dir, "data"),
		out:     &syncBuffer{},
	}
	require.NoError(t, os.WriteFile(g.config, []byte(cfg), 0o600))
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", g.name, tail(g.out.String(), 8000))
		}
	})
	return g
}

// start runs the gateway and waits, bounded, until GET /readyz is 200.
func (g *gateway) start() {
	t := g.t
	t.Helper()
	args := []string{"run", "--role", "gateway", "--config", g.config, "--data-dir", g.dataDir,
		"--admin-addr", g.admin, "--node-name", g.name, "--cluster-bind", g.gossip, "--shutdown-timeout", "10s"}
	if g.join != "" {
		args = append(args, "--join", g.join)
	}
	args = append(args, g.args...)
	cmd := exec.Command(obsBin, args...)
	fmt.Fprintf(g.out, "----- obs %s\n", strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = g.out, g.out
	cmd.Env = append(environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "NO_PROXY=*", "no_proxy=*")
	if g.kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+g.kubeconfig)
	}
	require.NoError(t, cmd.Start())
	g.cmd = cmd
	done := make(chan struct{})
	g.done = done
	go func() { // reaps the process; kill waits for it
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			g.cmd = nil
			t.Fatalf("%s exited during start: %s\n%s", g.name, cmd.ProcessState, tail(g.out.String(), 4000))
		default:
		}
		if code, _, err := get(g.admin, "/readyz"); err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET /readyz not 200 within 30s", g.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// environ is this process's environment without any kubeconfig setting,
// so that a gateway sees only the one its test gives it.
func environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "OBS_KUBECONFIG=") {
			out = append(out, kv)
		}
	}
	return out
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

// waitFor polls cond every 50ms until it holds or within passes; it
// returns how long that took, and fails the test with the last reason.
func waitFor(t testing.TB, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s: %s", what, within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
