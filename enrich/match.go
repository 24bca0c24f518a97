package enrich

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// MatchProperties selects spans, log records or metrics by the
// Collector's classic `include`/`exclude` keys (filterconfig). Every field
// that is set must match (AND); within a list any entry may match (OR).
type MatchProperties struct {
	// MatchType is strict (equality) or regexp (RE2, unanchored, as the
	// Collector's filterset). Required.
	MatchType string `yaml:"match_type"`
	// Regexp holds the Collector's regexp cache settings; accepted and
	// ignored (obs compiles every pattern once).
	Regexp *RegexpCacheConfig `yaml:"regexp"`
	// Services match the resource's service.name (spans).
	Services []string `yaml:"services"`
	// SpanNames match span names (spans).
	SpanNames []string `yaml:"span_names"`
	// SpanKinds match SPAN_KIND_SERVER and the like (spans).
	SpanKinds []string `yaml:"span_kinds"`
	// LogBodies match string log bodies (logs).
	LogBodies []string `yaml:"log_bodies"`
	// LogSeverityTexts match the severity text (logs).
	LogSeverityTexts []string `yaml:"log_severity_texts"`
	// LogSeverityNumber matches a minimum severity (logs).
	LogSeverityNumber *SeverityNumberMatch `yaml:"log_severity_number"`
	// MetricNames match metric names (metrics).
	MetricNames []string `yaml:"metric_names"`
	// Attributes must all be present on the item (with the value, when
	// given). For metrics, data point attributes.
	Attributes []AttributeMatch `yaml:"attributes"`
	// Resources must all be present on the resource.
	Resources []AttributeMatch `yaml:"resources"`
	// Libraries match the instrumentation scope (any of them).
	Libraries []LibraryMatch `yaml:"libraries"`
}

// RegexpCacheConfig is the Collector's `regexp:` block; obs accepts and
// ignores it.
type RegexpCacheConfig struct {
	CacheEnabled       bool `yaml:"cacheenabled"`
	CacheMaxNumEntries int  `yaml:"cachemaxnumentries"`
}

// AttributeMatch is one `key`/`value` to match. A nil Value matches any
// value as long as the key is present. With match_type regexp the value
// must be a string pattern.
type AttributeMatch struct {
	Key   string `yaml:"key"`
	Value any    `yaml:"value"`
}

// LibraryMatch matches an instrumentation scope by name and, when set,
// version.
type LibraryMatch struct {
	Name    string  `yaml:"name"`
	Version *string `yaml:"version"`
}

// SeverityNumberMatch keeps records at or above Min (TRACE … FATAL4, or
// a number); records without a severity number match when
// MatchUndefined is set.
type SeverityNumberMatch struct {
	Min            string `yaml:"min"`
	MatchUndefined bool   `yaml:"match_undefined"`
}

// stringSet matches a string against a list, strictly or by regexp.
type stringSet struct {
	strict map[string]struct{}
	res    []*regexp.Regexp
}

const (
	matchStrict = "strict"
	matchRegexp = "regexp"
)

func checkMatchType(mt, path string) error {
	switch mt {
	case matchStrict, matchRegexp:
		return nil
	case "":
		return fmt.Errorf("%s.match_type: required (strict or regexp)", path)
	}
	return fmt.Errorf("%s.match_type: unknown match type %q (want strict or regexp)", path, mt)
}

func newStringSet(matchType string, items []string, path string) (*stringSet, error) {
	if len(items) == 0 {
		return nil, nil
	}
	s := &stringSet{}
	if matchType == matchRegexp {
		for i, it := range items {
			re, err := regexp.Compile(it)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", path, i, err)
			}
			s.res = append(s.res, re)
		}
		return s, nil
	}
	s.strict = make(map[string]struct{}, len(items))
	for _, it := range items {
		s.strict[it] = struct{}{}
	}
	return s, nil
}

func (s *stringSet) match(v string) bool {
	if s.strict != nil {
		_, ok := s.strict[v]
		return ok
	}
	for _, re := range s.res {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

type attrMatcher struct {
	key   string
	value *pcommon.Value // strict
	re    *regexp.Regexp // regexp
}

// attrMatchers match when every one of them matches.
type attrMatchers []attrMatcher

func newAttrMatchers(matchType string, attrs []AttributeMatch, path string) (attrMatchers, error) {
	out := make(attrMatchers, 0, len(attrs))
	for i, a := range attrs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if a.Key == "" {
			return nil, fmt.Errorf("%s.key: required", p)
		}
		m := attrMatcher{key: a.Key}
		if a.Value != nil {
			if matchType == matchRegexp {
				s, ok := a.Value.(string)
				if !ok {
					return nil, fmt.Errorf("%s.value: match_type regexp needs a string pattern, got %T", p, a.Value)
				}
				re, err := regexp.Compile(s)
				if err != nil {
					return nil, fmt.Errorf("%s.value: %w", p, err)
				}
				m.re = re
			} else {
				v := pcommon.NewValueEmpty()
				if err := v.FromRaw(a.Value); err != nil {
					return nil, fmt.Errorf("%s.value: %w", p, err)
				}
				m.value = &v
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func (ms attrMatchers) match(attrs pcommon.Map) bool {
	for _, m := range ms {
		v, ok := attrs.Get(m.key)
		if !ok {
			return false
		}
		switch {
		case m.re != nil:
			if !m.re.MatchString(v.AsString()) {
				return false
			}
		case m.value != nil:
			if !v.Equal(*m.value) {
				return false
			}
		}
	}
	return true
}

type libMatcher struct {
	name    *stringSet
	version *stringSet
}

// severityByName maps TRACE … FATAL4 to their numbers.
func parseSeverity(s string) (plog.SeverityNumber, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= 24 {
		return plog.SeverityNumber(n), nil
	}
	u := strings.ToUpper(strings.TrimSpace(s))
	bases := []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
	for i, b := range bases {
		rest, ok := strings.CutPrefix(u, b)
		if !ok {
			continue
		}
		off := 1
		if rest != "" {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 1 || n > 4 {
				break
			}
			off = n
		}
		return plog.SeverityNumber(i*4 + off), nil
	}
	return 0, fmt.Errorf("unknown severity %q (want TRACE, DEBUG, INFO, WARN, ERROR, FATAL with an optional 2-4, or 1-24)", s)
}

type sevMatcher struct {
	min       plog.SeverityNumber
	undefined bool
}

func (m *sevMatcher) match(n plog.SeverityNumber) bool {
	if n == plog.SeverityNumberUnspecified {
		return m.undefined
	}
	return n >= m.min
}

// matcher is a compiled MatchProperties.
type matcher struct {
	services, spanNames, spanKinds *stringSet
	bodies, sevTexts, metricNames  *stringSet
	sevNum                         *sevMatcher
	attrs, res                     attrMatchers
	libs                           []libMatcher
}

func compileMatch(mp *MatchProperties, path string) (*matcher, error) {
	if mp == nil {
		return nil, nil
	}
	if err := checkMatchType(mp.MatchType, path); err != nil {
		return nil, err
	}
	mt := mp.MatchType
	m := &matcher{}
	var err error
	sets := []struct {
		dst   **stringSet
		items []string
		key   string
	}{
		{&m.services, mp.Services, "services"},
		{&m.spanNames, mp.SpanNames, "span_names"},
		{&m.spanKinds, mp.SpanKinds, "span_kinds"},
		{&m.bodies, mp.LogBodies, "log_bodies"},
		{&m.sevTexts, mp.LogSeverityTexts, "log_severity_texts"},
		{&m.metricNames, mp.MetricNames, "metric_names"},
	}
	for _, s := range sets {
		if *s.dst, err = newStringSet(mt, s.items, path+"."+s.key); err != nil {
			return nil, err
		}
	}
	if mp.LogSeverityNumber != nil {
		n, err := parseSeverity(mp.LogSeverityNumber.Min)
		if err != nil {
			return nil, fmt.Errorf("%s.log_severity_number.min: %w", path, err)
		}
		m.sevNum = &sevMatcher{min: n, undefined: mp.LogSeverityNumber.MatchUndefined}
	}
	if m.attrs, err = newAttrMatchers(mt, mp.Attributes, path+".attributes"); err != nil {
		return nil, err
	}
	if m.res, err = newAttrMatchers(mt, mp.Resources, path+".resources"); err != nil {
		return nil, err
	}
	for i, l := range mp.Libraries {
		p := fmt.Sprintf("%s.libraries[%d]", path, i)
		if l.Name == "" {
			return nil, fmt.Errorf("%s.name: required", p)
		}
		var lm libMatcher
		if lm.name, err = newStringSet(mt, []string{l.Name}, p+".name"); err != nil {
			return nil, err
		}
		if l.Version != nil {
			if lm.version, err = newStringSet(mt, []string{*l.Version}, p+".version"); err != nil {
				return nil, err
			}
		}
		m.libs = append(m.libs, lm)
	}
	return m, nil
}

// validateMatchFor checks that mp uses only keys that apply to the
// signal and at least one of them, as the Collector does.
func validateMatchFor(mp *MatchProperties, signal, path string) error {
	if mp == nil {
		return nil
	}
	type key struct {
		name string
		set  bool
	}
	all := map[string]key{
		"services":            {"services", len(mp.Services) > 0},
		"span_names":          {"span_names", len(mp.SpanNames) > 0},
		"span_kinds":          {"span_kinds", len(mp.SpanKinds) > 0},
		"log_bodies":          {"log_bodies", len(mp.LogBodies) > 0},
		"log_severity_texts":  {"log_severity_texts", len(mp.LogSeverityTexts) > 0},
		"log_severity_number": {"log_severity_number", mp.LogSeverityNumber != nil},
		"metric_names":        {"metric_names", len(mp.MetricNames) > 0},
		"attributes":          {"attributes", len(mp.Attributes) > 0},
		"resources":           {"resources", len(mp.Resources) > 0},
		"libraries":           {"libraries", len(mp.Libraries) > 0},
	}
	var allowed []string
	switch signal {
	case "traces":
		allowed = []string{"services", "span_names", "span_kinds", "attributes", "resources", "libraries"}
	case "logs":
		allowed = []string{"log_bodies", "log_severity_texts", "log_severity_number", "attributes", "resources", "libraries"}
	case "metrics":
		allowed = []string{"metric_names", "attributes", "resources", "libraries"}
	}
	ok := map[string]bool{}
	anySet := false
	for _, a := range allowed {
		ok[a] = true
		anySet = anySet || all[a].set
	}
	for _, name := range []string{"services", "span_names", "span_kinds", "log_bodies", "log_severity_texts", "log_severity_number", "metric_names"} {
		if all[name].set && !ok[name] {
			return fmt.Errorf("%s.%s: does not apply to %s", path, name, signal)
		}
	}
	if !anySet {
		return fmt.Errorf("%s: set at least one of %s for %s", path, strings.Join(allowed, ", "), signal)
	}
	return nil
}

func (m *matcher) matchScope(scope pcommon.InstrumentationScope) bool {
	for _, l := range m.libs {
		if !l.name.match(scope.Name()) {
			return false
		}
		if l.version != nil && !l.version.match(scope.Version()) {
			return false
		}
	}
	return true
}

// serviceName is what the Collector matches `services` against.
func serviceName(res pcommon.Resource) string {
	if v, ok := res.Attributes().Get("service.name"); ok {
		return v.AsString()
	}
	return "<nil-service-name>"
}

func spanKindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindInternal:
		return "SPAN_KIND_INTERNAL"
	case ptrace.SpanKindServer:
		return "SPAN_KIND_SERVER"
	case ptrace.SpanKindClient:
		return "SPAN_KIND_CLIENT"
	case ptrace.SpanKindProducer:
		return "SPAN_KIND_PRODUCER"
	case ptrace.SpanKindConsumer:
		return "SPAN_KIND_CONSUMER"
	}
	return "SPAN_KIND_UNSPECIFIED"
}

func (m *matcher) matchSpan(res pcommon.Resource, scope pcommon.InstrumentationScope, s ptrace.Span) bool {
	if m.services != nil && !m.services.match(serviceName(res)) {
		return false
	}
	if m.spanNames != nil && !m.spanNames.match(s.Name()) {
		return false
	}
	if m.spanKinds != nil && !m.spanKinds.match(spanKindName(s.Kind())) {
		return false
	}
	return m.matchScope(scope) && m.res.match(res.Attributes()) && m.attrs.match(s.Attributes())
}

func (m *matcher) matchLog(res pcommon.Resource, scope pcommon.InstrumentationScope, lr plog.LogRecord) bool {
	if m.bodies != nil && (lr.Body().Type() != pcommon.ValueTypeStr || !m.bodies.match(lr.Body().Str())) {
		return false
	}
	if m.sevTexts != nil && !m.sevTexts.match(lr.SeverityText()) {
		return false
	}
	if m.sevNum != nil && !m.sevNum.match(lr.SeverityNumber()) {
		return false
	}
	return m.matchScope(scope) && m.res.match(res.Attributes()) && m.attrs.match(lr.Attributes())
}

// matchMetric matches the metric-level keys; data point attributes are
// checked per point with matchPoint.
func (m *matcher) matchMetric(res pcommon.Resource, scope pcommon.InstrumentationScope, mt pmetric.Metric) bool {
	if m.metricNames != nil && !m.metricNames.match(mt.Name()) {
		return false
	}
	return m.matchScope(scope) && m.res.match(res.Attributes())
}

func (m *matcher) matchPoint(attrs pcommon.Map) bool { return m.attrs.match(attrs) }

// selection combines an include and an exclude matcher: an item is
// selected when include (if set) matches and exclude (if set) does not.
type selection struct {
	include, exclude *matcher
}

func (s selection) empty() bool { return s.include == nil && s.exclude == nil }

func (s selection) span(res pcommon.Resource, scope pcommon.InstrumentationScope, sp ptrace.Span) bool {
	if s.include != nil && !s.include.matchSpan(res, scope, sp) {
		return false
	}
	return s.exclude == nil || !s.exclude.matchSpan(res, scope, sp)
}

func (s selection) log(res pcommon.Resource, scope pcommon.InstrumentationScope, lr plog.LogRecord) bool {
	if s.include != nil && !s.include.matchLog(res, scope, lr) {
		return false
	}
	return s.exclude == nil || !s.exclude.matchLog(res, scope, lr)
}

func (s selection) point(res pcommon.Resource, scope pcommon.InstrumentationScope, mt pmetric.Metric, attrs pcommon.Map) bool {
	if s.include != nil && !(s.include.matchMetric(res, scope, mt) && s.include.matchPoint(attrs)) {
		return false
	}
	return s.exclude == nil || !(s.exclude.matchMetric(res, scope, mt) && s.exclude.matchPoint(attrs))
}
