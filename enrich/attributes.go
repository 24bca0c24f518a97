package enrich

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// AttributesConfig is the Collector's `attributes` processor: actions on
// span, log record and metric data point attributes, optionally limited
// by include/exclude.
type AttributesConfig struct {
	// Actions run in order on every selected item. Required.
	Actions []AttrAction `yaml:"actions"`
	// Include, when set, limits the actions to items it matches.
	Include *MatchProperties `yaml:"include"`
	// Exclude, when set, skips the items it matches.
	Exclude *MatchProperties `yaml:"exclude"`
}

// DefaultAttributesConfig returns an empty configuration (the Collector
// has no defaults here; actions are required).
func DefaultAttributesConfig() AttributesConfig { return AttributesConfig{} }

// Validate checks the actions and the include/exclude blocks.
func (c AttributesConfig) Validate() error {
	_, err := c.compile()
	return err
}

// ValidateFor additionally checks that include/exclude use only keys that
// apply to the signal (span_names for traces, log_bodies for logs,
// metric_names for metrics …) and at least one, as the Collector does
// when it builds the processor for a pipeline.
func (c AttributesConfig) ValidateFor(s actors.Signal) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := validateMatchFor(c.Include, s.String(), "include"); err != nil {
		return err
	}
	return validateMatchFor(c.Exclude, s.String(), "exclude")
}

type attributesProc struct {
	actions attrActions
	sel     selection
}

func (c AttributesConfig) compile() (*attributesProc, error) {
	acts, err := compileActions(c.Actions, "actions")
	if err != nil {
		return nil, err
	}
	p := &attributesProc{actions: acts}
	if p.sel.include, err = compileMatch(c.Include, "include"); err != nil {
		return nil, err
	}
	if p.sel.exclude, err = compileMatch(c.Exclude, "exclude"); err != nil {
		return nil, err
	}
	return p, nil
}

// processorCounter builds a counter labelled with the processor id and
// registers it on reg (nil: not registered).
func processorCounter(reg prometheus.Registerer, name, help, id string) (prometheus.Counter, error) {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name:        name,
		Help:        help,
		ConstLabels: prometheus.Labels{"processor": id},
	})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register %s for %s: %w", name, id, err)
		}
	}
	return c, nil
}

// NewAttributes builds the `attributes` processor. It counts the items
// whose attributes it changed in
// obs_enrich_attributes_changed_items_total{processor}.
func NewAttributes(id string, cfg AttributesConfig, log *slog.Logger, reg prometheus.Registerer) (actors.ProcessFunc, error) {
	p, err := cfg.compile()
	if err != nil {
		return nil, fmt.Errorf("attributes processor %s: %w", id, err)
	}
	_ = log // nothing is logged per batch
	changed, err := processorCounter(reg, "obs_enrich_attributes_changed_items_total",
		"Spans, log records and metric data points whose attributes an attributes processor changed.", id)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, b actors.Batch) error {
		if n := p.process(ctx, b); n > 0 {
			changed.Add(float64(n))
		}
		return nil
	}, nil
}

func (p *attributesProc) process(ctx context.Context, b actors.Batch) int {
	n := 0
	switch b.Signal {
	case actors.SignalTraces:
		rss := b.Traces.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rs := rss.At(i)
			sss := rs.ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				ss := sss.At(j)
				spans := ss.Spans()
				for k := 0; k < spans.Len(); k++ {
					sp := spans.At(k)
					if p.sel.span(rs.Resource(), ss.Scope(), sp) && p.actions.apply(ctx, sp.Attributes()) {
						n++
					}
				}
			}
		}
	case actors.SignalLogs:
		rls := b.Logs.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			rl := rls.At(i)
			sls := rl.ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				sl := sls.At(j)
				lrs := sl.LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					if p.sel.log(rl.Resource(), sl.Scope(), lr) && p.actions.apply(ctx, lr.Attributes()) {
						n++
					}
				}
			}
		}
	case actors.SignalMetrics:
		rms := b.Metrics.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			rm := rms.At(i)
			sms := rm.ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				sm := sms.At(j)
				ms := sm.Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					rangePointAttrs(m, func(attrs pcommon.Map) {
						if p.sel.point(rm.Resource(), sm.Scope(), m, attrs) && p.actions.apply(ctx, attrs) {
							n++
						}
					})
				}
			}
		}
	}
	return n
}

// rangePointAttrs calls f with the attributes of every data point of m.
func rangePointAttrs(m pmetric.Metric, f func(pcommon.Map)) {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		dps := m.Gauge().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			f(dps.At(i).Attributes())
		}
	case pmetric.MetricTypeSum:
		dps := m.Sum().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			f(dps.At(i).Attributes())
		}
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			f(dps.At(i).Attributes())
		}
	case pmetric.MetricTypeExponentialHistogram:
		dps := m.ExponentialHistogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			f(dps.At(i).Attributes())
		}
	case pmetric.MetricTypeSummary:
		dps := m.Summary().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			f(dps.At(i).Attributes())
		}
	}
}
