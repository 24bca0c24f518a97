package enrich

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	k8stest "github.com/obs-dev/obs/test/k8s"
)

func TestK8sAttributesConfigErrors(t *testing.T) {
	env := func(k string) string {
		if k == "NODE" {
			return "node-a"
		}
		return ""
	}
	cases := []struct {
		name string
		edit func(*K8sAttributesConfig)
		want string // "" = valid
	}{
		{"defaults", func(*K8sAttributesConfig) {}, ""},
		{"bad auth_type", func(c *K8sAttributesConfig) { c.AuthType = "token" }, `auth_type: unknown auth_type "token"`},
		{"unknown metadata", func(c *K8sAttributesConfig) { c.Extract.Metadata = []string{"k8s.pod.name", "k8s.pod.colour"} }, `extract.metadata[1]: unknown key "k8s.pod.colour"`},
		{"label without key", func(c *K8sAttributesConfig) { c.Extract.Labels = []K8sFieldExtract{{TagName: "x"}} }, "extract.labels[0]: key or key_regex is required"},
		{"label key and regex", func(c *K8sAttributesConfig) { c.Extract.Labels = []K8sFieldExtract{{Key: "a", KeyRegex: "a.*"}} }, "extract.labels[0]: set key or key_regex, not both"},
		{"bad regex", func(c *K8sAttributesConfig) { c.Extract.Annotations = []K8sFieldExtract{{KeyRegex: "("}} }, "extract.annotations[0].key_regex"},
		{"bad from", func(c *K8sAttributesConfig) { c.Extract.Labels = []K8sFieldExtract{{Key: "a", From: "node"}} }, `extract.labels[0].from: want pod or namespace, got "node"`},
		{"empty association", func(c *K8sAttributesConfig) { c.PodAssociation = []K8sPodAssociation{{}} }, "pod_association[0].sources: at least one source is required"},
		{"bad association from", func(c *K8sAttributesConfig) {
			c.PodAssociation = []K8sPodAssociation{{Sources: []K8sAssociationSource{{From: "header"}}}}
		}, `pod_association[0].sources[0].from: want resource_attribute or connection, got "header"`},
		{"association without name", func(c *K8sAttributesConfig) {
			c.PodAssociation = []K8sPodAssociation{{Sources: []K8sAssociationSource{{From: "resource_attribute"}}}}
		}, "pod_association[0].sources[0].name: required"},
		{"pod name without namespace", func(c *K8sAttributesConfig) {
			c.PodAssociation = []K8sPodAssociation{{Sources: []K8sAssociationSource{{From: "resource_attribute", Name: "k8s.pod.name"}}}}
		}, "pod_association[0]: k8s.pod.name and k8s.namespace.name go together"},
		{"node and node env", func(c *K8sAttributesConfig) { c.Filter.Node, c.Filter.NodeFromEnvVar = "a", "NODE" }, "filter: set node or node_from_env_var, not both"},
		{"empty node env", func(c *K8sAttributesConfig) { c.Filter.NodeFromEnvVar = "UNSET" }, "filter.node_from_env_var: environment variable UNSET is empty"},
		{"bad label op", func(c *K8sAttributesConfig) { c.Filter.Labels = []K8sFieldFilter{{Key: "a", Op: "matches"}} }, `filter.labels[0].op`},
		{"exists on a field", func(c *K8sAttributesConfig) { c.Filter.Fields = []K8sFieldFilter{{Key: "a", Op: "exists"}} }, `filter.fields[0].op`},
		{"negative pod wait", func(c *K8sAttributesConfig) { c.PodWaitTimeout = -time.Second }, "pod_wait_timeout: must not be negative"},
		{"negative delete grace", func(c *K8sAttributesConfig) { c.PodDeleteGracePeriod = -time.Second }, "pod_delete_grace_period: must not be negative"},
		{"passthrough is valid", func(c *K8sAttributesConfig) { c.Passthrough = true }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultK8sAttributesConfig()
			tc.edit(&cfg)
			_, err := newK8sAttributes("k8sattributes", cfg, nil, nil, env, nil, nil)
			if tc.want == "" {
				if !cfg.Passthrough {
					require.ErrorContains(t, err, "no kubernetes cache")
					return
				}
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			if cfg.Filter.NodeFromEnvVar == "" { // Validate does not read the environment
				require.Error(t, cfg.Validate())
			}
		})
	}
}

func TestK8sFilterSelectors(t *testing.T) {
	f, err := compileK8sFilter(K8sFilterConfig{
		NodeFromEnvVar: "NODE", Namespace: "ns",
		Labels: []K8sFieldFilter{{Key: "app", Value: "x"}, {Key: "tier", Op: "not-equals", Value: "db"}, {Key: "team", Op: "exists"}, {Key: "tmp", Op: "does-not-exist"}},
		Fields: []K8sFieldFilter{{Key: "status.phase", Op: "not-equals", Value: "Succeeded"}},
	}, func(string) string { return "node-a" })
	require.NoError(t, err)
	require.Equal(t, "app=x,tier!=db,team,!tmp", f.labelSelector)
	require.Equal(t, "spec.nodeName=node-a,status.phase!=Succeeded", f.fieldSelector)
	require.Equal(t, "ns", f.namespace)
}

func TestSplitImage(t *testing.T) {
	cases := []struct{ in, name, tag string }{
		{"nginx", "nginx", "latest"},
		{"nginx:1.27", "nginx", "1.27"},
		{"registry.local:5000/team/app:v2", "registry.local:5000/team/app", "v2"},
		{"registry.local:5000/team/app", "registry.local:5000/team/app", "latest"},
		{"app:v3@sha256:abcd", "app", "v3"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			n, tag := splitImage(tc.in)
			require.Equal(t, tc.name, n)
			require.Equal(t, tc.tag, tag)
		})
	}
}

type peerKey struct{}

func peerFromCtx(ctx context.Context) string {
	s, _ := ctx.Value(peerKey{}).(string)
	return s
}

func logsWith(resources ...map[string]string) actors.Batch {
	l := plog.NewLogs()
	for _, attrs := range resources {
		rl := l.ResourceLogs().AppendEmpty()
		for k, v := range attrs {
			rl.Resource().Attributes().PutStr(k, v)
		}
		rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("x")
	}
	return actors.LogsBatch(l)
}

func resAttrs(b actors.Batch, i int) map[string]any {
	return b.Logs.ResourceLogs().At(i).Resource().Attributes().AsRaw()
}

func TestK8sAttributesPassthrough(t *testing.T) {
	cfg := DefaultK8sAttributesConfig()
	cfg.Passthrough = true
	k, err := NewK8sAttributes("k8sattributes", cfg, nil, peerFromCtx, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	b := logsWith(map[string]string{}, map[string]string{"k8s.pod.ip": "10.9.9.9"})
	ctx := context.WithValue(context.Background(), peerKey{}, "127.0.0.7:51234")
	require.NoError(t, k.Process(ctx, b))
	require.Equal(t, map[string]any{"k8s.pod.ip": "127.0.0.7"}, resAttrs(b, 0), "the connection's address, port stripped")
	require.Equal(t, map[string]any{"k8s.pod.ip": "10.9.9.9"}, resAttrs(b, 1), "a pod IP already set is kept")

	b = logsWith(map[string]string{})
	require.NoError(t, k.Process(context.Background(), b))
	require.Empty(t, resAttrs(b, 0), "no connection address, nothing added")
}

// workloads creates, through the real API server, one pod for each kind
// of owner: Deployment (through a ReplicaSet), DaemonSet, StatefulSet and
// a CronJob's Job. It returns the pods by owner kind.
func workloads(t *testing.T, c *k8stest.Cluster, ns string, ipBase string) map[string]*corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	yes := true
	ref := func(kind, name string, uid types.UID) []metav1.OwnerReference {
		api := "apps/v1"
		if kind == "Job" || kind == "CronJob" {
			api = "batch/v1"
		}
		return []metav1.OwnerReference{{APIVersion: api, Kind: kind, Name: name, UID: uid, Controller: &yes}}
	}
	labels := map[string]string{"app": "shop"}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
	}
	sel := &metav1.LabelSelector{MatchLabels: labels}
	apps, batch := c.Client.AppsV1(), c.Client.BatchV1()

	dep, err := apps.Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	require.NoError(t, err)
	rs, err := apps.ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f", OwnerReferences: ref("Deployment", dep.Name, dep.UID)},
		Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	require.NoError(t, err)
	ds, err := apps.DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	require.NoError(t, err)
	ss, err := apps.StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	require.NoError(t, err)
	jobTmpl := tmpl
	jobTmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	cj, err := batch.CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTmpl}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	job, err := batch.Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-290100", OwnerReferences: ref("CronJob", cj.Name, cj.UID)},
		Spec: batchv1.JobSpec{Template: jobTmpl}}, metav1.CreateOptions{})
	require.NoError(t, err)

	owners := []struct {
		kind string
		ref  []metav1.OwnerReference
	}{
		{"Deployment", ref("ReplicaSet", rs.Name, rs.UID)},
		{"DaemonSet", ref("DaemonSet", ds.Name, ds.UID)},
		{"StatefulSet", ref("StatefulSet", ss.Name, ss.UID)},
		{"CronJob", ref("Job", job.Name, job.UID)},
	}
	pods := map[string]*corev1.Pod{}
	for i, o := range owners {
		p, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-%d", o.ref[0].Name, i), OwnerReferences: o.ref,
				Labels:      map[string]string{"app": "shop", "tier": o.kind},
				Annotations: map[string]string{"obs.dev/team": "payments", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
			},
			Spec: corev1.PodSpec{NodeName: "node-a", RestartPolicy: jobTmpl.Spec.RestartPolicy,
				Containers: []corev1.Container{{Name: "c", Image: "registry.local:5000/shop/" + o.kind + ":v1." + fmt.Sprint(i)}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		p, err = c.SetPodRunning(ctx, ns, p.Name, fmt.Sprintf("%s.%d", ipBase, i+1), time.Unix(1_700_000_000+int64(i), 0))
		require.NoError(t, err)
		pods[o.kind] = p
	}
	return pods
}

// runCache runs the cache until the test ends.
func runCache(t *testing.T, kc *K8sCache) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { require.NoError(t, kc.Run(ctx)) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func fullConfig() K8sAttributesConfig {
	cfg := DefaultK8sAttributesConfig()
	cfg.Extract.Metadata = append([]string(nil), k8sMetadataKeys...)
	cfg.Extract.Labels = []K8sFieldExtract{{Key: "app"}, {KeyRegex: "ti(er)", TagName: "label.$1"}, {Key: "env", From: "namespace"}}
	cfg.Extract.Annotations = []K8sFieldExtract{{KeyRegex: "obs\\.dev/.*"}}
	cfg.WaitForMetadata = true
	cfg.PodWaitTimeout = 20 * time.Second
	return cfg
}

func TestK8sAttributesEnrichesEveryWorkload(t *testing.T) {
	c := apiServer(t)
	ns := c.Namespace(t, "enrich", map[string]string{"env": "prod"})
	pods := workloads(t, c, ns, "10.41.0")

	reg := prometheus.NewRegistry()
	kc, err := NewK8sCache(c.Client, nil, reg)
	require.NoError(t, err)
	cfg := fullConfig()
	cfg.Filter.Namespace = ns
	k, err := NewK8sAttributes("k8sattributes", cfg, kc, peerFromCtx, nil, reg)
	require.NoError(t, err)
	require.False(t, kc.Synced(), "a cache that has not listed is not synced")
	runCache(t, kc)
	require.Eventually(t, kc.Synced, 20*time.Second, 10*time.Millisecond)

	want := func(kind string, p *corev1.Pod) map[string]any {
		m := map[string]any{
			"k8s.namespace.name": ns, "k8s.pod.name": p.Name, "k8s.pod.uid": string(p.UID),
			"k8s.pod.start_time": p.Status.StartTime.UTC().Format(time.RFC3339), "k8s.node.name": "node-a",
			"k8s.pod.ip":           p.Status.PodIP,
			"container.image.name": "registry.local:5000/shop/" + kind, "container.image.tag": p.Spec.Containers[0].Image[len("registry.local:5000/shop/"+kind)+1:],
			"k8s.pod.labels.app": "shop", "label.er": kind, "k8s.namespace.labels.env": "prod",
			"k8s.pod.annotations.obs.dev/team": "payments",
		}
		o := p.OwnerReferences[0]
		switch kind {
		case "Deployment":
			rs, err := c.Client.AppsV1().ReplicaSets(ns).Get(context.Background(), o.Name, metav1.GetOptions{})
			require.NoError(t, err)
			m["k8s.replicaset.name"], m["k8s.replicaset.uid"] = o.Name, string(o.UID)
			m["k8s.deployment.name"], m["k8s.deployment.uid"] = "web", string(rs.OwnerReferences[0].UID)
		case "DaemonSet":
			m["k8s.daemonset.name"], m["k8s.daemonset.uid"] = o.Name, string(o.UID)
		case "StatefulSet":
			m["k8s.statefulset.name"], m["k8s.statefulset.uid"] = o.Name, string(o.UID)
		case "CronJob":
			job, err := c.Client.BatchV1().Jobs(ns).Get(context.Background(), o.Name, metav1.GetOptions{})
			require.NoError(t, err)
			m["k8s.job.name"], m["k8s.job.uid"] = o.Name, string(o.UID)
			m["k8s.cronjob.name"], m["k8s.cronjob.uid"] = "nightly", string(job.OwnerReferences[0].UID)
		}
		return m
	}

	for _, kind := range []string{"Deployment", "DaemonSet", "StatefulSet", "CronJob"} {
		p := pods[kind]
		t.Run(kind+"/resource attribute", func(t *testing.T) {
			b := logsWith(map[string]string{"k8s.pod.ip": p.Status.PodIP})
			require.NoError(t, k.Process(context.Background(), b))
			require.Equal(t, want(kind, p), resAttrs(b, 0))
		})
		t.Run(kind+"/connection", func(t *testing.T) {
			b := logsWith(map[string]string{"service.name": "shop"})
			ctx := context.WithValue(context.Background(), peerKey{}, p.Status.PodIP+":4317")
			require.NoError(t, k.Process(ctx, b))
			w := want(kind, p)
			w["service.name"] = "shop"
			require.Equal(t, w, resAttrs(b, 0))
		})
		t.Run(kind+"/pod uid", func(t *testing.T) {
			b := logsWith(map[string]string{"k8s.pod.uid": string(p.UID)})
			require.NoError(t, k.Process(context.Background(), b))
			w := want(kind, p)
			delete(w, "k8s.pod.ip")
			require.Equal(t, w, resAttrs(b, 0))
		})
	}
	require.Equal(t, 12.0, testutil.ToFloat64(k.metrics.enriched))
	require.Equal(t, 0.0, testutil.ToFloat64(k.metrics.unenriched.WithLabelValues("not_found")))

	t.Run("existing attributes are kept", func(t *testing.T) {
		b := logsWith(map[string]string{"k8s.pod.ip": pods["DaemonSet"].Status.PodIP, "k8s.pod.name": "from-sdk"})
		require.NoError(t, k.Process(context.Background(), b))
		require.Equal(t, "from-sdk", resAttrs(b, 0)["k8s.pod.name"])
		require.Equal(t, "agent", resAttrs(b, 0)["k8s.daemonset.name"])
	})
	t.Run("stripped cache", func(t *testing.T) {
		o, ok, err := k.set.pods.GetStore().GetByKey(ns + "/" + pods["Deployment"].Name)
		require.NoError(t, err)
		require.True(t, ok)
		p := o.(*cachedPod)
		require.NotContains(t, p.Annotations, "kubectl.kubernetes.io/last-applied-configuration", "annotations nobody extracts are dropped")
		require.Equal(t, []string{pods["Deployment"].Status.PodIP}, p.IPs)
		require.Equal(t, 0.0, testutil.ToFloat64(k.metrics.unenriched.WithLabelValues("no_identifier")), "no resource lacked an identifier")
	})
}

func TestK8sAttributesWaitsForNewPod(t *testing.T) {
	c := apiServer(t)
	ns := c.Namespace(t, "late", nil)
	kc, err := NewK8sCache(c.Client, nil, nil)
	require.NoError(t, err)
	cfg := DefaultK8sAttributesConfig()
	cfg.Filter.Namespace = ns
	cfg.Extract.Metadata = []string{"k8s.pod.name", "k8s.namespace.name"}
	cfg.WaitForMetadata = true
	cfg.PodWaitTimeout = 20 * time.Second
	k, err := NewK8sAttributes("k8sattributes", cfg, kc, nil, nil, nil)
	require.NoError(t, err)
	runCache(t, kc)

	// the first batch: an IP nobody has; the wait is bounded
	k.cfg.PodWaitTimeout = 300 * time.Millisecond
	b := logsWith(map[string]string{"k8s.pod.ip": "10.42.0.99"})
	start := time.Now()
	require.NoError(t, k.Process(context.Background(), b))
	require.Less(t, time.Since(start), 5*time.Second)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.Equal(t, map[string]any{"k8s.pod.ip": "10.42.0.99"}, resAttrs(b, 0), "passes unenriched")
	require.Equal(t, 1.0, testutil.ToFloat64(k.metrics.unenriched.WithLabelValues("not_found")))
	start = time.Now()
	require.NoError(t, k.Process(context.Background(), logsWith(map[string]string{"k8s.pod.ip": "10.42.0.99"})))
	require.Less(t, time.Since(start), 200*time.Millisecond, "an IP already waited for in vain is not waited for again")

	// a batch for a pod that does not exist yet waits until the cache has it
	k.cfg.PodWaitTimeout = 20 * time.Second
	b = logsWith(map[string]string{"k8s.pod.ip": "10.42.0.7"})
	done := make(chan error, 1)
	go func() { done <- k.Process(context.Background(), b) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "newcomer"},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	created := time.Now()
	_, err = c.SetPodRunning(ctx, ns, p.Name, "10.42.0.7", time.Now())
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("Process did not return")
	}
	t.Logf("enriched %s after the pod was created", time.Since(created))
	require.Equal(t, map[string]any{"k8s.pod.ip": "10.42.0.7", "k8s.pod.name": "newcomer", "k8s.namespace.name": ns}, resAttrs(b, 0))
	require.Equal(t, 1.0, testutil.ToFloat64(k.metrics.enriched))
}

func TestK8sCacheSharedAndRunOnce(t *testing.T) {
	c := apiServer(t)
	kc, err := NewK8sCache(c.Client, nil, nil)
	require.NoError(t, err)
	a, err := NewK8sAttributes("k8sattributes/a", DefaultK8sAttributesConfig(), kc, nil, nil, nil)
	require.NoError(t, err)
	b, err := NewK8sAttributes("k8sattributes/b", DefaultK8sAttributesConfig(), kc, nil, nil, nil)
	require.NoError(t, err)
	require.Same(t, a.set, b.set, "same filter, one set of informers")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = kc.Run(ctx) })
	require.Eventually(t, func() bool { return a.set.hasSynced() }, 30*time.Second, 10*time.Millisecond)
	require.Error(t, kc.Run(ctx), "second Run")
	_, err = NewK8sAttributes("k8sattributes/c", DefaultK8sAttributesConfig(), kc, nil, nil, nil)
	require.ErrorContains(t, err, "cache already running")
	cancel()
	wg.Wait()
}

// BenchmarkK8sCachePodBytes measures what one pod costs in the informer
// store (transform and indexes included) against the full object.
func BenchmarkK8sCachePodBytes(b *testing.B) {
	b.ReportAllocs()
	const n = 10_000
	set := &podSet{}
	set.needs = fullNeeds(b)
	measure := func(transform bool) float64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		// what the pod informer holds: its store, plus obs' IP/UID index
		// for stripped pods or client-go's indexers for full ones
		idx := newPodIndex()
		indexers := cache.Indexers{}
		if !transform {
			indexers = cache.Indexers{
				"ip":  func(o any) ([]string, error) { return []string{o.(*corev1.Pod).Status.PodIP}, nil },
				"uid": func(o any) ([]string, error) { return []string{string(o.(*corev1.Pod).UID)}, nil },
			}
		}
		store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, indexers)
		for i := 0; i < n; i++ {
			var o any = fullPod(i)
			if transform {
				o, _ = set.transformPod(o)
				idx.update(nil, o.(*cachedPod))
			}
			if err := store.Add(o); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(store)
		runtime.KeepAlive(idx)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	var stripped, full float64
	for b.Loop() {
		stripped = measure(true)
		full = measure(false)
	}
	b.ReportMetric(stripped, "bytes/pod")
	b.ReportMetric(full, "full-bytes/pod")
	b.ReportMetric(stripped*n/(1<<20), "MiB/10k-pods")
}

func fullNeeds(tb testing.TB) k8sNeeds {
	c, err := fullConfig().compile(func(string) string { return "" })
	require.NoError(tb, err)
	return c.needs
}

// fullPod is a pod as the API server sends it for a typical Deployment.
func fullPod(i int) *corev1.Pod {
	yes := true
	s := fmt.Sprint(i)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-7d9f8c6b5-" + s, Namespace: "shop", UID: types.UID(fmt.Sprintf("0d6c6b9e-1111-4c3a-9b7e-%012d", i)),
			ResourceVersion: "123456" + s, GenerateName: "web-7d9f8c6b5-",
			Labels:          map[string]string{"app": "shop", "tier": "web", "pod-template-hash": "7d9f8c6b5", "version": "v1.2.3"},
			Annotations:     map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-01T00:00:00Z", "prometheus.io/scrape": "true", "obs.dev/team": "payments"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8c6b5", UID: "a0b1c2d3-0000-4000-8000-000000000001", Controller: &yes, BlockOwnerDeletion: &yes}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1"}, {Manager: "kubelet", Operation: "Update", APIVersion: "v1", Subresource: "status"}},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-" + fmt.Sprint(i%50), ServiceAccountName: "default",
			Containers: []corev1.Container{{
				Name: "web", Image: "registry.local:5000/shop/web:v1.2.3",
				Args:                   []string{"--port=8080", "--log-level=info"},
				Ports:                  []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}},
				Env:                    []corev1.EnvVar{{Name: "GOMAXPROCS", Value: "2"}, {Name: "OTEL_SERVICE_NAME", Value: "web"}, {Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
				VolumeMounts:           []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
				TerminationMessagePath: "/dev/termination-log", ImagePullPolicy: "IfNotPresent",
			}},
			Volumes:     []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: "Exists", Effect: "NoExecute"}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), HostIP: "192.168.0.10",
			StartTime:  &metav1.Time{Time: time.Unix(1_700_000_000, 0)},
			Conditions: []corev1.PodCondition{{Type: "Ready", Status: "True"}, {Type: "ContainersReady", Status: "True"}, {Type: "PodScheduled", Status: "True"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, Image: "registry.local:5000/shop/web:v1.2.3",
				ImageID: "registry.local:5000/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ContainerID: "containerd://" + s}},
		},
	}
}

// client-go may run a transform on an object it already transformed.
func TestK8sTransformsIdempotent(t *testing.T) {
	set := &podSet{needs: fullNeeds(t)}
	yes := true
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", UID: "u1",
		Labels:          map[string]string{"a": "b"},
		OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "web", UID: "u0", Controller: &yes}, {Kind: "Other", Name: "x"}}}}
	once, err := transformReplicaSet(rs)
	require.NoError(t, err)
	twice, err := transformReplicaSet(once)
	require.NoError(t, err)
	require.Equal(t, once, twice)
	require.Len(t, twice.(*appsv1.ReplicaSet).OwnerReferences, 1)
	require.Nil(t, twice.(*appsv1.ReplicaSet).Labels)

	pod, err := set.transformPod(fullPod(7))
	require.NoError(t, err)
	again, err := set.transformPod(pod)
	require.NoError(t, err)
	require.Same(t, pod, again)
	p := pod.(*cachedPod)
	require.Equal(t, cachedOwner{Kind: "ReplicaSet", Name: "web-7d9f8c6b5", UID: "a0b1c2d3-0000-4000-8000-000000000001"}, p.Owner)
	require.ElementsMatch(t, []kv{{"app", "shop"}, {"tier", "web"}}, p.Labels)
	require.Equal(t, []kv{{"obs.dev/team", "payments"}}, p.Annotations)
	require.Equal(t, []cachedContainer{{"web", "registry.local:5000/shop/web:v1.2.3"}}, p.Containers)
}

func TestK8sAttributesFilterDeleteAndReuse(t *testing.T) {
	c := apiServer(t)
	ns := c.Namespace(t, "filter", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mk := func(name, node, ip string, labels map[string]string) *corev1.Pod {
		p, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		p, err = c.SetPodRunning(ctx, ns, name, ip, time.Now())
		require.NoError(t, err)
		return p
	}
	mk("mine", "node-a", "10.43.0.1", map[string]string{"team": "obs"})
	mk("other-node", "node-b", "10.43.0.2", map[string]string{"team": "obs"})
	mk("other-team", "node-a", "10.43.0.3", map[string]string{"team": "web"})

	kc, err := NewK8sCache(c.Client, nil, nil)
	require.NoError(t, err)
	cfg := DefaultK8sAttributesConfig()
	cfg.Extract.Metadata = []string{"k8s.pod.name", "k8s.node.name"}
	cfg.Filter = K8sFilterConfig{NodeFromEnvVar: "NODE", Namespace: ns, Labels: []K8sFieldFilter{{Key: "team", Value: "obs"}}}
	cfg.PodAssociation = []K8sPodAssociation{
		{Sources: []K8sAssociationSource{{From: "resource_attribute", Name: "k8s.pod.name"}, {From: "resource_attribute", Name: "k8s.namespace.name"}}},
		{Sources: []K8sAssociationSource{{From: "resource_attribute", Name: "host.ip"}}},
	}
	cfg.WaitForMetadata, cfg.PodWaitTimeout = true, 0
	k, err := newK8sAttributes("k8sattributes", cfg, kc, nil, func(string) string { return "node-a" }, nil, nil)
	require.NoError(t, err)
	runCache(t, kc)

	b := logsWith(
		map[string]string{"host.ip": "10.43.0.1"},
		map[string]string{"host.ip": "10.43.0.2"},
		map[string]string{"host.ip": "10.43.0.3"},
		map[string]string{"k8s.pod.name": "mine", "k8s.namespace.name": ns},
	)
	require.NoError(t, k.Process(ctx, b))
	require.Equal(t, map[string]any{"host.ip": "10.43.0.1", "k8s.pod.name": "mine", "k8s.node.name": "node-a"}, resAttrs(b, 0))
	require.Equal(t, map[string]any{"host.ip": "10.43.0.2"}, resAttrs(b, 1), "pod on another node is filtered out")
	require.Equal(t, map[string]any{"host.ip": "10.43.0.3"}, resAttrs(b, 2), "pod with another label is filtered out")
	require.Equal(t, map[string]any{"k8s.pod.name": "mine", "k8s.namespace.name": ns, "k8s.node.name": "node-a"}, resAttrs(b, 3), "found by namespace and name")

	// the pod goes away (kept for the delete grace period) and a new one
	// gets its IP: the live pod wins
	require.NoError(t, c.DeletePod(ctx, ns, "mine"))
	require.Eventually(t, func() bool {
		_, ok, _ := k.set.pods.GetStore().GetByKey(ns + "/mine")
		return !ok
	}, 10*time.Second, 10*time.Millisecond)
	// the store drops the pod before the handler moves it to the deleted
	// pods: found all the same
	p := k.set.lookup(podID{kind: 'i', value: "10.43.0.1"})
	require.NotNil(t, p, "a pod the store just dropped")
	require.Equal(t, "mine", p.Name)
	require.Eventually(t, func() bool {
		return k.set.deleted.len() == 1 && k.set.index.find(podID{kind: 'n', value: ns + "/mine"}) == nil
	}, 10*time.Second, 10*time.Millisecond, "the handler moves the pod to the deleted pods")
	p = k.set.lookup(podID{kind: 'i', value: "10.43.0.1"})
	require.NotNil(t, p, "a deleted pod stays for its grace period")
	require.Equal(t, "mine", p.Name)
	mk("successor", "node-a", "10.43.0.1", map[string]string{"team": "obs"})
	require.Eventually(t, func() bool {
		p := k.set.lookup(podID{kind: 'i', value: "10.43.0.1"})
		return p != nil && p.Name == "successor"
	}, 10*time.Second, 10*time.Millisecond)
}

func TestK8sAttributesWaitsForSyncOnce(t *testing.T) {
	client, err := kubernetes.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1"})
	require.NoError(t, err)
	kc, err := NewK8sCache(client, nil, nil) // never run: never syncs
	require.NoError(t, err)
	cfg := DefaultK8sAttributesConfig()
	cfg.WaitForMetadata, cfg.WaitForMetadataTimeout, cfg.PodWaitTimeout = true, 200*time.Millisecond, 0
	k, err := NewK8sAttributes("k8sattributes", cfg, kc, nil, nil, nil)
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, k.Process(context.Background(), logsWith(map[string]string{"k8s.pod.ip": "10.0.0.1"})))
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	start = time.Now()
	require.NoError(t, k.Process(context.Background(), logsWith(map[string]string{"k8s.pod.ip": "10.0.0.1"})))
	require.Less(t, time.Since(start), 100*time.Millisecond, "the second batch does not wait again")
	require.Equal(t, 2.0, testutil.ToFloat64(k.metrics.unenriched.WithLabelValues("not_found")))
}
