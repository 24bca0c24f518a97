package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obs-dev/obs/test/k8s"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigyaml "sigs.k8s.io/yaml"
)

// kubeVersion is the test/k8s API server's version; a helm built from the
// module proxy otherwise assumes client-go's ldflags default (v1.20).
const kubeVersion = "v1.37.2"

// helm builds (or finds) the helm CLI with scripts/build-helm.sh. A
// failed build skips the test unless CI=true.
func helm(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root(t), "scripts", "build-helm.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := "build helm: " + err.Error() + "\n" + tail(stderr.String())
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return strings.TrimSpace(string(out))
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func runHelm(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "helm %s\n%s\n%s", strings.Join(args, " "), out, stderr.String())
	return string(out)
}

func decodeAll(t *testing.T, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []*unstructured.Unstructured
	for {
		var doc json.RawMessage
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if len(bytes.TrimSpace(doc)) == 0 || string(doc) == "null" {
			continue
		}
		o := &unstructured.Unstructured{}
		require.NoError(t, o.UnmarshalJSON(doc))
		objs = append(objs, o)
	}
	return objs
}

func field(t *testing.T, o *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, _, err := unstructured.NestedFieldCopy(o.Object, path...)
	require.NoError(t, err)
	return v
}

// keyFields are the parts of each kind that must match between the plain
// manifests and the chart's rendering (labels and selectors differ: the
// chart adds app.kubernetes.io/instance and Helm's own labels).
var keyFields = map[string][][]string{
	"ClusterRole":         {{"rules"}},
	"ClusterRoleBinding":  {{"roleRef", "kind"}, {"subjects"}},
	"Service":             {{"spec", "type"}, {"spec", "clusterIP"}, {"spec", "publishNotReadyAddresses"}, {"spec", "ports"}, {"spec", "internalTrafficPolicy"}},
	"PodDisruptionBudget": {{"spec", "maxUnavailable"}},
	"DaemonSet":           podFields("spec", "updateStrategy"),
	"StatefulSet": append(podFields("spec", "replicas", "serviceName", "podManagementPolicy"),
		[]string{"spec", "volumeClaimTemplates", "0", "spec"}),
}

func podFields(top string, specFields ...string) [][]string {
	var out [][]string
	for _, f := range specFields {
		out = append(out, []string{top, f})
	}
	for _, f := range []string{"securityContext", "terminationGracePeriodSeconds", "tolerations", "volumes"} {
		out = append(out, []string{"spec", "template", "spec", f})
	}
	for _, f := range []string{"args", "env", "ports", "readinessProbe", "livenessProbe", "resources", "securityContext", "volumeMounts"} {
		out = append(out, []string{"spec", "template", "spec", "containers", "0", f})
	}
	return out
}

// nested reads a path in which numeric parts index lists.
func nested(o map[string]any, path []string) any {
	var cur any = o
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			i := int(p[0] - '0')
			if i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// TestHelmChart: helm lint is clean, helm template renders the plain
// manifests in substance, values switch what they claim, and the
// rendering passes a server-side dry run on a real API server.
func TestHelmChart(t *testing.T) {
	bin := helm(t)
	chart := filepath.Join(root(t), "deploy", "helm", "obs")

	t.Run("lint", func(t *testing.T) {
		out := runHelm(t, bin, "lint", "--strict", "--kube-version", kubeVersion, chart)
		require.Contains(t, out, "0 chart(s) failed")
		require.NotContains(t, out, "[WARNING]")
	})

	rendered := runHelm(t, bin, "template", "obs", chart, "--namespace", ns, "--kube-version", kubeVersion)
	got := decodeAll(t, []byte(rendered))

	t.Run("renders the plain manifests", func(t *testing.T) {
		plain := manifests(t)
		require.Len(t, got, len(plain)-1, "all but the Namespace (Helm's --create-namespace makes it)")
		for _, p := range plain {
			if p.GetKind() == "Namespace" {
				continue
			}
			r := byKind(got, p.GetKind(), p.GetName())
			require.NotNil(t, r, "chart renders %s %s", p.GetKind(), p.GetName())
			require.Equal(t, p.GetNamespace(), r.GetNamespace(), "%s %s", p.GetKind(), p.GetName())
			for _, path := range keyFields[p.GetKind()] {
				require.Equal(t, nested(p.Object, path), nested(r.Object, path), "%s %s %v", p.GetKind(), p.GetName(), path)
			}
			switch p.GetKind() {
			case "ConfigMap": // same config, whatever the YAML layout
				var want, have map[string]any
				require.NoError(t, sigyaml.Unmarshal([]byte(field(t, p, "data", "config.yaml").(string)), &want))
				require.NoError(t, sigyaml.Unmarshal([]byte(field(t, r, "data", "config.yaml").(string)), &have))
				require.Equal(t, want, have, p.GetName())
			case "Secret": // same keys; the gossip key is generated
				keys := func(o *unstructured.Unstructured) []string {
					var ks []string
					for _, f := range []string{"data", "stringData"} {
						m, _, _ := unstructured.NestedMap(o.Object, f)
						for k := range m {
							ks = append(ks, k)
						}
					}
					return ks
				}
				require.ElementsMatch(t, keys(p), keys(r), p.GetName())
			}
		}
	})

	t.Run("values", func(t *testing.T) {
		out := decodeAll(t, []byte(runHelm(t, bin, "template", "obs", chart, "--namespace", ns, "--kube-version", kubeVersion,
			"--set", "agent.enabled=false", "--set", "gateway.replicas=5", "--set", "gateway.persistence.size=42Gi",
			"--set", "gossip.existingSecret=my-keys", "--set", "backend.existingSecret=my-backend",
			"--set", "gateway.config.exporters.otlp.endpoint=other:4317",
			"--set", "extraEnv[0].name=FOO", "--set", "extraEnv[0].value=bar")))
		for _, o := range out {
			require.NotEqual(t, "DaemonSet", o.GetKind(), "agent.enabled=false")
			require.NotContains(t, o.GetName(), "agent", "agent.enabled=false leaves no agent object")
			require.NotEqual(t, "Secret", o.GetKind(), "existing Secrets are used, none made")
		}
		sts := byKind(out, "StatefulSet", "obs-gateway")
		require.NotNil(t, sts)
		require.EqualValues(t, 5, field(t, sts, "spec", "replicas"))
		require.Equal(t, "42Gi", nested(sts.Object, []string{"spec", "volumeClaimTemplates", "0", "spec", "resources", "requests", "storage"}))
		require.Equal(t, "my-keys", nested(sts.Object, []string{"spec", "template", "spec", "volumes", "1", "secret", "secretName"}))
		env, _ := json.Marshal(nested(sts.Object, []string{"spec", "template", "spec", "containers", "0", "env"}))
		require.Contains(t, string(env), `"name":"my-backend"`)
		require.Contains(t, string(env), `{"name":"FOO","value":"bar"}`)
		cm := byKind(out, "ConfigMap", "obs-gateway")
		require.NotNil(t, cm)
		var cfg map[string]any
		require.NoError(t, sigyaml.Unmarshal([]byte(field(t, cm, "data", "config.yaml").(string)), &cfg))
		require.Equal(t, "other:4317", nested(cfg, []string{"exporters", "otlp", "endpoint"}), "override wins")
		require.NotNil(t, nested(cfg, []string{"processors", "k8sattributes"}), "the rest of the config stays")
	})

	t.Run("server-side dry run", func(t *testing.T) {
		c := k8s.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		kubectl := filepath.Join(os.Getenv("HOME"), ".cache", "k8s-kit", "bin", "kubectl")
		if bin := os.Getenv("K8S_KIT_BIN"); bin != "" {
			kubectl = filepath.Join(bin, "kubectl")
		}
		f := filepath.Join(t.TempDir(), "rendered.yaml")
		require.NoError(t, os.WriteFile(f, []byte(rendered), 0o600))
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig, "create", "namespace", ns).CombinedOutput()
		require.NoError(t, err, "%s", out)
		out, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig, "apply", "--dry-run=server", "-f", f).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, len(got), strings.Count(string(out), "(server dry run)"), "%s", out)
	})
}
