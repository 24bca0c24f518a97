package scrape

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/obs-dev/obs/actors"
)

// KubeletStatsConfig is the kubeletstats receiver's settings, with the
// Collector's key names.
type KubeletStatsConfig struct {
	CollectionInterval  time.Duration                    `yaml:"collection_interval"`
	InitialDelay        time.Duration                    `yaml:"initial_delay"`
	Timeout             time.Duration                    `yaml:"timeout"`
	Endpoint            string                           `yaml:"endpoint"`
	AuthType            string                           `yaml:"auth_type"`
	InsecureSkipVerify  bool                             `yaml:"insecure_skip_verify"`
	CAFile              string                           `yaml:"ca_file"`
	CertFile            string                           `yaml:"cert_file"`
	KeyFile             string                           `yaml:"key_file"`
	MetricGroups        []string                         `yaml:"metric_groups"`
	Metrics             MetricSwitches[kubeletMetricSet] `yaml:"metrics"`
	ExtraMetadataLabels []string                         `yaml:"extra_metadata_labels"`

	// serviceAccountDir holds token and ca.crt; tests point it elsewhere.
	serviceAccountDir string
}

const defaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// DefaultKubeletStatsConfig is the Collector's default: every 10s, the
// node, pod and container groups, serviceAccount auth.
func DefaultKubeletStatsConfig() KubeletStatsConfig {
	return KubeletStatsConfig{
		CollectionInterval: 10 * time.Second,
		Timeout:            10 * time.Second,
		AuthType:           "tls",
		MetricGroups:       []string{"container", "pod", "node"},
		serviceAccountDir:  defaultServiceAccountDir,
	}
}

// kubeletDefs are the Collector's kubeletstats metrics (metadata.yaml).
var kubeletDefs = map[string]hmMetricDef{
	"k8s.node.cpu.time":                  {"s", mkCounter, true},
	"k8s.node.cpu.utilization":           {"1", mkGauge, true},
	"k8s.node.cpu.usage":                 {"{cpu}", mkGauge, false},
	"k8s.node.filesystem.available":      {"By", mkGauge, true},
	"k8s.node.filesystem.capacity":       {"By", mkGauge, true},
	"k8s.node.filesystem.usage":          {"By", mkGauge, true},
	"k8s.node.memory.available":          {"By", mkGauge, true},
	"k8s.node.memory.usage":              {"By", mkGauge, true},
	"k8s.node.memory.rss":                {"By", mkGauge, true},
	"k8s.node.memory.working_set":        {"By", mkGauge, true},
	"k8s.node.memory.page_faults":        {"1", mkGauge, true},
	"k8s.node.memory.major_page_faults":  {"1", mkGauge, true},
	"k8s.node.network.io":                {"By", mkCounter, true},
	"k8s.node.network.errors":            {"1", mkCounter, true},
	"k8s.node.uptime":                    {"s", mkCounter, false},
	"k8s.pod.cpu.time":                   {"s", mkCounter, true},
	"k8s.pod.cpu.utilization":            {"1", mkGauge, true},
	"k8s.pod.cpu.usage":                  {"{cpu}", mkGauge, false},
	"k8s.pod.filesystem.available":       {"By", mkGauge, true},
	"k8s.pod.filesystem.capacity":        {"By", mkGauge, true},
	"k8s.pod.filesystem.usage":           {"By", mkGauge, true},
	"k8s.pod.memory.available":           {"By", mkGauge, true},
	"k8s.pod.memory.usage":               {"By", mkGauge, true},
	"k8s.pod.memory.rss":                 {"By", mkGauge, true},
	"k8s.pod.memory.working_set":         {"By", mkGauge, true},
	"k8s.pod.memory.page_faults":         {"1", mkGauge, true},
	"k8s.pod.memory.major_page_faults":   {"1", mkGauge, true},
	"k8s.pod.network.io":                 {"By", mkCounter, true},
	"k8s.pod.network.errors":             {"1", mkCounter, true},
	"k8s.pod.uptime":                     {"s", mkCounter, false},
	"container.cpu.time":                 {"s", mkCounter, true},
	"container.cpu.utilization":          {"1", mkGauge, true},
	"container.cpu.usage":                {"{cpu}", mkGauge, false},
	"container.filesystem.available":     {"By", mkGauge, true},
	"container.filesystem.capacity":      {"By", mkGauge, true},
	"container.filesystem.usage":         {"By", mkGauge, true},
	"container.memory.available":         {"By", mkGauge, true},
	"container.memory.usage":             {"By", mkGauge, true},
	"container.memory.rss":               {"By", mkGauge, true},
	"container.memory.working_set":       {"By", mkGauge, true},
	"container.memory.page_faults":       {"1", mkGauge, true},
	"container.memory.major_page_faults": {"1", mkGauge, true},
	"container.uptime":                   {"s", mkCounter, false},
	"k8s.volume.available":               {"By", mkGauge, true},
	"k8s.volume.capacity":                {"By", mkGauge, true},
	"k8s.volume.inodes":                  {"1", mkGauge, true},
	"k8s.volume.inodes.free":             {"1", mkGauge, true},
	"k8s.volume.inodes.used":             {"1", mkGauge, true},
}

// Validate checks the settings; errors name the key.
func (c *KubeletStatsConfig) Validate() error {
	if c.CollectionInterval <= 0 {
		return fmt.Errorf("collection_interval: must be positive, got %s", c.CollectionInterval)
	}
	if c.Timeout < 0 {
		return errors.New("timeout: must not be negative")
	}
	switch c.AuthType {
	case "serviceAccount", "none":
	case "tls":
		if c.CertFile == "" || c.KeyFile == "" {
			return errors.New("auth_type: tls needs cert_file and key_file")
		}
	default:
		return fmt.Errorf("auth_type: want serviceAccount, tls or none, got %q", c.AuthType)
	}
	if c.Endpoint == "" {
		return errors.New("endpoint: must be set (e.g. https://${env:K8S_NODE_IP}:10250)")
	}
	if _, err := c.url(); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	for i, g := range c.MetricGroups {
		switch g {
		case "node", "pod", "container", "volume":
		default:
			return fmt.Errorf("metric_groups[%d]: want node, pod, container or volume, got %q", i, g)
		}
	}
	for i, l := range c.ExtraMetadataLabels {
		switch l {
		case "container.id", "k8s.volume.type":
		default:
			return fmt.Errorf("extra_metadata_labels[%d]: want container.id or k8s.volume.type, got %q", i, l)
		}
	}
	return hmCheckSwitches("metrics", c.Metrics, kubeletDefs)
}

// url is the summary URL: https unless auth_type none, as the Collector.
func (c *KubeletStatsConfig) url() (string, error) {
	return c.path("/stats/summary")
}

// path is the URL of the kubelet's endpoint p (/stats/summary, /pods).
func (c *KubeletStatsConfig) path(p string) (string, error) {
	ep := c.Endpoint
	if !strings.Contains(ep, "://") {
		scheme := "https://"
		if c.AuthType == "none" {
			scheme = "http://"
		}
		ep = scheme + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", fmt.Errorf("no host in %q", c.Endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	return u.String(), nil
}

// KubeletStatsReceiver polls the kubelet's /stats/summary every
// collection_interval and hands each poll to consume as one batch.
type KubeletStatsReceiver struct {
	id      string
	cfg     KubeletStatsConfig
	url     string
	podsURL string
	client  *http.Client
	groups  map[string]bool
	on      map[string]bool
	consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error
	log     *slog.Logger
	m       *hmMetrics
}

// NewKubeletStatsReceiver validates cfg and builds the HTTP client (TLS
// files are read here); it starts nothing.
func NewKubeletStatsReceiver(id string, cfg KubeletStatsConfig, consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error,
	log *slog.Logger, reg prometheus.Registerer) (*KubeletStatsReceiver, error) {
	if consume == nil {
		return nil, fmt.Errorf("kubeletstats %s: nil consume", id)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.serviceAccountDir == "" {
		cfg.serviceAccountDir = defaultServiceAccountDir
	}
	if len(cfg.MetricGroups) == 0 {
		cfg.MetricGroups = []string{"container", "pod", "node"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kubeletstats %s: %w", id, err)
	}
	u, _ := cfg.url()
	podsURL, _ := cfg.path("/pods")
	tc := &tls.Config{InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // the Collector's insecure_skip_verify, the user's choice
	ca := cfg.CAFile
	if ca == "" && cfg.AuthType == "serviceAccount" && !cfg.InsecureSkipVerify {
		ca = cfg.serviceAccountDir + "/ca.crt"
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("kubeletstats %s: ca_file: %w", id, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubeletstats %s: ca_file: no certificate in %s", id, ca)
		}
		tc.RootCAs = pool
	}
	if cfg.AuthType == "tls" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kubeletstats %s: cert_file/key_file: %w", id, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = cfg.CollectionInterval
	}
	tr := &http.Transport{TLSClientConfig: tc, MaxIdleConns: 1, IdleConnTimeout: 2 * cfg.CollectionInterval}
	m, err := newHMMetrics(reg, id, "kubeletstats")
	if err != nil {
		return nil, fmt.Errorf("kubeletstats %s: %w", id, err)
	}
	groups := map[string]bool{}
	for _, g := range cfg.MetricGroups {
		groups[g] = true
	}
	return &KubeletStatsReceiver{
		id: id, cfg: cfg, url: u, podsURL: podsURL, client: &http.Client{Transport: tr, Timeout: timeout},
		groups: groups, on: hmEnabled(cfg.Metrics, kubeletDefs),
		consume: consume, log: log.With("receiver", id), m: m,
	}, nil
}

// Run polls until ctx ends; it closes idle connections on the way out.
func (r *KubeletStatsReceiver) Run(ctx context.Context) error {
	defer r.client.CloseIdleConnections()
	everyInterval(ctx, r.cfg.InitialDelay, r.cfg.CollectionInterval, r.pollOnce)
	return nil
}

func (r *KubeletStatsReceiver) pollOnce(ctx context.Context) {
	began := time.Now()
	md, err := r.poll(ctx)
	r.m.collections.Observe(time.Since(began).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			r.m.errors.WithLabelValues("kubelet").Inc()
			r.log.Warn("kubelet stats poll failed", "url", r.url, "err", err)
		}
		return
	}
	n := md.DataPointCount()
	if n == 0 {
		return
	}
	if err := r.consume(ctx, actors.MetricsBatch(md), nil); err != nil {
		r.m.refused.Add(float64(n))
		if ctx.Err() == nil {
			r.log.Warn("kubelet stats not stored", "points", n, "err", err)
		}
		return
	}
	r.m.accepted.Add(float64(n))
}

// maxSummaryBytes bounds one /stats/summary or /pods body (a node of
// 250 pods sends a few MB).
const maxSummaryBytes = 64 << 20

func (r *KubeletStatsReceiver) poll(ctx context.Context) (pmetric.Metrics, error) {
	var meta *kubeletPodMeta
	if len(r.cfg.ExtraMetadataLabels) > 0 {
		// /pods first, as the Collector: a container that starts between the
		// two requests is skipped this time rather than sent without its ID.
		body, err := r.get(ctx, r.podsURL)
		if err != nil {
			return pmetric.Metrics{}, fmt.Errorf("pods: %w", err)
		}
		if meta, err = newKubeletPodMeta(body, r.cfg.ExtraMetadataLabels); err != nil {
			return pmetric.Metrics{}, err
		}
	}
	body, err := r.get(ctx, r.url)
	if err != nil {
		return pmetric.Metrics{}, fmt.Errorf("summary: %w", err)
	}
	return kubeletMetrics(body, r.groups, r.on, meta, time.Now(), func(err error) {
		// the Collector skips these too; a container that is still starting
		// is routine, so count rather than warn on every poll
		r.m.errors.WithLabelValues("metadata").Inc()
		r.log.Debug("kubelet stats skipped: no metadata", "err", err)
	})
}

// get fetches one kubelet document with the configured authentication.
func (r *KubeletStatsReceiver) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if r.cfg.AuthType == "serviceAccount" {
		// read each time: the kubelet rotates projected tokens
		tok, err := os.ReadFile(r.cfg.serviceAccountDir + "/token")
		if err != nil {
			return nil, fmt.Errorf("read service account token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSummaryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get: status %s", resp.Status)
	}
	if len(body) > maxSummaryBytes {
		return nil, fmt.Errorf("read: larger than %d bytes", maxSummaryBytes)
	}
	return body, nil
}

const kubeletScope = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/kubeletstatsreceiver"

// kubeletMetrics turns a summary document into metrics: one resource
// per node, pod, container and volume, as the Collector. meta (nil
// without extra_metadata_labels) adds container.id and k8s.volume.type;
// a container or volume it does not know is skipped and handed to skip.
func kubeletMetrics(body []byte, groups, on map[string]bool, meta *kubeletPodMeta, now time.Time, skip func(error)) (pmetric.Metrics, error) {
	var s kubeletSummary
	if err := json.Unmarshal(body, &s); err != nil {
		return pmetric.Metrics{}, fmt.Errorf("decode summary: %w", err)
	}
	md := pmetric.NewMetrics()
	ts := func(t time.Time) pcommon.Timestamp {
		if t.IsZero() {
			return pcommon.NewTimestampFromTime(now)
		}
		return pcommon.NewTimestampFromTime(t)
	}
	newSet := func(start time.Time, attrs ...string) *hmSet {
		rm := md.ResourceMetrics().AppendEmpty()
		hmPutAttrs(rm.Resource().Attributes(), attrs)
		return newHMSet(rm, kubeletScope, kubeletDefs, on, pcommon.NewTimestampFromTime(start), pcommon.NewTimestampFromTime(now))
	}
	if groups["node"] {
		n := s.Node
		set := newSet(n.StartTime, "k8s.node.name", n.NodeName)
		kubeletCommon(set, "k8s.node.", n.CPU, n.Memory, n.Fs, n.StartTime, now, ts)
		kubeletNet(set, "k8s.node.", n.Network, ts)
	}
	for _, p := range s.Pods {
		pod := []string{"k8s.pod.uid", p.PodRef.UID, "k8s.pod.name", p.PodRef.Name, "k8s.namespace.name", p.PodRef.Namespace}
		if groups["pod"] {
			set := newSet(p.StartTime, pod...)
			kubeletCommon(set, "k8s.pod.", p.CPU, p.Memory, p.EphemeralStorage, p.StartTime, now, ts)
			kubeletNet(set, "k8s.pod.", p.Network, ts)
		}
		if groups["container"] {
			for _, c := range p.Containers {
				extra, err := meta.containerAttrs(p.PodRef.UID, c.Name)
				if err != nil {
					skip(err)
					continue
				}
				set := newSet(c.StartTime, slices.Concat(pod, []string{"k8s.container.name", c.Name}, extra)...)
				kubeletCommon(set, "container.", c.CPU, c.Memory, c.Rootfs, c.StartTime, now, ts)
			}
		}
		if groups["volume"] {
			for _, v := range p.Volumes {
				extra, err := meta.volumeAttrs(p.PodRef.UID, v.Name)
				if err != nil {
					skip(err)
					continue
				}
				set := newSet(p.StartTime, slices.Concat(pod, []string{"k8s.volume.name", v.Name}, extra)...)
				set.now = ts(v.Time)
				intp(set, "k8s.volume.available", v.AvailableBytes)
				intp(set, "k8s.volume.capacity", v.CapacityBytes)
				intp(set, "k8s.volume.inodes", v.Inodes)
				intp(set, "k8s.volume.inodes.free", v.InodesFree)
				intp(set, "k8s.volume.inodes.used", v.InodesUsed)
			}
		}
	}
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		return rm.ScopeMetrics().At(0).Metrics().Len() == 0
	})
	return md, nil
}

func intp(s *hmSet, name string, v *uint64, attrs ...string) {
	if v != nil {
		s.int(name, int64(*v), attrs...)
	}
}

func kubeletCommon(s *hmSet, p string, cpu *kubeletCPUStats, mem *kubeletMemoryStats, fs *kubeletFsStats,
	start, now time.Time, ts func(time.Time) pcommon.Timestamp) {
	if cpu != nil {
		s.now = ts(cpu.Time)
		if cpu.UsageNanoCores != nil {
			cores := float64(*cpu.UsageNanoCores) / 1e9
			s.double(p+"cpu.usage", cores)
			s.double(p+"cpu.utilization", cores)
		}
		if cpu.UsageCoreNanoSeconds != nil {
			s.double(p+"cpu.time", float64(*cpu.UsageCoreNanoSeconds)/1e9)
		}
	}
	if mem != nil {
		s.now = ts(mem.Time)
		intp(s, p+"memory.available", mem.AvailableBytes)
		intp(s, p+"memory.usage", mem.UsageBytes)
		intp(s, p+"memory.rss", mem.RSSBytes)
		intp(s, p+"memory.working_set", mem.WorkingSetBytes)
		intp(s, p+"memory.page_faults", mem.PageFaults)
		intp(s, p+"memory.major_page_faults", mem.MajorPageFaults)
	}
	if fs != nil {
		s.now = ts(fs.Time)
		intp(s, p+"filesystem.available", fs.AvailableBytes)
		intp(s, p+"filesystem.capacity", fs.CapacityBytes)
		intp(s, p+"filesystem.usage", fs.UsedBytes)
	}
	if !start.IsZero() {
		s.now = pcommon.NewTimestampFromTime(now)
		s.int(p+"uptime", int64(now.Sub(start).Seconds()))
	}
}

func kubeletNet(s *hmSet, p string, n *kubeletNetStats, ts func(time.Time) pcommon.Timestamp) {
	if n == nil {
		return
	}
	s.now = ts(n.Time)
	ifs := n.Interfaces
	if len(ifs) == 0 && n.Name != "" {
		ifs = []kubeletInterfaceStats{n.kubeletInterfaceStats}
	}
	for _, i := range ifs {
		intp(s, p+"network.io", i.RxBytes, "interface", i.Name, "direction", "receive")
		intp(s, p+"network.io", i.TxBytes, "interface", i.Name, "direction", "transmit")
		intp(s, p+"network.errors", i.RxErrors, "interface", i.Name, "direction", "receive")
		intp(s, p+"network.errors", i.TxErrors, "interface", i.Name, "direction", "transmit")
	}
}
