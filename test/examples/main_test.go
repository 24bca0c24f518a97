// Package examples runs the seed's Collector configs of deploy/examples
// for real as obs processes on this machine, the way a pod runs them:
// the service account token and CA in /var/run/secrets/kubernetes.io/
// serviceaccount (a private mount namespace per process, see pod_test.go),
// KUBERNETES_SERVICE_HOST/PORT naming a real kube-apiserver (test/k8s),
// the env vars the seed's manifests set, and the backends redirected by
// env vars to a loopback OTLP sink (test/otelpeer). TestMain builds obs
// once per run, or takes the binary named by OBS_BIN.
package examples

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// obsBin is the obs binary TestMain built; set once before any test runs.
var obsBin string

func TestMain(m *testing.M) {
	if p := os.Getenv("OBS_BIN"); p != "" {
		obsBin = p
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "obs-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples: create temp dir:", err)
		os.Exit(1)
	}
	if err := buildObs(dir); err != nil {
		fmt.Fprintln(os.Stderr, "examples:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// moduleRoot is the directory of go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("run go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("find module root: go env GOMOD printed %q", gomod)
	}
	return filepath.Dir(gomod), nil
}

// buildObs builds github.com/obs-dev/obs into dir/obs.
func buildObs(dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	obsBin = filepath.Join(dir, "obs")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", obsBin, "github.com/obs-dev/obs")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build obs: %w\n%s", err, b)
	}
	return nil
}
