package logs

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The raw path writes OTLP protobuf (an ExportLogsServiceRequest) directly,
// without pdata, when no operator but container runs: a pipeline that only
// batches and stores the batch never builds pdata for file lines. Field
// numbers are those of opentelemetry/proto/logs/v1 and common/v1.
const (
	tagResourceLogs = 1<<3 | 2 // ExportLogsServiceRequest.resource_logs
	tagResource     = 1<<3 | 2 // ResourceLogs.resource
	tagScopeLogs    = 2<<3 | 2 // ResourceLogs.scope_logs
	tagResAttr      = 1<<3 | 2 // Resource.attributes
	tagLogRecord    = 2<<3 | 2 // ScopeLogs.log_records
	tagTime         = 1<<3 | 1 // LogRecord.time_unix_nano (fixed64)
	tagBody         = 5<<3 | 2 // LogRecord.body
	tagAttr         = 6<<3 | 2 // LogRecord.attributes
	tagObserved     = 11<<3 | 1
	tagKey          = 1<<3 | 2 // KeyValue.key
	tagValue        = 2<<3 | 2 // KeyValue.value
	tagStringValue  = 1<<3 | 2 // AnyValue.string_value
	tagBytesValue   = 7<<3 | 2 // AnyValue.bytes_value
)

func varintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func appendVarint(b []byte, x uint64) []byte { return binary.AppendUvarint(b, x) }

// lenField is the encoded size of a length-delimited field of n bytes.
func lenField(n int) int { return 1 + varintLen(uint64(n)) + n }

func strValueSize(v string) int { return lenField(len(v)) } // AnyValue{string_value}

func kvSize(k, v string) int { return lenField(len(k)) + lenField(strValueSize(v)) }

func appendKV(b []byte, tag byte, k, v string) []byte {
	b = append(b, tag)
	b = appendVarint(b, uint64(kvSize(k, v)))
	b = append(b, tagKey)
	b = appendVarint(b, uint64(len(k)))
	b = append(b, k...)
	b = append(b, tagValue)
	b = appendVarint(b, uint64(strValueSize(v)))
	b = append(b, tagStringValue)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// rawAttrs are the attributes of one record on the raw path.
type rawAttrs struct {
	kv [8][2]string
	n  int
}

func (a *rawAttrs) add(k, v string) {
	if a.n < len(a.kv) {
		a.kv[a.n] = [2]string{k, v}
		a.n++
	}
}

// appendRawRecord appends one ScopeLogs.log_records field to dst. extra
// attributes (static ones) follow a's.
func appendRawRecord(dst []byte, ts, observed int64, body []byte, bodyBytes bool, a *rawAttrs, extra [][2]string) []byte {
	if !bodyBytes && !utf8.Valid(body) {
		body = []byte(strings.ToValidUTF8(string(body), "\uFFFD"))
	}
	bodyAV := lenField(len(body))
	size := lenField(bodyAV) + 9 // body, observed time
	if ts != 0 {
		size += 9
	}
	for i := range a.n {
		size += lenField(kvSize(a.kv[i][0], a.kv[i][1]))
	}
	for _, kv := range extra {
		size += lenField(kvSize(kv[0], kv[1]))
	}
	dst = append(dst, tagLogRecord)
	dst = appendVarint(dst, uint64(size))
	if ts != 0 {
		dst = append(dst, tagTime)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(ts))
	}
	dst = append(dst, tagBody)
	dst = appendVarint(dst, uint64(bodyAV))
	if bodyBytes {
		dst = append(dst, tagBytesValue)
	} else {
		dst = append(dst, tagStringValue)
	}
	dst = appendVarint(dst, uint64(len(body)))
	dst = append(dst, body...)
	for i := range a.n {
		dst = appendKV(dst, tagAttr, a.kv[i][0], a.kv[i][1])
	}
	for _, kv := range extra {
		dst = appendKV(dst, tagAttr, kv[0], kv[1])
	}
	dst = append(dst, tagObserved)
	return binary.LittleEndian.AppendUint64(dst, uint64(observed))
}

// rawResource encodes a file's resource attributes once (the Resource
// message's content).
func rawResource(res pcommon.Map) []byte {
	var b []byte
	for k, v := range res.All() {
		b = appendKV(b, tagResAttr, k, v.AsString())
	}
	return b
}

// rawResourceLogsSize is the content size of one ResourceLogs for a file.
func rawResourceLogsSize(res, records []byte) int {
	return lenField(len(res)) + lenField(len(records))
}

// appendRawResourceLogs appends one ExportLogsServiceRequest.resource_logs.
func appendRawResourceLogs(dst, res, records []byte) []byte {
	dst = append(dst, tagResourceLogs)
	dst = appendVarint(dst, uint64(rawResourceLogsSize(res, records)))
	dst = append(dst, tagResource)
	dst = appendVarint(dst, uint64(len(res)))
	dst = append(dst, res...)
	dst = append(dst, tagScopeLogs)
	dst = appendVarint(dst, uint64(len(records)))
	return append(dst, records...)
}
