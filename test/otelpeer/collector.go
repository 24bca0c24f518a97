// Package otelpeer runs a real OpenTelemetry Collector (built by
// scripts/build-otelcol.sh with the official builder) as a test peer of obs:
// a Sink that receives OTLP and writes what it got to OTLP JSON files, and a
// Forwarder that receives OTLP and sends it on to a target over gRPC or HTTP.
//
// Typical use, pushing data through a real Collector into a real Collector:
//
//	sink := otelpeer.StartSink(t)
//	fwd := otelpeer.StartForwarder(t, sink.GRPCAddr, "grpc", otelpeer.WithoutQueue())
//	// ... export OTLP to fwd.GRPCAddr or fwd.HTTPAddr ...
//	logs := sink.WaitLogRecords(t, n, 30*time.Second)
//
// The collector binary comes from Binary: $OBS_OTELCOL if set, else the
// output of scripts/build-otelcol.sh (a cold build takes minutes; later
// calls return at once). If it cannot be built the test is skipped, or
// fails when CI=true.
//
// It is for tests only. Every process it starts is killed in t.Cleanup, every
// wait is bounded, and all listeners bind to 127.0.0.1.
package otelpeer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/obs-dev/obs/test/obsproc"
)

const (
	// BinaryEnv names an environment variable that, when set, holds the path
	// of an already built otelcol; the build script is then not run.
	BinaryEnv = "OBS_OTELCOL"

	buildScript = "scripts/build-otelcol.sh"
	// maxBuildTime bounds a cold build of the collector (2 shared cores).
	maxBuildTime = 30 * time.Minute
	// readyTimeout bounds how long Start waits for the receiver ports.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 15 * time.Second
	// startAttempts is how often the Sink and Forwarder helpers retry when a
	// port picked by FreePort was taken by someone else before the collector
	// bound it.
	startAttempts = 3
)

// Binary returns the path of the built otelcol, building it on first use with
// scripts/build-otelcol.sh (found by walking up from the working directory
// to the module root). When it cannot be built the test fails if the
// environment variable CI is "true", and is skipped otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := binary(t)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("otelpeer: build otelcol: %v", err)
		}
		t.Skipf("otelpeer: skipping, cannot build otelcol: %v", err)
	}
	return path
}

func binary(t testing.TB) (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("stat %s from %s: %w", p, BinaryEnv, err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("bash"); err != nil {
		return "", fmt.Errorf("find bash: %w", err)
	}
	timeout := maxBuildTime
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := tt.Deadline(); ok {
			// Leave the test some time to report the failure.
			if left := time.Until(d) - 30*time.Second; left < timeout {
				timeout = left
			}
		}
	}
	if timeout <= 0 {
		return "", errors.New("no time left before the test deadline")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, buildScript))
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// Kill the whole group (go, compile, link) when the timeout hits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("run %s after %s: %w\n%s", buildScript, time.Since(start).Round(time.Second), err, tail(stderr.String(), 4000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := strings.TrimSpace(lines[len(lines)-1])
	if path == "" {
		return "", fmt.Errorf("run %s: no path printed", buildScript)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("stat built otelcol: %w", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Logf("otelpeer: built %s in %s", path, d.Round(time.Second))
	}
	return path, nil
}

// moduleRoot finds the directory holding go.mod and the build script,
// walking up from the working directory (go test runs in the package dir).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, buildScript)); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find %s: no module root above the working directory", buildScript)
		}
		dir = parent
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// FreePort returns a port on 127.0.0.1 that is free now and that no
// other caller in this test binary (of FreePort or of obsproc.Port, which
// it is) was ever given: below the kernel's ephemeral range, so that a
// port-0 listener or an outgoing connection cannot take it before the
// collector binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	return obsproc.Port(t, "127.0.0.1")
}

func freeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// Collector is a running otelcol process.
type Collector struct {
	// GRPCAddr and HTTPAddr are the host:port of the collector's own OTLP
	// receiver, when it has one (set by StartSink and StartForwarder).
	GRPCAddr, HTTPAddr string
	// Dir is the collector's private directory (config, log, output files).
	Dir string
	// ConfigPath and LogPath are the config file and the combined
	// stdout/stderr of the process.
	ConfigPath, LogPath string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // result of Wait, readable after done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start writes configYAML into a new t.TempDir(), starts otelcol with it and
// waits until every address in readyAddrs (host:port, normally the configured
// receiver endpoints) accepts TCP connections. The process is killed in
// t.Cleanup, and its output is logged there when the test failed.
func Start(t testing.TB, configYAML string, readyAddrs ...string) *Collector {
	t.Helper()
	bin := Binary(t)
	c, err := start(t, bin, configYAML, readyAddrs)
	if err != nil {
		t.Fatalf("otelpeer: %v", err)
	}
	return c
}

func start(t testing.TB, bin, configYAML string, readyAddrs []string) (*Collector, error) {
	dir := t.TempDir()
	c := &Collector{
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "config.yaml"),
		LogPath:    filepath.Join(dir, "otelcol.log"),
		done:       make(chan struct{}),
	}
	if err := os.WriteFile(c.ConfigPath, []byte(configYAML), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	logFile, err := os.Create(c.LogPath)
	if err != nil {
		return nil, fmt.Errorf("create log file: %w", err)
	}
	c.cmd = exec.Command(bin, "--config", "file:"+c.ConfigPath)
	c.cmd.Dir = dir
	c.cmd.Stdout = logFile
	c.cmd.Stderr = logFile
	c.cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	// The only goroutine here: it reaps the process; Kill/Stop wait for it.
	go func() {
		c.err = c.cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("otelpeer: otelcol output (%s):\n%s", c.LogPath, tail(c.Output(), 16000))
		}
	})
	if err := c.waitReady(readyAddrs, readyTimeout); err != nil {
		c.Kill()
		return nil, fmt.Errorf("%w\notelcol output:\n%s", err, tail(c.Output(), 8000))
	}
	return c, nil
}

func (c *Collector) waitReady(addrs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		for {
			select {
			case <-c.done:
				return fmt.Errorf("otelcol exited before %s was ready: %v", addr, c.err)
			default:
			}
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("wait for %s after %s: %w", addr, timeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Output returns what the process has written to stdout and stderr so far.
func (c *Collector) Output() string {
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", c.LogPath, err)
	}
	return string(b)
}

// Pid returns the process id.
func (c *Collector) Pid() int { return c.cmd.Process.Pid }

// Done is closed when the process has exited.
func (c *Collector) Done() <-chan struct{} { return c.done }

// Stop asks the collector to shut down (SIGTERM, so exporters flush) and
// waits for it; after a bounded wait it is killed. It returns the error of
// a process that exited uncleanly. Stop and Kill may be called repeatedly.
func (c *Collector) Stop() error {
	c.stopOnce.Do(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			_ = c.cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
			select {
			case <-c.done:
			case <-time.After(stopTimeout):
				_ = c.cmd.Process.Kill()
				<-c.done
				c.stopErr = fmt.Errorf("stop otelcol: no exit %s after SIGTERM, killed", stopTimeout)
				return
			}
		}
		if c.err != nil {
			c.stopErr = fmt.Errorf("stop otelcol: %w", c.err)
		}
	})
	return c.stopErr
}

// Kill ends the process at once (SIGKILL, no flush) and waits until it is
// reaped. It is a no-op once the process has exited.
func (c *Collector) Kill() {
	c.stopOnce.Do(func() {
		select {
		case <-c.done:
			return
		default:
		}
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	<-c.done
}

// Pause stops the process with SIGSTOP (it keeps its sockets but answers
// nothing); Resume continues it. For tests of timeouts and backpressure.
func (c *Collector) Pause() error { return c.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process.
func (c *Collector) Resume() error { return c.cmd.Process.Signal(syscall.SIGCONT) }
