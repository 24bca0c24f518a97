// Package e2e runs the obs binary as a real process between real
// OpenTelemetry Collectors (test/otelpeer): interop over gRPC and HTTP,
// durability across SIGKILL, backend outages with a small WAL, bad input,
// broken configs and secrets. TestMain builds obs once per run.
package e2e

import (
	"bufio"
	"bytes"
	"context"
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
	"go.uber.org/goleak"

	"github.com/obs-dev/obs/test/otelpeer"
)

// obsBin is the obs binary TestMain built for this run; it is set once
// before any test runs and only read afterwards.
var obsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "obs-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: create temp dir:", err)
		os.Exit(1)
	}
	if err := buildObs(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
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

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(otelpeer.FreePort(t)))
}

// obsNode is one obs member: its config, data dir and addresses. Start and
// Kill may be called repeatedly; every start appends to the same output
// buffer, which is logged when the test fails.
type obsNode struct {
	t                             testing.TB
	ConfigPath, DataDir           string
	GRPCAddr, HTTPAddr, AdminAddr string
	extraArgs                     []string
	out                           *syncBuffer
	cmd                           *exec.Cmd
	done                          chan struct{}
	starts                        int
}

// obsConfig are the parts of a test's obs config that vary.
type obsConfig struct {
	// Exporters is the YAML under "exporters:" (indented by two spaces).
	Exporters string
	// ExporterIDs are the exporters every pipeline sends to.
	ExporterIDs []string
	// Processors is the YAML under "processors:"; ProcessorIDs lists the
	// pipeline's processors. Empty means batch with defaults.
	Processors   string
	ProcessorIDs []string
	// WALMaxBytes is the wal.max_bytes value (e.g. "16MiB"); empty leaves
	// the default.
	WALMaxBytes string
}

// newObs writes the config of a member with an OTLP receiver on free
// loopback ports, a pipeline per signal, and the given exporters.
func newObs(t testing.TB, c obsConfig, extraArgs ...string) *obsNode {
	t.Helper()
	dir := t.TempDir()
	n := &obsNode{
		t:          t,
		ConfigPath: filepath.Join(dir, "obs.yaml"),
		DataDir:    filepath.Join(dir, "data"),
		GRPCAddr:   freeAddr(t),
		HTTPAddr:   freeAddr(t),
		AdminAddr:  freeAddr(t),
		extraArgs:  extraArgs,
		out:        &syncBuffer{},
	}
	if c.Processors == "" {
		c.Processors = "  batch: {}\n"
		c.ProcessorIDs = []string{"batch"}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
processors:
%sexporters:
%sservice:
  pipelines:
`, n.GRPCAddr, n.HTTPAddr, c.Processors, c.Exporters)
	for _, sig := range []string{"logs", "metrics", "traces"} {
		fmt.Fprintf(&b, "    %s:\n      receivers: [otlp]\n      processors: [%s]\n      exporters: [%s]\n",
			sig, strings.Join(c.ProcessorIDs, ", "), strings.Join(c.ExporterIDs, ", "))
	}
	if c.WALMaxBytes != "" {
		fmt.Fprintf(&b, "wal:\n  max_bytes: %s\n", c.WALMaxBytes)
	}
	require.NoError(t, os.WriteFile(n.ConfigPath, []byte(b.String()), 0o600))
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			t.Logf("obs output (%d starts, config %s):\n%s", n.starts, n.ConfigPath, tail(n.out.String(), 20000))
		}
	})
	return n
}

// Start runs obs and waits until /readyz answers 200 and both receiver
// ports accept connections.
func (n *obsNode) Start() {
	t := n.t
	t.Helper()
	require.Nil(t, n.cmd, "obs already running")
	args := append([]string{"run", "--role", "all", "--config", n.ConfigPath, "--data-dir", n.DataDir,
		"--admin-addr", n.AdminAddr, "--no-cluster"}, n.extraArgs...)
	cmd := exec.Command(obsBin, args...)
	n.starts++
	fmt.Fprintf(n.out, "----- start %d: obs %s\n", n.starts, strings.Join(args, " "))
	cmd.Stdout = n.out
	cmd.Stderr = n.out
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	require.NoError(t, cmd.Start())
	n.cmd = cmd
	done := make(chan struct{})
	n.done = done
	// Reaps the process; Kill waits for it.
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-done:
			n.cmd = nil
			t.Fatalf("obs exited during start: %s", cmd.ProcessState)
		default:
		}
		if n.ready(client) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("obs not ready after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *obsNode) ready(client *http.Client) bool {
	rsp, err := client.Get("http://" + n.AdminAddr + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, rsp.Body)
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return false
	}
	for _, a := range []string{n.GRPCAddr, n.HTTPAddr} {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// Kill ends obs with SIGKILL (no drain) and waits until it is reaped.
func (n *obsNode) Kill() {
	if n.cmd == nil {
		return
	}
	_ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
	fmt.Fprintf(n.out, "----- killed (SIGKILL)\n")
	n.cmd = nil
}

// Stop ends obs with SIGTERM and waits (bounded) for a clean exit.
func (n *obsNode) Stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.t.Errorf("obs did not stop 30s after SIGTERM")
		n.Kill()
		return
	}
	n.cmd = nil
}

// Output returns everything obs wrote so far, over all starts.
func (n *obsNode) Output() string { return n.out.String() }

// Metrics scrapes /metrics and returns the sum of every sample of name
// whose labels contain all of the given label pairs ("k=\"v\"").
func (n *obsNode) Metric(name string, labels ...string) (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	rsp, err := client.Get("http://" + n.AdminAddr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("scrape obs: %w", err)
	}
	defer rsp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(rsp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("parse %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not found", name, labels)
	}
	return sum, nil
}

// runObs runs the obs binary to completion with args and returns its exit
// code, stdout and stderr. It is bounded by timeout.
func runObs(t testing.TB, timeout time.Duration, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, obsBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "obs %v did not exit within %s; stderr:\n%s", args, timeout, e.String())
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "run obs %v: %v", args, err)
		return ee.ExitCode(), o.String(), e.String()
	}
	return 0, o.String(), e.String()
}

// otlpExporter returns the exporters YAML of an otlp (gRPC) exporter to
// addr with quick retries that never give up.
func otlpExporter(id, addr string) string {
	return fmt.Sprintf(`  %s:
    endpoint: %q
    tls:
      insecure: true
%s`, id, addr, fastRetry)
}

// otlphttpExporter returns the exporters YAML of an otlphttp exporter.
func otlphttpExporter(id, addr string) string {
	return fmt.Sprintf(`  %s:
    endpoint: %q
%s`, id, "http://"+addr, fastRetry)
}

const fastRetry = `    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 1s
      max_elapsed_time: 0s
`
