package enrich

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// MetricsTransformConfig is the Collector's `metricstransform` processor:
// renames, label edits and aggregations within one batch (never across
// batches).
type MetricsTransformConfig struct {
	// Transforms run in order on every scope of every resource.
	Transforms []MetricTransform `yaml:"transforms"`
}

// MetricTransform selects metrics by name and changes them.
type MetricTransform struct {
	// Include is the metric name (strict) or an unanchored RE2 pattern
	// (regexp). Required.
	Include string `yaml:"include"`
	// MatchType is strict (default) or regexp.
	MatchType string `yaml:"match_type"`
	// MatchLabels limits the transform to data points whose labels match
	// (strict equality or regexp by match_type); an empty value also
	// matches a missing label.
	MatchLabels map[string]string `yaml:"experimental_match_labels"`
	// Action is update (in place), insert (a changed copy), combine
	// (merge every match into one metric named new_name) or group (move
	// the matches to a new resource with group_resource_labels).
	Action string `yaml:"action"`
	// NewName renames the metric; with regexp, $1 / ${name} expand the
	// include pattern's groups. Required for insert and combine.
	NewName string `yaml:"new_name"`
	// GroupResourceLabels are set on the new resource (group).
	GroupResourceLabels map[string]string `yaml:"group_resource_labels"`
	// AggregationType merges combined points with equal labels (combine):
	// sum, mean, min, max, count or median.
	AggregationType string `yaml:"aggregation_type"`
	// SubmatchCase is lower or upper: the case of label values taken from
	// regexp groups (combine).
	SubmatchCase string `yaml:"submatch_case"`
	// Operations run in order on each selected metric.
	Operations []MetricOperation `yaml:"operations"`
}

// MetricOperation is one operation of a transform.
type MetricOperation struct {
	// Action is add_label, update_label, delete_label_value,
	// toggle_scalar_data_type, experimental_scale_value,
	// aggregate_labels or aggregate_label_values.
	Action string `yaml:"action"`
	// Label is the label acted on (update_label, delete_label_value,
	// aggregate_label_values).
	Label string `yaml:"label"`
	// NewLabel is the label to add (add_label) or the new name
	// (update_label).
	NewLabel string `yaml:"new_label"`
	// LabelSet lists the labels aggregate_labels keeps.
	LabelSet []string `yaml:"label_set"`
	// AggregationType is sum, mean, min, max, count or median
	// (aggregate_labels, aggregate_label_values). Histograms aggregate by
	// sum only.
	AggregationType string `yaml:"aggregation_type"`
	// AggregatedValues are the label values merged into NewValue
	// (aggregate_label_values).
	AggregatedValues []string `yaml:"aggregated_values"`
	// NewValue is the value of the added label (add_label) or of the
	// merged values (aggregate_label_values).
	NewValue string `yaml:"new_value"`
	// ValueActions rename label values (update_label).
	ValueActions []ValueAction `yaml:"value_actions"`
	// Scale multiplies values (experimental_scale_value).
	Scale float64 `yaml:"experimental_scale"`
	// LabelValue is the value whose points are deleted
	// (delete_label_value).
	LabelValue string `yaml:"label_value"`
}

// ValueAction renames one label value.
type ValueAction struct {
	Value    string `yaml:"value"`
	NewValue string `yaml:"new_value"`
}

// DefaultMetricsTransformConfig returns a configuration with no
// transforms.
func DefaultMetricsTransformConfig() MetricsTransformConfig { return MetricsTransformConfig{} }

// Validate checks every transform and operation.
func (c MetricsTransformConfig) Validate() error {
	_, err := c.compile()
	return err
}

const (
	mtUpdate  = "update"
	mtInsert  = "insert"
	mtCombine = "combine"
	mtGroup   = "group"

	opAddLabel         = "add_label"
	opUpdateLabel      = "update_label"
	opDeleteLabelValue = "delete_label_value"
	opToggleScalar     = "toggle_scalar_data_type"
	opScaleValue       = "experimental_scale_value"
	opAggregateLabels  = "aggregate_labels"
	opAggregateValues  = "aggregate_label_values"

	aggSum    = "sum"
	aggMean   = "mean"
	aggMin    = "min"
	aggMax    = "max"
	aggCount  = "count"
	aggMedian = "median"
)

func checkAggregation(a, path string, required bool) error {
	switch a {
	case aggSum, aggMean, aggMin, aggMax, aggCount, aggMedian:
		return nil
	case "":
		if !required {
			return nil
		}
		return fmt.Errorf("%s: required (sum, mean, min, max, count, median)", path)
	}
	return fmt.Errorf("%s: unknown aggregation %q (want sum, mean, min, max, count, median)", path, a)
}

type mtFilter struct {
	name   string         // strict
	re     *regexp.Regexp // regexp
	labels []labelMatch
}

type labelMatch struct {
	key   string
	value string
	re    *regexp.Regexp
}

func (l labelMatch) match(v string) bool {
	if l.re != nil {
		return l.re.MatchString(v)
	}
	return v == l.value
}

type mtTransform struct {
	MetricTransform
	filter  mtFilter
	attrKey []string // combine: label per regexp group, index 0 unused
	ops     []mtOperation
}

type mtOperation struct {
	MetricOperation
	valueMap map[string]string
	keep     map[string]bool
}

func (c MetricsTransformConfig) compile() ([]mtTransform, error) {
	out := make([]mtTransform, 0, len(c.Transforms))
	for i, t := range c.Transforms {
		p := fmt.Sprintf("transforms[%d]", i)
		ct := mtTransform{MetricTransform: t}
		if t.Include == "" {
			return nil, fmt.Errorf("%s.include: required", p)
		}
		switch t.MatchType {
		case "", matchStrict:
			ct.filter.name = t.Include
		case matchRegexp:
			re, err := regexp.Compile(t.Include)
			if err != nil {
				return nil, fmt.Errorf("%s.include: %w", p, err)
			}
			ct.filter.re = re
			names := re.SubexpNames()
			ct.attrKey = make([]string, len(names))
			for j := 1; j < len(names); j++ {
				ct.attrKey[j] = names[j]
				if ct.attrKey[j] == "" {
					ct.attrKey[j] = "$" + strconv.Itoa(j)
				}
			}
		default:
			return nil, fmt.Errorf("%s.match_type: unknown match type %q (want strict or regexp)", p, t.MatchType)
		}
		keys := make([]string, 0, len(t.MatchLabels))
		for k := range t.MatchLabels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			lm := labelMatch{key: k, value: t.MatchLabels[k]}
			if t.MatchType == matchRegexp {
				re, err := regexp.Compile(lm.value)
				if err != nil {
					return nil, fmt.Errorf("%s.experimental_match_labels.%s: %w", p, k, err)
				}
				lm.re = re
			}
			ct.filter.labels = append(ct.filter.labels, lm)
		}
		switch t.Action {
		case mtUpdate:
		case mtInsert, mtCombine:
			if t.NewName == "" {
				return nil, fmt.Errorf("%s.new_name: required for action %s", p, t.Action)
			}
		case mtGroup:
			if len(t.GroupResourceLabels) == 0 {
				return nil, fmt.Errorf("%s.group_resource_labels: required for action group", p)
			}
		case "":
			return nil, fmt.Errorf("%s.action: required (update, insert, combine, group)", p)
		default:
			return nil, fmt.Errorf("%s.action: unknown action %q (want update, insert, combine, group)", p, t.Action)
		}
		if err := checkAggregation(t.AggregationType, p+".aggregation_type", t.Action == mtCombine); err != nil {
			return nil, err
		}
		switch t.SubmatchCase {
		case "", "lower", "upper":
		default:
			return nil, fmt.Errorf("%s.submatch_case: unknown case %q (want lower or upper)", p, t.SubmatchCase)
		}
		for j, op := range t.Operations {
			cop, err := compileOperation(op, fmt.Sprintf("%s.operations[%d]", p, j))
			if err != nil {
				return nil, err
			}
			ct.ops = append(ct.ops, cop)
		}
		out = append(out, ct)
	}
	return out, nil
}

func compileOperation(op MetricOperation, p string) (mtOperation, error) {
	c := mtOperation{MetricOperation: op}
	need := func(ok bool, key string) error {
		if ok {
			return nil
		}
		return fmt.Errorf("%s.%s: required for action %s", p, key, op.Action)
	}
	var err error
	switch op.Action {
	case opAddLabel:
		if err = need(op.NewLabel != "", "new_label"); err == nil {
			err = need(op.NewValue != "", "new_value")
		}
	case opUpdateLabel:
		if err = need(op.Label != "", "label"); err == nil {
			c.valueMap = make(map[string]string, len(op.ValueActions))
			for _, va := range op.ValueActions {
				c.valueMap[va.Value] = va.NewValue
			}
		}
	case opDeleteLabelValue:
		if err = need(op.Label != "", "label"); err == nil {
			err = need(op.LabelValue != "", "label_value")
		}
	case opToggleScalar:
	case opScaleValue:
		err = need(op.Scale != 0, "experimental_scale")
	case opAggregateLabels:
		if err = checkAggregation(op.AggregationType, p+".aggregation_type", true); err == nil {
			c.keep = make(map[string]bool, len(op.LabelSet))
			for _, l := range op.LabelSet {
				c.keep[l] = true
			}
		}
	case opAggregateValues:
		if err = need(op.Label != "", "label"); err == nil {
			if err = need(len(op.AggregatedValues) > 0, "aggregated_values"); err == nil {
				if err = need(op.NewValue != "", "new_value"); err == nil {
					err = checkAggregation(op.AggregationType, p+".aggregation_type", true)
				}
			}
		}
		c.keep = make(map[string]bool, len(op.AggregatedValues))
		for _, v := range op.AggregatedValues {
			c.keep[v] = true
		}
	case "":
		err = fmt.Errorf("%s.action: required", p)
	default:
		err = fmt.Errorf("%s.action: unknown operation %q (want add_label, update_label, delete_label_value, toggle_scalar_data_type, experimental_scale_value, aggregate_labels, aggregate_label_values)", p, op.Action)
	}
	return c, err
}

type metricsTransform struct {
	transforms []mtTransform
	log        *slog.Logger
	matched    prometheus.Counter
	skipped    *prometheus.CounterVec
}

// NewMetricsTransform builds the `metricstransform` processor. It counts
// the metrics its transforms selected in
// obs_enrich_metricstransform_metrics_total{processor} and the
// operations it could not apply (a histogram aggregated by mean, metrics
// that cannot be combined) in
// obs_enrich_metricstransform_skipped_total{processor,reason}.
func NewMetricsTransform(id string, cfg MetricsTransformConfig, log *slog.Logger, reg prometheus.Registerer) (actors.ProcessFunc, error) {
	ts, err := cfg.compile()
	if err != nil {
		return nil, fmt.Errorf("metricstransform processor %s: %w", id, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &metricsTransform{transforms: ts, log: log.With("processor", id)}
	if p.matched, err = processorCounter(reg, "obs_enrich_metricstransform_metrics_total",
		"Metrics a metricstransform processor's transforms selected.", id); err != nil {
		return nil, err
	}
	p.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "obs_enrich_metricstransform_skipped_total",
		Help:        "Operations a metricstransform processor could not apply, by reason.",
		ConstLabels: prometheus.Labels{"processor": id},
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(p.skipped); err != nil {
			return nil, fmt.Errorf("register obs_enrich_metricstransform_skipped_total for %s: %w", id, err)
		}
	}
	return func(_ context.Context, b actors.Batch) error {
		if b.Signal == actors.SignalMetrics {
			p.process(b.Metrics)
		}
		return nil
	}, nil
}

func (p *metricsTransform) skip(reason string, m pmetric.Metric, msg string) {
	p.skipped.WithLabelValues(reason).Inc()
	p.log.Debug(msg, "metric", m.Name(), "type", m.Type().String())
}

func (p *metricsTransform) process(md pmetric.Metrics) {
	grouped := pmetric.NewResourceMetricsSlice()
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
			ms := sm.Metrics()
			for i := range p.transforms {
				t := &p.transforms[i]
				switch t.Action {
				case mtGroup:
					moved := pmetric.NewMetricSlice()
					p.extractInto(moved, t, ms)
					if moved.Len() == 0 {
						continue
					}
					dst := grouped.AppendEmpty()
					rm.Resource().CopyTo(dst.Resource())
					for k, v := range t.GroupResourceLabels {
						dst.Resource().Attributes().PutStr(k, v)
					}
					dsm := dst.ScopeMetrics().AppendEmpty()
					sm.Scope().CopyTo(dsm.Scope())
					moved.MoveAndAppendTo(dsm.Metrics())
				case mtCombine:
					p.combine(t, ms)
				case mtInsert:
					n := ms.Len()
					for j := 0; j < n; j++ {
						m := ms.At(j)
						nm, ok := t.filter.extract(m)
						if !ok {
							continue
						}
						p.matched.Inc()
						if nm == m {
							nm = pmetric.NewMetric()
							m.CopyTo(nm)
						}
						if p.transform(nm, t) {
							nm.MoveTo(ms.AppendEmpty())
						}
					}
				case mtUpdate:
					ms.RemoveIf(func(m pmetric.Metric) bool {
						if !t.filter.matchMetric(m) {
							return false
						}
						p.matched.Inc()
						return !p.transform(m, t)
					})
				}
			}
			return ms.Len() == 0
		})
		return rm.ScopeMetrics().Len() == 0
	})
	grouped.MoveAndAppendTo(md.ResourceMetrics())
}

// extractInto moves the metrics t selects from ms to dst (only their
// matching points when experimental_match_labels selects some).
func (p *metricsTransform) extractInto(dst pmetric.MetricSlice, t *mtTransform, ms pmetric.MetricSlice) {
	ms.RemoveIf(func(m pmetric.Metric) bool {
		nm, ok := t.filter.extract(m)
		if !ok {
			return false
		}
		p.matched.Inc()
		nm.MoveTo(dst.AppendEmpty())
		return true
	})
}

func (p *metricsTransform) combine(t *mtTransform, ms pmetric.MetricSlice) {
	var matched []pmetric.Metric
	for j := 0; j < ms.Len(); j++ {
		if t.filter.matchMetric(ms.At(j)) {
			matched = append(matched, ms.At(j))
		}
	}
	if len(matched) == 0 {
		return
	}
	if err := canCombine(matched); err != nil {
		p.skipped.WithLabelValues("cannot_combine").Inc()
		p.log.Debug("metrics not combined", "new_name", t.NewName, "err", err)
		return
	}
	extracted := pmetric.NewMetricSlice()
	p.extractInto(extracted, t, ms)
	combined := pmetric.NewMetric()
	copyMetricShape(extracted.At(0), combined)
	combined.SetName(t.NewName)
	for j := 0; j < extracted.Len(); j++ {
		m := extracted.At(j)
		if sub := t.filter.re.FindStringSubmatchIndex(m.Name()); sub != nil {
			rangePointAttrs(m, func(attrs pcommon.Map) {
				for g := 1; g < len(sub)/2; g++ {
					if sub[2*g] < 0 {
						continue
					}
					v := m.Name()[sub[2*g]:sub[2*g+1]]
					switch t.SubmatchCase {
					case "lower":
						v = strings.ToLower(v)
					case "upper":
						v = strings.ToUpper(v)
					}
					if v != "" {
						attrs.PutStr(t.attrKey[g], v)
					}
				}
			})
		}
		appendPoints(m, combined)
	}
	if !p.aggregate(combined, t.AggregationType) {
		p.skip("unsupported_aggregation", combined, "combined points not aggregated")
	}
	if p.transform(combined, t) {
		combined.MoveTo(ms.AppendEmpty())
	}
}

// canCombine reports why metrics cannot be merged into one, as the
// Collector checks: same type, unit, label keys, temporality and
// monotonicity; no summaries.
func canCombine(ms []pmetric.Metric) error {
	first := ms[0]
	for _, m := range ms {
		if m.Type() == pmetric.MetricTypeSummary {
			return fmt.Errorf("summary %s cannot be combined", m.Name())
		}
	}
	fk := labelKeys(first)
	for _, m := range ms[1:] {
		if m.Type() != first.Type() {
			return fmt.Errorf("%s and %s have different types", first.Name(), m.Name())
		}
		if m.Unit() != first.Unit() {
			return fmt.Errorf("%s and %s have different units", first.Name(), m.Name())
		}
		if !slices.Equal(fk, labelKeys(m)) {
			return fmt.Errorf("%s and %s have different labels", first.Name(), m.Name())
		}
		switch m.Type() {
		case pmetric.MetricTypeSum:
			if m.Sum().AggregationTemporality() != first.Sum().AggregationTemporality() || m.Sum().IsMonotonic() != first.Sum().IsMonotonic() {
				return fmt.Errorf("%s and %s have different temporality or monotonicity", first.Name(), m.Name())
			}
		case pmetric.MetricTypeHistogram:
			if m.Histogram().AggregationTemporality() != first.Histogram().AggregationTemporality() {
				return fmt.Errorf("%s and %s have different temporality", first.Name(), m.Name())
			}
		case pmetric.MetricTypeExponentialHistogram:
			if m.ExponentialHistogram().AggregationTemporality() != first.ExponentialHistogram().AggregationTemporality() {
				return fmt.Errorf("%s and %s have different temporality", first.Name(), m.Name())
			}
		}
	}
	return nil
}

func labelKeys(m pmetric.Metric) []string {
	set := map[string]bool{}
	rangePointAttrs(m, func(a pcommon.Map) {
		for k := range a.All() {
			set[k] = true
		}
	})
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// transform renames m and runs the operations; it reports whether m
// still has points (or never had any).
func (p *metricsTransform) transform(m pmetric.Metric, t *mtTransform) bool {
	wasEmpty := pointCount(m) == 0
	// With experimental_match_labels, an update that selected only some
	// points may change only those points, not the whole metric.
	whole := t.Action != mtUpdate || t.filter.matchAll(m)
	if t.NewName != "" && whole {
		name := t.NewName
		if t.filter.re != nil {
			if sub := t.filter.re.FindStringSubmatchIndex(m.Name()); sub != nil {
				if s := string(t.filter.re.ExpandString(nil, t.NewName, m.Name(), sub)); s != "" {
					name = s
				}
			}
		}
		m.SetName(name)
	}
	for i := range t.ops {
		op := &t.ops[i]
		switch op.Action {
		case opUpdateLabel:
			updateLabel(m, op, &t.filter)
		case opToggleScalar:
			toggleScalar(m, &t.filter)
		case opScaleValue:
			scaleValue(m, op.Scale, &t.filter)
		case opAddLabel:
			if whole {
				rangePointAttrs(m, func(a pcommon.Map) { a.PutStr(op.NewLabel, op.NewValue) })
			}
		case opDeleteLabelValue:
			if whole {
				removePoints(m, func(a pcommon.Map) bool {
					v, ok := a.Get(op.Label)
					return ok && v.AsString() == op.LabelValue
				})
			}
		case opAggregateLabels:
			if whole {
				if !aggregatable(m, op.AggregationType) {
					p.skip("unsupported_aggregation", m, "aggregate_labels not applied")
					continue
				}
				rangePointAttrs(m, func(a pcommon.Map) {
					a.RemoveIf(func(k string, _ pcommon.Value) bool { return !op.keep[k] })
				})
				p.aggregate(m, op.AggregationType)
			}
		case opAggregateValues:
			if whole {
				if !aggregatable(m, op.AggregationType) {
					p.skip("unsupported_aggregation", m, "aggregate_label_values not applied")
					continue
				}
				rangePointAttrs(m, func(a pcommon.Map) {
					if v, ok := a.Get(op.Label); ok && op.keep[v.AsString()] {
						a.PutStr(op.Label, op.NewValue)
					}
				})
				p.aggregate(m, op.AggregationType)
			}
		}
	}
	return wasEmpty || pointCount(m) > 0
}

// filter matching

func (f *mtFilter) matchName(name string) bool {
	if f.re != nil {
		return f.re.MatchString(name)
	}
	return name == f.name
}

func (f *mtFilter) matchAttrs(attrs pcommon.Map) bool {
	for _, l := range f.labels {
		v, ok := attrs.Get(l.key)
		if ok && !l.match(v.AsString()) {
			return false
		}
		if !ok && !l.match("") {
			return false
		}
	}
	return true
}

// matchMetric: the name matches and any point matches (or there are no
// points).
func (f *mtFilter) matchMetric(m pmetric.Metric) bool {
	if !f.matchName(m.Name()) {
		return false
	}
	if len(f.labels) == 0 || pointCount(m) == 0 {
		return true
	}
	found := false
	rangePointAttrs(m, func(a pcommon.Map) { found = found || f.matchAttrs(a) })
	return found
}

func (f *mtFilter) matchAll(m pmetric.Metric) bool {
	if len(f.labels) == 0 {
		return true
	}
	all := true
	rangePointAttrs(m, func(a pcommon.Map) { all = all && f.matchAttrs(a) })
	return all
}

// extract returns m itself when all its points match, a new metric with
// the matching points when some do, and false when none does.
func (f *mtFilter) extract(m pmetric.Metric) (pmetric.Metric, bool) {
	if !f.matchName(m.Name()) {
		return pmetric.Metric{}, false
	}
	if f.matchAll(m) {
		return m, true
	}
	if !f.matchMetric(m) {
		return pmetric.Metric{}, false
	}
	nm := pmetric.NewMetric()
	m.CopyTo(nm)
	removePoints(nm, func(a pcommon.Map) bool { return !f.matchAttrs(a) })
	return nm, true
}

// operations on points

func updateLabel(m pmetric.Metric, op *mtOperation, f *mtFilter) {
	rangePointAttrs(m, func(a pcommon.Map) {
		if !f.matchAttrs(a) {
			return
		}
		key := op.Label
		v, ok := a.Get(key)
		if !ok {
			return
		}
		if op.NewLabel != "" && op.NewLabel != key {
			v.CopyTo(a.PutEmpty(op.NewLabel))
			a.Remove(key)
			key = op.NewLabel
			v, _ = a.Get(key)
		}
		if nv, ok := op.valueMap[v.AsString()]; ok {
			a.PutStr(key, nv)
		}
	})
}

func numberPoints(m pmetric.Metric) (pmetric.NumberDataPointSlice, bool) {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints(), true
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints(), true
	}
	return pmetric.NumberDataPointSlice{}, false
}

func toggleScalar(m pmetric.Metric, f *mtFilter) {
	dps, ok := numberPoints(m)
	if !ok {
		return
	}
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if !f.matchAttrs(dp.Attributes()) {
			continue
		}
		switch dp.ValueType() {
		case pmetric.NumberDataPointValueTypeInt:
			dp.SetDoubleValue(float64(dp.IntValue()))
		case pmetric.NumberDataPointValueTypeDouble:
			dp.SetIntValue(int64(dp.DoubleValue()))
		}
	}
}

func scaleValue(m pmetric.Metric, scale float64, f *mtFilter) {
	if dps, ok := numberPoints(m); ok {
		for i := 0; i < dps.Len(); i++ {
			dp := dps.At(i)
			if !f.matchAttrs(dp.Attributes()) {
				continue
			}
			switch dp.ValueType() {
			case pmetric.NumberDataPointValueTypeInt:
				dp.SetIntValue(int64(float64(dp.IntValue()) * scale))
			case pmetric.NumberDataPointValueTypeDouble:
				dp.SetDoubleValue(dp.DoubleValue() * scale)
			}
		}
		return
	}
	if m.Type() != pmetric.MetricTypeHistogram {
		return
	}
	dps := m.Histogram().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if !f.matchAttrs(dp.Attributes()) {
			continue
		}
		if dp.HasSum() {
			dp.SetSum(dp.Sum() * scale)
		}
		if dp.HasMin() {
			dp.SetMin(dp.Min() * scale)
		}
		if dp.HasMax() {
			dp.SetMax(dp.Max() * scale)
		}
		b := dp.ExplicitBounds().AsRaw()
		for j := range b {
			b[j] *= scale
		}
		dp.ExplicitBounds().FromRaw(b)
	}
}

func pointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

func removePoints(m pmetric.Metric, drop func(pcommon.Map) bool) {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		m.Gauge().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return drop(dp.Attributes()) })
	case pmetric.MetricTypeSum:
		m.Sum().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return drop(dp.Attributes()) })
	case pmetric.MetricTypeHistogram:
		m.Histogram().DataPoints().RemoveIf(func(dp pmetric.HistogramDataPoint) bool { return drop(dp.Attributes()) })
	case pmetric.MetricTypeExponentialHistogram:
		m.ExponentialHistogram().DataPoints().RemoveIf(func(dp pmetric.ExponentialHistogramDataPoint) bool { return drop(dp.Attributes()) })
	case pmetric.MetricTypeSummary:
		m.Summary().DataPoints().RemoveIf(func(dp pmetric.SummaryDataPoint) bool { return drop(dp.Attributes()) })
	}
}

// copyMetricShape gives to the name, unit, description and an empty data
// of from's type with the same temporality and monotonicity.
func copyMetricShape(from, to pmetric.Metric) {
	to.SetName(from.Name())
	to.SetUnit(from.Unit())
	to.SetDescription(from.Description())
	switch from.Type() {
	case pmetric.MetricTypeGauge:
		to.SetEmptyGauge()
	case pmetric.MetricTypeSum:
		to.SetEmptySum().SetAggregationTemporality(from.Sum().AggregationTemporality())
		to.Sum().SetIsMonotonic(from.Sum().IsMonotonic())
	case pmetric.MetricTypeHistogram:
		to.SetEmptyHistogram().SetAggregationTemporality(from.Histogram().AggregationTemporality())
	case pmetric.MetricTypeExponentialHistogram:
		to.SetEmptyExponentialHistogram().SetAggregationTemporality(from.ExponentialHistogram().AggregationTemporality())
	case pmetric.MetricTypeSummary:
		to.SetEmptySummary()
	}
}

// appendPoints moves the points of from to the end of to (same type).
func appendPoints(from, to pmetric.Metric) {
	switch from.Type() {
	case pmetric.MetricTypeGauge:
		from.Gauge().DataPoints().MoveAndAppendTo(to.Gauge().DataPoints())
	case pmetric.MetricTypeSum:
		from.Sum().DataPoints().MoveAndAppendTo(to.Sum().DataPoints())
	case pmetric.MetricTypeHistogram:
		from.Histogram().DataPoints().MoveAndAppendTo(to.Histogram().DataPoints())
	case pmetric.MetricTypeExponentialHistogram:
		from.ExponentialHistogram().DataPoints().MoveAndAppendTo(to.ExponentialHistogram().DataPoints())
	case pmetric.MetricTypeSummary:
		from.Summary().DataPoints().MoveAndAppendTo(to.Summary().DataPoints())
	}
}

// aggregation

// aggregatable reports whether aggregate can merge m's points: gauges and
// sums by any aggregation, histograms by sum.
func aggregatable(m pmetric.Metric, agg string) bool {
	switch m.Type() {
	case pmetric.MetricTypeGauge, pmetric.MetricTypeSum:
		return true
	case pmetric.MetricTypeHistogram:
		return agg == aggSum
	}
	return false
}

// aggregate merges the points of m that have equal attributes and
// timestamp (and start time for delta sums, and bounds for histograms),
// keeping the order in which each group first appears. It reports false,
// changing nothing, when m's type cannot be aggregated that way.
func (p *metricsTransform) aggregate(m pmetric.Metric, agg string) bool {
	if agg == "" {
		return true
	}
	if !aggregatable(m, agg) {
		return false
	}
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		mergeNumbers(m.Gauge().DataPoints(), agg, false)
	case pmetric.MetricTypeSum:
		mergeNumbers(m.Sum().DataPoints(), agg, m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta)
	case pmetric.MetricTypeHistogram:
		mergeHistograms(m.Histogram().DataPoints(), m.Histogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta)
	}
	return true
}

// pointKey identifies the series and instant of a point.
func pointKey(b *strings.Builder, attrs pcommon.Map, ts, start pcommon.Timestamp, byStart bool) {
	b.Reset()
	keys := make([]string, 0, attrs.Len())
	for k := range attrs.All() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, _ := attrs.Get(k)
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteByte(byte(v.Type()))
		b.WriteString(v.AsString())
		b.WriteByte(0)
	}
	b.WriteString(strconv.FormatUint(uint64(ts), 36))
	if byStart {
		b.WriteByte(0)
		b.WriteString(strconv.FormatUint(uint64(start), 36))
	}
}

// groupPoints returns the indexes of n points grouped by key(i), groups
// in order of first appearance.
func groupPoints(n int, key func(i int) string) [][]int {
	idx := map[string]int{}
	var groups [][]int
	for i := 0; i < n; i++ {
		k := key(i)
		g, ok := idx[k]
		if !ok {
			g = len(groups)
			idx[k] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

func mergeNumbers(dps pmetric.NumberDataPointSlice, agg string, byStart bool) {
	var b strings.Builder
	groups := groupPoints(dps.Len(), func(i int) string {
		dp := dps.At(i)
		pointKey(&b, dp.Attributes(), dp.Timestamp(), dp.StartTimestamp(), byStart)
		return b.String()
	})
	if len(groups) == dps.Len() && agg != aggCount {
		return // nothing to merge
	}
	out := pmetric.NewNumberDataPointSlice()
	out.EnsureCapacity(len(groups))
	for _, g := range groups {
		dst := out.AppendEmpty()
		dps.At(g[0]).CopyTo(dst)
		double := false
		for _, i := range g {
			if dps.At(i).ValueType() == pmetric.NumberDataPointValueTypeDouble {
				double = true
			}
			if st := dps.At(i).StartTimestamp(); st < dst.StartTimestamp() {
				dst.SetStartTimestamp(st)
			}
		}
		if double {
			vals := make([]float64, len(g))
			for j, i := range g {
				dp := dps.At(i)
				if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
					vals[j] = float64(dp.IntValue())
				} else {
					vals[j] = dp.DoubleValue()
				}
			}
			dst.SetDoubleValue(reduceFloats(vals, agg))
		} else {
			vals := make([]int64, len(g))
			for j, i := range g {
				vals[j] = dps.At(i).IntValue()
			}
			dst.SetIntValue(reduceInts(vals, agg))
		}
	}
	out.CopyTo(dps)
}

func reduceFloats(v []float64, agg string) float64 {
	switch agg {
	case aggCount:
		return float64(len(v))
	case aggMin:
		return slices.Min(v)
	case aggMax:
		return slices.Max(v)
	case aggMedian:
		s := slices.Clone(v)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	if agg == aggMean {
		return sum / float64(len(v))
	}
	return sum
}

// reduceInts keeps integer points integers: a mean or an even median
// is divided with truncation, as the Collector does.
func reduceInts(v []int64, agg string) int64 {
	switch agg {
	case aggCount:
		return int64(len(v))
	case aggMin:
		return slices.Min(v)
	case aggMax:
		return slices.Max(v)
	case aggMedian:
		s := slices.Clone(v)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	var sum int64
	for _, x := range v {
		sum += x
	}
	if agg == aggMean {
		return sum / int64(len(v))
	}
	return sum
}

// mergeHistograms sums histogram points with equal attributes, timestamp
// and bounds: counts, sums and buckets add up, min and max combine.
func mergeHistograms(dps pmetric.HistogramDataPointSlice, byStart bool) {
	var b strings.Builder
	groups := groupPoints(dps.Len(), func(i int) string {
		dp := dps.At(i)
		pointKey(&b, dp.Attributes(), dp.Timestamp(), dp.StartTimestamp(), byStart)
		for _, x := range dp.ExplicitBounds().All() {
			b.WriteByte(0)
			b.WriteString(strconv.FormatUint(math.Float64bits(x), 36))
		}
		return b.String()
	})
	if len(groups) == dps.Len() {
		return
	}
	out := pmetric.NewHistogramDataPointSlice()
	for _, g := range groups {
		dst := out.AppendEmpty()
		dps.At(g[0]).CopyTo(dst)
		buckets := dst.BucketCounts().AsRaw()
		for _, i := range g[1:] {
			src := dps.At(i)
			dst.SetCount(dst.Count() + src.Count())
			if src.HasSum() {
				dst.SetSum(dst.Sum() + src.Sum())
			}
			if src.HasMin() && (!dst.HasMin() || src.Min() < dst.Min()) {
				dst.SetMin(src.Min())
			}
			if src.HasMax() && (!dst.HasMax() || src.Max() > dst.Max()) {
				dst.SetMax(src.Max())
			}
			for j, c := range src.BucketCounts().All() {
				if j < len(buckets) {
					buckets[j] += c
				}
			}
			if src.StartTimestamp() < dst.StartTimestamp() {
				dst.SetStartTimestamp(src.StartTimestamp())
			}
			src.Exemplars().MoveAndAppendTo(dst.Exemplars())
		}
		dst.BucketCounts().FromRaw(buckets)
	}
	out.CopyTo(dps)
}
