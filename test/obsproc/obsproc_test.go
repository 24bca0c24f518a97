package obsproc

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

// logsConfig is an obs config with one OTLP gRPC receiver on a templated
// port and a debug exporter.
const logsConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{addr "grpc"}}
exporters:
  debug: {}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`

// TestPortNeverTwice: many ports on two loopback addresses are all
// distinct, below the kernel's ephemeral range, and bindable for TCP and
// UDP when handed out; a port in use is not bindable; a non-loopback
// address is refused.
func TestPortNeverTwice(t *testing.T) {
	seen := map[int]string{}
	high := ephemeralLow()
	for i := range 400 {
		ip := "127.0.0.1"
		if i%2 == 1 {
			ip = "127.0.0.2"
		}
		p := Port(t, ip)
		require.NotContains(t, seen, p, "port %d handed out twice (%s, then %s)", p, seen[p], ip)
		seen[p] = ip
		require.GreaterOrEqual(t, p, lowestPort)
		require.Less(t, p, high, "inside the ephemeral range")
		require.NoError(t, bindable(ip, p))
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	busy := l.Addr().(*net.TCPAddr).Port
	require.Error(t, bindable("127.0.0.1", busy), "a listened port must not count as bindable")
	require.NoError(t, l.Close())

	_, err = pickPort("192.0.2.1")
	require.ErrorContains(t, err, "not a loopback address")
}

// TestStartKillRestartStop runs a real obs: it is ready when Start
// returns, keeps its ports across a SIGKILL and a second start, answers
// its admin endpoints, and exits 0 on SIGTERM.
func TestStartKillRestartStop(t *testing.T) {
	p := Start(t, Options{Name: "op", Config: logsConfig})
	grpc := p.Addr("grpc")
	host, _, err := net.SplitHostPort(grpc)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	require.NotEqual(t, grpc, p.AdminAddr())
	require.Equal(t, "http://"+p.AdminAddr(), p.AdminURL())
	require.Empty(t, p.GossipAddr())
	require.True(t, p.Running())
	dial(t, grpc)

	capacity, err := p.Metric("obs_wal_capacity_bytes")
	require.NoError(t, err)
	require.Positive(t, capacity)
	_, err = p.Metric("obs_no_such_metric_total")
	require.ErrorContains(t, err, "not found")
	require.ErrorIs(t, err, ErrNoSample)
	// --no-cluster: /cluster answers 404, which GetJSON reports.
	var v map[string]any
	require.ErrorContains(t, p.GetJSON("/cluster", &v), "404")

	pid := p.Pid()
	p.Kill()
	require.False(t, p.Running())
	require.Zero(t, p.Pid())
	p.Start()
	require.NotEqual(t, pid, p.Pid())
	require.Equal(t, grpc, p.Addr("grpc"), "a restart keeps the ports")
	dial(t, grpc)

	require.NoError(t, p.Stop())
	require.False(t, p.Running())
	log := p.Log()
	require.Contains(t, log, "----- start 1: obs run --role all")
	require.Contains(t, log, "----- killed (SIGKILL)")
	require.Contains(t, log, "----- start 2: obs run")
	require.Contains(t, log, "----- stopped (SIGTERM): exit status 0")
	require.Contains(t, log, "--node-name op")
}

// TestGossipGiven: a gossip address chosen before New is the member's
// --cluster-bind, so that members can join each other both ways.
func TestGossipGiven(t *testing.T) {
	addr := Addr(t, "127.0.0.2")
	p := New(t, Options{Name: "g", Role: "gateway", IP: "127.0.0.2", Cluster: true, Gossip: addr, Config: logsConfig})
	require.Equal(t, addr, p.GossipAddr())
	require.Contains(t, strings.Join(p.args(), " "), "--cluster-bind "+addr)
	require.NotEqual(t, addr, p.AdminAddr())
}

// TestWrapAndAdminAddr: a wrapper command that execs obs runs it (its
// output is in the log, and the pid is obs's own, so SIGTERM reaches
// obs and it exits 0), and a given admin address is the one obs serves.
func TestWrapAndAdminAddr(t *testing.T) {
	admin := Addr(t, "127.0.0.4")
	p := Start(t, Options{Name: "w", AdminAddr: admin, Config: logsConfig,
		Wrap: []string{"sh", "-c", `echo "wrapper ran"; exec "$@"`, "sh"}})
	require.Equal(t, admin, p.AdminAddr())
	exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", p.Pid()))
	require.NoError(t, err)
	bin, err := os.Stat(Build(t))
	require.NoError(t, err)
	require.True(t, os.SameFile(bin, exe), "the pid is obs's, not the wrapper's")
	require.NoError(t, p.Stop())
	require.Contains(t, p.Log(), "wrapper ran")
}

// TestClusterAndSignal: with Cluster, a member gossips on its own port and
// a second one joins it (both list each other on /cluster); an OBS_*
// setting of the test's environment does not reach them, one in
// Options.Env does; Signal and Wait see a SIGTERM through to a clean exit.
func TestClusterAndSignal(t *testing.T) {
	t.Setenv("OBS_CLUSTER_NAME", "from-the-shell")
	a := Start(t, Options{Name: "a", Role: "gateway", IP: "127.0.0.2", Cluster: true, Config: logsConfig})
	b := Start(t, Options{Name: "b", Role: "gateway", IP: "127.0.0.3", Cluster: true, Join: []string{a.GossipAddr()}, Config: logsConfig})
	require.True(t, strings.HasPrefix(a.GossipAddr(), "127.0.0.2:"), a.GossipAddr())
	require.NotEqual(t, a.GossipAddr(), a.AdminAddr())

	type view struct {
		Cluster string `json:"cluster"`
		Members []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"members"`
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var va, vb view
		errA, errB := a.GetJSON("/cluster", &va), b.GetJSON("/cluster", &vb)
		if errA == nil && errB == nil && len(va.Members) == 2 && len(vb.Members) == 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "a and b do not list each other within 15s: %v %v %+v %+v", errA, errB, va, vb)
		time.Sleep(100 * time.Millisecond)
	}
	var v view
	require.NoError(t, a.GetJSON("/cluster", &v))
	require.Equal(t, "obs", v.Cluster, "the default, not OBS_CLUSTER_NAME of the test's environment")
	c := Start(t, Options{Name: "c", Role: "gateway", IP: "127.0.0.4", Cluster: true, Config: logsConfig,
		Env: []string{"OBS_CLUSTER_NAME=from-options"}})
	require.NoError(t, c.GetJSON("/cluster", &v))
	require.Equal(t, "from-options", v.Cluster)

	require.NoError(t, b.Signal(syscall.SIGTERM))
	st, err := b.Wait(30 * time.Second)
	require.NoError(t, err)
	require.True(t, st.Success(), "exit after SIGTERM: %s", st)
	require.False(t, b.Running())
	require.Error(t, b.Signal(syscall.SIGTERM), "signal to a process that is not running")
}

// TestNotReadyError: a process that cannot bind its receiver port exits;
// Start fails the test with an error that says so and carries obs's own
// log line about it.
func TestNotReadyError(t *testing.T) {
	ft := &fatalTB{TB: t}
	p := New(ft, Options{Name: "blocked", Config: logsConfig})
	l, err := net.Listen("tcp", p.Addr("grpc"))
	require.NoError(t, err)
	defer l.Close()

	done := make(chan struct{})
	go func() { // Fatalf ends this goroutine, as it would end a test
		defer close(done)
		p.Start()
	}()
	select {
	case <-done:
	case <-time.After(2 * defaultReadyTimeout):
		t.Fatal("Start neither returned nor failed")
	}
	msg := ft.fatal()
	require.Contains(t, msg, "blocked exited before it was ready: exit status 1")
	require.Contains(t, msg, "log tail:")
	require.Contains(t, msg, "listen tcp "+p.Addr("grpc")+": bind: address already in use")
	require.False(t, p.Running())
}

// TestRun runs obs to completion and returns its exit code and output.
func TestRun(t *testing.T) {
	code, stdout, stderr := Run(t, 20*time.Second, nil, "version")
	require.Zero(t, code, stderr)
	require.NotEmpty(t, strings.TrimSpace(stdout))
	code, _, stderr = Run(t, 20*time.Second, nil, "validate", "--config", "/nonexistent/obs.yaml")
	require.NotZero(t, code)
	require.Contains(t, stderr, "/nonexistent/obs.yaml")
}

// TestSample: one line of the text exposition format at a time.
func TestSample(t *testing.T) {
	for _, tc := range []struct {
		line   string
		labels []string
		want   float64
		ok     bool
	}{
		{`m_total 3`, nil, 3, true},
		{`m_total{a="1",b="2"} 4.5`, []string{`b="2"`}, 4.5, true},
		{`m_total{a="1"} 4.5`, []string{`b="2"`}, 0, false},
		{`m_total_other 1`, nil, 0, false},
		{`# HELP m_total x`, nil, 0, false},
	} {
		got, ok, err := sample(tc.line, "m_total", tc.labels)
		require.NoError(t, err, tc.line)
		require.Equal(t, tc.ok, ok, tc.line)
		require.Equal(t, tc.want, got, tc.line)
	}
	_, _, err := sample(`m_total x`, "m_total", nil)
	require.Error(t, err)
}

// fatalTB records Fatalf instead of failing the test, and ends the calling
// goroutine as the real one does.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) fatal() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func dial(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

// TestWaitFor returns once the condition holds, and fails the test with
// the last reason when it never does.
func TestWaitFor(t *testing.T) {
	n := 0
	took := WaitFor(t, 5*time.Second, "third poll", func() (bool, string) {
		n++
		return n == 3, fmt.Sprintf("poll %d", n)
	})
	require.Equal(t, 3, n)
	require.GreaterOrEqual(t, took, 2*pollEvery)

	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() { // Fatalf ends this goroutine, as it would end a test
		defer close(done)
		WaitFor(ft, 200*time.Millisecond, "never", func() (bool, string) { return false, "still no" })
	}()
	<-done
	require.Equal(t, "never: not within 200ms: still no", ft.fatal())
}
