package scrape

import (
	"math"
	"net"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// The appender writes OTLP protobuf (an ExportMetricsServiceRequest)
// directly instead of building pdata: a scrape is hundreds of thousands
// of data points a second, and pdata costs a map per point's attributes,
// an object per point, and a second pass to marshal it for the WAL.
// A series' attributes are encoded once, when the series is first seen.
//
// Tags below are (field number << 3 | wire type) of the OTLP messages
// (opentelemetry-proto, metrics/v1 and common/v1); every field number
// used is at most 15, so a tag is one byte.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
)

func tagOf(field, wire int) byte { return byte(field<<3 | wire) }

// Field tags shared by several messages.
var (
	tagField1Bytes = tagOf(1, wireBytes) // request.resource_metrics, resource_metrics.resource, resource.attributes, scope_metrics.scope, scope.name, key_value.key, any_value.string_value, gauge/sum/....data_points
	tagField2Bytes = tagOf(2, wireBytes) // resource_metrics.scope_metrics, scope_metrics.metrics, key_value.value, metric.description
	tagStart       = tagOf(2, wireFixed64)
	tagTime        = tagOf(3, wireFixed64)
)

// Attribute tags of the data point messages.
var (
	tagNumberAttrs  = tagOf(7, wireBytes)  // NumberDataPoint.attributes, SummaryDataPoint.attributes
	tagHistAttrs    = tagOf(9, wireBytes)  // HistogramDataPoint.attributes
	tagExpHistAttrs = tagOf(1, wireBytes)  // ExponentialHistogramDataPoint.attributes
	tagMetricUnit   = tagOf(3, wireBytes)  // Metric.unit
	tagAnyInt       = tagOf(3, wireVarint) // AnyValue.int_value
)

// flagNoRecordedValue is DataPointFlags' FLAG_NO_RECORDED_VALUE: a
// staleness marker.
const flagNoRecordedValue = 1

func appendLenField(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	return protowire.AppendVarint(b, uint64(n))
}

func appendStrField(b []byte, tag byte, s string) []byte {
	b = appendLenField(b, tag, len(s))
	return append(b, s...)
}

func appendFixed(b []byte, tag byte, v uint64) []byte {
	b = append(b, tag)
	return protowire.AppendFixed64(b, v)
}

func appendDouble(b []byte, tag byte, f float64) []byte {
	return appendFixed(b, tag, math.Float64bits(f))
}

func appendVarintField(b []byte, tag byte, v uint64) []byte {
	b = append(b, tag)
	return protowire.AppendVarint(b, v)
}

// sizeLenField is the size of a length-delimited field of n bytes.
func sizeLenField(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

// sizeStrKV is the size of a KeyValue{key, string_value} body.
func sizeStrKV(k, v string) int { return sizeLenField(len(k)) + sizeLenField(sizeLenField(len(v))) }

func appendStrKV(b []byte, tag byte, k, v string) []byte {
	b = appendLenField(b, tag, sizeStrKV(k, v))
	b = appendStrField(b, tagField1Bytes, k)
	b = appendLenField(b, tagField2Bytes, sizeLenField(len(v)))
	return appendStrField(b, tagField1Bytes, v)
}

// encodeAttrs encodes labels as repeated KeyValue fields with the
// NumberDataPoint tag; retagAttrs moves them to another message's field.
func encodeAttrs(ls labels.Labels) []byte {
	n := 0
	ls.Range(func(l labels.Label) { n += sizeLenField(sizeStrKV(l.Name, l.Value)) })
	b := make([]byte, 0, n)
	ls.Range(func(l labels.Label) { b = appendStrKV(b, tagNumberAttrs, l.Name, l.Value) })
	return b
}

// retagAttrs appends attrs (as encodeAttrs made them) with every field
// tag replaced by tag.
func retagAttrs(dst, attrs []byte, tag byte) []byte {
	for len(attrs) > 0 {
		n, w := protowire.ConsumeVarint(attrs[1:])
		if w < 0 {
			panic("BUG: scrape: malformed cached attributes")
		}
		end := 1 + w + int(n)
		dst = append(dst, tag)
		dst = append(dst, attrs[1:end]...)
		attrs = attrs[end:]
	}
	return dst
}

// appendAttrs appends a series' cached attributes under tag.
func appendAttrs(dst, attrs []byte, tag byte) []byte {
	if tag == tagNumberAttrs {
		return append(dst, attrs...)
	}
	return retagAttrs(dst, attrs, tag)
}

// appendNumberPoint appends one NumberDataPoint (as_double) to a gauge's
// or sum's data_points. start 0 writes no start time.
func appendNumberPoint(b, attrs []byte, start, t int64, v float64, stale bool) []byte {
	n := len(attrs) + 9
	if start != 0 {
		n += 9
	}
	if stale {
		n += 2
	} else {
		n += 9
	}
	b = appendLenField(b, tagField1Bytes, n)
	b = append(b, attrs...)
	if start != 0 {
		b = appendFixed(b, tagStart, msToNanos(start))
	}
	b = appendFixed(b, tagTime, msToNanos(t))
	if stale {
		return appendVarintField(b, tagOf(8, wireVarint), flagNoRecordedValue)
	}
	return appendDouble(b, tagOf(4, wireFixed64), v)
}

// histPoint is a HistogramDataPoint's content.
type histPoint struct {
	start, t      int64
	count         uint64
	sum           float64
	hasSum, stale bool
	bounds        []float64
	counts        []uint64
}

func appendHistPoint(b, attrs []byte, p *histPoint) []byte {
	var body [512]byte
	d := appendAttrs(body[:0], attrs, tagHistAttrs)
	d = appendFixed(d, tagTime, msToNanos(p.t))
	if p.stale {
		d = appendVarintField(d, tagOf(10, wireVarint), flagNoRecordedValue)
	} else {
		d = appendFixed(d, tagStart, msToNanos(p.start))
		if p.count != 0 {
			d = appendFixed(d, tagOf(4, wireFixed64), p.count)
		}
		if p.hasSum {
			d = appendDouble(d, tagOf(5, wireFixed64), p.sum)
		}
		if len(p.counts) > 0 {
			d = appendLenField(d, tagOf(6, wireBytes), 8*len(p.counts))
			for _, c := range p.counts {
				d = protowire.AppendFixed64(d, c)
			}
		}
		if len(p.bounds) > 0 {
			d = appendLenField(d, tagOf(7, wireBytes), 8*len(p.bounds))
			for _, f := range p.bounds {
				d = protowire.AppendFixed64(d, math.Float64bits(f))
			}
		}
	}
	b = appendLenField(b, tagField1Bytes, len(d))
	return append(b, d...)
}

// summaryPoint is a SummaryDataPoint's content.
type summaryPoint struct {
	start, t  int64
	count     uint64
	sum       float64
	stale     bool
	quantiles []float64
	values    []float64
}

func appendSummaryPoint(b, attrs []byte, p *summaryPoint) []byte {
	var body [512]byte
	d := append(body[:0], attrs...)
	d = appendFixed(d, tagTime, msToNanos(p.t))
	if p.stale {
		d = appendVarintField(d, tagOf(8, wireVarint), flagNoRecordedValue)
	} else {
		d = appendFixed(d, tagStart, msToNanos(p.start))
		if p.count != 0 {
			d = appendFixed(d, tagOf(4, wireFixed64), p.count)
		}
		if p.sum != 0 {
			d = appendDouble(d, tagOf(5, wireFixed64), p.sum)
		}
		for i, q := range p.quantiles {
			d = appendLenField(d, tagOf(6, wireBytes), 18) // ValueAtQuantile{quantile, value}
			d = appendDouble(d, tagOf(1, wireFixed64), q)
			d = appendDouble(d, tagOf(2, wireFixed64), p.values[i])
		}
	}
	b = appendLenField(b, tagField1Bytes, len(d))
	return append(b, d...)
}

// expPoint is an ExponentialHistogramDataPoint's content; bucket offsets
// are OTLP's.
type expPoint struct {
	start, t             int64
	count, zeroCount     uint64
	sum, zeroThreshold   float64
	scale                int32
	stale                bool
	posOffset, negOffset int32
	posCounts, negCounts []uint64
}

func appendExpBuckets(d []byte, tag byte, offset int32, counts []uint64) []byte {
	if len(counts) == 0 {
		return d
	}
	packed := 0
	for _, c := range counts {
		packed += protowire.SizeVarint(c)
	}
	off := protowire.EncodeZigZag(int64(offset))
	n := sizeLenField(packed)
	if off != 0 {
		n += 1 + protowire.SizeVarint(off)
	}
	d = appendLenField(d, tag, n)
	if off != 0 {
		d = appendVarintField(d, tagOf(1, wireVarint), off)
	}
	d = appendLenField(d, tagOf(2, wireBytes), packed)
	for _, c := range counts {
		d = protowire.AppendVarint(d, c)
	}
	return d
}

func appendExpPoint(b, attrs []byte, p *expPoint) []byte {
	var body [1024]byte
	d := appendAttrs(body[:0], attrs, tagExpHistAttrs)
	d = appendFixed(d, tagTime, msToNanos(p.t))
	if p.stale {
		d = appendVarintField(d, tagOf(10, wireVarint), flagNoRecordedValue)
	} else {
		d = appendFixed(d, tagStart, msToNanos(p.start))
		if p.count != 0 {
			d = appendFixed(d, tagOf(4, wireFixed64), p.count)
		}
		d = appendDouble(d, tagOf(5, wireFixed64), p.sum)
		if p.scale != 0 {
			d = appendVarintField(d, tagOf(6, wireVarint), protowire.EncodeZigZag(int64(p.scale)))
		}
		if p.zeroCount != 0 {
			d = appendFixed(d, tagOf(7, wireFixed64), p.zeroCount)
		}
		d = appendExpBuckets(d, tagOf(8, wireBytes), p.posOffset, p.posCounts)
		d = appendExpBuckets(d, tagOf(9, wireBytes), p.negOffset, p.negCounts)
		if p.zeroThreshold != 0 {
			d = appendDouble(d, tagOf(14, wireFixed64), p.zeroThreshold)
		}
	}
	b = appendLenField(b, tagField1Bytes, len(d))
	return append(b, d...)
}

// txMetric is one OTLP Metric of a scrape: its identity and its encoded
// data points.
type txMetric struct {
	name, help, unit string
	kind             seriesKind // kindGauge, kindCounter, kindBucket (histogram), kindQuantile (summary) or kindNative
	dps              []byte     // encoded data_points fields
}

// dataTag is the Metric field that holds the data of the metric's type.
func (m *txMetric) dataTag() byte {
	switch m.kind {
	case kindCounter:
		return tagOf(7, wireBytes) // sum
	case kindBucket:
		return tagOf(9, wireBytes) // histogram
	case kindNative:
		return tagOf(10, wireBytes) // exponential_histogram
	case kindQuantile:
		return tagOf(11, wireBytes) // summary
	}
	return tagOf(5, wireBytes) // gauge
}

// dataTrailer is what follows the data points in the data message:
// cumulative temporality (2) and, for a sum, is_monotonic.
func (m *txMetric) dataTrailer() []byte {
	switch m.kind {
	case kindCounter:
		return []byte{tagOf(2, wireVarint), 2, tagOf(3, wireVarint), 1}
	case kindBucket, kindNative:
		return []byte{tagOf(2, wireVarint), 2}
	}
	return nil
}

func (m *txMetric) dataSize() int { return len(m.dps) + len(m.dataTrailer()) }

func (m *txMetric) size() int {
	n := sizeLenField(len(m.name)) + sizeLenField(m.dataSize())
	if m.help != "" {
		n += sizeLenField(len(m.help))
	}
	if m.unit != "" {
		n += sizeLenField(len(m.unit))
	}
	return n
}

func (m *txMetric) appendTo(b []byte) []byte {
	b = appendLenField(b, tagField2Bytes, m.size()) // ScopeMetrics.metrics
	b = appendStrField(b, tagField1Bytes, m.name)
	if m.help != "" {
		b = appendStrField(b, tagField2Bytes, m.help)
	}
	if m.unit != "" {
		b = appendStrField(b, tagMetricUnit, m.unit)
	}
	b = appendLenField(b, m.dataTag(), m.dataSize())
	b = append(b, m.dps...)
	return append(b, m.dataTrailer()...)
}

// encodeResource returns a Resource body with the attributes the
// Collector's prometheus receiver sets.
func encodeResource(job, instance, scheme string) []byte {
	var b []byte
	b = appendStrKV(b, tagField1Bytes, "service.name", job)
	b = appendStrKV(b, tagField1Bytes, "service.instance.id", instance)
	if host, port, err := net.SplitHostPort(instance); err == nil {
		b = appendStrKV(b, tagField1Bytes, "server.address", host)
		if p, err := strconv.Atoi(port); err == nil {
			const key = "server.port"
			any := 1 + protowire.SizeVarint(uint64(p))
			b = appendLenField(b, tagField1Bytes, sizeLenField(len(key))+sizeLenField(any))
			b = appendStrField(b, tagField1Bytes, key)
			b = appendLenField(b, tagField2Bytes, any)
			b = appendVarintField(b, tagAnyInt, uint64(p))
		}
	} else if instance != "" {
		b = appendStrKV(b, tagField1Bytes, "server.address", instance)
	}
	if scheme != "" {
		b = appendStrKV(b, tagField1Bytes, "url.scheme", scheme)
	}
	return b
}

// scopeSize is the size of the InstrumentationScope{name} body.
var scopeSize = sizeLenField(len(scopeName))

// appendRequest appends the ExportMetricsServiceRequest of a scrape's
// resources to b, growing b once to fit.
func appendRequest(b []byte, rbs []*resBuilder, scheme string) []byte {
	type sizes struct{ res, sm, rm int }
	sz := make([]sizes, len(rbs))
	resBodies := make([][]byte, len(rbs))
	total := 0
	for i, rb := range rbs {
		if len(rb.metrics) == 0 {
			continue // a _created sample alone, or a histogram without data
		}
		resBodies[i] = encodeResource(rb.key.job, rb.key.instance, scheme)
		sm := sizeLenField(scopeSize)
		for _, m := range rb.metrics {
			sm += sizeLenField(m.size())
		}
		rm := sizeLenField(len(resBodies[i])) + sizeLenField(sm)
		sz[i] = sizes{len(resBodies[i]), sm, rm}
		total += sizeLenField(rm)
	}
	b = slices.Grow(b, total)
	for i, rb := range rbs {
		if len(rb.metrics) == 0 {
			continue
		}
		b = appendLenField(b, tagField1Bytes, sz[i].rm)  // request.resource_metrics
		b = appendLenField(b, tagField1Bytes, sz[i].res) // resource
		b = append(b, resBodies[i]...)
		b = appendLenField(b, tagField2Bytes, sz[i].sm) // scope_metrics
		b = appendLenField(b, tagField1Bytes, scopeSize)
		b = appendStrField(b, tagField1Bytes, scopeName)
		for _, m := range rb.metrics {
			b = m.appendTo(b)
		}
	}
	return b
}

func msToNanos(ms int64) uint64 { return uint64(ms) * 1e6 }
