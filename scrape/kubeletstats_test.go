package scrape

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/obs-dev/obs/actors"
)

// kubeletServer stands in for a kubelet, which cannot run here: it serves
// a recorded /stats/summary (testdata/kubelet/summary.json, in the
// kubelet's stats/v1alpha1 Summary shape) and /pods (testdata/kubelet/
// pods.json, the kubelet's core/v1 PodList of the same two pods) over TLS
// to callers that send the bearer token.
func kubeletServer(t *testing.T, token string) (*httptest.Server, *atomic.Int64) {
	srv, denied, _ := kubeletServerPods(t, token)
	return srv, denied
}

// kubeletServerPods is kubeletServer that also counts /pods requests.
func kubeletServerPods(t *testing.T, token string) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	docs := map[string][]byte{}
	for path, file := range map[string]string{"/stats/summary": "summary.json", "/pods": "pods.json"} {
		body, err := os.ReadFile(filepath.Join("testdata", "kubelet", file))
		require.NoError(t, err)
		docs[path] = body
	}
	var denied, pods atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			denied.Add(1)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/pods" {
			pods.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &denied, &pods
}

// saDir writes a service account token file.
func saDir(t *testing.T, token string) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600))
	return dir
}

type batchSink struct {
	mu      sync.Mutex
	batches []pmetric.Metrics
}

func (s *batchSink) consume(_ context.Context, b actors.Batch, _ []actors.KV) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, b.Metrics)
	return nil
}

func (s *batchSink) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

// runFor runs r until sink holds a batch or d passes.
func runFor(t *testing.T, run func(context.Context) error, until func() bool, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	deadline := time.Now().Add(d)
	for !until() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
}

func TestKubeletStatsSeedBlock(t *testing.T) {
	cfg := DefaultKubeletStatsConfig()
	seedReceiver(t, "kubeletstats", &cfg)
	require.Equal(t, "serviceAccount", cfg.AuthType)
	require.Equal(t, "https://127.0.0.1:10250", cfg.Endpoint)
	require.True(t, cfg.InsecureSkipVerify)
	require.NoError(t, cfg.Validate())

	srv, denied := kubeletServer(t, "seed-token")
	cfg.Endpoint = srv.URL
	cfg.CollectionInterval = 50 * time.Millisecond
	cfg.serviceAccountDir = saDir(t, "seed-token")
	var sink batchSink
	reg := prometheus.NewRegistry()
	r, err := NewKubeletStatsReceiver("kubeletstats", cfg, sink.consume, nil, reg)
	require.NoError(t, err)
	runFor(t, r.Run, func() bool { return sink.n() > 0 }, 5*time.Second)
	require.Positive(t, sink.n())
	require.Zero(t, denied.Load())
	got := hmPoints(sink.batches[0])

	for _, n := range []string{"k8s.node.cpu.usage", "k8s.pod.cpu.usage", "container.cpu.usage",
		"k8s.node.cpu.time", "k8s.node.memory.working_set", "k8s.node.filesystem.usage", "k8s.node.network.io",
		"k8s.pod.memory.usage", "k8s.pod.network.errors", "k8s.pod.filesystem.usage", "container.memory.rss", "container.filesystem.available"} {
		require.NotEmpty(t, got[n], "%s missing", n)
	}
	for _, n := range []string{"k8s.node.cpu.utilization", "k8s.pod.cpu.utilization", "container.cpu.utilization", "k8s.volume.available", "k8s.node.uptime"} {
		require.Empty(t, got[n], "%s is off", n)
	}
	require.InDelta(t, 0.236541207, got["k8s.node.cpu.usage"][0].v, 1e-12)
	require.Equal(t, "node-a", hmAttr(got["k8s.node.cpu.usage"][0].res, "k8s.node.name"))
	require.Len(t, got["k8s.pod.cpu.usage"], 2)
	require.Len(t, got["container.cpu.usage"], 3)
	byContainer := map[string]hmPoint{}
	for _, p := range got["container.cpu.usage"] {
		byContainer[hmAttr(p.res, "k8s.namespace.name")+"/"+hmAttr(p.res, "k8s.pod.name")+"/"+hmAttr(p.res, "k8s.container.name")] = p
	}
	nginx, ok := byContainer["shop/web-7c9f8b6d5-l2kmn/nginx"]
	require.True(t, ok, "%v", byContainer)
	require.InDelta(t, 0.001203344, nginx.v, 1e-12)
	require.Equal(t, "a3f2c1d0-9b8e-47a6-8c5d-e4f3a2b1c0d9", hmAttr(nginx.res, "k8s.pod.uid"))
	// node network: one point per interface and direction
	require.Len(t, got["k8s.node.network.io"], 4)
	for _, p := range got["k8s.node.network.io"] {
		if hmAttr(p.attrs, "interface") == "cni0" && hmAttr(p.attrs, "direction") == "transmit" {
			require.Equal(t, float64(3341007711), p.v)
		}
	}
}

func TestKubeletStatsAuthAndTLS(t *testing.T) {
	srv, denied := kubeletServer(t, "right")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	t.Run("wrong token is refused and nothing is consumed", func(t *testing.T) {
		cfg := DefaultKubeletStatsConfig()
		cfg.AuthType, cfg.Endpoint, cfg.InsecureSkipVerify = "serviceAccount", srv.URL, true
		cfg.CollectionInterval = 20 * time.Millisecond
		cfg.serviceAccountDir = saDir(t, "wrong")
		var sink batchSink
		r, err := NewKubeletStatsReceiver("kubeletstats", cfg, sink.consume, nil, nil)
		require.NoError(t, err)
		before := denied.Load()
		runFor(t, r.Run, func() bool { return denied.Load() > before+1 }, 5*time.Second)
		require.Greater(t, denied.Load(), before)
		require.Zero(t, sink.n())
	})

	t.Run("service account CA verifies the kubelet", func(t *testing.T) {
		cfg := DefaultKubeletStatsConfig()
		cfg.AuthType, cfg.Endpoint = "serviceAccount", srv.URL
		cfg.CollectionInterval = time.Hour
		cfg.serviceAccountDir = saDir(t, "right")
		data, err := os.ReadFile(caFile)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(cfg.serviceAccountDir, "ca.crt"), data, 0o600))
		cfg.MetricGroups = []string{"volume"}
		var sink batchSink
		r, err := NewKubeletStatsReceiver("kubeletstats", cfg, sink.consume, nil, nil)
		require.NoError(t, err)
		runFor(t, r.Run, func() bool { return sink.n() > 0 }, 5*time.Second)
		require.Equal(t, 1, sink.n())
		got := hmPoints(sink.batches[0])
		require.Len(t, got["k8s.volume.available"], 4)
		require.Empty(t, got["k8s.node.cpu.time"], "node group is off")
		for _, p := range got["k8s.volume.inodes.used"] {
			if hmAttr(p.res, "k8s.volume.name") == "config-volume" {
				require.Equal(t, 7.0, p.v)
			}
		}
	})

	t.Run("unknown CA fails the handshake", func(t *testing.T) {
		cfg := DefaultKubeletStatsConfig()
		cfg.AuthType, cfg.Endpoint = "serviceAccount", srv.URL
		cfg.CollectionInterval = time.Hour
		cfg.serviceAccountDir = saDir(t, "right")
		// every httptest server shares one certificate: make another CA
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other-ca"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(cfg.serviceAccountDir, "ca.crt"),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
		var sink batchSink
		reg := prometheus.NewRegistry()
		r, err := NewKubeletStatsReceiver("kubeletstats", cfg, sink.consume, nil, reg)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		r.pollOnce(ctx)
		cancel()
		require.NoError(t, r.Run(ctx))
		require.Zero(t, sink.n())
		mfs, err := reg.Gather()
		require.NoError(t, err)
		var errs float64
		for _, mf := range mfs {
			if mf.GetName() == "obs_scrape_kubeletstats_errors_total" {
				errs = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		require.GreaterOrEqual(t, errs, 1.0)
	})
}

func TestKubeletStatsConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *KubeletStatsConfig)
		want string
	}{
		{"unknown metric", func(c *KubeletStatsConfig) {
			c.Metrics = map[string]MetricSwitch{"k8s.node.cpu.usages": {true}}
		}, "metrics.k8s.node.cpu.usages: unknown metric name"},
		{"auth type", func(c *KubeletStatsConfig) { c.AuthType = "kubeConfig" }, "auth_type"},
		{"tls without files", func(c *KubeletStatsConfig) { c.AuthType = "tls" }, "auth_type: tls needs cert_file"},
		{"group", func(c *KubeletStatsConfig) { c.MetricGroups = []string{"node", "cluster"} }, "metric_groups[1]"},
		{"endpoint", func(c *KubeletStatsConfig) { c.Endpoint = "" }, "endpoint"},
		{"interval", func(c *KubeletStatsConfig) { c.CollectionInterval = 0 }, "collection_interval"},
		{"extra label", func(c *KubeletStatsConfig) { c.ExtraMetadataLabels = []string{"k8s.pod.ip"} }, "extra_metadata_labels[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultKubeletStatsConfig()
			cfg.AuthType, cfg.Endpoint = "serviceAccount", "https://127.0.0.1:10250"
			require.NoError(t, cfg.Validate())
			tt.mod(&cfg)
			require.ErrorContains(t, cfg.Validate(), tt.want)
		})
	}
	t.Run("endpoint without scheme", func(t *testing.T) {
		cfg := DefaultKubeletStatsConfig()
		cfg.AuthType, cfg.Endpoint = "none", "127.0.0.1:10255"
		u, err := cfg.url()
		require.NoError(t, err)
		require.Equal(t, "http://127.0.0.1:10255/stats/summary", u)
	})
}

func FuzzKubeletSummary(f *testing.F) {
	body, err := os.ReadFile("testdata/kubelet/summary.json")
	require.NoError(f, err)
	f.Add(body)
	f.Add([]byte(`{"node":{"network":{"name":"eth0"}},"pods":[{"volume":[{}],"containers":[{}]}]}`))
	f.Add([]byte(`null`))
	groups := map[string]bool{"node": true, "pod": true, "container": true, "volume": true}
	on := hmEnabled(nil, kubeletDefs)
	for n := range on {
		on[n] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := kubeletMetrics(b, groups, on, nil, time.Now(), func(error) {})
		if err == nil {
			_ = md.DataPointCount()
		}
	})
}

// writeClientCert makes a CA, a client certificate it signs, and writes
// the client's cert and key; it returns the CA pool and the file paths.
func writeClientCert(t *testing.T) (*x509.CertPool, string, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubelet-client-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "obs-agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile
}

func TestKubeletStatsClientCert(t *testing.T) {
	body, err := os.ReadFile("testdata/kubelet/summary.json")
	require.NoError(t, err)
	pool, certFile, keyFile := writeClientCert(t)
	var served atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) != 1 || r.TLS.PeerCertificates[0].Subject.CommonName != "obs-agent" {
			http.Error(w, "wrong client", http.StatusForbidden)
			return
		}
		served.Add(1)
		_, _ = w.Write(body)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	cfg := DefaultKubeletStatsConfig()
	cfg.AuthType, cfg.Endpoint, cfg.CAFile, cfg.CertFile, cfg.KeyFile = "tls", srv.URL, caFile, certFile, keyFile
	cfg.CollectionInterval = time.Hour
	var sink batchSink
	r, err := NewKubeletStatsReceiver("kubeletstats", cfg, sink.consume, nil, nil)
	require.NoError(t, err)
	runFor(t, r.Run, func() bool { return sink.n() > 0 }, 5*time.Second)
	require.Equal(t, 1, sink.n())
	require.Equal(t, int64(1), served.Load())
	require.NotEmpty(t, hmPoints(sink.batches[0])["container.cpu.time"])

	t.Run("without a client certificate the handshake fails", func(t *testing.T) {
		cfg := cfg
		cfg.AuthType, cfg.CertFile, cfg.KeyFile = "none", "", ""
		var sink batchSink
		r, err := NewKubeletStatsReceiver("kubeletstats", cfg, sink.consume, nil, nil)
		require.NoError(t, err)
		require.Equal(t, "https://"+srv.Listener.Addr().String()+"/stats/summary", r.url)
		ctx, cancel := context.WithCancel(context.Background())
		r.pollOnce(ctx)
		cancel()
		require.NoError(t, r.Run(ctx))
		require.Zero(t, sink.n())
		require.Equal(t, int64(1), served.Load())
	})
}
