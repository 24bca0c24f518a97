package examples

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/obs-dev/obs/test/obsproc"
)

// pod is an obs process (test/obsproc) started the way the kubelet starts
// a container: in its own mount namespace, /run is a fresh tmpfs holding
// the service account's token and CA (the projected kube-api-access
// volume) and its own resolv.conf, and /var/log is a fresh tmpfs for the
// pod logs the test writes (the varlogpods hostPath). All of it is
// private: nothing on this machine's own /run, /etc or /var/log changes.
type pod struct{ *obsproc.Proc }

// podSpec is what the container gets.
type podSpec struct {
	configFile, role string
	env              []string // KEY=VALUE, the pod's env
	token, caPEM     []byte   // the service account volume
	adminAddr        string   // HOST:PORT of obs' admin server (the config's telemetry address)
}

// unshareScript runs in the new mount namespace, as root, then execs obs.
// The pod's resolv.conf names 127.0.0.1, where nothing answers: a name in
// the seed's configs (the gateway's DNS SRV job) fails on loopback rather
// than leaving the machine.
const unshareScript = `set -e
rc=$(readlink -f /etc/resolv.conf)
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p "$(dirname "$rc")"
[ -e "$rc" ] || : >"$rc"
mount --bind "$OBS_POD_DIR/resolv.conf" "$rc"
sa=/run/secrets/kubernetes.io/serviceaccount
mkdir -p "$sa"
cp "$OBS_POD_DIR/token" "$OBS_POD_DIR/ca.crt" "$sa/"
mount -t tmpfs -o mode=0755 tmpfs /var/log
mkdir -p /var/log/pods
exec "$@"`

// startPod starts obs on the example config and waits until /readyz
// answers 200 (at most 90 s: the gateway waits for its Kubernetes cache).
func startPod(t testing.TB, spec podSpec) *pod {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil || os.Geteuid() != 0 {
		unavailable(t, fmt.Errorf("a pod-like mount namespace needs root and unshare(1): euid %d, %v", os.Geteuid(), err))
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "token"), spec.token, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "ca.crt"), spec.caPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644))
	return &pod{obsproc.Start(t, obsproc.Options{
		Name: spec.role, Role: spec.role, ConfigFile: spec.configFile, AdminAddr: spec.adminAddr,
		Env:          append([]string{"OBS_POD_DIR=" + dir}, spec.env...),
		ReadyTimeout: 90 * time.Second,
		Wrap:         []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", unshareScript, "sh"},
	})}
}

// root is the pod's file system as this (outer) process sees it.
func (p *pod) root() string { return fmt.Sprintf("/proc/%d/root", p.Pid()) }

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
