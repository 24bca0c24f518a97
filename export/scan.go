package export

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/obs-dev/obs/actors"
)

// This file holds a validating scanner for OTLP protobuf export requests.
// It walks the wire format without building pdata and gives the same
// accept/reject decision as plogotlp, pmetricotlp and ptraceotlp
// ExportRequest.UnmarshalProto of pdata v1.71.0, together with the item
// count pdata would report (LogRecordCount, DataPointCount, SpanCount).
//
// What pdata's generated decoder checks, and so what this scanner checks:
//   - every tag is a varint; its field number is int32(tag>>3) (high bits
//     are truncated, not rejected) and must be > 0;
//   - a known field must arrive with its declared wire type, except the
//     packed repeated scalars (HistogramDataPoint bucket_counts and
//     explicit_bounds, Buckets bucket_counts) which also accept the
//     unpacked form;
//   - a packed fixed64 field's length must be a multiple of 8, a packed
//     varint field must hold whole varints;
//   - trace ids are 0 or 16 bytes, span ids 0 or 8 bytes;
//   - varints are at most 10 bytes; the 10th byte is not range-checked;
//   - lengths are bounded by the enclosing message;
//   - unknown fields are skipped, groups with pdata's own (lenient) rules;
//   - AnyValue, ArrayValue, KeyValueList and KeyValue share a nesting depth
//     limit of 100, counted from the first KeyValue or AnyValue entered
//     from an ordinary message;
//   - strings are not checked for valid UTF-8, enum values are not checked.
//
// The scanner does not allocate on valid input and runs in time linear in
// the input. Go recursion is bounded by the fixed schema depth plus the
// AnyValue depth limit.

// scanRecursionLimit mirrors pdata's proto.RecursionLimit.
const scanRecursionLimit = 100

var (
	errScanTruncated     = errors.New("unexpected end of input")
	errScanVarint        = errors.New("varint overflows 64 bits")
	errScanLength        = errors.New("negative length")
	errScanFieldNumber   = errors.New("illegal field number")
	errScanWireType      = errors.New("wrong wire type")
	errScanIllegalWire   = errors.New("illegal wire type")
	errScanEndGroup      = errors.New("unexpected end of group")
	errScanTraceID       = errors.New("trace id is not 16 bytes")
	errScanSpanID        = errors.New("span id is not 8 bytes")
	errScanPackedLength  = errors.New("packed field length does not match its elements")
	errScanDepth         = errors.New("values nested deeper than 100 levels")
	errScanUnknownSignal = errors.New("unknown signal")
)

// scanError says where in the request the scanner gave up.
type scanError struct {
	msg    string // message type being scanned
	field  int32  // field number, 0 when the tag itself was bad
	offset int    // byte offset in the whole request
	err    error  // one of the errScan sentinels
}

func (e *scanError) Error() string {
	if e.field == 0 {
		return fmt.Sprintf("scan %s at byte %d: %v", e.msg, e.offset, e.err)
	}
	return fmt.Sprintf("scan %s field %d at byte %d: %v", e.msg, e.field, e.offset, e.err)
}

func (e *scanError) Unwrap() error { return e.err }

// scanRequest validates an OTLP protobuf export request of signal s and
// returns the number of log records, metric data points or spans in it.
// It accepts exactly what pdata's ExportRequest.UnmarshalProto accepts.
func scanRequest(s actors.Signal, p []byte) (items int, err error) {
	var root msgID
	switch s {
	case actors.SignalLogs:
		root = msgLogsRequest
	case actors.SignalMetrics:
		root = msgMetricsRequest
	case actors.SignalTraces:
		root = msgTracesRequest
	default:
		return 0, fmt.Errorf("scan request of %v: %w", s, errScanUnknownSignal)
	}
	return scanMessage(p, 0, root, 0)
}

// fieldKind is how a known field is encoded and checked.
type fieldKind uint8

const (
	kindUnknown       fieldKind = iota // not in the schema: skipped
	kindVarint                         // wire type varint
	kindFixed64                        // wire type I64
	kindFixed32                        // wire type I32
	kindBytes                          // wire type LEN, content not checked (string, bytes)
	kindTraceID                        // wire type LEN, 0 or 16 bytes
	kindSpanID                         // wire type LEN, 0 or 8 bytes
	kindPackedFixed64                  // LEN of whole fixed64s, or one I64
	kindPackedVarint                   // LEN of whole varints, or one varint
	kindMessage                        // wire type LEN, scanned as field.msg
)

// countRole is what a message field adds to its message's item count.
type countRole uint8

const (
	countNone       countRole = iota
	countOne                  // each occurrence is one item (a log record, a span, a data point)
	countSum                  // add the sub-message's items
	countScope                // like countSum, and marks that the current scope field was present
	countDeprecated           // items of the deprecated scope field, used only when no countScope field occurred
	countLast                 // a oneof member: the last occurrence's items win
)

type msgID uint8

const (
	msgLogsRequest msgID = iota
	msgResourceLogs
	msgScopeLogs
	msgLogRecord
	msgMetricsRequest
	msgResourceMetrics
	msgScopeMetrics
	msgMetric
	msgGauge
	msgSum
	msgHistogram
	msgExpHistogram
	msgSummary
	msgNumberDataPoint
	msgHistogramDataPoint
	msgExpHistogramDataPoint
	msgBuckets
	msgSummaryDataPoint
	msgValueAtQuantile
	msgExemplar
	msgTracesRequest
	msgResourceSpans
	msgScopeSpans
	msgSpan
	msgStatus
	msgSpanEvent
	msgSpanLink
	msgResource
	msgEntityRef
	msgScope
	msgKeyValue
	msgAnyValue
	msgArrayValue
	msgKeyValueList
	numMsgs
)

type fieldDesc struct {
	kind  fieldKind
	msg   msgID
	count countRole
}

// maxDirectField is the highest field number kept in msgDesc.fields; the
// only higher known field number in OTLP is 1000 (deprecated scope lists).
const maxDirectField = 16

type msgDesc struct {
	name   string
	nested bool // counts toward the AnyValue nesting limit
	fields [maxDirectField + 1]fieldDesc
	f1000  fieldDesc
}

func (d *msgDesc) field(n int32) fieldDesc {
	if n <= maxDirectField {
		return d.fields[n]
	}
	if n == 1000 {
		return d.f1000
	}
	return fieldDesc{}
}

var (
	fVarint  = fieldDesc{kind: kindVarint}
	fFixed64 = fieldDesc{kind: kindFixed64}
	fFixed32 = fieldDesc{kind: kindFixed32}
	fBytes   = fieldDesc{kind: kindBytes}
	fTraceID = fieldDesc{kind: kindTraceID}
	fSpanID  = fieldDesc{kind: kindSpanID}
)

func fMsg(m msgID, c countRole) fieldDesc { return fieldDesc{kind: kindMessage, msg: m, count: c} }

// schema is the OTLP message tree as pdata v1.71.0 decodes it. It is an
// immutable table; each entry lists the field numbers pdata's generated
// UnmarshalProto knows, in the order of the .proto files.
var schema = [numMsgs]msgDesc{
	msgLogsRequest: {name: "ExportLogsServiceRequest", fields: [17]fieldDesc{
		1: fMsg(msgResourceLogs, countSum),
	}},
	msgResourceLogs: {name: "ResourceLogs", fields: [17]fieldDesc{
		1: fMsg(msgResource, countNone),
		2: fMsg(msgScopeLogs, countScope),
		3: fBytes,
	}, f1000: fMsg(msgScopeLogs, countDeprecated)},
	msgScopeLogs: {name: "ScopeLogs", fields: [17]fieldDesc{
		1: fMsg(msgScope, countNone),
		2: fMsg(msgLogRecord, countOne),
		3: fBytes,
	}},
	msgLogRecord: {name: "LogRecord", fields: [17]fieldDesc{
		1:  fFixed64, // time_unix_nano
		11: fFixed64, // observed_time_unix_nano
		2:  fVarint,  // severity_number
		3:  fBytes,   // severity_text
		5:  fMsg(msgAnyValue, countNone),
		6:  fMsg(msgKeyValue, countNone),
		7:  fVarint,  // dropped_attributes_count
		8:  fFixed32, // flags
		9:  fTraceID,
		10: fSpanID,
		12: fBytes, // event_name
	}},

	msgMetricsRequest: {name: "ExportMetricsServiceRequest", fields: [17]fieldDesc{
		1: fMsg(msgResourceMetrics, countSum),
	}},
	msgResourceMetrics: {name: "ResourceMetrics", fields: [17]fieldDesc{
		1: fMsg(msgResource, countNone),
		2: fMsg(msgScopeMetrics, countScope),
		3: fBytes,
	}, f1000: fMsg(msgScopeMetrics, countDeprecated)},
	msgScopeMetrics: {name: "ScopeMetrics", fields: [17]fieldDesc{
		1: fMsg(msgScope, countNone),
		2: fMsg(msgMetric, countSum),
		3: fBytes,
	}},
	msgMetric: {name: "Metric", fields: [17]fieldDesc{
		1:  fBytes, // name
		2:  fBytes, // description
		3:  fBytes, // unit
		5:  fMsg(msgGauge, countLast),
		7:  fMsg(msgSum, countLast),
		9:  fMsg(msgHistogram, countLast),
		10: fMsg(msgExpHistogram, countLast),
		11: fMsg(msgSummary, countLast),
		12: fMsg(msgKeyValue, countNone), // metadata
	}},
	msgGauge: {name: "Gauge", fields: [17]fieldDesc{
		1: fMsg(msgNumberDataPoint, countOne),
	}},
	msgSum: {name: "Sum", fields: [17]fieldDesc{
		1: fMsg(msgNumberDataPoint, countOne),
		2: fVarint, // aggregation_temporality
		3: fVarint, // is_monotonic
	}},
	msgHistogram: {name: "Histogram", fields: [17]fieldDesc{
		1: fMsg(msgHistogramDataPoint, countOne),
		2: fVarint,
	}},
	msgExpHistogram: {name: "ExponentialHistogram", fields: [17]fieldDesc{
		1: fMsg(msgExpHistogramDataPoint, countOne),
		2: fVarint,
	}},
	msgSummary: {name: "Summary", fields: [17]fieldDesc{
		1: fMsg(msgSummaryDataPoint, countOne),
	}},
	msgNumberDataPoint: {name: "NumberDataPoint", fields: [17]fieldDesc{
		7: fMsg(msgKeyValue, countNone),
		2: fFixed64, // start_time_unix_nano
		3: fFixed64, // time_unix_nano
		4: fFixed64, // as_double
		6: fFixed64, // as_int (sfixed64)
		5: fMsg(msgExemplar, countNone),
		8: fVarint, // flags
	}},
	msgHistogramDataPoint: {name: "HistogramDataPoint", fields: [17]fieldDesc{
		9:  fMsg(msgKeyValue, countNone),
		2:  fFixed64,
		3:  fFixed64,
		4:  fFixed64,                  // count
		5:  fFixed64,                  // sum
		6:  {kind: kindPackedFixed64}, // bucket_counts
		7:  {kind: kindPackedFixed64}, // explicit_bounds
		8:  fMsg(msgExemplar, countNone),
		10: fVarint,  // flags
		11: fFixed64, // min
		12: fFixed64, // max
	}},
	msgExpHistogramDataPoint: {name: "ExponentialHistogramDataPoint", fields: [17]fieldDesc{
		1:  fMsg(msgKeyValue, countNone),
		2:  fFixed64,
		3:  fFixed64,
		4:  fFixed64, // count
		5:  fFixed64, // sum
		6:  fVarint,  // scale (sint32)
		7:  fFixed64, // zero_count
		8:  fMsg(msgBuckets, countNone),
		9:  fMsg(msgBuckets, countNone),
		10: fVarint, // flags
		11: fMsg(msgExemplar, countNone),
		12: fFixed64, // min
		13: fFixed64, // max
		14: fFixed64, // zero_threshold
	}},
	msgBuckets: {name: "ExponentialHistogramDataPoint.Buckets", fields: [17]fieldDesc{
		1: fVarint,                  // offset (sint32)
		2: {kind: kindPackedVarint}, // bucket_counts
	}},
	msgSummaryDataPoint: {name: "SummaryDataPoint", fields: [17]fieldDesc{
		7: fMsg(msgKeyValue, countNone),
		2: fFixed64,
		3: fFixed64,
		4: fFixed64, // count
		5: fFixed64, // sum
		6: fMsg(msgValueAtQuantile, countNone),
		8: fVarint, // flags
	}},
	msgValueAtQuantile: {name: "SummaryDataPoint.ValueAtQuantile", fields: [17]fieldDesc{
		1: fFixed64,
		2: fFixed64,
	}},
	msgExemplar: {name: "Exemplar", fields: [17]fieldDesc{
		7: fMsg(msgKeyValue, countNone), // filtered_attributes
		2: fFixed64,                     // time_unix_nano
		3: fFixed64,                     // as_double
		6: fFixed64,                     // as_int
		5: fTraceID,
		4: fSpanID,
	}},

	msgTracesRequest: {name: "ExportTraceServiceRequest", fields: [17]fieldDesc{
		1: fMsg(msgResourceSpans, countSum),
	}},
	msgResourceSpans: {name: "ResourceSpans", fields: [17]fieldDesc{
		1: fMsg(msgResource, countNone),
		2: fMsg(msgScopeSpans, countScope),
		3: fBytes,
	}, f1000: fMsg(msgScopeSpans, countDeprecated)},
	msgScopeSpans: {name: "ScopeSpans", fields: [17]fieldDesc{
		1: fMsg(msgScope, countNone),
		2: fMsg(msgSpan, countOne),
		3: fBytes,
	}},
	msgSpan: {name: "Span", fields: [17]fieldDesc{
		1:  fTraceID,
		2:  fSpanID,
		3:  fBytes,   // trace_state
		4:  fSpanID,  // parent_span_id
		16: fFixed32, // flags
		5:  fBytes,   // name
		6:  fVarint,  // kind
		7:  fFixed64, // start_time_unix_nano
		8:  fFixed64, // end_time_unix_nano
		9:  fMsg(msgKeyValue, countNone),
		10: fVarint,
		11: fMsg(msgSpanEvent, countNone),
		12: fVarint,
		13: fMsg(msgSpanLink, countNone),
		14: fVarint,
		15: fMsg(msgStatus, countNone),
	}},
	msgStatus: {name: "Status", fields: [17]fieldDesc{
		2: fBytes,  // message
		3: fVarint, // code
	}},
	msgSpanEvent: {name: "Span.Event", fields: [17]fieldDesc{
		1: fFixed64,
		2: fBytes,
		3: fMsg(msgKeyValue, countNone),
		4: fVarint,
	}},
	msgSpanLink: {name: "Span.Link", fields: [17]fieldDesc{
		1: fTraceID,
		2: fSpanID,
		3: fBytes,
		4: fMsg(msgKeyValue, countNone),
		5: fVarint,
		6: fFixed32, // flags
	}},

	msgResource: {name: "Resource", fields: [17]fieldDesc{
		1: fMsg(msgKeyValue, countNone),
		2: fVarint, // dropped_attributes_count
		3: fMsg(msgEntityRef, countNone),
	}},
	msgEntityRef: {name: "EntityRef", fields: [17]fieldDesc{
		1: fBytes, // schema_url
		2: fBytes, // type
		3: fBytes, // id_keys
		4: fBytes, // description_keys
	}},
	msgScope: {name: "InstrumentationScope", fields: [17]fieldDesc{
		1: fBytes,
		2: fBytes,
		3: fMsg(msgKeyValue, countNone),
		4: fVarint,
	}},
	msgKeyValue: {name: "KeyValue", nested: true, fields: [17]fieldDesc{
		1: fBytes, // key
		2: fMsg(msgAnyValue, countNone),
		3: fVarint, // key_strindex
	}},
	msgAnyValue: {name: "AnyValue", nested: true, fields: [17]fieldDesc{
		1: fBytes,  // string_value
		2: fVarint, // bool_value
		3: fVarint, // int_value
		4: fFixed64,
		5: fMsg(msgArrayValue, countNone),
		6: fMsg(msgKeyValueList, countNone),
		7: fBytes,  // bytes_value
		8: fVarint, // string_value_strindex
	}},
	msgArrayValue: {name: "ArrayValue", nested: true, fields: [17]fieldDesc{
		1: fMsg(msgAnyValue, countNone),
	}},
	msgKeyValueList: {name: "KeyValueList", nested: true, fields: [17]fieldDesc{
		1: fMsg(msgKeyValue, countNone),
	}},
}

// scanMessage scans b as message m. base is b's offset in the request (for
// errors only); depth is the AnyValue nesting depth as pdata counts it.
func scanMessage(b []byte, base int, m msgID, depth int) (int, error) {
	d := &schema[m]
	if d.nested {
		if depth >= scanRecursionLimit {
			return 0, &scanError{msg: d.name, offset: base, err: errScanDepth}
		}
		depth++
	}
	var (
		items      int
		scopes     int // occurrences of a countScope field
		deprecated int // items of countDeprecated fields
		pos        int
	)
	// The hot paths (one-byte tags and lengths, strings, fixed-width
	// fields) are written out inline: this loop runs for every field of
	// every request a receiver takes.
	for pos < len(b) {
		start := pos
		var tag uint64
		if c := b[pos]; c < 0x80 {
			tag, pos = uint64(c), pos+1
		} else if tag, pos = scanVarint(b, pos); pos < 0 {
			return 0, scanFail(d, 0, base+start, varintErr(pos))
		}
		num := int32(tag >> 3) // pdata truncates, it does not range-check
		wt := protowire.Type(tag & 7)
		if num <= 0 {
			return 0, scanFail(d, 0, base+start, errScanFieldNumber)
		}
		var f fieldDesc
		if num <= maxDirectField {
			f = d.fields[num]
		} else if num == 1000 {
			f = d.f1000
		}
		var err error
		switch f.kind {
		case kindUnknown:
			if pos = skipUnknown(b, pos, wt); pos < 0 {
				err = varintErr(pos)
			}
		case kindVarint:
			switch {
			case wt != protowire.VarintType:
				err = errScanWireType
			case pos < len(b) && b[pos] < 0x80:
				pos++
			default:
				if _, pos = scanVarint(b, pos); pos < 0 {
					err = varintErr(pos)
				}
			}
		case kindFixed64:
			if wt != protowire.Fixed64Type {
				err = errScanWireType
			} else if pos += 8; pos > len(b) {
				err = errScanTruncated
			}
		case kindFixed32:
			if wt != protowire.Fixed32Type {
				err = errScanWireType
			} else if pos += 4; pos > len(b) {
				err = errScanTruncated
			}
		case kindPackedFixed64:
			switch wt {
			case protowire.Fixed64Type:
				if pos += 8; pos > len(b) {
					err = errScanTruncated
				}
			case protowire.BytesType:
				var v []byte
				var n int
				if v, pos, n = scanLen(b, pos); n < 0 {
					err = varintErr(n)
				} else if len(v)%8 != 0 {
					err = errScanPackedLength
				}
			default:
				err = errScanWireType
			}
		case kindPackedVarint:
			switch wt {
			case protowire.VarintType:
				if _, pos = scanVarint(b, pos); pos < 0 {
					err = varintErr(pos)
				}
			case protowire.BytesType:
				var v []byte
				var n int
				if v, pos, n = scanLen(b, pos); n < 0 {
					err = varintErr(n)
					break
				}
				for i := 0; i < len(v); {
					if _, i = scanVarint(v, i); i < 0 {
						err = varintErr(i)
						break
					}
				}
			default:
				err = errScanWireType
			}
		default: // length-delimited kinds
			if wt != protowire.BytesType {
				err = errScanWireType
				break
			}
			var v []byte
			if pos < len(b) && b[pos] < 0x80 {
				end := pos + 1 + int(b[pos])
				if end > len(b) {
					err = errScanTruncated
					break
				}
				v, pos = b[pos+1:end], end
			} else {
				var n int
				if v, pos, n = scanLen(b, pos); n < 0 {
					err = varintErr(n)
					break
				}
			}
			switch f.kind {
			case kindTraceID:
				if len(v) != 0 && len(v) != 16 {
					err = errScanTraceID
				}
			case kindSpanID:
				if len(v) != 0 && len(v) != 8 {
					err = errScanSpanID
				}
			case kindMessage:
				sub, serr := scanMessage(v, base+pos-len(v), f.msg, depth)
				if serr != nil {
					return 0, serr
				}
				switch f.count {
				case countOne:
					items++
				case countSum:
					items += sub
				case countScope:
					items += sub
					scopes++
				case countDeprecated:
					deprecated += sub
				case countLast:
					items = sub
				}
			}
		}
		if err != nil {
			return 0, scanFail(d, num, base+start, err)
		}
	}
	if scopes == 0 {
		// pdata's Migrate*: the deprecated scope list is used only when
		// the current one is empty.
		items += deprecated
	}
	return items, nil
}

// scanFail builds the error of a failed field; kept out of the loop.
//
//go:noinline
func scanFail(d *msgDesc, num int32, offset int, err error) error {
	return &scanError{msg: d.name, field: num, offset: offset, err: err}
}

// Negative positions returned by the scan helpers name the failure.
const (
	scanErrTruncated = -1 - iota
	scanErrOverflow
	scanErrLength
	scanErrIllegalWire
	scanErrEndGroup
	scanErrFieldNumber
)

func varintErr(n int) error {
	switch n {
	case scanErrOverflow:
		return errScanVarint
	case scanErrLength:
		return errScanLength
	case scanErrIllegalWire:
		return errScanIllegalWire
	case scanErrEndGroup:
		return errScanEndGroup
	case scanErrFieldNumber:
		return errScanFieldNumber
	}
	return errScanTruncated
}

// scanVarint reads a varint at b[pos:] the way pdata's proto.ConsumeVarint
// does: at most 10 bytes, and bits beyond 64 in the 10th byte are dropped,
// not rejected (protowire.ConsumeVarint would reject them, so it is not
// used here). It returns the value and the next position, or a negative
// error code as the position.
func scanVarint(b []byte, pos int) (uint64, int) {
	// Fast path: one byte.
	if pos < len(b) && b[pos] < 0x80 {
		return uint64(b[pos]), pos + 1
	}
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if pos >= len(b) {
			return 0, scanErrTruncated
		}
		c := b[pos]
		pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, pos
		}
	}
	return 0, scanErrOverflow
}

// scanLen reads a length prefix and returns the bytes it covers and the
// position after them, or a negative error code in the third result.
func scanLen(b []byte, pos int) ([]byte, int, int) {
	l, n := scanVarint(b, pos)
	if n < 0 {
		return nil, 0, n
	}
	length := int(l)
	if length < 0 {
		return nil, 0, scanErrLength
	}
	end := n + length
	if end < 0 || end > len(b) {
		return nil, 0, scanErrTruncated
	}
	return b[n:end], end, 0
}

// skipUnknown skips the value of an unknown field exactly like pdata's
// proto.ConsumeUnknown, including its handling of groups: a start-group
// tag opens a group whose following tags are read until the group depth
// returns to zero, but the first non-group field inside it ends the skip
// after its value. It returns the next position or a negative error code.
func skipUnknown(b []byte, pos int, wt protowire.Type) int {
	depth := 0
	for pos < len(b) {
		switch wt {
		case protowire.VarintType:
			_, n := scanVarint(b, pos)
			return n
		case protowire.Fixed64Type:
			if pos += 8; pos > len(b) {
				return scanErrTruncated
			}
			return pos
		case protowire.BytesType:
			_, end, n := scanLen(b, pos)
			if n < 0 {
				return n
			}
			return end
		case protowire.StartGroupType:
			depth++
		case protowire.EndGroupType:
			if depth == 0 {
				return scanErrEndGroup
			}
			depth--
		case protowire.Fixed32Type:
			if pos += 4; pos > len(b) {
				return scanErrTruncated
			}
			return pos
		default:
			return scanErrIllegalWire
		}
		if depth == 0 {
			return pos
		}
		tag, n := scanVarint(b, pos)
		if n < 0 {
			return n
		}
		if int32(tag>>3) <= 0 {
			return scanErrFieldNumber
		}
		wt = protowire.Type(tag & 7)
		pos = n
	}
	return scanErrTruncated
}
