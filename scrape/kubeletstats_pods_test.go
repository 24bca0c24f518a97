package scrape

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// TestKubeletStatsExtraMetadataLabels polls the recorded kubelet (see
// kubeletServer: summary.json and pods.json are one node's two documents)
// with both extra labels, as the Collector's kubeletstats receiver adds
// them: container.id from the pod status without the runtime scheme,
// k8s.volume.type from the pod spec.
func TestKubeletStatsExtraMetadataLabels(t *testing.T) {
	srv, denied, pods := kubeletServerPods(t, "tok")
	cfg := DefaultKubeletStatsConfig()
	cfg.AuthType, cfg.Endpoint, cfg.InsecureSkipVerify = "serviceAccount", srv.URL, true
	cfg.CollectionInterval = time.Hour
	cfg.serviceAccountDir = saDir(t, "tok")
	cfg.MetricGroups = []string{"container", "volume", "pod"}
	cfg.ExtraMetadataLabels = []string{"container.id", "k8s.volume.type"}
	var sink batchSink
	r, err := NewKubeletStatsReceiver("kubeletstats", cfg, sink.consume, nil, nil)
	require.NoError(t, err)
	runFor(t, r.Run, func() bool { return sink.n() > 0 }, 5*time.Second)
	require.Equal(t, 1, sink.n())
	require.Zero(t, denied.Load())
	require.Equal(t, int64(1), pods.Load(), "one /pods request per poll")
	got := hmPoints(sink.batches[0])

	ids := map[string]string{}
	for _, p := range got["container.memory.usage"] {
		ids[hmAttr(p.res, "k8s.pod.name")+"/"+hmAttr(p.res, "k8s.container.name")] = optAttr(p.res, "container.id")
	}
	require.Equal(t, map[string]string{
		"coredns-5d78c9869d-7xkqz/coredns": "5e3f2b1c8a7d6e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7",
		"web-7c9f8b6d5-l2kmn/nginx":        "7f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
		"web-7c9f8b6d5-l2kmn/log-shipper":  "a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8",
	}, ids)

	type vol struct{ typ, pvc string }
	vols := map[string]vol{}
	for _, p := range got["k8s.volume.capacity"] {
		vols[hmAttr(p.res, "k8s.volume.name")] = vol{optAttr(p.res, "k8s.volume.type"), optAttr(p.res, "k8s.persistentvolumeclaim.name")}
	}
	require.Equal(t, map[string]vol{
		"config-volume": {"configMap", ""},
		"cache":         {"persistentVolumeClaim", "web-cache"},
		// projected volumes have no type in the Collector either
		"kube-api-access-m2r8d": {},
		"kube-api-access-9vq4p": {},
	}, vols)
	for _, p := range got["k8s.volume.capacity"] {
		if hmAttr(p.res, "k8s.volume.name") == "cache" {
			require.Equal(t, float64(10464022528), p.v)
		}
	}
	// pod resources carry neither label
	for _, p := range got["k8s.pod.memory.usage"] {
		require.Empty(t, optAttr(p.res, "container.id"))
		require.Empty(t, optAttr(p.res, "k8s.volume.type"))
	}

	t.Run("without extra labels /pods is not asked", func(t *testing.T) {
		cfg := cfg
		cfg.ExtraMetadataLabels = nil
		var sink batchSink
		r, err := NewKubeletStatsReceiver("kubeletstats", cfg, sink.consume, nil, nil)
		require.NoError(t, err)
		before := pods.Load()
		runFor(t, r.Run, func() bool { return sink.n() > 0 }, 5*time.Second)
		require.Equal(t, 1, sink.n())
		require.Equal(t, before, pods.Load())
		for _, p := range hmPoints(sink.batches[0])["container.memory.usage"] {
			require.Empty(t, optAttr(p.res, "container.id"))
		}
	})
}

// A container the kubelet's /pods does not list yet (or lists without an
// ID) and a volume missing from the spec are skipped, as the Collector
// does, and reported; everything else of the poll is kept.
func TestKubeletStatsMetadataMissing(t *testing.T) {
	summary, err := os.ReadFile(filepath.Join("testdata", "kubelet", "summary.json"))
	require.NoError(t, err)
	podsDoc, err := os.ReadFile(filepath.Join("testdata", "kubelet", "pods.json"))
	require.NoError(t, err)
	// nginx starting: status without a container ID; the PVC gone from the spec
	doc := strings.Replace(string(podsDoc), `"containerd://7f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"`, `""`, 1)
	doc = strings.Replace(doc, `{"name": "cache", "persistentVolumeClaim": {"claimName": "web-cache"}},`, ``, 1)
	require.NotEqual(t, string(podsDoc), doc)
	meta, err := newKubeletPodMeta([]byte(doc), []string{"container.id", "k8s.volume.type"})
	require.NoError(t, err)
	on := hmEnabled(nil, kubeletDefs)
	var skipped []error
	md, err := kubeletMetrics(summary, map[string]bool{"container": true, "volume": true}, on, meta, time.Now(),
		func(err error) { skipped = append(skipped, err) })
	require.NoError(t, err)
	require.Len(t, skipped, 2, "%v", skipped)
	require.ErrorContains(t, errors.Join(skipped...), `container "nginx" has no container ID yet`)
	require.ErrorContains(t, errors.Join(skipped...), `no volume "cache"`)
	got := hmPoints(md)
	require.Len(t, got["container.memory.usage"], 2)
	for _, p := range got["container.memory.usage"] {
		require.NotEqual(t, "nginx", hmAttr(p.res, "k8s.container.name"))
	}
	require.Len(t, got["k8s.volume.available"], 3)

	_, err = newKubeletPodMeta([]byte(`{"items": 3}`), []string{"container.id"})
	require.ErrorContains(t, err, "decode pods")
}

// optAttr is the attribute k as a string, "" when m does not have it.
func optAttr(m pcommon.Map, k string) string {
	if v, ok := m.Get(k); ok {
		return v.AsString()
	}
	return ""
}

func TestStripContainerScheme(t *testing.T) {
	for in, want := range map[string]string{
		"containerd://5e3f2b": "5e3f2b",
		"cri-o://abc123":      "abc123",
		"docker://d0c4e7":     "d0c4e7",
		"0f1e2d":              "0f1e2d",
		"":                    "",
	} {
		require.Equal(t, want, stripContainerScheme(in), in)
	}
}
