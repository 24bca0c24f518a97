package examples

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pod is an obs process started the way the kubelet starts a container:
// in its own mount namespace, /run is a fresh tmpfs holding the service
// account's token and CA (the projected kube-api-access volume), its
// own resolv.conf, and
// /var/log is a fresh tmpfs for the pod logs the test writes (the
// varlogpods hostPath). Both are private: nothing on this machine's own
// /run or /var/log changes. The process start is this one small file so
// that it can move to a shared harness (test/obsproc) later.
type pod struct {
	t     testing.TB
	cmd   *exec.Cmd
	out   *syncBuffer
	admin string
	done  chan struct{}
}

// podSpec is what the container gets.
type podSpec struct {
	config, role string
	env          []string // KEY=VALUE, on top of this process' environment
	token, caPEM []byte   // the service account volume
	adminAddr    string   // HOST:PORT of obs' admin server (the config's telemetry address)
}

// unshareScript runs in the new mount namespace, as root, before obs.
// The pod's resolv.conf names 127.0.0.1, where nothing answers: a name
// in the seed's configs (the gateway's DNS SRV job) fails on loopback
// rather than leaving the machine.
const unshareScript = `set -e
rc=$(readlink -f /etc/resolv.conf)
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p "$(dirname "$rc")"
[ -e "$rc" ] || : >"$rc"
mount --bind "$OBS_SA_DIR/../resolv.conf" "$rc"
sa=/run/secrets/kubernetes.io/serviceaccount
mkdir -p "$sa"
cp "$OBS_SA_DIR/token" "$OBS_SA_DIR/ca.crt" "$sa/"
mount -t tmpfs -o mode=0755 tmpfs /var/log
mkdir -p /var/log/pods
exec "$@"`

// startPod starts obs and waits until /readyz answers 200 (at most 90s).
func startPod(t testing.TB, spec podSpec) *pod {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil || os.Geteuid() != 0 {
		unavailable(t, fmt.Errorf("a pod-like mount namespace needs root and unshare(1): euid %d, %v", os.Geteuid(), err))
	}
	dir := t.TempDir()
	sa := filepath.Join(dir, "sa")
	must(t, os.MkdirAll(sa, 0o700))
	must(t, os.WriteFile(filepath.Join(sa, "token"), spec.token, 0o600))
	must(t, os.WriteFile(filepath.Join(sa, "ca.crt"), spec.caPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644))
	cfg := filepath.Join(dir, "config.yaml")
	must(t, os.WriteFile(cfg, []byte(spec.config), 0o600))
	args := []string{"--mount", "--propagation", "private", "sh", "-c", unshareScript, "sh",
		obsBin, "run", "--role", spec.role, "--config", cfg, "--data-dir", filepath.Join(dir, "data"),
		"--no-cluster", "--shutdown-timeout", "5s"}
	p := &pod{t: t, out: &syncBuffer{}, admin: spec.adminAddr, done: make(chan struct{})}
	p.cmd = exec.Command("unshare", args...)
	p.cmd.Env = append(os.Environ(), "OBS_SA_DIR="+sa, "NO_PROXY=*", "no_proxy=*", "OTEL_EXPORTER_OTLP_ENDPOINT=")
	p.cmd.Env = append(p.cmd.Env, spec.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	must(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("obs %s output:\n%s", spec.role, tail(p.out.String(), 6000))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := p.get("/readyz")
		if code == http.StatusOK {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("obs exited before it was ready:\n%s", tail(p.out.String(), 6000))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("obs not ready after 90s: /readyz %d %s", code, body)
		}
	}
}

// root is the pod's file system as this (outer) process sees it.
func (p *pod) root() string { return fmt.Sprintf("/proc/%d/root", p.cmd.Process.Pid) }

func (p *pod) get(path string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + p.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// stop sends SIGTERM and waits at most 20s, then kills.
func (p *pod) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// unavailable fails under CI=true and skips elsewhere, as test/k8s does.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("examples: %v (CI=true, so this fails)", err)
	}
	t.Skipf("examples: %v (skipped; set CI=true to fail)", err)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
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
	return "…" + s[len(s)-n:]
}

// waitFor polls cond every 250ms until it holds or within passes; the
// failure names what was missing last.
func waitFor(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		ok, why := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not seen within %s: %s", what, within, strings.TrimSpace(why))
		case <-time.After(250 * time.Millisecond):
		}
	}
}
