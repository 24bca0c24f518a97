package enrich

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestResourceDetectionConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*ResourceDetectionConfig)
		want string
	}{
		{"no detectors", func(c *ResourceDetectionConfig) { c.Detectors = nil }, "detectors: at least one detector is required"},
		{"unknown detector", func(c *ResourceDetectionConfig) { c.Detectors = []string{"env", "gcp"} }, `detectors[1]: unknown detector "gcp"`},
		{"twice", func(c *ResourceDetectionConfig) { c.Detectors = []string{"env", "env"} }, "detectors[1]: env listed twice"},
		{"negative timeout", func(c *ResourceDetectionConfig) { c.Timeout = -time.Second }, "timeout: must not be negative"},
		{"bad auth", func(c *ResourceDetectionConfig) { c.K8sNode.AuthType = "cert" }, `k8snode.auth_type: unknown auth_type "cert"`},
		{"bad hostname source", func(c *ResourceDetectionConfig) { c.System.HostnameSources = []string{"os", "mdns"} }, `system.hostname_sources[1]: unknown source "mdns"`},
		{"k8snode without client", func(c *ResourceDetectionConfig) { c.Detectors = []string{"k8snode"} }, "detector k8snode needs a kubernetes client"},
		{"valid", func(*ResourceDetectionConfig) {}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultResourceDetectionConfig()
			cfg.Detectors = []string{"env", "system"}
			tc.edit(&cfg)
			_, err := NewResourceDetection("resourcedetection", cfg, nil, nil, nil)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestParseResourceAttributes(t *testing.T) {
	cases := []struct {
		in   string
		want map[string]string
		err  bool
	}{
		{"", map[string]string{}, false},
		{"service.name=shop, deployment.environment = prod", map[string]string{"service.name": "shop", "deployment.environment": "prod"}, false},
		{"team=a%2Cb%20c", map[string]string{"team": "a,b c"}, false},
		{"k=v=w", map[string]string{"k": "v=w"}, false},
		{"novalue", nil, true},
		{"=v", nil, true},
		{"k=%zz", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseResourceAttributes(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseResourceAttributes(f *testing.F) {
	for _, s := range []string{"", "a=b", "a=b,c=d", "a=%20", "a", "=,=", "k=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseResourceAttributes(s)
		if err != nil {
			return
		}
		for k := range m {
			if k == "" {
				t.Fatalf("empty key from %q", s)
			}
		}
	})
}

func newTestDetection(t *testing.T, cfg ResourceDetectionConfig, env map[string]string) *ResourceDetection {
	t.Helper()
	d, err := NewResourceDetection("resourcedetection", cfg, nil, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	d.getenv = func(k string) string { return env[k] }
	d.host = func() (string, error) { return "box-1", nil }
	return d
}

func TestResourceDetectionEnvSystemOverride(t *testing.T) {
	env := map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "host.name=from-env,service.namespace=shop"}
	no := false
	cases := []struct {
		name      string
		detectors []string
		override  *bool
		want      map[string]any
	}{
		{"env first wins over system", []string{"env", "system"}, nil,
			map[string]any{"host.name": "from-env", "service.namespace": "shop", "os.type": runtime.GOOS, "service.name": "svc"}},
		{"system first wins over env", []string{"system", "env"}, nil,
			map[string]any{"host.name": "box-1", "service.namespace": "shop", "os.type": runtime.GOOS, "service.name": "svc"}},
		{"override off keeps what the resource has", []string{"env"}, &no,
			map[string]any{"host.name": "from-env", "service.namespace": "mine", "service.name": "svc"}},
		{"override on replaces it", []string{"env"}, nil,
			map[string]any{"host.name": "from-env", "service.namespace": "shop", "service.name": "svc"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultResourceDetectionConfig()
			cfg.Detectors, cfg.Override = tc.detectors, tc.override
			cfg.System.HostnameSources = []string{"os"}
			d := newTestDetection(t, cfg, env)
			require.NoError(t, d.Detect(context.Background()))
			res := map[string]string{"service.name": "svc"}
			if tc.override != nil {
				res["service.namespace"] = "mine"
			}
			b := logsWith(res)
			require.NoError(t, d.Process(context.Background(), b))
			require.Equal(t, tc.want, resAttrs(b, 0))
			require.Equal(t, 1.0, testutil.ToFloat64(d.changed))
		})
	}
}

func TestResourceDetectionHostnameSources(t *testing.T) {
	cfg := DefaultResourceDetectionConfig()
	cfg.Detectors = []string{"system"}
	cfg.System.HostnameSources = []string{"os"}
	d := newTestDetection(t, cfg, nil)
	d.host = func() (string, error) { return "", errors.New("no hostname") }
	require.ErrorContains(t, d.Detect(context.Background()), "hostname source os: no hostname")
	b := logsWith(map[string]string{"a": "b"})
	require.NoError(t, d.Process(context.Background(), b), "a failed detection never fails data")
	require.Equal(t, map[string]any{"a": "b"}, resAttrs(b, 0))

	d.host = func() (string, error) { return "box-2", nil }
	require.NoError(t, d.Process(context.Background(), b), "Process retries detection")
	require.Equal(t, "box-2", resAttrs(b, 0)["host.name"])
}

func TestResourceDetectionK8sNode(t *testing.T) {
	c := apiServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "node-rd-"}, // the cluster is shared by the package's tests
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	cfg := DefaultResourceDetectionConfig()
	cfg.Detectors = []string{"k8snode"}
	cfg.K8sNode.NodeFromEnvVar = "MY_NODE"
	d, err := NewResourceDetection("resourcedetection", cfg, c.Client, nil, nil)
	require.NoError(t, err)
	d.getenv = func(k string) string { return map[string]string{"MY_NODE": node.Name}[k] }
	require.NoError(t, d.Detect(ctx))
	require.Equal(t, map[string]any{"k8s.node.name": node.Name, "k8s.node.uid": string(node.UID)}, d.Attributes())

	d2, err := NewResourceDetection("resourcedetection", cfg, c.Client, nil, nil)
	require.NoError(t, err)
	d2.getenv = func(k string) string { return map[string]string{"MY_NODE": "no-such-node"}[k] }
	require.ErrorContains(t, d2.Detect(ctx), "get node no-such-node")
	d2.getenv = func(string) string { return "" }
	require.ErrorContains(t, d2.Detect(ctx), "environment variable MY_NODE (node_from_env_var) is empty")
}
