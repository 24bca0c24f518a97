package enrich

import (
	"context"
	"sort"
	"strconv"
	"testing"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// pt is one number point: labels, value (int64 or float64), timestamp.
type pt struct {
	labels map[string]any
	v      any
	ts     pcommon.Timestamp
}

func setNumber(dp pmetric.NumberDataPoint, p pt) {
	_ = dp.Attributes().FromRaw(p.labels)
	switch v := p.v.(type) {
	case int64:
		dp.SetIntValue(v)
	case int:
		dp.SetIntValue(int64(v))
	case float64:
		dp.SetDoubleValue(v)
	}
	dp.SetTimestamp(p.ts)
	if dp.Timestamp() == 0 {
		dp.SetTimestamp(100)
	}
	dp.SetStartTimestamp(10)
}

func addGauge(ms pmetric.MetricSlice, name string, pts ...pt) pmetric.Metric {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit("1")
	g := m.SetEmptyGauge()
	for _, p := range pts {
		setNumber(g.DataPoints().AppendEmpty(), p)
	}
	return m
}

func addSum(ms pmetric.MetricSlice, name string, pts ...pt) pmetric.Metric {
	m := ms.AppendEmpty()
	m.SetName(name)
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for _, p := range pts {
		setNumber(s.DataPoints().AppendEmpty(), p)
	}
	return m
}

func oneScope() (pmetric.Metrics, pmetric.MetricSlice) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("host.name", "node-a")
	return md, rm.ScopeMetrics().AppendEmpty().Metrics()
}

// dump renders every point of m as "label=value,...=>value", sorted.
func dump(m pmetric.Metric) []string {
	var out []string
	add := func(a pcommon.Map, v any) {
		keys := make([]string, 0, a.Len())
		for k := range a.All() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s := ""
		for _, k := range keys {
			v, _ := a.Get(k)
			s += k + "=" + v.AsString() + ","
		}
		out = append(out, s+"=>"+fmtAny(v))
	}
	if dps, ok := numberPoints(m); ok {
		for i := 0; i < dps.Len(); i++ {
			dp := dps.At(i)
			if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
				add(dp.Attributes(), dp.IntValue())
			} else {
				add(dp.Attributes(), dp.DoubleValue())
			}
		}
	}
	sort.Strings(out)
	return out
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case int64:
		return "i" + pcommon.NewValueInt(x).AsString()
	case float64:
		return "d" + pcommon.NewValueDouble(x).AsString()
	}
	return "?"
}

func names(ms pmetric.MetricSlice) []string {
	var out []string
	for i := 0; i < ms.Len(); i++ {
		out = append(out, ms.At(i).Name())
	}
	return out
}

func runMT(t *testing.T, cfg MetricsTransformConfig, md pmetric.Metrics) *prometheus.Registry {
	t.Helper()
	require.NoError(t, cfg.Validate())
	reg := prometheus.NewRegistry()
	fn, err := NewMetricsTransform("metricstransform/t", cfg, nil, reg)
	require.NoError(t, err)
	require.NoError(t, fn(context.Background(), actors.MetricsBatch(md)))
	return reg
}

func TestMetricsTransformAggregateLabels(t *testing.T) {
	cpu := func(c, state string, v float64) pt {
		return pt{labels: map[string]any{"cpu": c, "state": state}, v: v}
	}
	// user: 0.25, 0.5, 2 ; idle: 0.75, 0.125, 0.5
	points := []pt{
		cpu("0", "user", 0.25), cpu("1", "user", 0.5), cpu("2", "user", 2),
		cpu("0", "idle", 0.75), cpu("1", "idle", 0.125), cpu("2", "idle", 0.5),
	}
	tests := []struct {
		agg  string
		want []string
	}{
		{"sum", []string{"state=idle,=>d1.375", "state=user,=>d2.75"}},
		{"mean", []string{"state=idle,=>d0.4583333333333333", "state=user,=>d0.9166666666666666"}},
		{"min", []string{"state=idle,=>d0.125", "state=user,=>d0.25"}},
		{"max", []string{"state=idle,=>d0.75", "state=user,=>d2"}},
		{"count", []string{"state=idle,=>d3", "state=user,=>d3"}},
		{"median", []string{"state=idle,=>d0.5", "state=user,=>d0.5"}},
	}
	for _, tt := range tests {
		t.Run(tt.agg, func(t *testing.T) {
			md, ms := oneScope()
			addGauge(ms, "system.cpu.utilization", points...)
			runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{
				Include: "system.cpu.utilization", Action: "update",
				Operations: []MetricOperation{{Action: "aggregate_labels", LabelSet: []string{"state"}, AggregationType: tt.agg}},
			}}}, md)
			require.Equal(t, tt.want, dump(ms.At(0)))
		})
	}
}

func TestMetricsTransformAggregateInts(t *testing.T) {
	pg := func(dir, typ string, v int64) pt {
		return pt{labels: map[string]any{"direction": dir, "type": typ}, v: v}
	}
	tests := []struct {
		agg  string
		want []string
	}{
		{"sum", []string{"direction=page_in,=>i15", "direction=page_out,=>i7"}},
		{"mean", []string{"direction=page_in,=>i7", "direction=page_out,=>i3"}}, // truncated, as the Collector
		{"min", []string{"direction=page_in,=>i5", "direction=page_out,=>i3"}},
		{"max", []string{"direction=page_in,=>i10", "direction=page_out,=>i4"}},
		{"count", []string{"direction=page_in,=>i2", "direction=page_out,=>i2"}},
	}
	for _, tt := range tests {
		t.Run(tt.agg, func(t *testing.T) {
			md, ms := oneScope()
			addSum(ms, "system.paging.operations", pg("page_in", "major", 10), pg("page_in", "minor", 5), pg("page_out", "major", 3), pg("page_out", "minor", 4))
			runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{
				Include: "system.paging.operations", Action: "update",
				Operations: []MetricOperation{{Action: "aggregate_labels", LabelSet: []string{"direction"}, AggregationType: tt.agg}},
			}}}, md)
			require.Equal(t, tt.want, dump(ms.At(0)))
			require.True(t, ms.At(0).Sum().IsMonotonic())
			require.Equal(t, pmetric.AggregationTemporalityCumulative, ms.At(0).Sum().AggregationTemporality())
		})
	}
	t.Run("mixed int and double become double", func(t *testing.T) {
		md, ms := oneScope()
		addGauge(ms, "g", pt{labels: map[string]any{"a": "1"}, v: int64(1)}, pt{labels: map[string]any{"a": "2"}, v: 0.5})
		runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{Include: "g", Action: "update",
			Operations: []MetricOperation{{Action: "aggregate_labels", AggregationType: "sum"}}}}}, md)
		require.Equal(t, []string{"=>d1.5"}, dump(ms.At(0)))
	})
	t.Run("different timestamps are not merged", func(t *testing.T) {
		md, ms := oneScope()
		addGauge(ms, "g", pt{labels: map[string]any{"a": "1"}, v: int64(1), ts: 100}, pt{labels: map[string]any{"a": "2"}, v: int64(2), ts: 200},
			pt{labels: map[string]any{"a": "3"}, v: int64(4), ts: 200})
		runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{Include: "g", Action: "update",
			Operations: []MetricOperation{{Action: "aggregate_labels", AggregationType: "sum"}}}}}, md)
		require.Equal(t, []string{"=>i1", "=>i6"}, dump(ms.At(0)))
	})
}

func TestMetricsTransformHistogram(t *testing.T) {
	build := func() (pmetric.Metrics, pmetric.Metric) {
		md, ms := oneScope()
		m := ms.AppendEmpty()
		m.SetName("http.duration")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for i, p := range []struct {
			route         string
			counts        []uint64
			sum, min, max float64
		}{
			{"/a", []uint64{1, 2, 3}, 10, 0.5, 9},
			{"/b", []uint64{0, 1, 1}, 4, 2, 7},
		} {
			dp := h.DataPoints().AppendEmpty()
			dp.Attributes().PutStr("route", p.route)
			dp.Attributes().PutStr("method", "GET")
			dp.SetTimestamp(100)
			dp.SetStartTimestamp(pcommon.Timestamp(10 - i))
			dp.ExplicitBounds().FromRaw([]float64{1, 5})
			dp.BucketCounts().FromRaw(p.counts)
			var n uint64
			for _, c := range p.counts {
				n += c
			}
			dp.SetCount(n)
			dp.SetSum(p.sum)
			dp.SetMin(p.min)
			dp.SetMax(p.max)
		}
		return md, m
	}
	t.Run("sum", func(t *testing.T) {
		md, m := build()
		runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{Include: "http.duration", Action: "update",
			Operations: []MetricOperation{{Action: "aggregate_labels", LabelSet: []string{"method"}, AggregationType: "sum"}}}}}, md)
		require.Equal(t, 1, m.Histogram().DataPoints().Len())
		dp := m.Histogram().DataPoints().At(0)
		require.Equal(t, map[string]any{"method": "GET"}, dp.Attributes().AsRaw())
		require.Equal(t, []uint64{1, 3, 4}, dp.BucketCounts().AsRaw())
		require.Equal(t, uint64(8), dp.Count())
		require.Equal(t, 14.0, dp.Sum())
		require.Equal(t, 0.5, dp.Min())
		require.Equal(t, 9.0, dp.Max())
		require.Equal(t, pcommon.Timestamp(9), dp.StartTimestamp())
	})
	t.Run("mean is not supported and changes nothing", func(t *testing.T) {
		md, m := build()
		reg := runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{Include: "http.duration", Action: "update",
			Operations: []MetricOperation{{Action: "aggregate_labels", LabelSet: []string{"method"}, AggregationType: "mean"}}}}}, md)
		require.Equal(t, 2, m.Histogram().DataPoints().Len())
		require.Equal(t, map[string]any{"method": "GET", "route": "/a"}, m.Histogram().DataPoints().At(0).Attributes().AsRaw())
		require.Equal(t, 1.0, counterVecValue(t, reg, "obs_enrich_metricstransform_skipped_total", "unsupported_aggregation"))
	})
	t.Run("scale", func(t *testing.T) {
		md, m := build()
		runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{Include: "http.duration", Action: "update",
			Operations: []MetricOperation{{Action: "experimental_scale_value", Scale: 1000}}}}}, md)
		dp := m.Histogram().DataPoints().At(0)
		require.Equal(t, []float64{1000, 5000}, dp.ExplicitBounds().AsRaw())
		require.Equal(t, 10000.0, dp.Sum())
		require.Equal(t, 500.0, dp.Min())
		require.Equal(t, 9000.0, dp.Max())
		require.Equal(t, []uint64{1, 2, 3}, dp.BucketCounts().AsRaw())
	})
}

func TestMetricsTransformOperations(t *testing.T) {
	l := func(kv ...string) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name      string
		transform MetricTransform
		points    []pt
		wantNames []string
		want      []string // points of wantNames[at]
		at        int
	}{
		{
			name:      "aggregate_label_values",
			transform: MetricTransform{Include: "mem", Action: "update", Operations: []MetricOperation{{Action: "aggregate_label_values", Label: "state", AggregatedValues: []string{"slab_reclaimable", "slab_unreclaimable"}, NewValue: "slab", AggregationType: "sum"}}},
			points:    []pt{{labels: l("state", "used"), v: int64(100)}, {labels: l("state", "slab_reclaimable"), v: int64(20)}, {labels: l("state", "slab_unreclaimable"), v: int64(30)}},
			wantNames: []string{"mem", "other"},
			want:      []string{"state=slab,=>i50", "state=used,=>i100"},
		},
		{
			name:      "update_label renames label and values",
			transform: MetricTransform{Include: "mem", Action: "update", Operations: []MetricOperation{{Action: "update_label", Label: "state", NewLabel: "kind", ValueActions: []ValueAction{{Value: "used", NewValue: "busy"}}}}},
			points:    []pt{{labels: l("state", "used"), v: int64(1)}, {labels: l("state", "free"), v: int64(2)}, {labels: l("other", "x"), v: int64(3)}},
			wantNames: []string{"mem", "other"},
			want:      []string{"kind=busy,=>i1", "kind=free,=>i2", "other=x,=>i3"},
		},
		{
			name:      "add_label",
			transform: MetricTransform{Include: "mem", Action: "update", Operations: []MetricOperation{{Action: "add_label", NewLabel: "unit", NewValue: "bytes"}}},
			points:    []pt{{labels: l("state", "used"), v: int64(1)}},
			wantNames: []string{"mem", "other"},
			want:      []string{"state=used,unit=bytes,=>i1"},
		},
		{
			name:      "delete_label_value",
			transform: MetricTransform{Include: "mem", Action: "update", Operations: []MetricOperation{{Action: "delete_label_value", Label: "state", LabelValue: "free"}}},
			points:    []pt{{labels: l("state", "used"), v: int64(1)}, {labels: l("state", "free"), v: int64(2)}},
			wantNames: []string{"mem", "other"},
			want:      []string{"state=used,=>i1"},
		},
		{
			name:      "delete every point drops the metric",
			transform: MetricTransform{Include: "mem", Action: "update", Operations: []MetricOperation{{Action: "delete_label_value", Label: "state", LabelValue: "free"}}},
			points:    []pt{{labels: l("state", "free"), v: int64(2)}},
			wantNames: []string{"other"},
			want:      []string{"=>i7"},
		},
		{
			name:      "toggle_scalar_data_type",
			transform: MetricTransform{Include: "mem", Action: "update", Operations: []MetricOperation{{Action: "toggle_scalar_data_type"}}},
			points:    []pt{{labels: l("a", "1"), v: int64(3)}, {labels: l("a", "2"), v: 2.7}},
			wantNames: []string{"mem", "other"},
			want:      []string{"a=1,=>d3", "a=2,=>i2"},
		},
		{
			name:      "experimental_scale_value",
			transform: MetricTransform{Include: "mem", Action: "update", Operations: []MetricOperation{{Action: "experimental_scale_value", Scale: 0.001}}},
			points:    []pt{{labels: l("a", "1"), v: int64(5000)}, {labels: l("a", "2"), v: 250.0}},
			wantNames: []string{"mem", "other"},
			want:      []string{"a=1,=>i5", "a=2,=>d0.25"},
		},
		{
			name:      "regexp rename with $1",
			transform: MetricTransform{Include: `^m(e)(m)$`, MatchType: "regexp", Action: "update", NewName: "host.${2}x$1"},
			points:    []pt{{labels: l(), v: int64(1)}},
			wantNames: []string{"host.mxe", "other"},
			want:      []string{"=>i1"},
		},
		{
			name:      "insert keeps the original",
			transform: MetricTransform{Include: "mem", Action: "insert", NewName: "mem.copy", Operations: []MetricOperation{{Action: "add_label", NewLabel: "copy", NewValue: "yes"}}},
			points:    []pt{{labels: l("a", "1"), v: int64(1)}},
			wantNames: []string{"mem", "other", "mem.copy"},
			at:        2,
			want:      []string{"a=1,copy=yes,=>i1"},
		},
		{
			name: "match labels: update changes only matching points and keeps the name",
			transform: MetricTransform{Include: "mem", Action: "update", NewName: "renamed", MatchLabels: map[string]string{"state": "used"},
				Operations: []MetricOperation{{Action: "update_label", Label: "state", ValueActions: []ValueAction{{Value: "used", NewValue: "busy"}}}, {Action: "add_label", NewLabel: "x", NewValue: "y"}}},
			points:    []pt{{labels: l("state", "used"), v: int64(1)}, {labels: l("state", "free"), v: int64(2)}},
			wantNames: []string{"mem", "other"},
			want:      []string{"state=busy,=>i1", "state=free,=>i2"},
		},
		{
			name:      "match labels: insert copies only matching points",
			transform: MetricTransform{Include: "mem", Action: "insert", NewName: "used", MatchLabels: map[string]string{"state": "us.*"}, MatchType: "regexp"},
			points:    []pt{{labels: l("state", "used"), v: int64(1)}, {labels: l("state", "free"), v: int64(2)}},
			wantNames: []string{"mem", "other", "used"},
			at:        2,
			want:      []string{"state=used,=>i1"},
		},
		{
			name:      "no match changes nothing",
			transform: MetricTransform{Include: "nope", Action: "update", NewName: "x"},
			points:    []pt{{labels: l("a", "1"), v: int64(1)}},
			wantNames: []string{"mem", "other"},
			want:      []string{"a=1,=>i1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, ms := oneScope()
			addGauge(ms, "mem", tt.points...)
			addGauge(ms, "other", pt{labels: l(), v: int64(7)})
			runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{tt.transform}}, md)
			require.Equal(t, tt.wantNames, names(ms))
			require.Equal(t, tt.want, dump(ms.At(tt.at)))
		})
	}
}

func TestMetricsTransformCombineAndGroup(t *testing.T) {
	t.Run("combine", func(t *testing.T) {
		md, ms := oneScope()
		addGauge(ms, "cpu.user", pt{labels: map[string]any{"host": "a"}, v: 1.5})
		addGauge(ms, "cpu.system", pt{labels: map[string]any{"host": "a"}, v: 0.5})
		addGauge(ms, "mem", pt{labels: map[string]any{}, v: 1.0})
		runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{
			Include: `^cpu\.(?P<state>.*)$`, MatchType: "regexp", Action: "combine", NewName: "cpu", SubmatchCase: "upper", AggregationType: "sum",
		}}}, md)
		require.Equal(t, []string{"mem", "cpu"}, names(ms))
		require.Equal(t, []string{"host=a,state=SYSTEM,=>d0.5", "host=a,state=USER,=>d1.5"}, dump(ms.At(1)))
		require.Equal(t, "1", ms.At(1).Unit())
	})
	t.Run("combine merges equal labels by the aggregation", func(t *testing.T) {
		md, ms := oneScope()
		addGauge(ms, "disk.sda", pt{labels: map[string]any{"op": "read"}, v: int64(3)})
		addGauge(ms, "disk.sdb", pt{labels: map[string]any{"op": "read"}, v: int64(4)})
		runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{
			Include: `^disk\.sd.$`, MatchType: "regexp", Action: "combine", NewName: "disk", AggregationType: "max",
		}}}, md)
		require.Equal(t, []string{"disk"}, names(ms))
		require.Equal(t, []string{"op=read,=>i4"}, dump(ms.At(0)))
	})
	t.Run("combine refuses different types", func(t *testing.T) {
		md, ms := oneScope()
		addGauge(ms, "cpu.user", pt{labels: map[string]any{}, v: 1.5})
		addSum(ms, "cpu.system", pt{labels: map[string]any{}, v: 0.5})
		reg := runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{
			Include: `^cpu\.(.*)$`, MatchType: "regexp", Action: "combine", NewName: "cpu", AggregationType: "sum",
		}}}, md)
		require.Equal(t, []string{"cpu.user", "cpu.system"}, names(ms))
		require.Equal(t, 1.0, counterVecValue(t, reg, "obs_enrich_metricstransform_skipped_total", "cannot_combine"))
	})
	t.Run("group", func(t *testing.T) {
		md, ms := oneScope()
		addGauge(ms, "k8s.pod.cpu", pt{labels: map[string]any{}, v: 1.0})
		addGauge(ms, "host.cpu", pt{labels: map[string]any{}, v: 2.0})
		runMT(t, MetricsTransformConfig{Transforms: []MetricTransform{{
			Include: `^k8s\.`, MatchType: "regexp", Action: "group", GroupResourceLabels: map[string]string{"group": "k8s"},
		}}}, md)
		require.Equal(t, 2, md.ResourceMetrics().Len())
		require.Equal(t, []string{"host.cpu"}, names(md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()))
		g := md.ResourceMetrics().At(1)
		require.Equal(t, map[string]any{"host.name": "node-a", "group": "k8s"}, g.Resource().Attributes().AsRaw())
		require.Equal(t, []string{"k8s.pod.cpu"}, names(g.ScopeMetrics().At(0).Metrics()))
	})
}

func TestMetricsTransformConfigErrors(t *testing.T) {
	ok := MetricTransform{Include: "m", Action: "update"}
	with := func(f func(*MetricTransform)) MetricsTransformConfig {
		t := ok
		f(&t)
		return MetricsTransformConfig{Transforms: []MetricTransform{ok, t}}
	}
	op := func(o MetricOperation) MetricsTransformConfig {
		return with(func(t *MetricTransform) { t.Operations = []MetricOperation{o} })
	}
	tests := []struct {
		name string
		cfg  MetricsTransformConfig
		want string
	}{
		{"no include", with(func(t *MetricTransform) { t.Include = "" }), "transforms[1].include: required"},
		{"bad match type", with(func(t *MetricTransform) { t.MatchType = "glob" }), `transforms[1].match_type: unknown match type "glob"`},
		{"bad regexp", with(func(t *MetricTransform) { t.MatchType = "regexp"; t.Include = "(" }), "transforms[1].include: error parsing regexp"},
		{"bad label regexp", with(func(t *MetricTransform) { t.MatchType = "regexp"; t.MatchLabels = map[string]string{"k": "["} }), "transforms[1].experimental_match_labels.k:"},
		{"no action", with(func(t *MetricTransform) { t.Action = "" }), "transforms[1].action: required"},
		{"bad action", with(func(t *MetricTransform) { t.Action = "rename" }), `transforms[1].action: unknown action "rename"`},
		{"insert without new_name", with(func(t *MetricTransform) { t.Action = "insert" }), "transforms[1].new_name: required for action insert"},
		{"combine without aggregation", with(func(t *MetricTransform) { t.Action = "combine"; t.NewName = "x" }), "transforms[1].aggregation_type: required"},
		{"group without labels", with(func(t *MetricTransform) { t.Action = "group" }), "transforms[1].group_resource_labels: required"},
		{"bad submatch case", with(func(t *MetricTransform) { t.SubmatchCase = "title" }), `transforms[1].submatch_case: unknown case "title"`},
		{"no op action", op(MetricOperation{}), "transforms[1].operations[0].action: required"},
		{"bad op action", op(MetricOperation{Action: "rename_label"}), `transforms[1].operations[0].action: unknown operation "rename_label"`},
		{"add_label without new_label", op(MetricOperation{Action: "add_label", NewValue: "v"}), "transforms[1].operations[0].new_label: required for action add_label"},
		{"add_label without new_value", op(MetricOperation{Action: "add_label", NewLabel: "l"}), "transforms[1].operations[0].new_value: required"},
		{"update_label without label", op(MetricOperation{Action: "update_label"}), "transforms[1].operations[0].label: required"},
		{"delete_label_value without value", op(MetricOperation{Action: "delete_label_value", Label: "l"}), "transforms[1].operations[0].label_value: required"},
		{"scale zero", op(MetricOperation{Action: "experimental_scale_value"}), "transforms[1].operations[0].experimental_scale: required"},
		{"aggregate without type", op(MetricOperation{Action: "aggregate_labels", LabelSet: []string{"a"}}), "transforms[1].operations[0].aggregation_type: required"},
		{"aggregate bad type", op(MetricOperation{Action: "aggregate_labels", AggregationType: "avg"}), `transforms[1].operations[0].aggregation_type: unknown aggregation "avg"`},
		{"aggregate values without values", op(MetricOperation{Action: "aggregate_label_values", Label: "l", NewValue: "n", AggregationType: "sum"}), "operations[0].aggregated_values: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorContains(t, tt.cfg.Validate(), tt.want)
		})
	}
}

// TestMetricsTransformSeedGateway applies the seed gateway's three
// metricstransform processors, decoded from the user's file, to a batch
// shaped like what hostmetrics and kube-state-metrics send.
func TestMetricsTransformSeedGateway(t *testing.T) {
	decode := func(t *testing.T, id string) MetricsTransformConfig {
		cfg := DefaultMetricsTransformConfig()
		require.NoError(t, config.Decode(seedProcessor(t, "seed-gateway.yaml", id), &cfg))
		return cfg
	}
	t.Run("k8s_cluster_info", func(t *testing.T) {
		md, ms := oneScope()
		addGauge(ms, "kubernetes_build_info", pt{labels: map[string]any{"git_version": "v1.31"}, v: 1.0})
		runMT(t, decode(t, "metricstransform/k8s_cluster_info"), md)
		require.Equal(t, []string{"k8s.cluster.info"}, names(ms))
	})
	t.Run("kube_pod_status_phase", func(t *testing.T) {
		md, ms := oneScope()
		for _, n := range []string{"waiting", "running", "terminated"} {
			addGauge(ms, "kube_pod_container_status_"+n, pt{labels: map[string]any{"pod": "p"}, v: 1.0})
		}
		addGauge(ms, "kube_pod_info", pt{labels: map[string]any{"pod": "p"}, v: 1.0})
		runMT(t, decode(t, "metricstransform/kube_pod_status_phase"), md)
		require.Equal(t, []string{"kube_pod_container_status_phase", "kube_pod_container_status_phase", "kube_pod_container_status_phase", "kube_pod_info"}, names(ms))
		var got []string
		for i := 0; i < 3; i++ {
			got = append(got, dump(ms.At(i))...)
		}
		require.Equal(t, []string{"container_phase=waiting,pod=p,=>d1", "container_phase=running,pod=p,=>d1", "container_phase=terminated,pod=p,=>d1"}, got)
		require.Equal(t, []string{"pod=p,=>d1"}, dump(ms.At(3)))
	})
	t.Run("hostmetrics_cpu", func(t *testing.T) {
		md, ms := oneScope()
		// Two CPUs: user 0.25/0.75, idle 0.5/0.25; job_label kept, cpu dropped.
		addGauge(ms, "system.cpu.utilization",
			pt{labels: map[string]any{"cpu": "cpu0", "state": "user", "job_label": "hostmetrics"}, v: 0.25},
			pt{labels: map[string]any{"cpu": "cpu1", "state": "user", "job_label": "hostmetrics"}, v: 0.75},
			pt{labels: map[string]any{"cpu": "cpu0", "state": "idle", "job_label": "hostmetrics"}, v: 0.5},
			pt{labels: map[string]any{"cpu": "cpu1", "state": "idle", "job_label": "hostmetrics"}, v: 0.25},
		)
		addSum(ms, "system.paging.operations",
			pt{labels: map[string]any{"direction": "page_in", "type": "major"}, v: int64(10)},
			pt{labels: map[string]any{"direction": "page_in", "type": "minor"}, v: int64(5)},
			pt{labels: map[string]any{"direction": "page_out", "type": "major"}, v: int64(3)},
			pt{labels: map[string]any{"direction": "page_out", "type": "minor"}, v: int64(4)},
		)
		reg := runMT(t, decode(t, "metricstransform/hostmetrics_cpu"), md)
		require.Equal(t, []string{"job_label=hostmetrics,state=idle,=>d0.375", "job_label=hostmetrics,state=user,=>d0.5"}, dump(ms.At(0)))
		require.Equal(t, []string{"direction=page_in,=>i15", "direction=page_out,=>i7"}, dump(ms.At(1)))
		require.Equal(t, 2.0, counterValue(t, reg, "obs_enrich_metricstransform_metrics_total"))
	})
}

// counterVecValue reads the series of a counter vector with the given
// reason label.
func counterVecValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// BenchmarkMetricsTransformCPUMean is the seed's hostmetrics_cpu
// transform on one collection of a 16-CPU node: 16 × 8 states → 8 points.
func BenchmarkMetricsTransformCPUMean(b *testing.B) {
	states := []string{"user", "system", "idle", "interrupt", "nice", "softirq", "steal", "wait"}
	tmpl, ms := oneScope()
	var pts []pt
	for c := 0; c < 16; c++ {
		for i, s := range states {
			pts = append(pts, pt{labels: map[string]any{"cpu": "cpu" + strconv.Itoa(c), "state": s}, v: float64(i) / 10})
		}
	}
	addGauge(ms, "system.cpu.utilization", pts...)
	fn, err := NewMetricsTransform("metricstransform/bench", MetricsTransformConfig{Transforms: []MetricTransform{{
		Include: "system.cpu.utilization", Action: "update",
		Operations: []MetricOperation{{Action: "aggregate_labels", LabelSet: []string{"state"}, AggregationType: "mean"}},
	}}}, nil, nil)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		md := pmetric.NewMetrics()
		tmpl.CopyTo(md)
		b.StartTimer()
		if err := fn(context.Background(), actors.MetricsBatch(md)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMetricsTransformDecode reads every Collector key through the config
// package and applies the result.
func TestMetricsTransformDecode(t *testing.T) {
	body := `metricstransform/all:
  transforms:
    - include: ^disk\.(?P<device>sd.)\.(.*)$
      match_type: regexp
      action: combine
      new_name: disk.io
      submatch_case: upper
      aggregation_type: sum
      operations:
        - action: update_label
          label: op
          new_label: direction
          value_actions:
            - value: r
              new_value: read
        - action: experimental_scale_value
          experimental_scale: 512
    - include: disk.io
      action: update
      experimental_match_labels: {device: SDA}
      operations:
        - action: toggle_scalar_data_type`
	cfg := DefaultMetricsTransformConfig()
	require.NoError(t, config.Decode(parseProcessor(t, body, "metricstransform/all"), &cfg))
	require.Equal(t, 512.0, cfg.Transforms[0].Operations[1].Scale)
	require.Equal(t, map[string]string{"device": "SDA"}, cfg.Transforms[1].MatchLabels)
	md, ms := oneScope()
	addGauge(ms, "disk.sda.sectors", pt{labels: map[string]any{"op": "r"}, v: int64(2)})
	addGauge(ms, "disk.sdb.sectors", pt{labels: map[string]any{"op": "r"}, v: int64(3)})
	runMT(t, cfg, md)
	require.Equal(t, []string{"disk.io"}, names(ms))
	require.Equal(t, []string{
		"$2=SECTORS,device=SDA,direction=read,=>d1024",
		"$2=SECTORS,device=SDB,direction=read,=>i1536",
	}, dump(ms.At(0)))

	bad := "metricstransform:\n  transforms:\n    - include: a\n      action: update\n      operations:\n        - action: experimental_scale_value\n          scale: 2"
	cfg = DefaultMetricsTransformConfig()
	err := config.Decode(parseProcessor(t, bad, "metricstransform"), &cfg)
	require.ErrorContains(t, err, "t.yaml:9")
	require.ErrorContains(t, err, "scale")
}
