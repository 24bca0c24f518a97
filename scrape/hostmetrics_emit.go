package scrape

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// MetricSwitch is one entry of a receiver's `metrics:` block.
type MetricSwitch struct {
	Enabled bool `yaml:"enabled"`
}

// hmKind is the data type of one emitted metric.
type hmKind uint8

const (
	mkGauge hmKind = iota
	mkCounter
	mkUpDown
)

// hmMetricDef describes one metric a scraper can emit.
type hmMetricDef struct {
	unit    string
	kind    hmKind
	enabled bool // the Collector's default
}

// hmCheckSwitches reports an unknown metric name under key.
func hmCheckSwitches(key string, sw map[string]MetricSwitch, defs map[string]hmMetricDef) error {
	names := make([]string, 0, len(sw))
	for n := range sw {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := defs[n]; !ok {
			return fmt.Errorf("%s.%s: unknown metric name", key, n)
		}
	}
	return nil
}

// hmEnabled resolves the switches over the defaults.
func hmEnabled(sw map[string]MetricSwitch, defs map[string]hmMetricDef) map[string]bool {
	on := make(map[string]bool, len(defs))
	for n, d := range defs {
		on[n] = d.enabled
	}
	for n, s := range sw {
		on[n] = s.Enabled
	}
	return on
}

// hmSet builds the metrics of one scope, one pmetric.Metric per name.
type hmSet struct {
	sm     pmetric.ScopeMetrics
	defs   map[string]hmMetricDef
	on     map[string]bool
	byName map[string]pmetric.Metric
	start  pcommon.Timestamp
	now    pcommon.Timestamp
}

func newHMSet(rm pmetric.ResourceMetrics, scope string, defs map[string]hmMetricDef, on map[string]bool, start, now pcommon.Timestamp) *hmSet {
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(scope)
	return &hmSet{sm: sm, defs: defs, on: on, byName: map[string]pmetric.Metric{}, start: start, now: now}
}

func (s *hmSet) dp(name string) (pmetric.NumberDataPoint, bool) {
	if !s.on[name] {
		return pmetric.NumberDataPoint{}, false
	}
	m, ok := s.byName[name]
	if !ok {
		d := s.defs[name]
		m = s.sm.Metrics().AppendEmpty()
		m.SetName(name)
		m.SetUnit(d.unit)
		switch d.kind {
		case mkGauge:
			m.SetEmptyGauge()
		default:
			sum := m.SetEmptySum()
			sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			sum.SetIsMonotonic(d.kind == mkCounter)
		}
		s.byName[name] = m
	}
	var p pmetric.NumberDataPoint
	if m.Type() == pmetric.MetricTypeGauge {
		p = m.Gauge().DataPoints().AppendEmpty()
	} else {
		p = m.Sum().DataPoints().AppendEmpty()
		p.SetStartTimestamp(s.start)
	}
	p.SetTimestamp(s.now)
	return p, true
}

// int adds an integer point; attrs are key, value pairs.
func (s *hmSet) int(name string, v int64, attrs ...string) {
	if p, ok := s.dp(name); ok {
		p.SetIntValue(v)
		hmPutAttrs(p.Attributes(), attrs)
	}
}

// double adds a floating point point; attrs are key, value pairs.
func (s *hmSet) double(name string, v float64, attrs ...string) {
	if p, ok := s.dp(name); ok {
		p.SetDoubleValue(v)
		hmPutAttrs(p.Attributes(), attrs)
	}
}

func hmPutAttrs(m pcommon.Map, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		m.PutStr(kv[i], kv[i+1])
	}
}

// MatchConfig is the Collector's include/exclude hmFilter block: a list of
// names (the key depends on the scraper) and match_type strict|regexp.
type MatchConfig struct {
	MatchType   string   `yaml:"match_type"`
	Devices     []string `yaml:"devices"`
	Interfaces  []string `yaml:"interfaces"`
	Names       []string `yaml:"names"`
	FSTypes     []string `yaml:"fs_types"`
	MountPoints []string `yaml:"mount_points"`
}

func (m *MatchConfig) items() []string {
	var out []string
	out = append(out, m.Devices...)
	out = append(out, m.Interfaces...)
	out = append(out, m.Names...)
	out = append(out, m.FSTypes...)
	return append(out, m.MountPoints...)
}

// hmMatcher is a compiled MatchConfig; a nil hmMatcher matches nothing.
type hmMatcher struct {
	strict map[string]bool
	res    []*regexp.Regexp
}

func compileHMMatch(key string, m *MatchConfig) (*hmMatcher, error) {
	if m == nil {
		return nil, nil
	}
	out := &hmMatcher{strict: map[string]bool{}}
	switch m.MatchType {
	case "strict":
		for _, s := range m.items() {
			out.strict[s] = true
		}
	case "regexp":
		for _, s := range m.items() {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, fmt.Errorf("%s: compile %q: %w", key, s, err)
			}
			out.res = append(out.res, re)
		}
	default:
		return nil, fmt.Errorf("%s.match_type: want strict or regexp, got %q", key, m.MatchType)
	}
	return out, nil
}

func (m *hmMatcher) match(s string) bool {
	if m == nil {
		return false
	}
	if m.strict[s] {
		return true
	}
	for _, re := range m.res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// hmFilter keeps s when it matches include (if set) and not exclude.
type hmFilter struct{ include, exclude *hmMatcher }

func newHMFilter(key string, inc, exc *MatchConfig) (hmFilter, error) {
	i, err := compileHMMatch(key+".include", inc)
	if err != nil {
		return hmFilter{}, err
	}
	e, err := compileHMMatch(key+".exclude", exc)
	if err != nil {
		return hmFilter{}, err
	}
	return hmFilter{include: i, exclude: e}, nil
}

func (f hmFilter) keep(s string) bool {
	if f.include != nil && !f.include.match(s) {
		return false
	}
	return !f.exclude.match(s)
}

func hmHasPrefix(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// metricSet names the metrics one `metrics:` block may switch.
type metricSet interface{ defs() map[string]hmMetricDef }

// MetricSwitches is a `metrics:` block; decoding it rejects a metric name
// the scraper does not have, naming the key's line.
type MetricSwitches[S metricSet] map[string]MetricSwitch

// UnmarshalYAML decodes the block strictly.
func (m *MetricSwitches[S]) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of metric names", n.Line)
	}
	var s S
	defs := s.defs()
	out := make(MetricSwitches[S], len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, ok := defs[k.Value]; !ok {
			return fmt.Errorf("line %d: %s: unknown metric name", k.Line, k.Value)
		}
		var sw MetricSwitch
		if v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				if v.Content[j].Value != "enabled" {
					return fmt.Errorf("line %d: %s.%s: unknown key (want enabled)", v.Content[j].Line, k.Value, v.Content[j].Value)
				}
				if err := v.Content[j+1].Decode(&sw.Enabled); err != nil {
					return fmt.Errorf("line %d: %s.enabled: want true or false", v.Content[j+1].Line, k.Value)
				}
			}
		} else if v.Tag != "!!null" {
			return fmt.Errorf("line %d: %s: want a mapping with enabled", v.Line, k.Value)
		}
		out[k.Value] = sw
	}
	*m = out
	return nil
}

type (
	cpuMetricSet        struct{}
	loadMetricSet       struct{}
	memoryMetricSet     struct{}
	pagingMetricSet     struct{}
	filesystemMetricSet struct{}
	diskMetricSet       struct{}
	networkMetricSet    struct{}
	processesMetricSet  struct{}
	processMetricSet    struct{}
	kubeletMetricSet    struct{}
)

func (cpuMetricSet) defs() map[string]hmMetricDef        { return cpuDefs }
func (loadMetricSet) defs() map[string]hmMetricDef       { return loadDefs }
func (memoryMetricSet) defs() map[string]hmMetricDef     { return memoryDefs }
func (pagingMetricSet) defs() map[string]hmMetricDef     { return pagingDefs }
func (filesystemMetricSet) defs() map[string]hmMetricDef { return filesystemDefs }
func (diskMetricSet) defs() map[string]hmMetricDef       { return diskDefs }
func (networkMetricSet) defs() map[string]hmMetricDef    { return networkDefs }
func (processesMetricSet) defs() map[string]hmMetricDef  { return processesDefs }
func (processMetricSet) defs() map[string]hmMetricDef    { return processDefs }
func (kubeletMetricSet) defs() map[string]hmMetricDef    { return kubeletDefs }
