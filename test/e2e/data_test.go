package e2e

import (
	"fmt"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var baseTime = time.Unix(1_700_000_000, 0)

// makeLogs returns n log records of request req, each with a distinct body,
// attributes, severity and timestamp.
func makeLogs(req, n int) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "e2e")
	rl.Resource().Attributes().PutInt("e2e.req", int64(req))
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("e2e")
	sl.Scope().SetVersion("1.0")
	for i := range n {
		lr := sl.LogRecords().AppendEmpty()
		lr.Body().SetStr(fmt.Sprintf("log-%d-%d", req, i))
		lr.Attributes().PutInt("seq", int64(i))
		lr.Attributes().PutStr("id", fmt.Sprintf("%d-%d", req, i))
		lr.Attributes().PutDouble("ratio", float64(i)/7)
		lr.Attributes().PutBool("even", i%2 == 0)
		lr.SetSeverityNumber(plog.SeverityNumber(1 + i%24))
		lr.SetSeverityText("sev")
		lr.SetTimestamp(pcommon.NewTimestampFromTime(baseTime.Add(time.Duration(req*n+i) * time.Millisecond)))
		lr.SetTraceID(pcommon.TraceID{byte(req), byte(i), 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		lr.SetSpanID(pcommon.SpanID{byte(i), 2, 3, 4, 5, 6, 7, 8})
	}
	return ld
}

// makeMetrics returns a gauge, a sum and a histogram for request req with
// n data points each (3n points in all).
func makeMetrics(req, n int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "e2e")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("e2e")
	ts := pcommon.NewTimestampFromTime(baseTime)

	g := sm.Metrics().AppendEmpty()
	g.SetName(fmt.Sprintf("e2e_gauge_%d", req))
	g.SetUnit("1")
	g.SetEmptyGauge()
	for i := range n {
		dp := g.Gauge().DataPoints().AppendEmpty()
		dp.SetDoubleValue(float64(req*1000+i) + 0.25)
		dp.Attributes().PutInt("seq", int64(i))
		dp.SetTimestamp(ts)
	}
	s := sm.Metrics().AppendEmpty()
	s.SetName(fmt.Sprintf("e2e_sum_%d", req))
	sum := s.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i := range n {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetIntValue(int64(req*1000 + i))
		dp.Attributes().PutInt("seq", int64(i))
		dp.SetStartTimestamp(ts)
		dp.SetTimestamp(ts + 1)
	}
	h := sm.Metrics().AppendEmpty()
	h.SetName(fmt.Sprintf("e2e_hist_%d", req))
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for i := range n {
		dp := hist.DataPoints().AppendEmpty()
		dp.SetCount(uint64(3 + i))
		dp.SetSum(float64(10 * i))
		dp.ExplicitBounds().FromRaw([]float64{1, 10})
		dp.BucketCounts().FromRaw([]uint64{1, 1, uint64(1 + i)})
		dp.Attributes().PutInt("seq", int64(i))
		dp.SetTimestamp(ts)
	}
	return md
}

// makeTraces returns n spans of request req with distinct names and ids.
func makeTraces(req, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "e2e")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("e2e")
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(fmt.Sprintf("span-%d-%d", req, i))
		sp.SetTraceID(pcommon.TraceID{byte(req + 1), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, byte(i)})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1), byte(req), 2, 3, 4, 5, 6, 7})
		sp.SetParentSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, byte(i)})
		sp.SetKind(ptrace.SpanKindServer)
		sp.Attributes().PutStr("k", fmt.Sprintf("v%d", i))
		sp.Status().SetCode(ptrace.StatusCodeOk)
		ev := sp.Events().AppendEmpty()
		ev.SetName("ev")
		ev.Attributes().PutInt("n", int64(i))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(baseTime))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(baseTime.Add(time.Duration(i+1) * time.Millisecond)))
	}
	return td
}

// The flatten functions turn requests into one sorted string per record
// with everything a record carries (resource, scope and the record's own
// fields), so two sets of requests compare equal when they hold the same
// records, however they were batched.

func flattenLogs(v []plog.Logs) []string {
	var out []string
	for _, ld := range v {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				sl := rl.ScopeLogs().At(j)
				for k := 0; k < sl.LogRecords().Len(); k++ {
					lr := sl.LogRecords().At(k)
					out = append(out, fmt.Sprintf("res=%v scope=%s/%s body=%v attrs=%v sev=%d/%s ts=%d trace=%s span=%s",
						rl.Resource().Attributes().AsRaw(), sl.Scope().Name(), sl.Scope().Version(),
						lr.Body().AsRaw(), lr.Attributes().AsRaw(), lr.SeverityNumber(), lr.SeverityText(),
						lr.Timestamp(), lr.TraceID(), lr.SpanID()))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func flattenMetrics(v []pmetric.Metrics) []string {
	var out []string
	for _, md := range v {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			for j := 0; j < rm.ScopeMetrics().Len(); j++ {
				sm := rm.ScopeMetrics().At(j)
				for k := 0; k < sm.Metrics().Len(); k++ {
					m := sm.Metrics().At(k)
					head := fmt.Sprintf("res=%v scope=%s name=%s unit=%s type=%s", rm.Resource().Attributes().AsRaw(),
						sm.Scope().Name(), m.Name(), m.Unit(), m.Type())
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						dps := m.Gauge().DataPoints()
						for p := 0; p < dps.Len(); p++ {
							dp := dps.At(p)
							out = append(out, fmt.Sprintf("%s attrs=%v d=%v i=%d ts=%d", head, dp.Attributes().AsRaw(), dp.DoubleValue(), dp.IntValue(), dp.Timestamp()))
						}
					case pmetric.MetricTypeSum:
						dps := m.Sum().DataPoints()
						for p := 0; p < dps.Len(); p++ {
							dp := dps.At(p)
							out = append(out, fmt.Sprintf("%s mono=%t temp=%s attrs=%v d=%v i=%d start=%d ts=%d", head, m.Sum().IsMonotonic(),
								m.Sum().AggregationTemporality(), dp.Attributes().AsRaw(), dp.DoubleValue(), dp.IntValue(), dp.StartTimestamp(), dp.Timestamp()))
						}
					case pmetric.MetricTypeHistogram:
						dps := m.Histogram().DataPoints()
						for p := 0; p < dps.Len(); p++ {
							dp := dps.At(p)
							out = append(out, fmt.Sprintf("%s temp=%s attrs=%v count=%d sum=%v bounds=%v buckets=%v ts=%d", head,
								m.Histogram().AggregationTemporality(), dp.Attributes().AsRaw(), dp.Count(), dp.Sum(),
								dp.ExplicitBounds().AsRaw(), dp.BucketCounts().AsRaw(), dp.Timestamp()))
						}
					default:
						out = append(out, head+" (unexpected type)")
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func flattenTraces(v []ptrace.Traces) []string {
	var out []string
	for _, td := range v {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j)
				for k := 0; k < ss.Spans().Len(); k++ {
					sp := ss.Spans().At(k)
					var evs []string
					for e := 0; e < sp.Events().Len(); e++ {
						ev := sp.Events().At(e)
						evs = append(evs, fmt.Sprintf("%s%v", ev.Name(), ev.Attributes().AsRaw()))
					}
					out = append(out, fmt.Sprintf("res=%v scope=%s name=%s trace=%s span=%s parent=%s kind=%s attrs=%v status=%s events=%v start=%d end=%d",
						rs.Resource().Attributes().AsRaw(), ss.Scope().Name(), sp.Name(), sp.TraceID(), sp.SpanID(), sp.ParentSpanID(),
						sp.Kind(), sp.Attributes().AsRaw(), sp.Status().Code(), evs, sp.StartTimestamp(), sp.EndTimestamp()))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
