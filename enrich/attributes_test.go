package enrich

import (
	"context"
	"testing"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func attrMap(t *testing.T, raw map[string]any) pcommon.Map {
	t.Helper()
	m := pcommon.NewMap()
	require.NoError(t, m.FromRaw(raw))
	return m
}

func TestAttrActions(t *testing.T) {
	tests := []struct {
		name    string
		actions []AttrAction
		in      map[string]any
		want    map[string]any
		changed bool
	}{
		{
			name:    "insert adds a missing key",
			actions: []AttrAction{{Key: "env", Action: "insert", Value: "prod"}},
			in:      map[string]any{"a": "1"},
			want:    map[string]any{"a": "1", "env": "prod"},
			changed: true,
		},
		{
			name:    "insert keeps an existing key",
			actions: []AttrAction{{Key: "env", Action: "insert", Value: "prod"}},
			in:      map[string]any{"env": "dev"},
			want:    map[string]any{"env": "dev"},
		},
		{
			name:    "update changes an existing key",
			actions: []AttrAction{{Key: "env", Action: "update", Value: int64(3)}},
			in:      map[string]any{"env": "dev"},
			want:    map[string]any{"env": int64(3)},
			changed: true,
		},
		{
			name:    "update ignores a missing key",
			actions: []AttrAction{{Key: "env", Action: "update", Value: "prod"}},
			in:      map[string]any{"a": "1"},
			want:    map[string]any{"a": "1"},
		},
		{
			name:    "upsert inserts",
			actions: []AttrAction{{Key: "job_label", Action: "upsert", Value: "hostmetrics"}},
			in:      map[string]any{},
			want:    map[string]any{"job_label": "hostmetrics"},
			changed: true,
		},
		{
			name:    "upsert overwrites",
			actions: []AttrAction{{Key: "job_label", Action: "UPSERT", Value: "hostmetrics"}},
			in:      map[string]any{"job_label": "x"},
			want:    map[string]any{"job_label": "hostmetrics"},
			changed: true,
		},
		{
			name:    "upsert from_attribute copies the value with its type",
			actions: []AttrAction{{Key: "copy", Action: "upsert", FromAttribute: "n"}},
			in:      map[string]any{"n": int64(7)},
			want:    map[string]any{"n": int64(7), "copy": int64(7)},
			changed: true,
		},
		{
			name:    "insert from a missing attribute does nothing",
			actions: []AttrAction{{Key: "copy", Action: "insert", FromAttribute: "nope"}},
			in:      map[string]any{"n": int64(7)},
			want:    map[string]any{"n": int64(7)},
		},
		{
			name:    "from_context finds nothing in obs and does nothing",
			actions: []AttrAction{{Key: "tenant", Action: "upsert", FromContext: "metadata.tenant"}},
			in:      map[string]any{"a": "1"},
			want:    map[string]any{"a": "1"},
		},
		{
			name:    "delete by key",
			actions: []AttrAction{{Key: "service.name", Action: "delete"}},
			in:      map[string]any{"service.name": "x", "keep": true},
			want:    map[string]any{"keep": true},
			changed: true,
		},
		{
			name:    "delete by pattern",
			actions: []AttrAction{{Action: "delete", Pattern: `^k8s\.`}},
			in:      map[string]any{"k8s.pod.name": "p", "k8s.ns": "n", "host": "h"},
			want:    map[string]any{"host": "h"},
			changed: true,
		},
		{
			name: "hash every type with SHA-256",
			actions: []AttrAction{
				{Key: "s", Action: "hash"}, {Key: "i", Action: "hash"},
				{Key: "b", Action: "hash"}, {Key: "d", Action: "hash"},
			},
			in: map[string]any{"s": "abc", "i": int64(42), "b": true, "d": 1.5},
			want: map[string]any{
				"s": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
				"i": "ed049108bc18f2c64369e8d0ea42850bdd1a7d1dd340cfde716315579702a76c",
				"b": "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a",
				"d": "e163f8cb0f7067a7fc78ca859a77f849aea3214f38fb75b884e4a16be725c905",
			},
			changed: true,
		},
		{
			name:    "hash by pattern",
			actions: []AttrAction{{Action: "hash", Pattern: "mail$"}},
			in:      map[string]any{"user.mail": "alice@example.com", "user.id": "abc"},
			want:    map[string]any{"user.mail": "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976", "user.id": "abc"},
			changed: true,
		},
		{
			name:    "extract named groups",
			actions: []AttrAction{{Key: "http.url", Action: "extract", Pattern: `^(?P<scheme>\w+)://(?P<host>[^/]+)/(?P<path>.*)$`}},
			in:      map[string]any{"http.url": "https://example.com/a/b"},
			want:    map[string]any{"http.url": "https://example.com/a/b", "scheme": "https", "host": "example.com", "path": "a/b"},
			changed: true,
		},
		{
			name:    "extract without a match does nothing",
			actions: []AttrAction{{Key: "http.url", Action: "extract", Pattern: `^(?P<scheme>\w+)://`}},
			in:      map[string]any{"http.url": "no scheme"},
			want:    map[string]any{"http.url": "no scheme"},
		},
		{
			name: "convert",
			actions: []AttrAction{
				{Key: "s2i", Action: "convert", ConvertedType: "int"},
				{Key: "d2i", Action: "convert", ConvertedType: "int"},
				{Key: "b2i", Action: "convert", ConvertedType: "int"},
				{Key: "i2d", Action: "convert", ConvertedType: "double"},
				{Key: "s2d", Action: "convert", ConvertedType: "double"},
				{Key: "i2s", Action: "convert", ConvertedType: "string"},
				{Key: "bad", Action: "convert", ConvertedType: "int"},
			},
			in:      map[string]any{"s2i": "123", "d2i": 9.9, "b2i": true, "i2d": int64(2), "s2d": "0.25", "i2s": int64(5), "bad": "x1"},
			want:    map[string]any{"s2i": int64(123), "d2i": int64(9), "b2i": int64(1), "i2d": 2.0, "s2d": 0.25, "i2s": "5", "bad": "x1"},
			changed: true,
		},
		{
			name: "actions run in order",
			actions: []AttrAction{
				{Key: "a", Action: "insert", Value: "1"},
				{Key: "b", Action: "insert", FromAttribute: "a"},
				{Key: "a", Action: "delete"},
			},
			in:      map[string]any{},
			want:    map[string]any{"b": "1"},
			changed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acts, err := compileActions(tt.actions, "actions")
			require.NoError(t, err)
			m := attrMap(t, tt.in)
			require.Equal(t, tt.changed, acts.apply(context.Background(), m))
			require.Equal(t, tt.want, m.AsRaw())
		})
	}
}

func TestAttrActionErrors(t *testing.T) {
	tests := []struct {
		name   string
		action AttrAction
		want   string
	}{
		{"no action", AttrAction{Key: "a"}, "actions[0].action: required"},
		{"unknown action", AttrAction{Key: "a", Action: "rename"}, `actions[0].action: unknown action "rename"`},
		{"insert without key", AttrAction{Action: "insert", Value: "x"}, "actions[0].key: required for action insert"},
		{"insert without value", AttrAction{Key: "a", Action: "insert"}, "exactly one of value, from_attribute or from_context"},
		{"two sources", AttrAction{Key: "a", Action: "upsert", Value: "x", FromAttribute: "b"}, "exactly one of value"},
		{"insert with pattern", AttrAction{Key: "a", Action: "insert", Value: "x", Pattern: "a"}, "actions[0].pattern: not used by action insert"},
		{"delete without key or pattern", AttrAction{Action: "delete"}, "needs key or pattern"},
		{"delete with value", AttrAction{Key: "a", Action: "delete", Value: "x"}, "takes no value"},
		{"bad pattern", AttrAction{Action: "hash", Pattern: "("}, "actions[0].pattern: error parsing regexp"},
		{"extract without pattern", AttrAction{Key: "a", Action: "extract"}, "actions[0].pattern: required"},
		{"extract unnamed group", AttrAction{Key: "a", Action: "extract", Pattern: `(?P<x>a)(b)`}, "every group must be named"},
		{"extract no group", AttrAction{Key: "a", Action: "extract", Pattern: `ab`}, "at least one named group"},
		{"convert without type", AttrAction{Key: "a", Action: "convert"}, "actions[0].converted_type: required"},
		{"convert bad type", AttrAction{Key: "a", Action: "convert", ConvertedType: "bool"}, `unknown type "bool"`},
		{"convert with value", AttrAction{Key: "a", Action: "convert", ConvertedType: "int", Value: 1}, "takes only key and converted_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileActions([]AttrAction{tt.action}, "actions")
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err := compileActions(nil, "actions")
	require.ErrorContains(t, err, "actions: at least one action is required")
}

// sampleTraces builds two resources (services a and b), each with spans
// "GET /x" and "POST /y" of scope "lib" v1.
func sampleTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	for _, svc := range []string{"a", "b"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("lib")
		ss.Scope().SetVersion("v1")
		for _, n := range []string{"GET /x", "POST /y"} {
			sp := ss.Spans().AppendEmpty()
			sp.SetName(n)
			sp.SetKind(ptrace.SpanKindServer)
			sp.Attributes().PutStr("http.method", n[:3])
			sp.Attributes().PutInt("http.status_code", 200)
		}
	}
	return td
}

func spanMarks(td ptrace.Traces, key string) []string {
	var out []string
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
		sps := rss.At(i).ScopeSpans().At(0).Spans()
		for k := 0; k < sps.Len(); k++ {
			if _, ok := sps.At(k).Attributes().Get(key); ok {
				out = append(out, svc.Str()+":"+sps.At(k).Name())
			}
		}
	}
	return out
}

func TestAttributesIncludeExcludeSpans(t *testing.T) {
	mark := []AttrAction{{Key: "marked", Action: "insert", Value: true}}
	tests := []struct {
		name    string
		include *MatchProperties
		exclude *MatchProperties
		want    []string
	}{
		{"no selection", nil, nil, []string{"a:GET /x", "a:POST /y", "b:GET /x", "b:POST /y"}},
		{"services strict", &MatchProperties{MatchType: "strict", Services: []string{"a"}}, nil, []string{"a:GET /x", "a:POST /y"}},
		{"span names regexp", &MatchProperties{MatchType: "regexp", SpanNames: []string{"^GET"}}, nil, []string{"a:GET /x", "b:GET /x"}},
		{"regexp is unanchored", &MatchProperties{MatchType: "regexp", SpanNames: []string{"/y"}}, nil, []string{"a:POST /y", "b:POST /y"}},
		{"service and name", &MatchProperties{MatchType: "strict", Services: []string{"b"}, SpanNames: []string{"POST /y"}}, nil, []string{"b:POST /y"}},
		{"exclude", nil, &MatchProperties{MatchType: "strict", Services: []string{"a"}}, []string{"b:GET /x", "b:POST /y"}},
		{"include and exclude", &MatchProperties{MatchType: "strict", Services: []string{"a"}},
			&MatchProperties{MatchType: "strict", SpanNames: []string{"GET /x"}}, []string{"a:POST /y"}},
		{"attribute strict typed value", &MatchProperties{MatchType: "strict", Attributes: []AttributeMatch{{Key: "http.status_code", Value: 200}}}, nil,
			[]string{"a:GET /x", "a:POST /y", "b:GET /x", "b:POST /y"}},
		{"attribute strict wrong type does not match", &MatchProperties{MatchType: "strict", Attributes: []AttributeMatch{{Key: "http.status_code", Value: "200"}}}, nil, nil},
		{"attribute regexp on an int", &MatchProperties{MatchType: "regexp", Attributes: []AttributeMatch{{Key: "http.status_code", Value: "^2"}}}, nil,
			[]string{"a:GET /x", "a:POST /y", "b:GET /x", "b:POST /y"}},
		{"attribute key only", &MatchProperties{MatchType: "strict", Attributes: []AttributeMatch{{Key: "http.method"}, {Key: "absent"}}}, nil, nil},
		{"resources", &MatchProperties{MatchType: "strict", Resources: []AttributeMatch{{Key: "service.name", Value: "b"}}}, nil, []string{"b:GET /x", "b:POST /y"}},
		{"libraries", &MatchProperties{MatchType: "strict", Libraries: []LibraryMatch{{Name: "lib", Version: ptr("v2")}}}, nil, nil},
		{"span kinds", &MatchProperties{MatchType: "strict", SpanKinds: []string{"SPAN_KIND_SERVER"}, SpanNames: []string{"GET /x"}}, nil, []string{"a:GET /x", "b:GET /x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := AttributesConfig{Actions: mark, Include: tt.include, Exclude: tt.exclude}
			require.NoError(t, cfg.ValidateFor(actors.SignalTraces))
			fn, err := NewAttributes("attributes/t", cfg, nil, nil)
			require.NoError(t, err)
			td := sampleTraces()
			require.NoError(t, fn(context.Background(), actors.TracesBatch(td)))
			require.Equal(t, tt.want, spanMarks(td, "marked"))
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestAttributesLogsAndMetrics(t *testing.T) {
	t.Run("logs by body and severity", func(t *testing.T) {
		ld := plog.NewLogs()
		sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
		for i, b := range []string{"error: disk full", "ok", "error: again"} {
			lr := sl.LogRecords().AppendEmpty()
			lr.Body().SetStr(b)
			lr.SetSeverityNumber(plog.SeverityNumber(9 + 8*(i%2))) // INFO, ERROR, INFO
		}
		cfg := AttributesConfig{
			Actions: []AttrAction{{Key: "m", Action: "insert", Value: 1}},
			Include: &MatchProperties{MatchType: "regexp", LogBodies: []string{"^error"}},
			Exclude: &MatchProperties{MatchType: "strict", LogSeverityNumber: &SeverityNumberMatch{Min: "WARN"}},
		}
		require.NoError(t, cfg.ValidateFor(actors.SignalLogs))
		fn, err := NewAttributes("attributes/l", cfg, nil, nil)
		require.NoError(t, err)
		require.NoError(t, fn(context.Background(), actors.LogsBatch(ld)))
		var got []bool
		for i := 0; i < sl.LogRecords().Len(); i++ {
			_, ok := sl.LogRecords().At(i).Attributes().Get("m")
			got = append(got, ok)
		}
		require.Equal(t, []bool{true, false, true}, got)
	})
	t.Run("metric data points by metric name and resource", func(t *testing.T) {
		md := pmetric.NewMetrics()
		for _, env := range []string{"prod", "dev"} {
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("env", env)
			ms := rm.ScopeMetrics().AppendEmpty().Metrics()
			g := ms.AppendEmpty()
			g.SetName("system.cpu.time")
			g.SetEmptySum().DataPoints().AppendEmpty().SetDoubleValue(1)
			h := ms.AppendEmpty()
			h.SetName("http.duration")
			h.SetEmptyHistogram().DataPoints().AppendEmpty().SetCount(1)
		}
		cfg := AttributesConfig{
			Actions: []AttrAction{{Key: "m", Action: "upsert", Value: "y"}},
			Include: &MatchProperties{MatchType: "regexp", MetricNames: []string{`^system\.`, `duration`},
				Resources: []AttributeMatch{{Key: "env", Value: "prod"}}},
			Exclude: &MatchProperties{MatchType: "strict", MetricNames: []string{"http.duration"}},
		}
		require.NoError(t, cfg.ValidateFor(actors.SignalMetrics))
		reg := prometheus.NewRegistry()
		fn, err := NewAttributes("attributes/m", cfg, nil, reg)
		require.NoError(t, err)
		require.NoError(t, fn(context.Background(), actors.MetricsBatch(md)))
		var got []string
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			env, _ := rm.Resource().Attributes().Get("env")
			ms := rm.ScopeMetrics().At(0).Metrics()
			for k := 0; k < ms.Len(); k++ {
				rangePointAttrs(ms.At(k), func(a pcommon.Map) {
					if _, ok := a.Get("m"); ok {
						got = append(got, env.Str()+":"+ms.At(k).Name())
					}
				})
			}
		}
		require.Equal(t, []string{"prod:system.cpu.time"}, got)
		require.Equal(t, 1.0, counterValue(t, reg, "obs_enrich_attributes_changed_items_total"))
	})
}

func TestAttributesConfigErrors(t *testing.T) {
	act := []AttrAction{{Key: "a", Action: "delete"}}
	tests := []struct {
		name   string
		cfg    AttributesConfig
		signal actors.Signal
		want   string
	}{
		{"no actions", AttributesConfig{}, actors.SignalLogs, "actions: at least one action is required"},
		{"no match type", AttributesConfig{Actions: act, Include: &MatchProperties{Services: []string{"a"}}}, actors.SignalTraces, "include.match_type: required"},
		{"bad match type", AttributesConfig{Actions: act, Exclude: &MatchProperties{MatchType: "expr", Services: []string{"a"}}}, actors.SignalTraces, `exclude.match_type: unknown match type "expr"`},
		{"bad regexp", AttributesConfig{Actions: act, Include: &MatchProperties{MatchType: "regexp", SpanNames: []string{"("}}}, actors.SignalTraces, "include.span_names[0]: error parsing regexp"},
		{"regexp attribute needs a string", AttributesConfig{Actions: act, Include: &MatchProperties{MatchType: "regexp", Attributes: []AttributeMatch{{Key: "a", Value: 1}}}}, actors.SignalTraces, "include.attributes[0].value: match_type regexp needs a string"},
		{"empty attribute key", AttributesConfig{Actions: act, Include: &MatchProperties{MatchType: "strict", Resources: []AttributeMatch{{Value: "x"}}}}, actors.SignalTraces, "include.resources[0].key: required"},
		{"span names for metrics", AttributesConfig{Actions: act, Include: &MatchProperties{MatchType: "strict", SpanNames: []string{"a"}}}, actors.SignalMetrics, "include.span_names: does not apply to metrics"},
		{"metric names for logs", AttributesConfig{Actions: act, Exclude: &MatchProperties{MatchType: "strict", MetricNames: []string{"a"}}}, actors.SignalLogs, "exclude.metric_names: does not apply to logs"},
		{"nothing to match", AttributesConfig{Actions: act, Include: &MatchProperties{MatchType: "strict"}}, actors.SignalTraces, "include: set at least one of"},
		{"bad severity", AttributesConfig{Actions: act, Include: &MatchProperties{MatchType: "strict", LogSeverityNumber: &SeverityNumberMatch{Min: "LOUD"}}}, actors.SignalLogs, "include.log_severity_number.min: unknown severity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorContains(t, tt.cfg.ValidateFor(tt.signal), tt.want)
		})
	}
}

func TestParseSeverity(t *testing.T) {
	tests := map[string]plog.SeverityNumber{
		"TRACE": 1, "debug": 5, "INFO": 9, "info2": 10, "WARN": 13, "Error": 17, "ERROR4": 20, "FATAL": 21, "fatal4": 24, "12": 12,
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			got, err := parseSeverity(in)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
	for _, bad := range []string{"", "INFO5", "INFO0", "0", "25", "NOTICE"} {
		_, err := parseSeverity(bad)
		require.Error(t, err, bad)
	}
}

// counterValue reads the single series of the counter named name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			require.Len(t, mf.GetMetric(), 1)
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestAttributesSeedAgent applies the seed agent's job_label processors,
// decoded from the user's file, to a hostmetrics-like batch.
func TestAttributesSeedAgent(t *testing.T) {
	for _, job := range []string{"hostmetrics", "kubeletstats"} {
		t.Run(job, func(t *testing.T) {
			cfg := DefaultAttributesConfig()
			require.NoError(t, config.Decode(seedProcessor(t, "seed-agent.yaml", "attributes/job_label_"+job), &cfg))
			require.NoError(t, cfg.ValidateFor(actors.SignalMetrics))
			fn, err := NewAttributes("attributes/job_label_"+job, cfg, nil, nil)
			require.NoError(t, err)
			md, ms := oneScope()
			addGauge(ms, "system.cpu.utilization", pt{labels: map[string]any{"cpu": "cpu0"}, v: 0.5}, pt{labels: map[string]any{"cpu": "cpu1", "job_label": "old"}, v: 0.25})
			addSum(ms, "system.paging.operations", pt{labels: map[string]any{}, v: int64(3)})
			require.NoError(t, fn(context.Background(), actors.MetricsBatch(md)))
			require.Equal(t, []string{"cpu=cpu0,job_label=" + job + ",=>d0.5", "cpu=cpu1,job_label=" + job + ",=>d0.25"}, dump(ms.At(0)))
			require.Equal(t, []string{"job_label=" + job + ",=>i3"}, dump(ms.At(1)))
			require.Equal(t, map[string]any{"host.name": "node-a"}, md.ResourceMetrics().At(0).Resource().Attributes().AsRaw(), "resource untouched")
		})
	}
}

// BenchmarkAttributesUpsert upserts job_label on 1,000 data points.
func BenchmarkAttributesUpsert(b *testing.B) {
	md, ms := oneScope()
	var pts []pt
	for i := 0; i < 1000; i++ {
		pts = append(pts, pt{labels: map[string]any{"cpu": "cpu0", "state": "user"}, v: 1.0})
	}
	addGauge(ms, "system.cpu.utilization", pts...)
	fn, err := NewAttributes("attributes/bench", AttributesConfig{Actions: []AttrAction{{Key: "job_label", Action: "upsert", Value: "hostmetrics"}}}, nil, nil)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if err := fn(context.Background(), actors.MetricsBatch(md)); err != nil {
			b.Fatal(err)
		}
	}
}
