package enrich

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// ResourceConfig is the Collector's `resource` processor: attribute
// actions on the resource of every span, log and metric batch.
type ResourceConfig struct {
	// Attributes lists the actions, run in order. Required.
	Attributes []AttrAction `yaml:"attributes"`
}

// DefaultResourceConfig returns an empty configuration (actions are
// required).
func DefaultResourceConfig() ResourceConfig { return ResourceConfig{} }

// Validate checks every action.
func (c ResourceConfig) Validate() error {
	_, err := compileActions(c.Attributes, "attributes")
	return err
}

// NewResource builds the `resource` processor. It counts the resources it
// changed in obs_enrich_resource_changed_items_total{processor}.
func NewResource(id string, cfg ResourceConfig, log *slog.Logger, reg prometheus.Registerer) (actors.ProcessFunc, error) {
	acts, err := compileActions(cfg.Attributes, "attributes")
	if err != nil {
		return nil, fmt.Errorf("resource processor %s: %w", id, err)
	}
	_ = log // nothing is logged per batch
	changed, err := processorCounter(reg, "obs_enrich_resource_changed_items_total",
		"Resources whose attributes a resource processor changed.", id)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, b actors.Batch) error {
		n := 0
		forEachResource(b, func(r pcommon.Resource) {
			if acts.apply(ctx, r.Attributes()) {
				n++
			}
		})
		if n > 0 {
			changed.Add(float64(n))
		}
		return nil
	}, nil
}

// forEachResource calls f with every resource of the batch.
func forEachResource(b actors.Batch, f func(pcommon.Resource)) {
	switch b.Signal {
	case actors.SignalLogs:
		rls := b.Logs.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			f(rls.At(i).Resource())
		}
	case actors.SignalMetrics:
		rms := b.Metrics.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			f(rms.At(i).Resource())
		}
	case actors.SignalTraces:
		rss := b.Traces.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			f(rss.At(i).Resource())
		}
	}
}
