// Package export moves OTLP data in and out of obs: the OTLP receiver (gRPC
// and HTTP), the senders that ship WAL payloads to backends (otlp, otlphttp,
// debug, file) and the retry policy the WAL drain loop applies to them.
//
// A WAL payload is the OTLP protobuf export request of one signal
// (plogotlp.NewExportRequestFromLogs(l).MarshalProto() and its metrics and
// traces equivalents). Senders ship those bytes as they are where the wire
// format allows it.
package export
