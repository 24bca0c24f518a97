package k8sint

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	k8stest "github.com/obs-dev/obs/test/k8s"
)

// kubeconfigGatewayConfig is a gateway whose k8sattributes reads the
// kubeconfig (auth_type: kubeConfig): its /readyz stays red until the
// cache listed the API server's pods.
const kubeconfigGatewayConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  k8sattributes:
    auth_type: kubeConfig
exporters:
  debug: {}
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [k8sattributes]
      exporters: [debug]
`

// TestKubeconfigFlag: obs run --kubeconfig FILE, with no KUBECONFIG in
// the environment, reaches the API server that file names; a path that
// does not exist stops obs at once with an error naming the path. About
// 10 s (one API server, one gateway).
func TestKubeconfigFlag(t *testing.T) {
	cl := k8stest.Start(t)
	ns := cl.Namespace(t, "kubeconfig", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := cl.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "shop/web:1.2"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// A kubeconfig of its own, where a laptop would keep one.
	kc := filepath.Join(t.TempDir(), "laptop.kubeconfig")
	b, err := os.ReadFile(cl.Kubeconfig)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(kc, b, 0o600))

	t.Run("reaches the API server", func(t *testing.T) {
		g := newGateway(t, "kc1", "127.0.0.6", "", "", kubeconfigGatewayConfig)
		g.args = []string{"--kubeconfig", kc}
		g.start() // /readyz 200: the k8sattributes cache has synced
		waitFor(t, 10*time.Second, "the pod in the cache", func() (bool, string) {
			code, body, err := get(g.admin, "/metrics")
			if err != nil || code != 200 {
				return false, "get /metrics failed"
			}
			for _, line := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(line, `obs_enrich_k8s_cache_objects{kind="pod"} `) {
					return strings.TrimPrefix(line, `obs_enrich_k8s_cache_objects{kind="pod"} `) == "1", line
				}
			}
			return false, "no obs_enrich_k8s_cache_objects{kind=\"pod\"}"
		})
	})

	t.Run("missing file", func(t *testing.T) {
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "obs.yaml")
		require.NoError(t, os.WriteFile(cfgPath, []byte(kubeconfigGatewayConfig), 0o600))
		missing := filepath.Join(dir, "no-such.kubeconfig")
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, obsBin, "run", "--role", "gateway", "--no-cluster", "--config", cfgPath,
			"--data-dir", filepath.Join(dir, "data"), "--admin-addr", "127.0.0.1:0", "--kubeconfig", missing)
		cmd.Env = environ()
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "obs must exit with an error, not run or be killed: %s", out)
		require.NotEqual(t, 0, exit.ExitCode())
		require.NoError(t, cctx.Err(), "obs exited at once")
		require.Contains(t, string(out), missing, "the error names the file")
		require.Contains(t, string(out), "--kubeconfig")
	})
}
