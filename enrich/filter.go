package enrich

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// FilterConfig is the Collector's `filter` processor. It drops what it
// matches, on purpose; every dropped item is counted.
//
// Both of the Collector's forms are understood: the classic
// include/exclude blocks, fully, and OTTL condition lists in their simple
// forms only — `name == "x"`, `IsMatch(name, "re")`,
// `attributes["k"] == "v"`, `resource.attributes["k"] == "v"` (also !=,
// nil, numbers and booleans, and the paths body, severity_text and
// metric.name where the context has them). Any other OTTL is a config
// error that says "not supported" and names the key.
type FilterConfig struct {
	// ErrorMode is propagate (default), ignore or silent. The conditions
	// obs understands cannot fail at run time, so it changes nothing.
	ErrorMode string `yaml:"error_mode"`
	// Metrics filters metrics and data points.
	Metrics FilterMetrics `yaml:"metrics"`
	// Logs filters log records.
	Logs FilterLogs `yaml:"logs"`
	// Spans is the classic include/exclude for spans.
	Spans FilterSpans `yaml:"spans"`
	// Traces holds OTTL conditions for spans and span events.
	Traces FilterTraces `yaml:"traces"`
}

// FilterMetrics: keep metrics that include matches and exclude does not;
// drop metrics (metric) and data points (datapoint) any condition matches.
type FilterMetrics struct {
	Include   *MetricMatch       `yaml:"include"`
	Exclude   *MetricMatch       `yaml:"exclude"`
	Regexp    *RegexpCacheConfig `yaml:"regexp"`
	Metric    []string           `yaml:"metric"`
	DataPoint []string           `yaml:"datapoint"`
}

// MetricMatch selects metrics by name and by resource attributes.
type MetricMatch struct {
	// MatchType is strict or regexp (expr is not supported). Required.
	MatchType   string             `yaml:"match_type"`
	Regexp      *RegexpCacheConfig `yaml:"regexp"`
	MetricNames []string           `yaml:"metric_names"`
	// Expressions belong to match_type expr, which obs does not support.
	Expressions        []string         `yaml:"expressions"`
	ResourceAttributes []AttributeMatch `yaml:"resource_attributes"`
}

// FilterLogs: keep records that include matches and exclude does not;
// drop records any log_record condition matches.
type FilterLogs struct {
	Include   *LogMatch `yaml:"include"`
	Exclude   *LogMatch `yaml:"exclude"`
	LogRecord []string  `yaml:"log_record"`
}

// LogMatch selects log records; every key set must match.
type LogMatch struct {
	MatchType          string               `yaml:"match_type"`
	ResourceAttributes []AttributeMatch     `yaml:"resource_attributes"`
	RecordAttributes   []AttributeMatch     `yaml:"record_attributes"`
	SeverityTexts      []string             `yaml:"severity_texts"`
	SeverityNumber     *SeverityNumberMatch `yaml:"severity_number"`
	Bodies             []string             `yaml:"bodies"`
}

// FilterSpans is the classic span filter.
type FilterSpans struct {
	Include *MatchProperties `yaml:"include"`
	Exclude *MatchProperties `yaml:"exclude"`
}

// FilterTraces holds OTTL conditions; a span (event) any of them matches
// is dropped.
type FilterTraces struct {
	Span      []string `yaml:"span"`
	SpanEvent []string `yaml:"spanevent"`
}

// DefaultFilterConfig returns a filter that drops nothing.
func DefaultFilterConfig() FilterConfig { return FilterConfig{ErrorMode: "propagate"} }

// Validate checks every block and condition.
func (c FilterConfig) Validate() error {
	_, err := c.compile()
	return err
}

type metricSide struct {
	names *stringSet
	res   attrMatchers
}

type filterProc struct {
	mInclude, mExclude *metricSide
	metricConds        []condition
	pointConds         []condition
	logs               selection
	logConds           []condition
	spans              selection
	spanConds          []condition
	eventConds         []condition
}

func (c FilterConfig) compile() (*filterProc, error) {
	switch c.ErrorMode {
	case "", "propagate", "ignore", "silent":
	default:
		return nil, fmt.Errorf("error_mode: unknown mode %q (want propagate, ignore, silent)", c.ErrorMode)
	}
	p := &filterProc{}
	var err error
	if p.mInclude, err = compileMetricMatch(c.Metrics.Include, "metrics.include"); err != nil {
		return nil, err
	}
	if p.mExclude, err = compileMetricMatch(c.Metrics.Exclude, "metrics.exclude"); err != nil {
		return nil, err
	}
	if (p.mInclude != nil || p.mExclude != nil) && (len(c.Metrics.Metric) > 0 || len(c.Metrics.DataPoint) > 0) {
		return nil, fmt.Errorf("metrics: use include/exclude or metric/datapoint conditions, not both")
	}
	if p.metricConds, err = compileConditions(c.Metrics.Metric, ctxMetric, "metrics.metric"); err != nil {
		return nil, err
	}
	if p.pointConds, err = compileConditions(c.Metrics.DataPoint, ctxDataPoint, "metrics.datapoint"); err != nil {
		return nil, err
	}
	if p.logs.include, err = compileLogMatch(c.Logs.Include, "logs.include"); err != nil {
		return nil, err
	}
	if p.logs.exclude, err = compileLogMatch(c.Logs.Exclude, "logs.exclude"); err != nil {
		return nil, err
	}
	if !p.logs.empty() && len(c.Logs.LogRecord) > 0 {
		return nil, fmt.Errorf("logs: use include/exclude or log_record conditions, not both")
	}
	if p.logConds, err = compileConditions(c.Logs.LogRecord, ctxLog, "logs.log_record"); err != nil {
		return nil, err
	}
	if err := validateMatchFor(c.Spans.Include, "traces", "spans.include"); err != nil {
		return nil, err
	}
	if err := validateMatchFor(c.Spans.Exclude, "traces", "spans.exclude"); err != nil {
		return nil, err
	}
	if p.spans.include, err = compileMatch(c.Spans.Include, "spans.include"); err != nil {
		return nil, err
	}
	if p.spans.exclude, err = compileMatch(c.Spans.Exclude, "spans.exclude"); err != nil {
		return nil, err
	}
	if !p.spans.empty() && (len(c.Traces.Span) > 0 || len(c.Traces.SpanEvent) > 0) {
		return nil, fmt.Errorf("spans: use spans include/exclude or traces conditions, not both")
	}
	if p.spanConds, err = compileConditions(c.Traces.Span, ctxSpan, "traces.span"); err != nil {
		return nil, err
	}
	if p.eventConds, err = compileConditions(c.Traces.SpanEvent, ctxSpanEvent, "traces.spanevent"); err != nil {
		return nil, err
	}
	return p, nil
}

func compileMetricMatch(m *MetricMatch, path string) (*metricSide, error) {
	if m == nil {
		return nil, nil
	}
	if m.MatchType == "expr" || len(m.Expressions) > 0 {
		return nil, fmt.Errorf("%s: match_type expr and expressions are not supported; use strict or regexp metric_names", path)
	}
	if err := checkMatchType(m.MatchType, path); err != nil {
		return nil, err
	}
	if len(m.MetricNames) == 0 && len(m.ResourceAttributes) == 0 {
		return nil, fmt.Errorf("%s: set metric_names or resource_attributes", path)
	}
	s := &metricSide{}
	var err error
	if s.names, err = newStringSet(m.MatchType, m.MetricNames, path+".metric_names"); err != nil {
		return nil, err
	}
	if s.res, err = newAttrMatchers(m.MatchType, m.ResourceAttributes, path+".resource_attributes"); err != nil {
		return nil, err
	}
	return s, nil
}

func compileLogMatch(m *LogMatch, path string) (*matcher, error) {
	if m == nil {
		return nil, nil
	}
	if len(m.ResourceAttributes) == 0 && len(m.RecordAttributes) == 0 && len(m.SeverityTexts) == 0 && m.SeverityNumber == nil && len(m.Bodies) == 0 {
		return nil, fmt.Errorf("%s: set at least one of resource_attributes, record_attributes, severity_texts, severity_number, bodies", path)
	}
	mp := &MatchProperties{
		MatchType:         m.MatchType,
		LogBodies:         m.Bodies,
		LogSeverityTexts:  m.SeverityTexts,
		LogSeverityNumber: m.SeverityNumber,
		Attributes:        m.RecordAttributes,
		Resources:         m.ResourceAttributes,
	}
	mt, err := compileMatch(mp, path)
	if err != nil {
		// compileMatch names the generic keys; give the filter's names.
		msg := strings.NewReplacer(".log_bodies", ".bodies", ".log_severity_texts", ".severity_texts",
			".log_severity_number", ".severity_number", ".attributes", ".record_attributes", ".resources", ".resource_attributes").Replace(err.Error())
		return nil, fmt.Errorf("%s", msg)
	}
	return mt, nil
}

// NewFilter builds the `filter` processor. Dropped items (data points,
// log records, spans) are counted in
// obs_enrich_filter_dropped_items_total{processor} and in the Collector's
// otelcol_processor_filter_{datapoints,logs,spans}_filtered_total{filter}.
// A batch left empty is passed on empty.
func NewFilter(id string, cfg FilterConfig, log *slog.Logger, reg prometheus.Registerer) (actors.ProcessFunc, error) {
	p, err := cfg.compile()
	if err != nil {
		return nil, fmt.Errorf("filter processor %s: %w", id, err)
	}
	_ = log // nothing is logged per batch
	dropped, err := processorCounter(reg, "obs_enrich_filter_dropped_items_total",
		"Data points, log records and spans a filter processor dropped on purpose.", id)
	if err != nil {
		return nil, err
	}
	otel := map[actors.Signal]prometheus.Counter{}
	for sig, name := range map[actors.Signal]string{
		actors.SignalMetrics: "otelcol_processor_filter_datapoints_filtered_total",
		actors.SignalLogs:    "otelcol_processor_filter_logs_filtered_total",
		actors.SignalTraces:  "otelcol_processor_filter_spans_filtered_total",
	} {
		c := prometheus.NewCounter(prometheus.CounterOpts{
			Name: name, Help: "Items dropped by the filter processor (Collector name).",
			ConstLabels: prometheus.Labels{"filter": id},
		})
		if reg != nil {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register %s for %s: %w", name, id, err)
			}
		}
		otel[sig] = c
	}
	return func(_ context.Context, b actors.Batch) error {
		before := b.Items()
		switch b.Signal {
		case actors.SignalMetrics:
			p.metrics(b.Metrics)
		case actors.SignalLogs:
			p.logsFilter(b.Logs)
		case actors.SignalTraces:
			p.traces(b.Traces)
		}
		if n := before - b.Items(); n > 0 {
			dropped.Add(float64(n))
			if c := otel[b.Signal]; c != nil {
				c.Add(float64(n))
			}
		}
		return nil
	}, nil
}

func (p *filterProc) metrics(md pmetric.Metrics) {
	if p.mInclude == nil && p.mExclude == nil && len(p.metricConds) == 0 && len(p.pointConds) == 0 {
		return
	}
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		res := rm.Resource().Attributes()
		// Resource attributes decide for the whole resource, as the
		// Collector's shouldKeepMetricsForResource.
		if p.mInclude != nil && len(p.mInclude.res) > 0 && !p.mInclude.res.match(res) {
			return true
		}
		if p.mExclude != nil && len(p.mExclude.res) > 0 && p.mExclude.res.match(res) {
			return true
		}
		rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				if p.mInclude != nil && p.mInclude.names != nil && !p.mInclude.names.match(m.Name()) {
					return true
				}
				if p.mExclude != nil && p.mExclude.names != nil && p.mExclude.names.match(m.Name()) {
					return true
				}
				it := item{name: m.Name(), res: res}
				if anyTrue(p.metricConds, &it) {
					return true
				}
				if len(p.pointConds) > 0 && pointCount(m) > 0 {
					removePoints(m, func(a pcommon.Map) bool {
						pi := item{metricName: m.Name(), attrs: a, hasAttrs: true, res: res}
						return anyTrue(p.pointConds, &pi)
					})
					return pointCount(m) == 0
				}
				return false
			})
			return sm.Metrics().Len() == 0
		})
		return rm.ScopeMetrics().Len() == 0
	})
}

func (p *filterProc) logsFilter(ld plog.Logs) {
	if p.logs.empty() && len(p.logConds) == 0 {
		return
	}
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				if !p.logs.log(rl.Resource(), sl.Scope(), lr) {
					return true
				}
				it := item{body: lr.Body(), hasBody: true, sevText: lr.SeverityText(), attrs: lr.Attributes(), hasAttrs: true, res: rl.Resource().Attributes()}
				return anyTrue(p.logConds, &it)
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
}

func (p *filterProc) traces(td ptrace.Traces) {
	if p.spans.empty() && len(p.spanConds) == 0 && len(p.eventConds) == 0 {
		return
	}
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		res := rs.Resource().Attributes()
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
				if !p.spans.span(rs.Resource(), ss.Scope(), sp) {
					return true
				}
				it := item{name: sp.Name(), attrs: sp.Attributes(), hasAttrs: true, res: res}
				if anyTrue(p.spanConds, &it) {
					return true
				}
				if len(p.eventConds) > 0 {
					sp.Events().RemoveIf(func(ev ptrace.SpanEvent) bool {
						ei := item{name: ev.Name(), attrs: ev.Attributes(), hasAttrs: true, res: res}
						return anyTrue(p.eventConds, &ei)
					})
				}
				return false
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
}

// OTTL subset

type condCtx int

const (
	ctxMetric condCtx = iota
	ctxDataPoint
	ctxLog
	ctxSpan
	ctxSpanEvent
)

type pathKind int

const (
	pathName pathKind = iota
	pathMetricName
	pathBody
	pathSeverityText
	pathAttr
	pathResAttr
)

// item is what a condition can read.
type item struct {
	name       string
	metricName string
	body       pcommon.Value
	hasBody    bool
	sevText    string
	attrs      pcommon.Map
	hasAttrs   bool
	res        pcommon.Map
}

type condition struct {
	path pathKind
	key  string
	re   *regexp.Regexp // IsMatch
	lit  *pcommon.Value // nil: the nil literal
	neg  bool
}

func anyTrue(cs []condition, it *item) bool {
	for i := range cs {
		if cs[i].eval(it) {
			return true
		}
	}
	return false
}

func (c *condition) value(it *item) (pcommon.Value, bool) {
	switch c.path {
	case pathName:
		return pcommon.NewValueStr(it.name), true
	case pathMetricName:
		return pcommon.NewValueStr(it.metricName), true
	case pathBody:
		return it.body, it.hasBody
	case pathSeverityText:
		return pcommon.NewValueStr(it.sevText), true
	case pathAttr:
		if !it.hasAttrs {
			return pcommon.Value{}, false
		}
		return it.attrs.Get(c.key)
	case pathResAttr:
		return it.res.Get(c.key)
	}
	return pcommon.Value{}, false
}

func (c *condition) eval(it *item) bool {
	v, ok := c.value(it)
	if c.re != nil {
		if !ok {
			return false
		}
		switch v.Type() {
		case pcommon.ValueTypeStr, pcommon.ValueTypeInt, pcommon.ValueTypeDouble, pcommon.ValueTypeBool:
			return c.re.MatchString(v.AsString())
		}
		return false
	}
	eq := false
	if c.lit == nil {
		eq = !ok || v.Type() == pcommon.ValueTypeEmpty
	} else if ok {
		eq = valuesEqual(v, *c.lit)
	}
	return eq != c.neg
}

func valuesEqual(a, b pcommon.Value) bool {
	num := func(v pcommon.Value) (float64, bool) {
		switch v.Type() {
		case pcommon.ValueTypeInt:
			return float64(v.Int()), true
		case pcommon.ValueTypeDouble:
			return v.Double(), true
		}
		return 0, false
	}
	if x, ok := num(a); ok {
		if y, ok := num(b); ok {
			return x == y
		}
		return false
	}
	return a.Equal(b)
}

const supportedForms = `obs supports name == "x", IsMatch(name, "re"), attributes["k"] == "v", resource.attributes["k"] == "v" (and != , nil, numbers, booleans)`

var (
	reIsMatch = regexp.MustCompile(`^IsMatch\(\s*([^,]+?)\s*,\s*("(?:[^"\\]|\\.)*")\s*\)$`)
	reCompare = regexp.MustCompile(`^(\S+?)\s*(==|!=)\s*(.+)$`)
	reAttr    = regexp.MustCompile(`^attributes\[\s*("(?:[^"\\]|\\.)*")\s*\]$`)
)

func compileConditions(conds []string, ctx condCtx, path string) ([]condition, error) {
	out := make([]condition, 0, len(conds))
	for i, s := range conds {
		c, err := parseCondition(strings.TrimSpace(s), ctx)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: condition %q not supported: %v; %s", path, i, s, err, supportedForms)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseCondition(s string, ctx condCtx) (condition, error) {
	if m := reIsMatch.FindStringSubmatch(s); m != nil {
		var c condition
		var err error
		if c.path, c.key, err = parsePath(m[1], ctx); err != nil {
			return c, err
		}
		pat, err := strconv.Unquote(m[2])
		if err != nil {
			return c, fmt.Errorf("bad pattern string: %w", err)
		}
		if c.re, err = regexp.Compile(pat); err != nil {
			return c, err
		}
		return c, nil
	}
	if m := reCompare.FindStringSubmatch(s); m != nil {
		var c condition
		var err error
		if c.path, c.key, err = parsePath(m[1], ctx); err != nil {
			return c, err
		}
		c.neg = m[2] == "!="
		if c.lit, err = parseLiteral(strings.TrimSpace(m[3])); err != nil {
			return c, err
		}
		return c, nil
	}
	return condition{}, fmt.Errorf("unknown form")
}

func parseLiteral(s string) (*pcommon.Value, error) {
	switch {
	case s == "nil":
		return nil, nil
	case s == "true" || s == "false":
		v := pcommon.NewValueBool(s == "true")
		return &v, nil
	case strings.HasPrefix(s, `"`):
		u, err := strconv.Unquote(s)
		if err != nil {
			return nil, fmt.Errorf("bad string %s", s)
		}
		v := pcommon.NewValueStr(u)
		return &v, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		v := pcommon.NewValueInt(n)
		return &v, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		v := pcommon.NewValueDouble(f)
		return &v, nil
	}
	return nil, fmt.Errorf("unknown value %s", s)
}

// parsePath resolves a path in the context: an optional context prefix
// (metric., datapoint., log., span., spanevent.), then name, body,
// severity_text, attributes["k"] or resource.attributes["k"].
func parsePath(s string, ctx condCtx) (pathKind, string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "resource."); ok {
		if m := reAttr.FindStringSubmatch(rest); m != nil {
			k, err := strconv.Unquote(m[1])
			return pathResAttr, k, err
		}
		return 0, "", fmt.Errorf("unknown path %s", s)
	}
	own := map[condCtx]string{ctxMetric: "metric.", ctxDataPoint: "datapoint.", ctxLog: "log.", ctxSpan: "span.", ctxSpanEvent: "spanevent."}[ctx]
	if ctx == ctxDataPoint && s == "metric.name" {
		return pathMetricName, "", nil
	}
	s = strings.TrimPrefix(s, own)
	if m := reAttr.FindStringSubmatch(s); m != nil {
		if ctx == ctxMetric {
			return 0, "", fmt.Errorf("a metric has no attributes (use the datapoint context)")
		}
		k, err := strconv.Unquote(m[1])
		return pathAttr, k, err
	}
	switch {
	case s == "name" && (ctx == ctxMetric || ctx == ctxSpan || ctx == ctxSpanEvent):
		return pathName, "", nil
	case s == "body" && ctx == ctxLog:
		return pathBody, "", nil
	case s == "severity_text" && ctx == ctxLog:
		return pathSeverityText, "", nil
	}
	return 0, "", fmt.Errorf("unknown path %s", s)
}
