package roles

import (
	"fmt"
	"sort"
	"strings"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/config"
	"github.com/obs-dev/obs/enrich"
	"github.com/obs-dev/obs/export"
	"github.com/obs-dev/obs/logs"
	"github.com/obs-dev/obs/scrape"
)

// kind is the section a component is defined in.
type kind string

const (
	kindReceiver  kind = "receivers"
	kindProcessor kind = "processors"
	kindExporter  kind = "exporters"
	kindConnector kind = "connectors"
)

func (k kind) singular() string { return strings.TrimSuffix(string(k), "s") }

// componentType is one row of the table: how to decode a component's
// settings and which signals it handles.
type componentType struct {
	signals []actors.Signal
	// decode returns the typed, validated settings.
	decode func(c *config.Component) (any, error)
}

var allSignals = []actors.Signal{actors.SignalLogs, actors.SignalMetrics, actors.SignalTraces}

// decodeAs decodes a component's settings into a copy of def and runs its
// Validate method, naming the component in the error.
func decodeAs[T any](def func() T, validate func(*T) error) func(*config.Component) (any, error) {
	return func(c *config.Component) (any, error) {
		cfg := def()
		if err := config.Decode(c, &cfg); err != nil {
			return nil, err
		}
		if validate != nil {
			if err := validate(&cfg); err != nil {
				return nil, fmt.Errorf("%s: %w", c.ID, err)
			}
		}
		return cfg, nil
	}
}

// components is the one table of component types, per kind. It is built
// by a function so that no package-level state can be changed.
func components() map[kind]map[string]componentType {
	return map[kind]map[string]componentType{
		kindReceiver: {
			"otlp": {signals: allSignals, decode: decodeAs(export.DefaultOTLPReceiverConfig,
				(*export.OTLPReceiverConfig).Validate)},
			"prometheus": {signals: []actors.Signal{actors.SignalMetrics}, decode: decodeAs(scrape.DefaultPrometheusConfig,
				func(c *scrape.PrometheusConfig) error { return c.Validate() })},
			"filelog": {signals: []actors.Signal{actors.SignalLogs}, decode: decodeAs(logs.DefaultFilelogConfig,
				(*logs.FilelogConfig).Validate)},
			"hostmetrics": {signals: []actors.Signal{actors.SignalMetrics}, decode: decodeAs(scrape.DefaultHostMetricsConfig,
				(*scrape.HostMetricsConfig).Validate)},
			"kubeletstats": {signals: []actors.Signal{actors.SignalMetrics}, decode: decodeAs(scrape.DefaultKubeletStatsConfig,
				(*scrape.KubeletStatsConfig).Validate)},
			"k8s_events": {signals: []actors.Signal{actors.SignalLogs}, decode: decodeAs(logs.DefaultK8sEventsConfig,
				(*logs.K8sEventsConfig).Validate)},
		},
		kindProcessor: {
			"batch": {signals: allSignals, decode: decodeAs(enrich.DefaultBatchConfig,
				func(c *enrich.BatchConfig) error { return c.Validate() })},
			"memory_limiter": {signals: allSignals, decode: decodeAs(func() enrich.MemoryLimiterConfig { return enrich.MemoryLimiterConfig{} },
				func(c *enrich.MemoryLimiterConfig) error { return c.Validate() })},
			"resource": {signals: allSignals, decode: decodeAs(enrich.DefaultResourceConfig,
				func(c *enrich.ResourceConfig) error { return c.Validate() })},
			"attributes": {signals: allSignals, decode: decodeAs(enrich.DefaultAttributesConfig,
				func(c *enrich.AttributesConfig) error { return c.Validate() })},
			"metricstransform": {signals: []actors.Signal{actors.SignalMetrics}, decode: decodeAs(enrich.DefaultMetricsTransformConfig,
				func(c *enrich.MetricsTransformConfig) error { return c.Validate() })},
			"filter": {signals: allSignals, decode: decodeAs(enrich.DefaultFilterConfig,
				func(c *enrich.FilterConfig) error { return c.Validate() })},
			"k8sattributes": {signals: allSignals, decode: decodeAs(enrich.DefaultK8sAttributesConfig,
				func(c *enrich.K8sAttributesConfig) error { return c.Validate() })},
			"resourcedetection": {signals: allSignals, decode: decodeAs(enrich.DefaultResourceDetectionConfig,
				func(c *enrich.ResourceDetectionConfig) error { return c.Validate() })},
		},
		kindExporter: {
			"otlp": {signals: allSignals, decode: decodeAs(export.DefaultOTLPExporterConfig,
				(*export.OTLPExporterConfig).Validate)},
			"otlphttp": {signals: allSignals, decode: decodeAs(export.DefaultOTLPHTTPExporterConfig,
				(*export.OTLPHTTPExporterConfig).Validate)},
			"debug": {signals: allSignals, decode: decodeAs(export.DefaultDebugExporterConfig,
				(*export.DebugExporterConfig).Validate)},
			"file": {signals: allSignals, decode: decodeAs(export.DefaultFileExporterConfig,
				(*export.FileExporterConfig).Validate)},
		},
		kindConnector: {
			"routing": {signals: allSignals, decode: decodeAs(func() enrich.RoutingConfig { return enrich.RoutingConfig{} },
				func(c *enrich.RoutingConfig) error { return c.Validate() })},
		},
	}
}

// typeNames lists the known types of a kind, for "did you mean" errors.
func typeNames(table map[string]componentType) string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
