package k8sint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"github.com/obs-dev/obs/test/obsproc"
)

// applyGatewayRBAC creates, from deploy/kubernetes/rbac.yaml, the
// gateway's ServiceAccount (namespace obs), ClusterRole and
// ClusterRoleBinding with the admin client, as shipped.
func applyGatewayRBAC(t *testing.T, cl *k8stest.Cluster) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cl.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "obs"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	var role, binding, sa bool
	for _, doc := range strings.Split(string(b), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		require.NoError(t, err, "decode rbac.yaml document:\n%s", doc)
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			if o.Name == "obs-gateway" {
				_, err = cl.Client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
				require.NoError(t, err)
				sa = true
			}
		case *rbacv1.ClusterRole:
			if o.Name == "obs-gateway" {
				_, err = cl.Client.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
				require.NoError(t, err)
				role = true
			}
		case *rbacv1.ClusterRoleBinding:
			if o.Name == "obs-gateway" {
				_, err = cl.Client.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
				require.NoError(t, err)
				binding = true
			}
		}
	}
	require.True(t, sa && role && binding, "rbac.yaml: gateway ServiceAccount %v, ClusterRole %v, ClusterRoleBinding %v", sa, role, binding)
}

// writeKubeconfig writes a kubeconfig that authenticates with cfg's
// bearer token only.
func writeKubeconfig(t *testing.T, cl *k8stest.Cluster, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cl.Server, CertificateAuthority: cl.CAFile}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa"}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
}

// TestGatewayClusterRole: a gateway authenticated as the obs-gateway
// ServiceAccount, bound to exactly the shipped ClusterRole, runs
// k8sattributes and k8s_events: it gets ready and an event reaches its
// file exporter. The same token cannot read secrets or write pods.
func TestGatewayClusterRole(t *testing.T) {
	cl := k8stest.Start(t)
	applyGatewayRBAC(t, cl)
	sa, saCfg := cl.ServiceAccountClient(t, "obs", "obs-gateway")
	kubeconfig := writeKubeconfig(t, cl, saCfg)
	ns := cl.Namespace(t, "rbac", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("least privilege", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"list secrets", func() error {
				_, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				return err
			}},
			{"list secrets cluster-wide", func() error {
				_, err := sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
				return err
			}},
			{"create pod", func() error {
				_, err := sa.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: "intruder"},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
				}, metav1.CreateOptions{})
				return err
			}},
			{"delete pod", func() error {
				return sa.CoreV1().Pods(ns).Delete(ctx, "any", metav1.DeleteOptions{})
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.call()
				require.True(t, apierrors.IsForbidden(err), "want 403, got %v", err)
			})
		}
		// The role does grant what the gateway reads.
		_, err := sa.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
		require.NoError(t, err)
		_, err = sa.CoreV1().Events(ns).List(ctx, metav1.ListOptions{Limit: 1})
		require.NoError(t, err)
	})

	out := filepath.Join(t.TempDir(), "events.json")
	cfg := fmt.Sprintf(`receivers:
  k8s_events:
    auth_type: kubeConfig
    namespaces: [%q]
    handover_wait: 1s
  # every namespace, found by listing and watching namespaces
  k8s_events/sharded:
    auth_type: kubeConfig
    shard_by: namespace
    handover_wait: 1s
processors:
  k8sattributes:
    auth_type: kubeConfig
    passthrough: false
exporters:
  file:
    path: %q
service:
  pipelines:
    logs:
      receivers: [k8s_events, k8s_events/sharded]
      processors: [k8sattributes]
      exporters: [file]
`, ns, out)
	g := newGateway(t, "g1", "127.0.0.4", "", kubeconfig, cfg)
	start := time.Now()
	g.Start()
	t.Logf("gateway ready (/readyz 200) after %s", time.Since(start).Round(time.Millisecond))

	const reason = "ObsRbacProbe"
	msg := fmt.Sprintf("rbac probe %d", time.Now().UnixNano())
	now := metav1.NewTime(time.Now())
	_, err := cl.Client.CoreV1().Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "probe"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "probe-pod"},
		Reason:         reason, Message: msg, Type: corev1.EventTypeNormal,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "k8sint"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	took := obsproc.WaitFor(t, 20*time.Second, "event in file exporter", func() (bool, string) {
		b, err := os.ReadFile(out)
		if err != nil {
			return false, err.Error()
		}
		if !strings.Contains(string(b), msg) {
			return false, fmt.Sprintf("%d bytes, no %q yet", len(b), msg)
		}
		return true, ""
	})
	t.Logf("event reached the file exporter %s after creation", took.Round(time.Millisecond))
	// k8sattributes' informers (pods, namespaces, nodes, replicasets, jobs)
	// synced with this token: the role lets it list and watch them all.
	synced := obsproc.WaitFor(t, 20*time.Second, "k8sattributes cache synced", func() (bool, string) {
		return strings.Contains(g.Log(), "kubernetes cache synced"), "no \"kubernetes cache synced\" in the log yet"
	})
	t.Logf("k8sattributes cache synced (seen %s after the event)", synced.Round(time.Millisecond))
	// Both receivers sent it: the one for its namespace, and the one that
	// found the namespace by listing them (shard_by: namespace).
	obsproc.WaitFor(t, 20*time.Second, "the event from both receivers", func() (bool, string) {
		b, err := os.ReadFile(out)
		if err != nil {
			return false, err.Error()
		}
		n := strings.Count(string(b), msg)
		return n == 2, fmt.Sprintf("%d records of the event", n)
	})
	require.NotContains(t, strings.ToLower(g.Log()), "forbidden", "gateway log mentions a forbidden API call")
}
