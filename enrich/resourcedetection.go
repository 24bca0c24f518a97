package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ResourceDetectionConfig is the Collector's `resourcedetection`
// processor with the env, k8snode and system detectors.
type ResourceDetectionConfig struct {
	// Detectors run in order; for a key two detectors find, the earlier
	// one wins. Required: env, k8snode, system.
	Detectors []string `yaml:"detectors"`
	// Override replaces attributes the resource already has. Default true.
	Override *bool `yaml:"override"`
	// Timeout bounds detection as a whole. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// K8sNode configures the k8snode detector.
	K8sNode K8sNodeDetectorConfig `yaml:"k8snode"`
	// System configures the system detector.
	System SystemDetectorConfig `yaml:"system"`
}

// K8sNodeDetectorConfig is the k8snode detector's block.
type K8sNodeDetectorConfig struct {
	// AuthType is as in k8sattributes; roles builds the client.
	AuthType string `yaml:"auth_type"`
	// NodeFromEnvVar names the variable holding the node name (downward
	// API spec.nodeName). Default K8S_NODE_NAME.
	NodeFromEnvVar string `yaml:"node_from_env_var"`
}

// SystemDetectorConfig is the system detector's block.
type SystemDetectorConfig struct {
	// HostnameSources are tried in order: dns (the FQDN), os, cname,
	// lookup (reverse DNS of the host's address). Default [dns, os].
	HostnameSources []string `yaml:"hostname_sources"`
}

// DefaultResourceDetectionConfig returns the defaults.
func DefaultResourceDetectionConfig() ResourceDetectionConfig {
	return ResourceDetectionConfig{
		Timeout: 5 * time.Second,
		K8sNode: K8sNodeDetectorConfig{AuthType: AuthServiceAccount, NodeFromEnvVar: "K8S_NODE_NAME"},
		System:  SystemDetectorConfig{HostnameSources: []string{"dns", "os"}},
	}
}

// Validate checks the configuration.
func (c ResourceDetectionConfig) Validate() error {
	if len(c.Detectors) == 0 {
		return errors.New("detectors: at least one detector is required")
	}
	seen := map[string]bool{}
	for i, d := range c.Detectors {
		switch d {
		case "env", "k8snode", "system":
		default:
			return fmt.Errorf("detectors[%d]: unknown detector %q (want env, k8snode or system)", i, d)
		}
		if seen[d] {
			return fmt.Errorf("detectors[%d]: %s listed twice", i, d)
		}
		seen[d] = true
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout: must not be negative, got %s", c.Timeout)
	}
	if err := validAuthType("k8snode.auth_type", c.K8sNode.AuthType); err != nil {
		return err
	}
	for i, s := range c.System.HostnameSources {
		switch s {
		case "dns", "os", "cname", "lookup":
		default:
			return fmt.Errorf("system.hostname_sources[%d]: unknown source %q (want dns, os, cname or lookup)", i, s)
		}
	}
	return nil
}

// ResourceDetection is the `resourcedetection` processor. Detect runs
// the detectors once (the Collector does so at start); Process then only
// copies the detected attributes into every resource.
type ResourceDetection struct {
	id     string
	cfg    ResourceDetectionConfig
	client kubernetes.Interface
	log    *slog.Logger
	getenv func(string) string
	host   func() (string, error)

	changed prometheus.Counter

	mu       sync.Mutex
	detected bool
	attrs    pcommon.Map // read-only once detected
}

// NewResourceDetection builds the processor. client is needed only by
// the k8snode detector (nil otherwise). It counts changed resources in
// obs_enrich_resourcedetection_changed_items_total.
func NewResourceDetection(id string, cfg ResourceDetectionConfig, client kubernetes.Interface, log *slog.Logger, reg prometheus.Registerer) (*ResourceDetection, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("resourcedetection processor %s: %w", id, err)
	}
	for _, d := range cfg.Detectors {
		if d == "k8snode" && client == nil {
			return nil, fmt.Errorf("resourcedetection processor %s: detector k8snode needs a kubernetes client", id)
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.K8sNode.NodeFromEnvVar == "" {
		cfg.K8sNode.NodeFromEnvVar = "K8S_NODE_NAME"
	}
	if len(cfg.System.HostnameSources) == 0 {
		cfg.System.HostnameSources = []string{"dns", "os"}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	changed, err := processorCounter(reg, "obs_enrich_resourcedetection_changed_items_total",
		"Resources a resourcedetection processor added attributes to.", id)
	if err != nil {
		return nil, err
	}
	return &ResourceDetection{
		id: id, cfg: cfg, client: client, log: log.With("processor", id),
		getenv: os.Getenv, host: os.Hostname, changed: changed,
	}, nil
}

// Detect runs every detector once, bounded by the timeout. A detector
// that fails fails Detect (the Collector fails its start); call it again
// to retry. Once it succeeded it does nothing.
func (d *ResourceDetection) Detect(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.detected {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	out := pcommon.NewMap()
	for _, name := range d.cfg.Detectors {
		var (
			found map[string]string
			err   error
		)
		switch name {
		case "env":
			found, err = parseResourceAttributes(d.getenv("OTEL_RESOURCE_ATTRIBUTES"))
		case "k8snode":
			found, err = d.detectK8sNode(ctx)
		case "system":
			found, err = d.detectSystem(ctx)
		}
		if err != nil {
			return fmt.Errorf("resourcedetection processor %s: detector %s: %w", d.id, name, err)
		}
		for k, v := range found {
			putIfAbsent(out, k, v) // the earlier detector wins
		}
	}
	d.attrs = out
	d.detected = true
	d.log.Info("resource detected", "attributes", out.AsRaw())
	return nil
}

// Attributes returns a copy of what Detect found (empty before).
func (d *ResourceDetection) Attributes() map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.detected {
		return map[string]any{}
	}
	return d.attrs.AsRaw()
}

// Process implements actors.ProcessFunc. Before a successful Detect it
// runs Detect itself; if that fails the batch passes unchanged (and the
// failure is logged), so a missing API server never blocks data.
func (d *ResourceDetection) Process(ctx context.Context, b actors.Batch) error {
	d.mu.Lock()
	done, attrs := d.detected, d.attrs
	d.mu.Unlock()
	if !done {
		if err := d.Detect(ctx); err != nil {
			d.log.Warn("resource detection failed; batch passes unchanged", "err", err)
			return nil
		}
		d.mu.Lock()
		attrs = d.attrs
		d.mu.Unlock()
	}
	if attrs.Len() == 0 {
		return nil
	}
	override := d.cfg.Override == nil || *d.cfg.Override
	n := 0
	forEachResource(b, func(r pcommon.Resource) {
		ra := r.Attributes()
		changed := false
		for k, v := range attrs.All() {
			if _, ok := ra.Get(k); ok && !override {
				continue
			}
			if cur, ok := ra.Get(k); ok && cur.Equal(v) {
				continue
			}
			v.CopyTo(ra.PutEmpty(k))
			changed = true
		}
		if changed {
			n++
		}
	})
	if n > 0 {
		d.changed.Add(float64(n))
	}
	return nil
}

func (d *ResourceDetection) detectK8sNode(ctx context.Context) (map[string]string, error) {
	name := d.getenv(d.cfg.K8sNode.NodeFromEnvVar)
	if name == "" {
		return nil, fmt.Errorf("environment variable %s (node_from_env_var) is empty", d.cfg.K8sNode.NodeFromEnvVar)
	}
	n, err := d.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	return map[string]string{"k8s.node.name": n.Name, "k8s.node.uid": string(n.UID)}, nil
}

func (d *ResourceDetection) detectSystem(ctx context.Context) (map[string]string, error) {
	out := map[string]string{"os.type": osType(runtime.GOOS)}
	var errs []error
	for _, src := range d.cfg.System.HostnameSources {
		h, err := d.hostname(ctx, src)
		if err == nil && h != "" {
			out["host.name"] = h
			return out, nil
		}
		errs = append(errs, fmt.Errorf("hostname source %s: %w", src, err))
	}
	return nil, errors.Join(errs...)
}

func (d *ResourceDetection) hostname(ctx context.Context, src string) (string, error) {
	h, err := d.host()
	if err != nil || src == "os" {
		return h, err
	}
	var r net.Resolver
	switch src {
	case "cname":
		c, err := r.LookupCNAME(ctx, h)
		return strings.TrimSuffix(c, "."), err
	case "dns", "lookup":
		addrs, err := r.LookupHost(ctx, h)
		if err != nil {
			return "", err
		}
		for _, a := range addrs {
			names, err := r.LookupAddr(ctx, a)
			if err == nil && len(names) > 0 {
				return strings.TrimSuffix(names[0], "."), nil
			}
		}
		return "", fmt.Errorf("no name for the addresses of %s", h)
	}
	return "", fmt.Errorf("unknown source %s", src)
}

// osType maps GOOS to the semantic conventions' os.type values.
func osType(goos string) string {
	switch goos {
	case "dragonfly":
		return "dragonflybsd"
	case "illumos", "solaris":
		return "solaris"
	}
	return goos
}

// parseResourceAttributes parses OTEL_RESOURCE_ATTRIBUTES: key=value
// pairs separated by commas, values percent-encoded (W3C Baggage octets).
func parseResourceAttributes(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for i, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES pair %d: want key=value, got %q", i, pair)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES %s: %w", k, err)
		}
		out[k] = dv
	}
	return out, nil
}
