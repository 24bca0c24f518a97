// Package chaos runs an obs cluster in Docker — five gateways, two agents,
// an OTLP sink and a load generator, all FROM scratch images on a private
// network the test creates — and breaks it: a gateway killed, one paused,
// two partitioned away, all restarted one by one. After each step every
// member must agree on the membership, there must be one leader per side,
// and every record the generator got acknowledged must be at the sink.
//
// It needs a Docker Engine; nothing is pulled. Without a usable Docker it
// skips, or fails when CI=true.
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	obsImage   = "obs:chaos-test"
	toolsImage = "obs-chaos-tools:chaos-test"
	labelKey   = "obs-chaos"
)

// docker runs the docker CLI, bounded by timeout, and returns its trimmed
// combined output.
func docker(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, tail(s, 2000))
	}
	return s, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// requireDocker skips the test when Docker is not usable, or fails it when
// CI=true.
func requireDocker(t *testing.T) {
	t.Helper()
	v, err := docker(20*time.Second, "version", "--format", "{{.Server.Version}}")
	if err == nil {
		t.Logf("docker engine %s", v)
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("docker is not usable and CI=true: %v", err)
	}
	t.Skipf("docker is not usable: %v", err)
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	gomod := strings.TrimSpace(string(out))
	require.True(t, gomod != "" && gomod != os.DevNull, "no go.mod found: %q", gomod)
	return filepath.Dir(gomod)
}

// buildStatic builds pkg as a static binary into out. CGO_ENABLED=0 misses
// the build cache the other suites filled, so on 2 busy cores a cold build
// of obs has taken over 5 minutes; the bound only stops a hung toolchain.
func buildStatic(root, pkg, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// buildImages builds obs from deploy/Dockerfile, and one image holding
// /sink and /gen, each from a context dir that holds just the binaries.
func buildImages(t *testing.T) {
	t.Helper()
	root := moduleRoot(t)
	obsCtx, toolsCtx := t.TempDir(), t.TempDir()
	obsErr := make(chan error, 1)
	go func() { // the obs binary is the slow one; build the tools meanwhile
		obsErr <- buildStatic(root, "github.com/obs-dev/obs", filepath.Join(obsCtx, "obs"))
	}()
	errSink := buildStatic(root, "./test/chaos/cmd/sink", filepath.Join(toolsCtx, "sink"))
	errGen := buildStatic(root, "./test/chaos/cmd/gen", filepath.Join(toolsCtx, "gen"))
	require.NoError(t, <-obsErr)
	require.NoError(t, errSink)
	require.NoError(t, errGen)
	df, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(obsCtx, "Dockerfile"), df, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(toolsCtx, "Dockerfile"), []byte("FROM scratch\nCOPY sink gen /\n"), 0o644))
	for _, b := range []struct{ tag, dir string }{{obsImage, obsCtx}, {toolsImage, toolsCtx}} {
		_, err := docker(5*time.Minute, "build", "-q", "--label", labelKey+"=image", "-t", b.tag, b.dir)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		if _, err := docker(time.Minute, "rmi", "-f", obsImage, toolsImage); err != nil {
			t.Logf("remove images: %v", err)
		}
	})
}

// lab is one run's Docker resources, all labelled obs-chaos=<run id>.
type lab struct {
	t       *testing.T
	id      string
	dataNet string // --internal: gossip and OTLP, with fixed addresses
	ctlNet  string // only for the ports published to 127.0.0.1
	prefix  string // first three octets of dataNet's /24
	mu      sync.Mutex
	ctrs    map[string]*ctr
}

// ctr is one container; name is its short name (alias on dataNet, node
// name), full the container name.
type ctr struct {
	name, full, ip string
	port           string // container port published to the host
	hostAddr       string // 127.0.0.1:PORT, refreshed after every start
}

func newLab(t *testing.T) *lab {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	l := &lab{t: t, id: hex.EncodeToString(b), ctrs: map[string]*ctr{}}
	l.ctlNet = "obs-chaos-" + l.id + "-ctl"
	l.dataNet = "obs-chaos-" + l.id
	t.Cleanup(l.cleanup)
	_, err := docker(time.Minute, "network", "create", "--label", labelKey+"="+l.id, l.ctlNet)
	require.NoError(t, err)
	// A fixed subnet lets every member bind gossip to its dataNet address,
	// so the ctl network never carries gossip. Retry on overlaps.
	for attempt := 0; ; attempt++ {
		r := make([]byte, 2)
		_, _ = rand.Read(r)
		l.prefix = fmt.Sprintf("10.%d.%d", 100+int(r[0])%150, r[1])
		_, err = docker(time.Minute, "network", "create", "--internal", "--subnet", l.prefix+".0/24",
			"--label", labelKey+"="+l.id, l.dataNet)
		if err == nil {
			break
		}
		require.Less(t, attempt, 5, "create network: %v", err)
	}
	t.Logf("run %s: network %s (%s.0/24, internal), published ports on %s", l.id, l.dataNet, l.prefix, l.ctlNet)
	return l
}

// cleanup removes the run's containers (with their volumes) and networks,
// pass or fail; on failure it logs each container's output first.
func (l *lab) cleanup() {
	ids, _ := docker(time.Minute, "ps", "-aq", "--filter", "label="+labelKey+"="+l.id)
	if l.t.Failed() {
		for _, c := range l.ctrs {
			out, _ := docker(time.Minute, "logs", "--tail", "60", c.full)
			l.t.Logf("----- %s logs:\n%s", c.name, out)
		}
	}
	if ids != "" {
		if _, err := docker(2*time.Minute, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...); err != nil {
			l.t.Logf("remove containers: %v", err)
		}
	}
	for _, n := range []string{l.dataNet, l.ctlNet} {
		if _, err := docker(time.Minute, "network", "rm", n); err != nil && !strings.Contains(err.Error(), "No such network") {
			l.t.Logf("remove network: %v", err)
		}
	}
}

// create makes a container on ctlNet with port published to 127.0.0.1,
// copies files into it, connects it to dataNet at .host as alias name, and
// starts it.
func (l *lab) create(name string, host int, port string, files map[string]string, runArgs []string, args ...string) *ctr {
	t := l.t
	t.Helper()
	c := &ctr{name: name, full: "obs-chaos-" + l.id + "-" + name, ip: fmt.Sprintf("%s.%d", l.prefix, host), port: port}
	// No --hostname: Docker's DNS would resolve it to the ctl address.
	create := []string{"create", "--name", c.full, "--label", labelKey + "=" + l.id,
		"--network", l.ctlNet, "-p", "127.0.0.1::" + port}
	create = append(append(create, runArgs...), args...)
	_, err := docker(time.Minute, create...)
	require.NoError(t, err)
	l.mu.Lock()
	l.ctrs[name] = c
	l.mu.Unlock()
	for dst, src := range files {
		_, err := docker(time.Minute, "cp", src, c.full+":"+dst)
		require.NoError(t, err)
	}
	l.connect(c)
	l.start(c)
	return c
}

func (l *lab) connect(c *ctr) {
	_, err := docker(time.Minute, "network", "connect", "--ip", c.ip, "--alias", c.name, l.dataNet, c.full)
	require.NoError(l.t, err)
}

func (l *lab) disconnect(c *ctr) {
	_, err := docker(time.Minute, "network", "disconnect", l.dataNet, c.full)
	require.NoError(l.t, err)
}

// start starts (or after restart, re-reads) c and its published port.
func (l *lab) start(c *ctr) {
	t := l.t
	t.Helper()
	_, err := docker(time.Minute, "start", c.full)
	require.NoError(t, err)
	l.refreshPort(c)
}

func (l *lab) refreshPort(c *ctr) {
	t := l.t
	t.Helper()
	out, err := docker(time.Minute, "port", c.full, c.port+"/tcp")
	require.NoError(t, err)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "127.0.0.1:") {
			l.mu.Lock()
			c.hostAddr = strings.TrimSpace(line)
			l.mu.Unlock()
			return
		}
	}
	t.Fatalf("%s: no port published on 127.0.0.1: %q", c.name, out)
}

func (l *lab) addr(c *ctr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return c.hostAddr
}

// httpClient never uses a proxy: every address is 127.0.0.1.
var httpClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}

func (l *lab) getJSON(c *ctr, path string, v any) error {
	rsp, err := httpClient.Get("http://" + l.addr(c) + path)
	if err != nil {
		return fmt.Errorf("get %s %s: %w", c.name, path, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return fmt.Errorf("read %s %s: %w", c.name, path, err)
	}
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s %s: %s: %s", c.name, path, rsp.Status, tail(string(body), 300))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s %s: %w", c.name, path, err)
	}
	return nil
}

func (l *lab) post(c *ctr, path string) error {
	rsp, err := httpClient.Post("http://"+l.addr(c)+path, "text/plain", nil)
	if err != nil {
		return fmt.Errorf("post %s %s: %w", c.name, path, err)
	}
	_, _ = io.Copy(io.Discard, rsp.Body)
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("post %s %s: %s", c.name, path, rsp.Status)
	}
	return nil
}

// waitFor polls cond every 250ms until it holds or within passes; it
// returns how long it took, and fails the test with the last reason.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) time.Duration {
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
		time.Sleep(250 * time.Millisecond)
	}
}
