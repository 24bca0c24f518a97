package obsproc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

const (
	// defaultReadyTimeout bounds Start's wait for /readyz.
	defaultReadyTimeout = 30 * time.Second
	// stopTimeout bounds Stop's wait after SIGTERM; obs's own
	// --shutdown-timeout (set below it) must have passed by then.
	stopTimeout = 30 * time.Second
	// shutdownFlag is the --shutdown-timeout every process gets.
	shutdownFlag = "10s"
	// failTail is how much of the log a failed test prints per process.
	failTail = 20000
	// errTail is how much of the log an error message carries.
	errTail = 4000
)

// Options says how to run one obs process. Every field is optional but
// one of Config and ConfigFile.
type Options struct {
	// Role is --role: "agent", "gateway" or "all" (the default).
	Role string
	// Name is --node-name and the name in messages; default "obs".
	Name string
	// IP is the loopback address every port of the process is on; default
	// 127.0.0.1.
	IP string
	// Config is the config's YAML as a text/template: {{addr "grpc"}}
	// stands for IP:port and {{port "grpc"}} for the port alone, of one
	// fresh port per name (see Port). Those ports are the process's
	// listeners: Start waits until each accepts TCP connections, and
	// Proc.Addr returns them by name.
	Config string
	// ConfigFile is the path of a config used as it is, instead of Config.
	ConfigFile string
	// Cluster turns gossip on, bound to a fresh port of IP
	// (--cluster-bind); without it the process runs with --no-cluster.
	Cluster bool
	// Join is the seeds' gossip addresses (--join); needs Cluster.
	Join []string
	// Gossip is the --cluster-bind address (IP:port), with Cluster;
	// default a fresh port (Addr) of IP. Set it, from Addr, when the
	// members must know each other's address before New, as when each
	// joins all the others and a restarted one must find them again.
	Gossip string
	// DataDir is --data-dir; default a fresh temp dir of the test.
	DataDir string
	// Env is added to the environment, which is the test's without the
	// variables obs's flags read, KUBECONFIG and proxies (see environ).
	Env []string
	// Args are more flags of "obs run", after the ones set here.
	Args []string
	// ReadyTimeout bounds the wait for /readyz; default 30s.
	ReadyTimeout time.Duration
	// AdminAddr is --admin-addr (IP:port); default a fresh port (Addr) of
	// IP. Set it for a config whose own fixed ports are under test, as a
	// pod's (obs's admin port is 8888 there).
	AdminAddr string
	// Wrap is a command that runs obs: the process started is Wrap[0]
	// with Wrap[1:], then the obs binary and its arguments, and it must
	// exec obs in the end (e.g. unshare(1) and a shell script ending in
	// exec "$@"), so that Pid, Signal and Kill reach obs itself.
	Wrap []string
}

// Proc is one obs process of a test: its config, data dir and addresses,
// which stay the same when it is started again after Kill or Stop. Every
// start appends to the same log.
type Proc struct {
	tb         testing.TB
	opts       Options
	configPath string
	admin      string
	gossip     string
	addrs      map[string]string
	log        *syncBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// Start prepares a process (New) and starts it (Proc.Start): when it
// returns, /readyz answers 200 and every templated port accepts
// connections. The test fails, with the log tail, if it does not.
func Start(tb testing.TB, o Options) *Proc {
	tb.Helper()
	p := New(tb, o)
	p.Start()
	return p
}

// New writes the config and picks the ports of a process without starting
// it, so that its addresses (e.g. the gossip address for the others'
// Join) are known before it runs. The process is killed at the end of the
// test, and its log tail logged if the test failed.
func New(tb testing.TB, o Options) *Proc {
	tb.Helper()
	if (o.Config == "") == (o.ConfigFile == "") {
		tb.Fatalf("obsproc: set exactly one of Options.Config and Options.ConfigFile")
	}
	if (len(o.Join) > 0 || o.Gossip != "") && !o.Cluster {
		tb.Fatalf("obsproc: Options.Join and Options.Gossip need Options.Cluster")
	}
	if o.Role == "" {
		o.Role = "all"
	}
	if o.Name == "" {
		o.Name = "obs"
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = defaultReadyTimeout
	}
	dir := tb.TempDir()
	if o.DataDir == "" {
		o.DataDir = filepath.Join(dir, "data")
	}
	p := &Proc{
		tb: tb, opts: o,
		configPath: o.ConfigFile,
		admin:      o.AdminAddr,
		addrs:      map[string]string{},
		log:        &syncBuffer{},
	}
	if p.admin == "" {
		p.admin = Addr(tb, o.IP)
	}
	if o.Cluster {
		p.gossip = o.Gossip
		if p.gossip == "" {
			p.gossip = Addr(tb, o.IP)
		}
	}
	if o.Config != "" {
		text, err := p.expand(o.Config)
		if err != nil {
			tb.Fatalf("obsproc: %s: %v", o.Name, err)
		}
		p.configPath = filepath.Join(dir, "obs.yaml")
		if err := os.WriteFile(p.configPath, []byte(text), 0o600); err != nil {
			tb.Fatalf("obsproc: write config of %s: %v", o.Name, err)
		}
	}
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("%s log (%d starts, config %s):\n%s", o.Name, p.starts, p.configPath, tail(p.Log(), failTail))
		}
	})
	return p
}

// expand runs the config template, giving each name of addr/port its own
// fresh port.
func (p *Proc) expand(text string) (string, error) {
	addr := func(name string) string {
		if a, ok := p.addrs[name]; ok {
			return a
		}
		a := Addr(p.tb, p.opts.IP)
		p.addrs[name] = a
		return a
	}
	port := func(name string) (string, error) {
		_, port, err := net.SplitHostPort(addr(name))
		return port, err
	}
	tmpl, err := template.New("config").Option("missingkey=error").
		Funcs(template.FuncMap{"addr": addr, "port": port}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse config template: %w", err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, nil); err != nil {
		return "", fmt.Errorf("expand config template: %w", err)
	}
	return b.String(), nil
}

// Start runs the process (again, after Kill or Stop, with the same
// config, data dir and ports) and waits until it is ready; the test fails,
// with the log tail, if it is not within Options.ReadyTimeout.
func (p *Proc) Start() {
	p.tb.Helper()
	bin := Build(p.tb)
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		p.tb.Fatalf("obsproc: %s already running", p.opts.Name)
	}
	args := p.args()
	cmd := exec.Command(bin, args...)
	if w := p.opts.Wrap; len(w) > 0 {
		cmd = exec.Command(w[0], append(append(slices.Clone(w[1:]), bin), args...)...)
	}
	p.starts++
	fmt.Fprintf(p.log, "----- start %d: obs %s\n", p.starts, strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.Env = environ(p.opts.Env)
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		p.tb.Fatalf("obsproc: start %s: %v", p.opts.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() { // reaps the process; Kill, Stop and Wait wait for it
		_ = cmd.Wait()
		close(done)
	}()
	if err := p.WaitReady(p.opts.ReadyTimeout); err != nil {
		p.Kill() // reaps it, so that it is not Running and may start again
		p.tb.Fatalf("obsproc: %v", err)
	}
}

func (p *Proc) args() []string {
	o := p.opts
	args := []string{"run", "--role", o.Role, "--config", p.configPath, "--data-dir", o.DataDir,
		"--admin-addr", p.admin, "--node-name", o.Name, "--shutdown-timeout", shutdownFlag}
	if o.Cluster {
		args = append(args, "--cluster-bind", p.gossip)
		for _, j := range o.Join {
			args = append(args, "--join", j)
		}
	} else {
		args = append(args, "--no-cluster")
	}
	return append(args, o.Args...)
}

// WaitReady polls until GET /readyz answers 200 and every templated port
// accepts a TCP connection. Its error says what was last seen (the
// /readyz answer, or the exit status if the process ended) and carries
// the log tail.
func (p *Proc) WaitReady(within time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s is not running", p.opts.Name)
	}
	deadline := time.Now().Add(within)
	for {
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready: %s; log tail:\n%s",
				p.opts.Name, p.exitState(), tail(p.Log(), errTail))
		default:
		}
		why := p.notReady()
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %s; log tail:\n%s", p.opts.Name, within, why, tail(p.Log(), errTail))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// notReady says why the process is not ready yet, or "" when it is.
func (p *Proc) notReady() string {
	status, body, err := p.get("/readyz")
	if err != nil {
		return err.Error()
	}
	if status != 200 {
		return fmt.Sprintf("GET /readyz: %d: %s", status, strings.TrimSpace(string(body)))
	}
	names := make([]string, 0, len(p.addrs))
	for n := range p.addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c, err := net.DialTimeout("tcp", p.addrs[n], time.Second)
		if err != nil {
			return fmt.Sprintf("port %q: %v", n, err)
		}
		_ = c.Close()
	}
	return ""
}

func (p *Proc) exitState() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.ProcessState == nil {
		return "not started"
	}
	return p.cmd.ProcessState.String()
}

// Signal sends sig to the running process.
func (p *Proc) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("signal %s: %s is not running", sig, p.opts.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.opts.Name, err)
	}
	return nil
}

// Wait waits, at most within, until the process exits, and returns how it
// exited; it is then no longer running and may be started again.
func (p *Proc) Wait(within time.Duration) (*os.ProcessState, error) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil, fmt.Errorf("wait: %s is not running", p.opts.Name)
	}
	select {
	case <-done:
	case <-time.After(within):
		return nil, fmt.Errorf("%s did not exit within %s", p.opts.Name, within)
	}
	p.mu.Lock()
	if p.cmd == cmd {
		p.cmd, p.done = nil, nil
	}
	p.mu.Unlock()
	return cmd.ProcessState, nil
}

// Kill ends the process with SIGKILL (no drain) and waits until it is
// reaped; it does nothing if the process is not running.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	_ = p.Signal(syscall.SIGKILL)
	if _, err := p.Wait(stopTimeout); err != nil {
		p.tb.Errorf("obsproc: %v after SIGKILL", err)
		return
	}
	fmt.Fprintf(p.log, "----- killed (SIGKILL)\n")
}

// Stop ends the process with SIGTERM and waits for it to exit. The error
// says if it did not exit 0 or not within 30s (it is killed then).
func (p *Proc) Stop() error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	st, err := p.Wait(stopTimeout)
	if err != nil {
		p.Kill()
		return fmt.Errorf("%w after SIGTERM", err)
	}
	fmt.Fprintf(p.log, "----- stopped (SIGTERM): %s\n", st)
	if !st.Success() {
		return fmt.Errorf("%s exit after SIGTERM: %s; log tail:\n%s", p.opts.Name, st, tail(p.Log(), errTail))
	}
	return nil
}

// Running reports whether the process was started and has not been
// waited for (by Kill, Stop or Wait) since.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Pid is the process id of the running process, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Name is Options.Name (the --node-name).
func (p *Proc) Name() string { return p.opts.Name }

// Addr is IP:port of the port the config template named name; the test
// fails if the template has no such name.
func (p *Proc) Addr(name string) string {
	a, ok := p.addrs[name]
	if !ok {
		p.tb.Fatalf("obsproc: %s has no port %q in its config template", p.opts.Name, name)
	}
	return a
}

// AdminAddr is the IP:port of --admin-addr.
func (p *Proc) AdminAddr() string { return p.admin }

// AdminURL is the admin port's base URL, "http://IP:port".
func (p *Proc) AdminURL() string { return "http://" + p.admin }

// GossipAddr is the IP:port of --cluster-bind, or "" without Cluster.
func (p *Proc) GossipAddr() string { return p.gossip }

// ConfigPath is the config file the process runs with.
func (p *Proc) ConfigPath() string { return p.configPath }

// DataDir is the --data-dir.
func (p *Proc) DataDir() string { return p.opts.DataDir }

// Log is everything the process wrote to stdout and stderr, over all
// starts, with a "----- start N: obs ARGS" line before each.
func (p *Proc) Log() string { return p.log.String() }
