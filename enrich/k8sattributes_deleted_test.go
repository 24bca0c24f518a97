package enrich

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDeletedPodsExpire(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDeletedPods(time.Minute)
	a := &cachedPod{Namespace: "ns", Name: "a", UID: "ua", IPs: []string{"10.0.0.1", "fd00::1"}}
	b := &cachedPod{Namespace: "ns", Name: "b", UID: "ub", IPs: []string{"10.0.0.1"}} // took a's IP, then died too
	h := &cachedPod{Namespace: "ns", Name: "h", UID: "uh", IPs: []string{"192.168.0.5"}, HostNetwork: true}
	d.add(a, t0)
	d.add(b, t0.Add(10*time.Second))
	d.add(h, t0.Add(20*time.Second))
	ip := podID{kind: 'i', value: "10.0.0.1"}

	require.Same(t, b, d.find(ip, t0.Add(30*time.Second)), "the newest deletion of an IP")
	require.Same(t, a, d.find(podID{kind: 'i', value: "fd00::1"}, t0.Add(30*time.Second)))
	require.Same(t, a, d.find(podID{kind: 'u', value: "ua"}, t0.Add(30*time.Second)))
	require.Same(t, h, d.find(podID{kind: 'n', value: "ns/h"}, t0.Add(30*time.Second)))
	require.Nil(t, d.find(podID{kind: 'i', value: "192.168.0.5"}, t0.Add(30*time.Second)), "host-network pods share the node's IP")
	require.Nil(t, d.find(podID{kind: 'u', value: "ua"}, t0.Add(time.Minute)), "past the grace period, even before expire ran")

	d.expire(t0.Add(65 * time.Second))
	require.Equal(t, 2, d.len())
	require.Nil(t, d.find(podID{kind: 'u', value: "ua"}, t0.Add(65*time.Second)))
	require.Same(t, b, d.find(ip, t0.Add(65*time.Second)))
	d.expire(t0.Add(2 * time.Minute))
	require.Zero(t, d.len())
	require.Empty(t, d.byID, "no identifier left behind")

	none := newDeletedPods(0)
	none.add(a, t0)
	require.Nil(t, none.find(ip, t0))
	require.Zero(t, none.len())
}

// TestK8sAttributesDeleteGrace: records a pod sent just before it was
// deleted, arriving after the API server deleted it, are still enriched;
// once the grace period passed they are not. A real API server; the grace
// is 3s here instead of the default 2m.
func TestK8sAttributesDeleteGrace(t *testing.T) {
	const grace = 3 * time.Second
	c := apiServer(t)
	ns := c.Namespace(t, "grace", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "shortlived"},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.SetPodRunning(ctx, ns, p.Name, "10.44.0.9", time.Now())
	require.NoError(t, err)

	kc, err := NewK8sCache(c.Client, nil, nil)
	require.NoError(t, err)
	cfg := DefaultK8sAttributesConfig()
	require.Equal(t, 2*time.Minute, cfg.PodDeleteGracePeriod, "the Collector's default")
	cfg.Filter.Namespace = ns
	cfg.Extract.Metadata = []string{"k8s.pod.name", "k8s.pod.uid", "k8s.namespace.name"}
	cfg.WaitForMetadata = true
	cfg.PodWaitTimeout = 0 // late data must not wait for a pod that is gone
	cfg.PodDeleteGracePeriod = grace
	k, err := NewK8sAttributes("k8sattributes", cfg, kc, nil, nil, nil)
	require.NoError(t, err)
	runCache(t, kc)

	enriched := map[string]any{"k8s.pod.ip": "10.44.0.9", "k8s.pod.name": "shortlived", "k8s.pod.uid": string(p.UID), "k8s.namespace.name": ns}
	process := func() map[string]any {
		b := logsWith(map[string]string{"k8s.pod.ip": "10.44.0.9"})
		require.NoError(t, k.Process(ctx, b))
		return resAttrs(b, 0)
	}
	require.Equal(t, enriched, process(), "the live pod")

	require.NoError(t, c.DeletePod(ctx, ns, p.Name))
	require.Eventually(t, func() bool {
		_, ok, _ := k.set.pods.GetStore().GetByKey(ns + "/" + p.Name)
		return !ok
	}, 10*time.Second, 10*time.Millisecond, "the informer sees the deletion")
	gone := time.Now()
	require.Equal(t, enriched, process(), "records sent right after the pod was deleted")
	require.Eventually(t, func() bool { return kc.count("deleted_pod") == 1 }, 10*time.Second, 10*time.Millisecond,
		"obs_enrich_k8s_cache_objects{kind=\"deleted_pod\"}: the handler hears of the deletion after the store")

	var after time.Duration
	require.Eventually(t, func() bool {
		after = time.Since(gone)
		return len(process()) == 1
	}, grace+10*time.Second, 50*time.Millisecond, "after the grace period the deleted pod is forgotten")
	require.GreaterOrEqual(t, after, grace-100*time.Millisecond, "not forgotten before the grace period")
	require.Equal(t, map[string]any{"k8s.pod.ip": "10.44.0.9"}, process())
	require.Eventually(t, func() bool { return kc.count("deleted_pod") == 0 }, 5*time.Second, 50*time.Millisecond, "expired and freed")
	require.Positive(t, testutil.ToFloat64(k.metrics.unenriched.WithLabelValues("not_found")))
	t.Logf("deleted pod forgotten %s after the informer saw the deletion (grace %s)", after.Round(10*time.Millisecond), grace)
}
