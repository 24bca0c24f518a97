package k8sint

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"github.com/obs-dev/obs/test/obsproc"
)

// TestConnectionAssociation: an app sends OTLP straight to a gateway from
// its pod's address, with no k8s.pod.ip attribute; the gateway's
// k8sattributes finds the pod by the connection's peer address.
func TestConnectionAssociation(t *testing.T) {
	cl := k8stest.Start(t)
	ns := cl.Namespace(t, "conn", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const podIP = "127.0.0.81"
	_, err := cl.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "shop/web:1.2"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cl.SetPodRunning(ctx, ns, "web-1", podIP, time.Now())
	require.NoError(t, err)

	out := filepath.Join(t.TempDir(), "logs.json")
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{addr "grpc"}}
processors:
  k8sattributes:
    auth_type: kubeConfig
    pod_association:
      - sources:
          - from: connection
exporters:
  file:
    path: %q
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [k8sattributes]
      exporters: [file]
`, out)
	g := newGateway(t, "g1", "127.0.0.5", "", cl.Kubeconfig, cfg)
	g.Start() // ready: the cache has synced
	grpcAddr := g.Addr("grpc")

	// Dial from the pod's address, as the app in that pod would.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(podIP)}}
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}))
	require.NoError(t, err)
	defer cc.Close()
	logs := plog.NewLogs()
	logs.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("checkout done")
	_, err = plogotlp.NewGRPCClient(cc).Export(ctx, plogotlp.NewExportRequestFromLogs(logs))
	require.NoError(t, err)

	obsproc.WaitFor(t, 20*time.Second, "enriched record in the file exporter", func() (bool, string) {
		b, err := os.ReadFile(out)
		if err != nil {
			return false, err.Error()
		}
		s := string(b)
		for _, want := range []string{`"checkout done"`, `"k8s.pod.name"`, `"web-1"`, `"k8s.namespace.name"`, `"` + ns + `"`} {
			if !strings.Contains(s, want) {
				return false, fmt.Sprintf("no %s in %q", want, s[max(0, len(s)-400):])
			}
		}
		return true, ""
	})
}
