// Package deploy checks deploy/kubernetes against a real kube-apiserver
// (test/k8s): every manifest passes a server-side dry run (schema,
// defaulting, admission), `kubectl apply -k --dry-run=server` accepts the
// kustomization, and the RBAC objects, applied for real, let each
// service account do exactly what its role needs (SubjectAccessReview).
// Static checks cover what the API server does not enforce: no RBAC
// wildcards, hardened pods, and ConfigMaps equal to deploy/examples.
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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/obs-dev/obs/test/k8s"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

const ns = "obs"

// manifests reads every object of deploy/kubernetes/*.yaml except the
// kustomization, in file order.
func manifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), "deploy", "kubernetes", "*.yaml"))
	require.NoError(t, err)
	sort.Strings(files)
	var objs []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			var doc json.RawMessage
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			if len(bytes.TrimSpace(doc)) == 0 || string(doc) == "null" {
				continue
			}
			o := &unstructured.Unstructured{}
			require.NoError(t, o.UnmarshalJSON(doc), f) // keeps integers int64
			objs = append(objs, o)
		}
	}
	require.NotEmpty(t, objs)
	return objs
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "go.mod not found")
		dir = parent
	}
}

func byKind(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// TestManifestsStatic checks what an API server accepts but a hardened
// install must not have.
func TestManifestsStatic(t *testing.T) {
	objs := manifests(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetKind() != "Namespace" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" {
			require.Equal(t, ns, o.GetNamespace(), "%s/%s namespace", o.GetKind(), o.GetName())
		}
	}
	require.Equal(t, map[string]int{"Namespace": 1, "ServiceAccount": 2, "ClusterRole": 2, "ClusterRoleBinding": 2,
		"Secret": 2, "ConfigMap": 2, "DaemonSet": 1, "StatefulSet": 1, "Service": 3, "PodDisruptionBudget": 1}, kinds)

	t.Run("no RBAC wildcards", func(t *testing.T) {
		for _, o := range objs {
			if o.GetKind() != "ClusterRole" {
				continue
			}
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			require.NotEmpty(t, rules)
			for _, r := range rules {
				for _, field := range []string{"apiGroups", "resources", "verbs", "nonResourceURLs", "resourceNames"} {
					vals, _, _ := unstructured.NestedStringSlice(r.(map[string]any), field)
					for _, v := range vals {
						require.NotContains(t, v, "*", "%s %s: %v", o.GetName(), field, r)
					}
				}
			}
		}
	})

	for _, w := range []struct{ kind, name string }{{"DaemonSet", "obs-agent"}, {"StatefulSet", "obs-gateway"}} {
		t.Run(w.kind+" hardened", func(t *testing.T) {
			o := byKind(objs, w.kind, w.name)
			require.NotNil(t, o)
			pod, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
			nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot")
			require.True(t, nonRoot)
			uid, _, _ := unstructured.NestedInt64(pod, "securityContext", "runAsUser")
			require.NotZero(t, uid)
			seccomp, _, _ := unstructured.NestedString(pod, "securityContext", "seccompProfile", "type")
			require.Equal(t, "RuntimeDefault", seccomp)
			sa, _, _ := unstructured.NestedString(pod, "serviceAccountName")
			require.Equal(t, w.name, sa)
			grace, _, _ := unstructured.NestedInt64(pod, "terminationGracePeriodSeconds")
			require.GreaterOrEqual(t, grace, int64(40), "long enough to drain the WAL")
			ctrs, _, _ := unstructured.NestedSlice(pod, "containers")
			require.Len(t, ctrs, 1)
			c := ctrs[0].(map[string]any)
			ro, _, _ := unstructured.NestedBool(c, "securityContext", "readOnlyRootFilesystem")
			require.True(t, ro)
			esc, found, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation")
			require.True(t, found)
			require.False(t, esc)
			drop, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "drop")
			require.Equal(t, []string{"ALL"}, drop)
			for _, p := range []struct{ probe, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
				path, _, _ := unstructured.NestedString(c, p.probe, "httpGet", "path")
				require.Equal(t, p.path, path, p.probe)
				port, _, _ := unstructured.NestedFieldNoCopy(c, p.probe, "httpGet", "port")
				require.Equal(t, "admin", port, p.probe)
			}
			for _, r := range []string{"requests", "limits"} {
				for _, res := range []string{"cpu", "memory"} {
					v, _, _ := unstructured.NestedString(c, "resources", r, res)
					require.NotEmpty(t, v, "resources.%s.%s", r, res)
				}
			}
			env, _, _ := unstructured.NestedSlice(c, "env")
			var memlimit string
			for _, e := range env {
				if e.(map[string]any)["name"] == "GOMEMLIMIT" {
					memlimit, _, _ = unstructured.NestedString(e.(map[string]any), "valueFrom", "resourceFieldRef", "resource")
				}
			}
			require.Equal(t, "limits.memory", memlimit)
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			role := map[string]string{"DaemonSet": "agent", "StatefulSet": "gateway"}[w.kind]
			require.Contains(t, args, "--role="+role)
			require.Contains(t, args, "--join=obs-gateway-headless.$(POD_NAMESPACE).svc:7946")
			require.Contains(t, args, "--cluster-key-file=/etc/obs/gossip/keys")
		})
	}

	t.Run("headless Service publishes not-ready addresses", func(t *testing.T) {
		o := byKind(objs, "Service", "obs-gateway-headless")
		require.NotNil(t, o)
		ip, _, _ := unstructured.NestedString(o.Object, "spec", "clusterIP")
		require.Equal(t, "None", ip)
		pub, _, _ := unstructured.NestedBool(o.Object, "spec", "publishNotReadyAddresses")
		require.True(t, pub)
	})

	t.Run("ConfigMaps equal deploy/examples", func(t *testing.T) {
		for _, role := range []string{"agent", "gateway"} {
			o := byKind(objs, "ConfigMap", "obs-"+role)
			require.NotNil(t, o)
			got, _, _ := unstructured.NestedString(o.Object, "data", "config.yaml")
			want, err := os.ReadFile(filepath.Join(root(t), "deploy", "examples", "obs-"+role+".yaml"))
			require.NoError(t, err)
			require.Equal(t, string(want), got, role)
		}
	})
}

// TestManifestsAPIServer dry-runs every manifest on a real API server,
// applies the RBAC objects for real and checks each service account's
// access with SubjectAccessReview.
func TestManifestsAPIServer(t *testing.T) {
	c := k8s.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(c.Config)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
	objs := manifests(t)

	resource := func(o *unstructured.Unstructured) dynamic.ResourceInterface {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, gvk.String())
		if m.Scope.Name() == "namespace" {
			return dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		return dyn.Resource(m.Resource)
	}
	create := func(o *unstructured.Unstructured, dryRun bool) {
		opts := metav1.CreateOptions{FieldValidation: "Strict"}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err := resource(o).Create(ctx, o.DeepCopy(), opts)
		require.NoError(t, err, "%s %s/%s (dry run %v)", o.GetKind(), o.GetNamespace(), o.GetName(), dryRun)
	}

	// The namespace is real (namespaced dry runs need it), every other
	// object is a dry run first, then RBAC is applied for real.
	create(byKind(objs, "Namespace", ns), false)
	rbac := map[string]bool{"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true}
	t.Run("server-side dry run", func(t *testing.T) {
		for _, o := range objs {
			if o.GetKind() != "Namespace" {
				create(o, true)
			}
		}
	})
	for _, o := range objs {
		if rbac[o.GetKind()] {
			create(o, false)
		}
	}

	t.Run("kubectl apply -k --dry-run=server", func(t *testing.T) {
		var kubectl string
		if bin := os.Getenv("K8S_KIT_BIN"); bin != "" {
			kubectl = filepath.Join(bin, "kubectl")
		} else {
			home, err := os.UserHomeDir()
			require.NoError(t, err)
			kubectl = filepath.Join(home, ".cache", "k8s-kit", "bin", "kubectl")
		}
		if _, err := os.Stat(kubectl); err != nil {
			t.Skipf("no kubectl at %s (scripts/k8s-build.sh builds it)", kubectl)
		}
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		defer ccancel()
		cmd := exec.CommandContext(cctx, kubectl, "--kubeconfig", c.Kubeconfig, "apply", "--dry-run=server",
			"-k", filepath.Join(root(t), "deploy", "kubernetes"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "statefulset.apps/obs-gateway created (server dry run)")
		require.Contains(t, string(out), "daemonset.apps/obs-agent created (server dry run)")
	})

	type check struct {
		verb, group, resource, sub string
		nonResource                string
		allowed                    bool
	}
	allow := func(verb, group, res, sub string) check {
		return check{verb: verb, group: group, resource: res, sub: sub, allowed: true}
	}
	deny := func(verb, group, res, sub string) check {
		return check{verb: verb, group: group, resource: res, sub: sub}
	}
	var gatewayChecks []check
	for _, v := range []string{"get", "list", "watch"} {
		for _, r := range [][2]string{{"", "pods"}, {"", "namespaces"}, {"", "nodes"}, {"apps", "replicasets"}, {"batch", "jobs"}} {
			gatewayChecks = append(gatewayChecks, allow(v, r[0], r[1], ""))
		}
	}
	for _, v := range []string{"list", "watch"} {
		for _, r := range [][2]string{{"", "events"}, {"events.k8s.io", "events"}, {"", "endpoints"}, {"", "services"}, {"discovery.k8s.io", "endpointslices"}} {
			gatewayChecks = append(gatewayChecks, allow(v, r[0], r[1], ""))
		}
	}
	gatewayChecks = append(gatewayChecks,
		check{verb: "get", nonResource: "/metrics", allowed: true},
		deny("get", "", "secrets", ""), deny("list", "", "secrets", ""), deny("get", "", "configmaps", ""),
		deny("create", "", "pods", ""), deny("delete", "", "pods", ""), deny("update", "", "pods", ""),
		deny("patch", "", "nodes", ""), deny("create", "", "events", ""), deny("get", "", "events", ""),
		deny("get", "", "nodes", "proxy"), deny("get", "", "nodes", "stats"), deny("create", "", "pods", "exec"),
		deny("list", "apps", "deployments", ""), deny("get", "", "endpoints", ""),
		deny("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""),
		check{verb: "get", nonResource: "/debug/pprof/"},
	)
	agentChecks := []check{
		allow("get", "", "nodes", "stats"), allow("get", "", "nodes", "proxy"),
		deny("create", "", "nodes", "proxy"), deny("get", "", "nodes", ""), deny("list", "", "pods", ""),
		deny("get", "", "pods", ""), deny("list", "", "namespaces", ""), deny("get", "", "secrets", ""),
		deny("list", "", "events", ""), deny("list", "apps", "replicasets", ""),
		check{verb: "get", nonResource: "/metrics"},
	}
	for _, sa := range []struct {
		name   string
		checks []check
	}{{"obs-gateway", gatewayChecks}, {"obs-agent", agentChecks}} {
		t.Run("SubjectAccessReview "+sa.name, func(t *testing.T) {
			for _, ch := range sa.checks {
				spec := authorizationv1.SubjectAccessReviewSpec{
					User:   "system:serviceaccount:" + ns + ":" + sa.name,
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				}
				what := ch.verb + " " + ch.nonResource
				if ch.nonResource != "" {
					spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Verb: ch.verb, Path: ch.nonResource}
				} else {
					spec.ResourceAttributes = &authorizationv1.ResourceAttributes{Verb: ch.verb, Group: ch.group, Resource: ch.resource, Subresource: ch.sub}
					what = strings.Join([]string{ch.verb, ch.group, ch.resource, ch.sub}, " ")
				}
				r, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx,
					&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
				require.NoError(t, err)
				require.Equal(t, ch.allowed, r.Status.Allowed, "%s: %s (%s)", sa.name, what, r.Status.Reason)
			}
		})
	}
}
