package scrape

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/obs-dev/obs/actors"
)

// appenderSample is one Append call of a test scrape.
type appenderSample struct {
	family string
	typ    model.MetricType
	ls     labels.Labels
	v      float64
	h      *histogram.Histogram
}

// scrapeOnce appends samples in one transaction at time t and returns the
// batch, decoded from the appender's OTLP bytes.
func scrapeOnce(t *testing.T, a *appendable, got *[]actors.Batch, ts int64, samples []appenderSample) pmetric.Metrics {
	t.Helper()
	n := len(*got)
	app := a.AppenderV2(context.Background())
	for _, s := range samples {
		_, err := app.Append(0, s.ls, 0, ts, s.v, s.h, nil, storage.AOptions{
			MetricFamilyName: s.family, Metadata: metadata.Metadata{Type: s.typ, Help: "help of " + s.family, Unit: "seconds"}})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.Len(t, *got, n+1)
	b := (*got)[n]
	require.True(t, b.Encoded(), "the appender sends encoded OTLP")
	items := b.Items()
	require.NoError(t, b.Decode())
	require.Equal(t, items, b.Metrics.DataPointCount())
	return b.Metrics
}

// TestAppenderTypesAndStaleness covers every metric type through the
// encoder: values, start timestamps, attributes and resource; then the
// same series as staleness markers, which must be points flagged "no
// recorded value" with no value.
func TestAppenderTypesAndStaleness(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry(), "prometheus")
	require.NoError(t, err)
	var got []actors.Batch
	consume := func(_ context.Context, b actors.Batch, _ []actors.KV) error {
		got = append(got, b)
		return nil
	}
	a := newAppendable(consume, newSharder(ShardNone, Sharding{}, nil, m, nil), m, nil, time.Second, nil)

	base := []string{"job", "node", "instance", "10.0.0.7:9100"}
	ls := func(kv ...string) labels.Labels { return labels.FromStrings(append(kv, base...)...) }
	nh := &histogram.Histogram{Schema: 0, Count: 5, Sum: 7.5, ZeroCount: 1, ZeroThreshold: 0.001,
		PositiveSpans: []histogram.Span{{Offset: 1, Length: 1}, {Offset: 1, Length: 1}}, PositiveBuckets: []int64{2, -1}, // buckets 1 (2) and 3 (1)
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 1}}, NegativeBuckets: []int64{1}}
	samples := func(stale bool) []appenderSample {
		v := func(f float64) float64 {
			if stale {
				return math.Float64frombits(value.StaleNaN)
			}
			return f
		}
		h := nh
		if stale {
			h = &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}
		}
		return []appenderSample{
			{"temp", model.MetricTypeGauge, ls("__name__", "temp", "room", "a"), v(21.5), nil},
			{"req_total", model.MetricTypeCounter, ls("__name__", "req_total", "code", "200"), v(10), nil},
			{"lat", model.MetricTypeHistogram, ls("__name__", "lat_bucket", "le", "0.5"), v(2), nil},
			{"lat", model.MetricTypeHistogram, ls("__name__", "lat_bucket", "le", "+Inf"), v(3), nil},
			{"lat", model.MetricTypeHistogram, ls("__name__", "lat_sum"), v(1.25), nil},
			{"lat", model.MetricTypeHistogram, ls("__name__", "lat_count"), v(3), nil},
			{"rpc", model.MetricTypeSummary, ls("__name__", "rpc", "quantile", "0.99"), v(0.2), nil},
			{"rpc", model.MetricTypeSummary, ls("__name__", "rpc", "quantile", "0.5"), v(0.1), nil},
			{"rpc", model.MetricTypeSummary, ls("__name__", "rpc_sum"), v(4), nil},
			{"rpc", model.MetricTypeSummary, ls("__name__", "rpc_count"), v(40), nil},
			{"native", model.MetricTypeHistogram, ls("__name__", "native"), 0, h},
		}
	}
	const t0 = int64(1_700_000_000_000)
	md := scrapeOnce(t, a, &got, t0, samples(false))

	require.Equal(t, 1, md.ResourceMetrics().Len())
	rm := md.ResourceMetrics().At(0)
	require.Equal(t, map[string]any{"service.name": "node", "service.instance.id": "10.0.0.7:9100",
		"server.address": "10.0.0.7", "server.port": int64(9100)}, rm.Resource().Attributes().AsRaw())
	require.Equal(t, scopeName, rm.ScopeMetrics().At(0).Scope().Name())
	ms := rm.ScopeMetrics().At(0).Metrics()
	var names []string
	byName := map[string]pmetric.Metric{}
	for i := 0; i < ms.Len(); i++ {
		names = append(names, ms.At(i).Name())
		byName[ms.At(i).Name()] = ms.At(i)
	}
	require.Equal(t, []string{"temp", "req_total", "lat", "rpc", "native"}, names, "exposition order")
	ts := pcommon.Timestamp(t0 * 1e6)

	g := byName["temp"]
	require.Equal(t, pmetric.MetricTypeGauge, g.Type())
	require.Equal(t, "help of temp", g.Description())
	require.Equal(t, "seconds", g.Unit())
	gp := g.Gauge().DataPoints().At(0)
	require.Equal(t, 21.5, gp.DoubleValue())
	require.Equal(t, ts, gp.Timestamp())
	require.Zero(t, gp.StartTimestamp())
	require.Equal(t, map[string]any{"room": "a"}, gp.Attributes().AsRaw())

	c := byName["req_total"]
	require.Equal(t, pmetric.MetricTypeSum, c.Type())
	require.True(t, c.Sum().IsMonotonic())
	require.Equal(t, pmetric.AggregationTemporalityCumulative, c.Sum().AggregationTemporality())
	cp := c.Sum().DataPoints().At(0)
	require.Equal(t, 10.0, cp.DoubleValue())
	require.Equal(t, ts, cp.StartTimestamp(), "first sight of the series is its start")
	require.Equal(t, map[string]any{"code": "200"}, cp.Attributes().AsRaw())

	h := byName["lat"]
	require.Equal(t, pmetric.MetricTypeHistogram, h.Type())
	require.Equal(t, pmetric.AggregationTemporalityCumulative, h.Histogram().AggregationTemporality())
	hp := h.Histogram().DataPoints().At(0)
	require.Equal(t, []float64{0.5}, hp.ExplicitBounds().AsRaw())
	require.Equal(t, []uint64{2, 1}, hp.BucketCounts().AsRaw())
	require.Equal(t, uint64(3), hp.Count())
	require.True(t, hp.HasSum())
	require.Equal(t, 1.25, hp.Sum())
	require.Equal(t, ts, hp.StartTimestamp())
	require.Zero(t, hp.Attributes().Len(), "le is not an attribute")

	s := byName["rpc"]
	require.Equal(t, pmetric.MetricTypeSummary, s.Type())
	sp := s.Summary().DataPoints().At(0)
	require.Equal(t, uint64(40), sp.Count())
	require.Equal(t, 4.0, sp.Sum())
	require.Equal(t, 2, sp.QuantileValues().Len())
	require.Equal(t, 0.5, sp.QuantileValues().At(0).Quantile(), "quantiles sorted")
	require.Equal(t, 0.1, sp.QuantileValues().At(0).Value())
	require.Equal(t, 0.99, sp.QuantileValues().At(1).Quantile())
	require.Equal(t, 0.2, sp.QuantileValues().At(1).Value())

	e := byName["native"]
	require.Equal(t, pmetric.MetricTypeExponentialHistogram, e.Type())
	ep := e.ExponentialHistogram().DataPoints().At(0)
	require.Equal(t, uint64(5), ep.Count())
	require.Equal(t, 7.5, ep.Sum())
	require.Equal(t, uint64(1), ep.ZeroCount())
	require.Equal(t, 0.001, ep.ZeroThreshold())
	require.Equal(t, int32(0), ep.Scale())
	// Prometheus buckets 1 and 3 are OTLP buckets 0 and 2.
	require.Equal(t, int32(0), ep.Positive().Offset())
	require.Equal(t, []uint64{2, 0, 1}, ep.Positive().BucketCounts().AsRaw())
	require.Equal(t, int32(-1), ep.Negative().Offset())
	require.Equal(t, []uint64{1}, ep.Negative().BucketCounts().AsRaw())
	require.Equal(t, ts, ep.StartTimestamp())

	// A counter reset moves the start just past the previous sample.
	later := scrapeOnce(t, a, &got, t0+5000, []appenderSample{
		{"req_total", model.MetricTypeCounter, ls("__name__", "req_total", "code", "200"), 3, nil}})
	rp := later.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0)
	require.Equal(t, pcommon.Timestamp((t0+1)*1e6), rp.StartTimestamp())

	staleMD := scrapeOnce(t, a, &got, t0+10000, samples(true))
	require.Equal(t, 5, staleMD.DataPointCount(), "one marker per point, the histogram's and summary's parts folded")
	sms := staleMD.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := 0; i < sms.Len(); i++ {
		m := sms.At(i)
		var flags pmetric.DataPointFlags
		switch m.Type() {
		case pmetric.MetricTypeGauge:
			p := m.Gauge().DataPoints().At(0)
			require.Equal(t, pmetric.NumberDataPointValueTypeEmpty, p.ValueType(), m.Name())
			flags = p.Flags()
		case pmetric.MetricTypeSum:
			p := m.Sum().DataPoints().At(0)
			require.Equal(t, pmetric.NumberDataPointValueTypeEmpty, p.ValueType(), m.Name())
			flags = p.Flags()
		case pmetric.MetricTypeHistogram:
			p := m.Histogram().DataPoints().At(0)
			require.Zero(t, p.BucketCounts().Len())
			flags = p.Flags()
		case pmetric.MetricTypeSummary:
			p := m.Summary().DataPoints().At(0)
			require.Zero(t, p.QuantileValues().Len())
			flags = p.Flags()
		case pmetric.MetricTypeExponentialHistogram:
			p := m.ExponentialHistogram().DataPoints().At(0)
			require.Zero(t, p.Count())
			flags = p.Flags()
		default:
			t.Fatalf("metric %s: unexpected type %s", m.Name(), m.Type())
		}
		require.True(t, flags.NoRecordedValue(), "metric %s: staleness marker must be flagged", m.Name())
	}
}
