package k8sint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"github.com/obs-dev/obs/test/obsproc"
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
		g := newGateway(t, "kc1", "127.0.0.6", "", "", kubeconfigGatewayConfig, "--kubeconfig", kc)
		g.Start() // /readyz 200: the k8sattributes cache has synced
		obsproc.WaitFor(t, 10*time.Second, "the pod in the cache", func() (bool, string) {
			v, err := g.Metric("obs_enrich_k8s_cache_objects", `kind="pod"`)
			if err != nil {
				return false, err.Error()
			}
			return v == 1, fmt.Sprintf(`obs_enrich_k8s_cache_objects{kind="pod"} %v`, v)
		})
	})

	t.Run("missing file", func(t *testing.T) {
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "obs.yaml")
		require.NoError(t, os.WriteFile(cfgPath, []byte(kubeconfigGatewayConfig), 0o600))
		missing := filepath.Join(dir, "no-such.kubeconfig")
		// Run fails the test unless obs exits within 20s: it must exit at once.
		code, stdout, stderr := obsproc.Run(t, 20*time.Second, nil, "run", "--role", "gateway", "--no-cluster", "--config", cfgPath,
			"--data-dir", filepath.Join(dir, "data"), "--admin-addr", "127.0.0.1:0", "--kubeconfig", missing)
		out := stdout + stderr
		require.NotEqual(t, 0, code, "obs must exit with an error, not run or be killed: %s", out)
		require.Contains(t, out, missing, "the error names the file")
		require.Contains(t, out, "--kubeconfig")
	})
}
