package enrich

import (
	"context"
	"testing"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// filterMetricsSample: resource env=prod with system.cpu.time (2 points,
// state user/idle) and http.requests (1 point); resource env=dev with
// system.cpu.time (1 point).
func filterMetricsSample() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("env", "prod")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	addSum(ms, "system.cpu.time", pt{labels: map[string]any{"state": "user"}, v: 1.0}, pt{labels: map[string]any{"state": "idle"}, v: 2.0})
	addGauge(ms, "http.requests", pt{labels: map[string]any{"code": int64(200)}, v: int64(5)})
	rm2 := md.ResourceMetrics().AppendEmpty()
	rm2.Resource().Attributes().PutStr("env", "dev")
	addSum(rm2.ScopeMetrics().AppendEmpty().Metrics(), "system.cpu.time", pt{labels: map[string]any{"state": "user"}, v: 3.0})
	return md
}

// kept lists env:metric(points) for what is left.
func keptMetrics(md pmetric.Metrics) []string {
	var out []string
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		env, _ := rm.Resource().Attributes().Get("env")
		for j := 0; j < rm.ScopeMetrics().Len(); j++ {
			ms := rm.ScopeMetrics().At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				out = append(out, env.Str()+":"+ms.At(k).Name()+"("+string(rune('0'+pointCount(ms.At(k))))+")")
			}
		}
	}
	return out
}

func TestFilterMetrics(t *testing.T) {
	all := []string{"prod:system.cpu.time(2)", "prod:http.requests(1)", "dev:system.cpu.time(1)"}
	tests := []struct {
		name    string
		cfg     FilterMetrics
		want    []string
		dropped float64
	}{
		{"nothing configured", FilterMetrics{}, all, 0},
		{"include strict names", FilterMetrics{Include: &MetricMatch{MatchType: "strict", MetricNames: []string{"http.requests"}}},
			[]string{"prod:http.requests(1)"}, 3},
		{"include regexp names", FilterMetrics{Include: &MetricMatch{MatchType: "regexp", MetricNames: []string{`^system\.`}}},
			[]string{"prod:system.cpu.time(2)", "dev:system.cpu.time(1)"}, 1},
		{"exclude regexp names (unanchored)", FilterMetrics{Exclude: &MetricMatch{MatchType: "regexp", MetricNames: []string{`cpu`}}},
			[]string{"prod:http.requests(1)"}, 3},
		{"include by resource attribute only", FilterMetrics{Include: &MetricMatch{MatchType: "strict", ResourceAttributes: []AttributeMatch{{Key: "env", Value: "dev"}}}},
			[]string{"dev:system.cpu.time(1)"}, 3},
		{"include by name and resource", FilterMetrics{Include: &MetricMatch{MatchType: "strict", MetricNames: []string{"system.cpu.time"}, ResourceAttributes: []AttributeMatch{{Key: "env", Value: "prod"}}}},
			[]string{"prod:system.cpu.time(2)"}, 2},
		{"exclude by resource regexp", FilterMetrics{Exclude: &MetricMatch{MatchType: "regexp", ResourceAttributes: []AttributeMatch{{Key: "env", Value: "^pr"}}}},
			[]string{"dev:system.cpu.time(1)"}, 3},
		{"include and exclude", FilterMetrics{
			Include: &MetricMatch{MatchType: "regexp", MetricNames: []string{"."}},
			Exclude: &MetricMatch{MatchType: "strict", MetricNames: []string{"http.requests"}}},
			[]string{"prod:system.cpu.time(2)", "dev:system.cpu.time(1)"}, 1},
		{"ottl name", FilterMetrics{Metric: []string{`name == "http.requests"`}},
			[]string{"prod:system.cpu.time(2)", "dev:system.cpu.time(1)"}, 1},
		{"ottl IsMatch and resource (any condition drops)", FilterMetrics{Metric: []string{`IsMatch(metric.name, "^http")`, `resource.attributes["env"] == "dev"`}},
			[]string{"prod:system.cpu.time(2)"}, 2},
		{"ottl !=", FilterMetrics{Metric: []string{`resource.attributes["env"] != "dev"`}},
			[]string{"dev:system.cpu.time(1)"}, 3},
		{"ottl datapoint attributes", FilterMetrics{DataPoint: []string{`attributes["state"] == "idle"`}},
			[]string{"prod:system.cpu.time(1)", "prod:http.requests(1)", "dev:system.cpu.time(1)"}, 1},
		{"ottl datapoint int attribute, empty metric removed", FilterMetrics{DataPoint: []string{`datapoint.attributes["code"] == 200`}},
			[]string{"prod:system.cpu.time(2)", "dev:system.cpu.time(1)"}, 1},
		{"ottl datapoint metric.name", FilterMetrics{DataPoint: []string{`metric.name == "system.cpu.time"`}},
			[]string{"prod:http.requests(1)"}, 3},
		{"ottl missing attribute is nil", FilterMetrics{DataPoint: []string{`attributes["state"] == nil`}},
			[]string{"prod:system.cpu.time(2)", "dev:system.cpu.time(1)"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultFilterConfig()
			cfg.Metrics = tt.cfg
			require.NoError(t, cfg.Validate())
			reg := prometheus.NewRegistry()
			fn, err := NewFilter("filter/t", cfg, nil, reg)
			require.NoError(t, err)
			md := filterMetricsSample()
			require.NoError(t, fn(context.Background(), actors.MetricsBatch(md)))
			require.Equal(t, tt.want, keptMetrics(md))
			require.Equal(t, tt.dropped, counterValue(t, reg, "obs_enrich_filter_dropped_items_total"))
			require.Equal(t, tt.dropped, counterFilterValue(t, reg, "otelcol_processor_filter_datapoints_filtered_total"))
		})
	}
}

func counterFilterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func TestFilterLogs(t *testing.T) {
	build := func() plog.Logs {
		ld := plog.NewLogs()
		for _, ns := range []string{"kube-system", "app"} {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.Resource().Attributes().PutStr("k8s.namespace.name", ns)
			lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
			for _, r := range []struct {
				body, sevText string
				sev           plog.SeverityNumber
				stream        string
			}{
				{"GET /healthz 200", "INFO", plog.SeverityNumberInfo, "stdout"},
				{"panic: boom", "ERROR", plog.SeverityNumberError, "stderr"},
				{"no severity", "", plog.SeverityNumberUnspecified, "stdout"},
			} {
				lr := lrs.AppendEmpty()
				lr.Body().SetStr(r.body)
				lr.SetSeverityText(r.sevText)
				lr.SetSeverityNumber(r.sev)
				lr.Attributes().PutStr("log.iostream", r.stream)
			}
		}
		return ld
	}
	kept := func(ld plog.Logs) []string {
		var out []string
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			ns, _ := rl.Resource().Attributes().Get("k8s.namespace.name")
			lrs := rl.ScopeLogs().At(0).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				out = append(out, ns.Str()+":"+lrs.At(k).Body().Str())
			}
		}
		return out
	}
	tests := []struct {
		name string
		cfg  FilterLogs
		want []string
	}{
		{"exclude resource attribute", FilterLogs{Exclude: &LogMatch{MatchType: "strict", ResourceAttributes: []AttributeMatch{{Key: "k8s.namespace.name", Value: "kube-system"}}}},
			[]string{"app:GET /healthz 200", "app:panic: boom", "app:no severity"}},
		{"exclude bodies regexp", FilterLogs{Exclude: &LogMatch{MatchType: "regexp", Bodies: []string{"healthz"}}},
			[]string{"kube-system:panic: boom", "kube-system:no severity", "app:panic: boom", "app:no severity"}},
		{"include severity number", FilterLogs{Include: &LogMatch{MatchType: "strict", SeverityNumber: &SeverityNumberMatch{Min: "WARN"}}},
			[]string{"kube-system:panic: boom", "app:panic: boom"}},
		{"include severity number with undefined", FilterLogs{Include: &LogMatch{MatchType: "strict", SeverityNumber: &SeverityNumberMatch{Min: "WARN", MatchUndefined: true}}},
			[]string{"kube-system:panic: boom", "kube-system:no severity", "app:panic: boom", "app:no severity"}},
		{"include severity text and record attribute", FilterLogs{Include: &LogMatch{MatchType: "strict", SeverityTexts: []string{"INFO", "ERROR"}, RecordAttributes: []AttributeMatch{{Key: "log.iostream", Value: "stdout"}}}},
			[]string{"kube-system:GET /healthz 200", "app:GET /healthz 200"}},
		{"ottl body and attributes", FilterLogs{LogRecord: []string{`IsMatch(body, "^GET")`, `log.attributes["log.iostream"] == "stderr"`}},
			[]string{"kube-system:no severity", "app:no severity"}},
		{"ottl severity_text and resource", FilterLogs{LogRecord: []string{`severity_text == ""`, `resource.attributes["k8s.namespace.name"] == "app"`}},
			[]string{"kube-system:GET /healthz 200", "kube-system:panic: boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := FilterConfig{Logs: tt.cfg}
			reg := prometheus.NewRegistry()
			fn, err := NewFilter("filter/l", cfg, nil, reg)
			require.NoError(t, err)
			ld := build()
			require.NoError(t, fn(context.Background(), actors.LogsBatch(ld)))
			require.Equal(t, tt.want, kept(ld))
			require.Equal(t, float64(6-len(tt.want)), counterValue(t, reg, "obs_enrich_filter_dropped_items_total"))
		})
	}
}

func TestFilterTraces(t *testing.T) {
	kept := func(td ptrace.Traces) []string { return spanMarks(td, "http.method") }
	tests := []struct {
		name string
		cfg  FilterConfig
		want []string
	}{
		{"classic include services", FilterConfig{Spans: FilterSpans{Include: &MatchProperties{MatchType: "strict", Services: []string{"a"}}}},
			[]string{"a:GET /x", "a:POST /y"}},
		{"classic exclude span names regexp", FilterConfig{Spans: FilterSpans{Exclude: &MatchProperties{MatchType: "regexp", SpanNames: []string{"^POST"}}}},
			[]string{"a:GET /x", "b:GET /x"}},
		{"ottl span name", FilterConfig{Traces: FilterTraces{Span: []string{`span.name == "GET /x"`}}},
			[]string{"a:POST /y", "b:POST /y"}},
		{"ottl span attribute int and resource", FilterConfig{Traces: FilterTraces{Span: []string{`attributes["http.status_code"] == 200 `, `resource.attributes["service.name"] == "zzz"`}}},
			nil},
		{"ottl resource", FilterConfig{Traces: FilterTraces{Span: []string{`resource.attributes["service.name"] == "b"`}}},
			[]string{"a:GET /x", "a:POST /y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn, err := NewFilter("filter/s", tt.cfg, nil, nil)
			require.NoError(t, err)
			td := sampleTraces()
			require.NoError(t, fn(context.Background(), actors.TracesBatch(td)))
			require.Equal(t, tt.want, kept(td))
		})
	}
	t.Run("span events", func(t *testing.T) {
		td := sampleTraces()
		sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
		sp.Events().AppendEmpty().SetName("exception")
		sp.Events().AppendEmpty().SetName("retry")
		fn, err := NewFilter("filter/e", FilterConfig{Traces: FilterTraces{SpanEvent: []string{`IsMatch(name, "^exc")`}}}, nil, nil)
		require.NoError(t, err)
		require.NoError(t, fn(context.Background(), actors.TracesBatch(td)))
		require.Equal(t, 1, sp.Events().Len())
		require.Equal(t, "retry", sp.Events().At(0).Name())
	})
}

func TestFilterConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  FilterConfig
		want string
	}{
		{"bad error mode", FilterConfig{ErrorMode: "loud"}, `error_mode: unknown mode "loud"`},
		{"metrics expr", FilterConfig{Metrics: FilterMetrics{Include: &MetricMatch{MatchType: "expr", Expressions: []string{"x"}}}}, "metrics.include: match_type expr and expressions are not supported"},
		{"metrics no match type", FilterConfig{Metrics: FilterMetrics{Exclude: &MetricMatch{MetricNames: []string{"x"}}}}, "metrics.exclude.match_type: required"},
		{"metrics nothing to match", FilterConfig{Metrics: FilterMetrics{Include: &MetricMatch{MatchType: "strict"}}}, "metrics.include: set metric_names or resource_attributes"},
		{"metrics bad regexp", FilterConfig{Metrics: FilterMetrics{Include: &MetricMatch{MatchType: "regexp", MetricNames: []string{"a", "("}}}}, "metrics.include.metric_names[1]: error parsing regexp"},
		{"metrics both forms", FilterConfig{Metrics: FilterMetrics{Include: &MetricMatch{MatchType: "strict", MetricNames: []string{"a"}}, Metric: []string{`name == "a"`}}}, "metrics: use include/exclude or metric/datapoint conditions, not both"},
		{"ottl unsupported function", FilterConfig{Metrics: FilterMetrics{Metric: []string{`HasAttrKeyOnDatapoint("k")`}}}, "metrics.metric[0]: condition"},
		{"ottl unsupported path", FilterConfig{Metrics: FilterMetrics{Metric: []string{`type == METRIC_DATA_TYPE_SUM`}}}, "not supported"},
		{"ottl metric attributes", FilterConfig{Metrics: FilterMetrics{Metric: []string{`attributes["a"] == "b"`}}}, "a metric has no attributes"},
		{"ottl and", FilterConfig{Logs: FilterLogs{LogRecord: []string{`body == "a" and body == "b"`}}}, "logs.log_record[0]: condition"},
		{"ottl bad regexp", FilterConfig{Traces: FilterTraces{Span: []string{`IsMatch(name, "(")`}}}, "traces.span[0]: condition"},
		{"ottl name in log context", FilterConfig{Logs: FilterLogs{LogRecord: []string{`name == "a"`}}}, "unknown path name"},
		{"logs nothing to match", FilterConfig{Logs: FilterLogs{Include: &LogMatch{MatchType: "strict"}}}, "logs.include: set at least one of"},
		{"logs bad severity", FilterConfig{Logs: FilterLogs{Exclude: &LogMatch{MatchType: "strict", SeverityNumber: &SeverityNumberMatch{Min: "x"}}}}, "logs.exclude.severity_number.min: unknown severity"},
		{"logs regexp needs string", FilterConfig{Logs: FilterLogs{Exclude: &LogMatch{MatchType: "regexp", RecordAttributes: []AttributeMatch{{Key: "a", Value: 1}}}}}, "logs.exclude.record_attributes[0].value"},
		{"spans metric names", FilterConfig{Spans: FilterSpans{Include: &MatchProperties{MatchType: "strict", MetricNames: []string{"a"}}}}, "spans.include.metric_names: does not apply to traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorContains(t, tt.cfg.Validate(), tt.want)
			_, err := NewFilter("filter/x", tt.cfg, nil, nil)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// TestFilterDecode reads a Collector-shaped filter block through the
// config package, as roles will.
func TestFilterDecode(t *testing.T) {
	body := `filter/drop:
  error_mode: ignore
  metrics:
    exclude:
      match_type: regexp
      metric_names: ['^go_', 'process_.*']
      resource_attributes:
        - key: job
          value: 'self'
  logs:
    log_record:
      - 'IsMatch(body, "healthz")'
      - resource.attributes["k8s.namespace.name"] == "kube-system"`
	cfg := DefaultFilterConfig()
	require.NoError(t, config.Decode(parseProcessor(t, body, "filter/drop"), &cfg))
	require.Equal(t, "ignore", cfg.ErrorMode)
	require.Equal(t, []string{"^go_", "process_.*"}, cfg.Metrics.Exclude.MetricNames)
	require.Len(t, cfg.Logs.LogRecord, 2)
	require.NoError(t, cfg.Validate())

	bad := "filter:\n  metrics:\n    metric:\n      - 'len(name) > 3'"
	cfg = DefaultFilterConfig()
	require.NoError(t, config.Decode(parseProcessor(t, bad, "filter"), &cfg))
	require.ErrorContains(t, cfg.Validate(), "metrics.metric[0]: condition \"len(name) > 3\" not supported")
}

func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{
		`name == "x"`, `IsMatch(name, "^a.*")`, `attributes["k"] != nil`, `resource.attributes["k"] == 3.5`,
		`IsMatch(resource.attributes["a\"b"], "x")`, `body == true`, `metric.name == "m"`, `x ==`, `IsMatch(,)`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, ctx := range []condCtx{ctxMetric, ctxDataPoint, ctxLog, ctxSpan, ctxSpanEvent} {
			c, err := parseCondition(s, ctx)
			if err != nil {
				continue
			}
			// A parsed condition evaluates on any item without panicking.
			it := item{res: attrMap(t, map[string]any{"k": "v"})}
			c.eval(&it)
		}
	})
}
