package export

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/obs-dev/obs/actors"
)

// scanPdata decodes p with pdata, the reference scanRequest must agree with.
func scanPdata(s actors.Signal, p []byte) (int, error) {
	switch s {
	case actors.SignalLogs:
		r := plogotlp.NewExportRequest()
		if err := r.UnmarshalProto(p); err != nil {
			return 0, err
		}
		return r.Logs().LogRecordCount(), nil
	case actors.SignalMetrics:
		r := pmetricotlp.NewExportRequest()
		if err := r.UnmarshalProto(p); err != nil {
			return 0, err
		}
		return r.Metrics().DataPointCount(), nil
	case actors.SignalTraces:
		r := ptraceotlp.NewExportRequest()
		if err := r.UnmarshalProto(p); err != nil {
			return 0, err
		}
		return r.Traces().SpanCount(), nil
	}
	return 0, fmt.Errorf("unknown signal %v", s)
}

// requireSameAsPdata checks scanRequest against pdata on p.
func requireSameAsPdata(t testing.TB, s actors.Signal, p []byte) {
	t.Helper()
	want, wantErr := scanPdata(s, p)
	got, err := scanRequest(s, p)
	if wantErr != nil {
		require.Errorf(t, err, "pdata rejects (%v) but scan accepts %x", wantErr, p)
		return
	}
	require.NoErrorf(t, err, "pdata accepts but scan rejects %x", p)
	require.Equalf(t, want, got, "item count of %x", p)
}

// --- encoding helpers for hand-built requests -------------------------

func pbLen(num protowire.Number, parts ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, bytes.Join(parts, nil))
}

func pbVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func pbFixed64(num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), v)
}

func pbTag(num protowire.Number, t protowire.Type) []byte {
	return protowire.AppendTag(nil, num, t)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// oneLog wraps log record fields in a logs request with one record.
func oneLog(fields ...[]byte) []byte {
	return pbLen(1, pbLen(2, pbLen(2, fields...)))
}

// oneSpan wraps span fields in a traces request with one span.
func oneSpan(fields ...[]byte) []byte {
	return pbLen(1, pbLen(2, pbLen(2, fields...)))
}

// oneMetric wraps metric fields in a metrics request with one metric.
func oneMetric(fields ...[]byte) []byte {
	return pbLen(1, pbLen(2, pbLen(2, fields...)))
}

// nestedArrays is an AnyValue holding n ArrayValues nested in each other.
func nestedArrays(n int) []byte {
	var v []byte // empty AnyValue
	for range n {
		v = pbLen(5, pbLen(1, v))
	}
	return v
}

// nestedKVLists is an AnyValue holding n KeyValueLists nested in each other.
func nestedKVLists(n int) []byte {
	var v []byte
	for range n {
		v = pbLen(6, pbLen(1, pbLen(1, []byte("k")), pbLen(2, v)))
	}
	return v
}

// --- real requests of every shape --------------------------------------

func fillAnyValues(m pcommon.Map) {
	m.PutStr("str", "value")
	m.PutStr("empty", "")
	m.PutInt("int", -42)
	m.PutDouble("double", 3.5)
	m.PutBool("bool", true)
	m.PutEmptyBytes("bytes").FromRaw([]byte{0, 1, 2, 0xff})
	m.PutEmpty("nil")
	s := m.PutEmptySlice("slice")
	s.AppendEmpty().SetStr("a")
	s.AppendEmpty().SetInt(1)
	inner := s.AppendEmpty().SetEmptyMap()
	inner.PutStr("deep", "x")
	inner.PutEmptySlice("deeper").AppendEmpty().SetEmptySlice().AppendEmpty().SetBool(false)
	m.PutEmptyMap("map").PutEmptyMap("m2").PutStr("k", "v")
}

var (
	scanTraceID = pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	scanSpanID  = pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
)

func scanLogs(records int) plog.Logs {
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty() // empty resource
	rl := ld.ResourceLogs().AppendEmpty()
	rl.SetSchemaUrl("https://opentelemetry.io/schemas/1.30.0")
	fillAnyValues(rl.Resource().Attributes())
	rl.Resource().SetDroppedAttributesCount(3)
	rl.ScopeLogs().AppendEmpty() // empty scope
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("scope")
	sl.Scope().SetVersion("1.0")
	sl.Scope().Attributes().PutStr("a", "b")
	sl.Scope().SetDroppedAttributesCount(1)
	for i := range records {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i))
		lr.SetObservedTimestamp(pcommon.Timestamp(1_700_000_000_000_000_001 + i))
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.SetSeverityText("INFO")
		lr.Body().SetStr(fmt.Sprintf("GET /api/v1/items/%d 200 12ms user-agent=curl/8.5.0", i))
		lr.Attributes().PutStr("http.method", "GET")
		lr.Attributes().PutInt("http.status_code", 200)
		lr.Attributes().PutStr("k8s.pod.name", "web-7d9f8c6b5-x2x9z")
		lr.SetTraceID(scanTraceID)
		lr.SetSpanID(scanSpanID)
		lr.SetFlags(plog.DefaultLogRecordFlags.WithIsSampled(true))
		lr.SetDroppedAttributesCount(2)
		lr.SetEventName("event")
	}
	lr := sl.LogRecords().AppendEmpty()
	fillAnyValues(lr.Body().SetEmptyMap())
	sl.LogRecords().AppendEmpty() // empty record
	return ld
}

func scanMetrics(points int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	md.ResourceMetrics().AppendEmpty()
	rm := md.ResourceMetrics().AppendEmpty()
	fillAnyValues(rm.Resource().Attributes())
	rm.ScopeMetrics().AppendEmpty()
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("scope")
	sm.SetSchemaUrl("s")
	ms := sm.Metrics()

	ms.AppendEmpty().SetName("no_data")

	g := ms.AppendEmpty()
	g.SetName("gauge")
	g.SetDescription("d")
	g.SetUnit("1")
	g.Metadata().PutStr("meta", "x")
	gdps := g.SetEmptyGauge().DataPoints()
	for i := range points {
		dp := gdps.AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(i + 1))
		dp.SetStartTimestamp(1)
		if i%2 == 0 {
			dp.SetIntValue(int64(i))
		} else {
			dp.SetDoubleValue(float64(i) / 3)
		}
		dp.Attributes().PutStr("host", "node-1")
		dp.Attributes().PutInt("cpu", int64(i%8))
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(i%5 == 0))
	}
	ex := gdps.AppendEmpty().Exemplars().AppendEmpty()
	ex.SetIntValue(7)
	ex.SetTraceID(scanTraceID)
	ex.SetSpanID(scanSpanID)
	ex.FilteredAttributes().PutStr("f", "g")
	ms.AppendEmpty().SetEmptyGauge() // gauge without points

	s := ms.AppendEmpty()
	s.SetName("sum")
	sum := s.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	sum.DataPoints().AppendEmpty().SetDoubleValue(1)
	sum.DataPoints().AppendEmpty().Exemplars().AppendEmpty().SetDoubleValue(2)

	h := ms.AppendEmpty()
	h.SetName("histogram")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	hdp := hist.DataPoints().AppendEmpty()
	hdp.SetCount(10)
	hdp.SetSum(12.5)
	hdp.SetMin(0.1)
	hdp.SetMax(9)
	hdp.BucketCounts().FromRaw([]uint64{1, 2, 3, 4})
	hdp.ExplicitBounds().FromRaw([]float64{0.5, 1, 5})
	hdp.Attributes().PutStr("le", "x")
	hdp.Exemplars().AppendEmpty().SetDoubleValue(0.7)
	hist.DataPoints().AppendEmpty()

	e := ms.AppendEmpty()
	e.SetName("exp_histogram")
	eh := e.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	edp := eh.DataPoints().AppendEmpty()
	edp.SetScale(-3)
	edp.SetZeroCount(2)
	edp.SetZeroThreshold(1e-9)
	edp.SetCount(20)
	edp.SetSum(100)
	edp.SetMin(-5)
	edp.SetMax(50)
	edp.Positive().SetOffset(-2)
	edp.Positive().BucketCounts().FromRaw([]uint64{1, 300, 70000, 1 << 40})
	edp.Negative().SetOffset(5)
	edp.Negative().BucketCounts().FromRaw([]uint64{0, 9})
	edp.Exemplars().AppendEmpty().SetIntValue(3)
	edp.Attributes().PutBool("b", true)
	eh.DataPoints().AppendEmpty()

	su := ms.AppendEmpty()
	su.SetName("summary")
	sdp := su.SetEmptySummary().DataPoints().AppendEmpty()
	sdp.SetCount(4)
	sdp.SetSum(8)
	q := sdp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.99)
	q.SetValue(7.9)
	sdp.QuantileValues().AppendEmpty()
	sdp.Attributes().PutStr("q", "r")
	su.Summary().DataPoints().AppendEmpty()
	return md
}

func scanTraces(spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty()
	rs := td.ResourceSpans().AppendEmpty()
	fillAnyValues(rs.Resource().Attributes())
	rs.ScopeSpans().AppendEmpty()
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("tracer")
	for i := range spans {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(scanTraceID)
		sp.SetSpanID(pcommon.SpanID{byte(i), 2, 3, 4, 5, 6, 7, 8})
		sp.SetParentSpanID(scanSpanID)
		sp.TraceState().FromRaw("vendor=value")
		sp.SetFlags(1)
		sp.SetName(fmt.Sprintf("GET /items/%d", i))
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(1)
		sp.SetEndTimestamp(2)
		sp.Attributes().PutStr("http.route", "/items/{id}")
		sp.SetDroppedAttributesCount(1)
		ev := sp.Events().AppendEmpty()
		ev.SetName("exception")
		ev.SetTimestamp(3)
		ev.Attributes().PutStr("exception.type", "E")
		ev.SetDroppedAttributesCount(4)
		sp.SetDroppedEventsCount(5)
		ln := sp.Links().AppendEmpty()
		ln.SetTraceID(scanTraceID)
		ln.SetSpanID(scanSpanID)
		ln.TraceState().FromRaw("a=b")
		ln.Attributes().PutInt("n", 1)
		ln.SetFlags(1)
		ln.SetDroppedAttributesCount(6)
		sp.SetDroppedLinksCount(7)
		sp.Status().SetCode(ptrace.StatusCodeError)
		sp.Status().SetMessage("boom")
	}
	ss.Spans().AppendEmpty()
	return td
}

func scanEncode(t testing.TB, s actors.Signal, n int) []byte {
	t.Helper()
	var (
		p   []byte
		err error
	)
	switch s {
	case actors.SignalLogs:
		p, err = plogotlp.NewExportRequestFromLogs(scanLogs(n)).MarshalProto()
	case actors.SignalMetrics:
		p, err = pmetricotlp.NewExportRequestFromMetrics(scanMetrics(n)).MarshalProto()
	case actors.SignalTraces:
		p, err = ptraceotlp.NewExportRequestFromTraces(scanTraces(n)).MarshalProto()
	}
	require.NoError(t, err)
	return p
}

// scanHandBuilt are requests pdata's marshaller never writes but a client
// may send: deprecated scope lists, unknown fields and groups, unpacked
// repeated scalars, entity refs, repeated oneof members.
func scanHandBuilt(s actors.Signal) [][]byte {
	unknown := cat(
		pbVarint(99, 1), pbFixed64(98, 2), pbLen(97, []byte("x")),
		protowire.AppendFixed32(pbTag(96, protowire.Fixed32Type), 3),
		pbTag(95, protowire.StartGroupType), pbVarint(1, 5), // pdata ends the group skip after one field
		pbTag(94, protowire.StartGroupType), pbTag(94, protowire.EndGroupType),
		pbVarint(93, 0), // a group may not end its message: pdata wants bytes after it
	)
	entity := pbLen(3, pbLen(1, []byte("url")), pbLen(2, []byte("k8s.pod")), pbLen(3, []byte("uid")), pbLen(4, []byte("name")))
	resource := pbLen(1, pbLen(1, pbLen(1, []byte("k")), pbLen(2, pbVarint(3, 1))), entity, unknown)
	switch s {
	case actors.SignalLogs:
		rec := pbLen(2, unknown, pbLen(5, nestedArrays(20)))
		return [][]byte{
			pbLen(1, resource, pbLen(1000, rec, rec)),      // deprecated scope list only: 2 records
			pbLen(1, pbLen(1000, rec, rec), pbLen(2, rec)), // both: current wins, 1 record
			pbLen(1, pbLen(1000, rec), pbLen(2)),           // empty current scope still wins: 0
			cat(pbLen(1, pbLen(2, rec)), unknown, pbLen(1, pbLen(2, rec))),
			oneLog(pbLen(5, nestedKVLists(30))),
			oneLog(pbLen(9), pbLen(10)), // empty ids are fine
		}
	case actors.SignalMetrics:
		gauge := pbLen(5, pbLen(1), pbLen(1), pbLen(1))
		summary := pbLen(11, pbLen(1))
		hdp := cat(pbFixed64(6, 1), pbFixed64(6, 2), pbFixed64(7, 3), pbLen(6), pbLen(7))
		buckets := cat(pbVarint(2, 1), pbVarint(2, 2), pbLen(2, protowire.AppendVarint(nil, 1<<50)), pbVarint(1, 3))
		return [][]byte{
			oneMetric(gauge, summary),          // oneof: summary wins, 1 point
			oneMetric(summary, gauge),          // gauge wins, 3 points
			oneMetric(pbLen(9, pbLen(1, hdp))), // unpacked bucket counts
			oneMetric(pbLen(10, pbLen(1, pbLen(8, buckets), pbLen(9, buckets)))),
			pbLen(1, resource, pbLen(1000, pbLen(2, gauge))),
			oneMetric(unknown, pbLen(7, unknown, pbLen(1, unknown))),
		}
	case actors.SignalTraces:
		span := pbLen(2, pbLen(1), pbLen(2), pbLen(4), unknown, pbLen(15, unknown, pbVarint(1, 2)))
		return [][]byte{
			pbLen(1, resource, pbLen(1000, span, span, span)),
			pbLen(1, pbLen(1000, span), pbLen(2, span, span)),
			oneSpan(pbLen(13, pbLen(1), pbLen(2)), pbLen(11, unknown)),
		}
	}
	return nil
}

// scanSeeds are the fuzz corpus seeds: real requests, hand-built ones and
// some corruptions of them.
func scanSeeds(t testing.TB, s actors.Signal) [][]byte {
	seeds := [][]byte{nil, {}, scanEncode(t, s, 0), scanEncode(t, s, 3)}
	seeds = append(seeds, scanHandBuilt(s)...)
	full := scanEncode(t, s, 2)
	for _, cut := range []int{1, 2, 7, len(full) / 3, len(full) / 2, len(full) - 1} {
		seeds = append(seeds, full[:cut])
	}
	for _, i := range []int{5, 40, len(full) / 2, len(full) - 3} {
		c := bytes.Clone(full)
		c[i] ^= 0xff
		seeds = append(seeds, c)
	}
	return seeds
}

func fuzzScan(f *testing.F, s actors.Signal) {
	for _, seed := range scanSeeds(f, s) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		requireSameAsPdata(t, s, p)
	})
}

func FuzzScanLogs(f *testing.F)    { fuzzScan(f, actors.SignalLogs) }
func FuzzScanMetrics(f *testing.F) { fuzzScan(f, actors.SignalMetrics) }
func FuzzScanTraces(f *testing.F)  { fuzzScan(f, actors.SignalTraces) }

func TestScanRequestAgreesWithPdata(t *testing.T) {
	for _, s := range []actors.Signal{actors.SignalLogs, actors.SignalMetrics, actors.SignalTraces} {
		for i, p := range scanSeeds(t, s) {
			t.Run(fmt.Sprintf("%v/%d", s, i), func(t *testing.T) {
				requireSameAsPdata(t, s, p)
			})
		}
	}
}

// TestScanRequestMutations is a bounded, deterministic companion to the
// fuzzers: protobuf-shaped mutations (wire type changes, length bumps,
// byte inserts and deletes) of every seed must get the same verdict and
// count from scanRequest and pdata.
func TestScanRequestMutations(t *testing.T) {
	const rounds = 20000
	for _, s := range []actors.Signal{actors.SignalLogs, actors.SignalMetrics, actors.SignalTraces} {
		t.Run(s.String(), func(t *testing.T) {
			seeds := scanSeeds(t, s)
			rng := rand.New(rand.NewPCG(uint64(s), 42))
			var rejected int
			for range rounds {
				p := bytes.Clone(seeds[rng.IntN(len(seeds))])
				for range 1 + rng.IntN(4)/3 { // mostly one mutation, sometimes two
					if len(p) == 0 {
						p = append(p, byte(rng.IntN(256)))
						continue
					}
					i := rng.IntN(len(p))
					switch rng.IntN(6) {
					case 0: // another wire type, same field number
						p[i] = p[i]&^7 | byte(rng.IntN(8))
					case 1: // length or value off by a little
						p[i] += byte(rng.IntN(5)) - 2
					case 2:
						p[i] = byte(rng.IntN(256))
					case 3:
						p = append(p[:i], p[i+1:]...)
					case 4:
						p = append(p[:i], append([]byte{byte(rng.IntN(256))}, p[i:]...)...)
					case 5:
						p = p[:i]
					}
				}
				if _, err := scanPdata(s, p); err != nil {
					rejected++
				}
				requireSameAsPdata(t, s, p)
			}
			// Both verdicts must be exercised for the comparison to mean much.
			t.Logf("%d of %d mutations rejected", rejected, rounds)
			require.Greater(t, rejected, rounds/10)
			require.Less(t, rejected, rounds*95/100)
		})
	}
}

func TestScanRequestCounts(t *testing.T) {
	tests := []struct {
		name   string
		signal actors.Signal
		p      []byte
		want   int
	}{
		{"logs real", actors.SignalLogs, scanEncode(t, actors.SignalLogs, 5), 7},
		{"metrics real", actors.SignalMetrics, scanEncode(t, actors.SignalMetrics, 5), 6 + 2 + 2 + 2 + 2},
		{"traces real", actors.SignalTraces, scanEncode(t, actors.SignalTraces, 5), 6},
		{"empty request", actors.SignalLogs, nil, 0},
		{"deprecated scopes only", actors.SignalLogs, scanHandBuilt(actors.SignalLogs)[0], 2},
		{"current scopes win", actors.SignalLogs, scanHandBuilt(actors.SignalLogs)[1], 1},
		{"empty current scope wins", actors.SignalLogs, scanHandBuilt(actors.SignalLogs)[2], 0},
		{"oneof last wins summary", actors.SignalMetrics, scanHandBuilt(actors.SignalMetrics)[0], 1},
		{"oneof last wins gauge", actors.SignalMetrics, scanHandBuilt(actors.SignalMetrics)[1], 3},
		{"deprecated spans", actors.SignalTraces, scanHandBuilt(actors.SignalTraces)[0], 3},
		{"current spans win", actors.SignalTraces, scanHandBuilt(actors.SignalTraces)[1], 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanRequest(tt.signal, tt.p)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			ref, err := scanPdata(tt.signal, tt.p)
			require.NoError(t, err)
			require.Equal(t, ref, got)
		})
	}
}

func TestScanRequestMalformed(t *testing.T) {
	// tenByteVarint has a 10th byte pdata accepts although its bits overflow
	// 64 bits (protowire would reject it).
	tenByteVarint := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	// A tag whose field number only becomes 1 after int32 truncation.
	truncatedTag := protowire.AppendVarint(nil, (1<<32|1)<<3|uint64(protowire.BytesType))

	tests := []struct {
		name    string
		signal  actors.Signal
		p       []byte
		wantErr error // nil: valid
	}{
		{"truncated length", actors.SignalLogs, cat(pbTag(1, protowire.BytesType), []byte{5, 0x12, 0}), errScanTruncated},
		{"truncated nested length", actors.SignalLogs, pbLen(1, pbTag(2, protowire.BytesType), []byte{9}), errScanTruncated},
		{"length overflows int", actors.SignalLogs, cat(pbTag(1, protowire.BytesType), protowire.AppendVarint(nil, 1<<63)), errScanLength},
		{"truncated fixed64", actors.SignalLogs, oneLog(pbTag(1, protowire.Fixed64Type), []byte{1, 2, 3}), errScanTruncated},
		{"truncated fixed32", actors.SignalTraces, oneSpan(pbTag(16, protowire.Fixed32Type), []byte{1}), errScanTruncated},
		{"wrong wire type resource_logs", actors.SignalLogs, pbVarint(1, 1), errScanWireType},
		{"wrong wire type log time", actors.SignalLogs, oneLog(pbVarint(1, 1)), errScanWireType},
		{"wrong wire type log flags", actors.SignalLogs, oneLog(pbFixed64(8, 1)), errScanWireType},
		{"wrong wire type span kind", actors.SignalTraces, oneSpan(pbFixed64(6, 1)), errScanWireType},
		{"wrong wire type metric gauge", actors.SignalMetrics, oneMetric(pbVarint(5, 1)), errScanWireType},
		{"wrong wire type anyvalue int", actors.SignalLogs, oneLog(pbLen(5, pbFixed64(3, 1))), errScanWireType},
		{"wrong wire type bucket counts", actors.SignalMetrics, oneMetric(pbLen(9, pbLen(1, pbVarint(6, 1)))), errScanWireType},
		{"wrong wire type exp bucket counts", actors.SignalMetrics, oneMetric(pbLen(10, pbLen(1, pbLen(8, pbFixed64(2, 1))))), errScanWireType},
		{"bad varint tag", actors.SignalLogs, bytes.Repeat([]byte{0xff}, 11), errScanVarint},
		{"bad varint value", actors.SignalLogs, oneLog(pbTag(2, protowire.VarintType), bytes.Repeat([]byte{0x80}, 10), []byte{1}), errScanVarint},
		{"truncated varint", actors.SignalTraces, oneSpan(pbTag(6, protowire.VarintType), []byte{0x80}), errScanTruncated},
		{"ten byte varint accepted", actors.SignalLogs, oneLog(pbTag(2, protowire.VarintType), tenByteVarint), nil},
		{"field number zero", actors.SignalLogs, []byte{0x02, 0x00}, errScanFieldNumber},
		{"field number zero in group", actors.SignalLogs, cat(pbTag(9, protowire.StartGroupType), []byte{0x00}), errScanFieldNumber},
		{"field number truncated to int32", actors.SignalLogs, cat(truncatedTag, []byte{0}), nil},
		{"end group without start", actors.SignalLogs, cat(pbTag(9, protowire.EndGroupType), []byte{0}), errScanEndGroup},
		{"illegal wire type 6", actors.SignalLogs, []byte{9<<3 | 6, 0}, errScanIllegalWire},
		{"illegal wire type 7", actors.SignalMetrics, oneMetric([]byte{9<<3 | 7, 0}), errScanWireType},
		{"unterminated group", actors.SignalLogs, cat(pbTag(9, protowire.StartGroupType), pbTag(9, protowire.StartGroupType)), errScanTruncated},
		{"group closed at end of input", actors.SignalLogs, cat(pbTag(9, protowire.StartGroupType), pbTag(9, protowire.EndGroupType)), errScanTruncated},
		{"known field as group", actors.SignalLogs, cat(pbTag(1, protowire.StartGroupType), pbTag(1, protowire.EndGroupType), []byte{0}), errScanWireType},
		{"trace id 15 bytes", actors.SignalLogs, oneLog(pbLen(9, make([]byte, 15))), errScanTraceID},
		{"trace id 17 bytes", actors.SignalTraces, oneSpan(pbLen(1, make([]byte, 17))), errScanTraceID},
		{"span id 7 bytes", actors.SignalTraces, oneSpan(pbLen(2, make([]byte, 7))), errScanSpanID},
		{"parent span id 16 bytes", actors.SignalTraces, oneSpan(pbLen(4, make([]byte, 16))), errScanSpanID},
		{"link trace id 8 bytes", actors.SignalTraces, oneSpan(pbLen(13, pbLen(1, make([]byte, 8)))), errScanTraceID},
		{"exemplar span id 16 bytes", actors.SignalMetrics, oneMetric(pbLen(5, pbLen(1, pbLen(5, pbLen(4, make([]byte, 16)))))), errScanSpanID},
		{"empty ids accepted", actors.SignalTraces, oneSpan(pbLen(1), pbLen(2), pbLen(4)), nil},
		{"packed fixed64 of 7 bytes", actors.SignalMetrics, oneMetric(pbLen(9, pbLen(1, pbLen(6, make([]byte, 7))))), errScanPackedLength},
		{"packed bounds of 9 bytes", actors.SignalMetrics, oneMetric(pbLen(9, pbLen(1, pbLen(7, make([]byte, 9))))), errScanPackedLength},
		{"packed varint cut", actors.SignalMetrics, oneMetric(pbLen(10, pbLen(1, pbLen(9, pbLen(2, []byte{1, 0x80}))))), errScanTruncated},
		{"arrays nested 49 deep", actors.SignalLogs, oneLog(pbLen(5, nestedArrays(49))), nil},
		{"arrays nested 50 deep", actors.SignalLogs, oneLog(pbLen(5, nestedArrays(50))), errScanDepth},
		{"kvlists nested 32 deep", actors.SignalTraces, oneSpan(pbLen(9, pbLen(1, []byte("k")), pbLen(2, nestedKVLists(32)))), nil},
		{"kvlists nested 33 deep", actors.SignalTraces, oneSpan(pbLen(9, pbLen(1, []byte("k")), pbLen(2, nestedKVLists(33)))), errScanDepth},
		{"deep nesting under deep schema", actors.SignalMetrics, oneMetric(pbLen(9, pbLen(1, pbLen(8, pbLen(7, pbLen(2, nestedArrays(60))))))), errScanDepth},
		{"invalid utf-8 accepted", actors.SignalLogs, oneLog(pbLen(3, []byte{0xff, 0xfe}), pbLen(5, pbLen(1, []byte{0xc0}))), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, refErr := scanPdata(tt.signal, tt.p)
			_, err := scanRequest(tt.signal, tt.p)
			if tt.wantErr == nil {
				require.NoError(t, refErr, "premise: pdata accepts")
				require.NoError(t, err)
				return
			}
			require.Error(t, refErr, "premise: pdata rejects")
			require.ErrorIs(t, err, tt.wantErr)
			var se *scanError
			require.True(t, errors.As(err, &se))
		})
	}
}

func TestScanRequestUnknownSignal(t *testing.T) {
	_, err := scanRequest(actors.Signal(0), nil)
	require.ErrorIs(t, err, errScanUnknownSignal)
}

func TestScanRequestZeroAllocs(t *testing.T) {
	for _, s := range []actors.Signal{actors.SignalLogs, actors.SignalMetrics, actors.SignalTraces} {
		t.Run(s.String(), func(t *testing.T) {
			p := scanEncode(t, s, 50)
			hand := scanHandBuilt(s)
			allocs := testing.AllocsPerRun(100, func() {
				if _, err := scanRequest(s, p); err != nil {
					t.Fatal(err)
				}
				for _, h := range hand {
					if _, err := scanRequest(s, h); err != nil {
						t.Fatal(err)
					}
				}
			})
			require.Zero(t, allocs)
		})
	}
}

func BenchmarkScanRequest(b *testing.B) {
	for _, bc := range []struct {
		signal actors.Signal
		n      int
	}{
		{actors.SignalLogs, 1000},
		{actors.SignalMetrics, 1000},
		{actors.SignalTraces, 1000},
	} {
		p := scanEncode(b, bc.signal, bc.n)
		b.Run(bc.signal.String()+"/scan", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := scanRequest(bc.signal, p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.signal.String()+"/pdata", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := scanPdata(bc.signal, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
