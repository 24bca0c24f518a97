package otelpeer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	requests    = 3 // export requests per signal
	perRequest  = 5 // records per request
	testTimeout = 30 * time.Second
)

func makeLogs(req int) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "otelpeer-test")
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("otelpeer")
	for i := range perRequest {
		lr := sl.LogRecords().AppendEmpty()
		lr.Body().SetStr(fmt.Sprintf("log-%d-%d", req, i))
		lr.Attributes().PutInt("req", int64(req))
		lr.Attributes().PutInt("seq", int64(i))
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Unix(1_700_000_000, int64(req*perRequest+i))))
	}
	return ld
}

func makeMetrics(req int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "otelpeer-test")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(fmt.Sprintf("otelpeer_gauge_%d", req))
	g := m.SetEmptyGauge()
	for i := range perRequest {
		dp := g.DataPoints().AppendEmpty()
		dp.SetIntValue(int64(req*100 + i))
		dp.Attributes().PutInt("seq", int64(i))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Unix(1_700_000_000, 0)))
	}
	return md
}

func makeTraces(req int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "otelpeer-test")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range perRequest {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(fmt.Sprintf("span-%d-%d", req, i))
		sp.SetTraceID(pcommon.TraceID{byte(req + 1), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1), 1, 2, 3, 4, 5, 6, 7})
		sp.Attributes().PutStr("k", fmt.Sprintf("v%d", i))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Unix(1_700_000_000, 0)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Unix(1_700_000_001, 0)))
	}
	return td
}

func logBodies(v []plog.Logs) []string {
	var out []string
	for _, ld := range v {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					out = append(out, lr.Body().Str())
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func spanNames(v []ptrace.Traces) []string {
	var out []string
	for _, td := range v {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					out = append(out, sp.Name())
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func gaugeValues(v []pmetric.Metrics) map[string][]int64 {
	out := map[string][]int64{}
	for _, md := range v {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					for _, dp := range m.Gauge().DataPoints().All() {
						out[m.Name()] = append(out[m.Name()], dp.IntValue())
					}
				}
			}
		}
	}
	for _, vals := range out {
		sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	}
	return out
}

// TestForwarderToSink pushes logs, metrics and traces with pdata's OTLP gRPC
// clients into a real Collector forwarding to a real Collector sink, over
// each exporter protocol, and checks the sink holds exactly what was sent.
func TestForwarderToSink(t *testing.T) {
	for _, protocol := range []string{"grpc", "http"} {
		t.Run(protocol, func(t *testing.T) {
			sink := StartSink(t)
			target := sink.GRPCAddr
			if protocol == "http" {
				target = sink.HTTPAddr
			}
			fwd := StartForwarder(t, target, protocol, WithoutQueue())

			conn, err := grpc.NewClient(fwd.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()

			var wantBodies, wantSpans []string
			wantGauges := map[string][]int64{}
			for req := range requests {
				_, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(makeLogs(req)))
				require.NoError(t, err)
				_, err = pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(makeMetrics(req)))
				require.NoError(t, err)
				_, err = ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(makeTraces(req)))
				require.NoError(t, err)
				for i := range perRequest {
					wantBodies = append(wantBodies, fmt.Sprintf("log-%d-%d", req, i))
					wantSpans = append(wantSpans, fmt.Sprintf("span-%d-%d", req, i))
					name := fmt.Sprintf("otelpeer_gauge_%d", req)
					wantGauges[name] = append(wantGauges[name], int64(req*100+i))
				}
			}
			sort.Strings(wantBodies)
			sort.Strings(wantSpans)
			total := requests * perRequest

			sink.WaitLogRecords(t, total, testTimeout)
			sink.WaitDataPoints(t, total, testTimeout)
			sink.WaitSpans(t, total, testTimeout)
			// Stop the sink (SIGTERM flushes the files), so a duplicate
			// arriving late would be counted too.
			require.NoError(t, fwd.Stop())
			require.NoError(t, sink.Stop())

			logs := sink.Logs(t)
			require.Len(t, logs, requests, "one line per export request")
			require.Equal(t, total, sink.LogRecordCount(t))
			require.Equal(t, wantBodies, logBodies(logs))
			lr := logs[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
			seq, ok := lr.Attributes().Get("seq")
			require.True(t, ok, "log attribute seq lost")
			require.Equal(t, pcommon.ValueTypeInt, seq.Type())
			svc, ok := logs[0].ResourceLogs().At(0).Resource().Attributes().Get("service.name")
			require.True(t, ok)
			require.Equal(t, "otelpeer-test", svc.Str())
			require.Equal(t, plog.SeverityNumberInfo, lr.SeverityNumber())

			require.Equal(t, total, sink.DataPointCount(t))
			require.Equal(t, wantGauges, gaugeValues(sink.Metrics(t)))

			traces := sink.Traces(t)
			require.Equal(t, total, sink.SpanCount(t))
			require.Equal(t, wantSpans, spanNames(traces))
			sp := traces[0].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
			require.False(t, sp.TraceID().IsEmpty())
			k, ok := sp.Attributes().Get("k")
			require.True(t, ok, "span attribute k lost")
			require.Contains(t, k.Str(), "v")
		})
	}
}

// TestForwarderRefusedTarget: with the queue off, a forwarder whose target
// is down fails the client's export, so the harness can test refusals.
func TestForwarderRefusedTarget(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	fwd := StartForwarder(t, dead, "grpc", WithoutQueue(), WithoutRetry())
	conn, err := grpc.NewClient(fwd.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err = plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(makeLogs(0)))
	require.Error(t, err)
}

func TestCollectorKill(t *testing.T) {
	sink := StartSink(t)
	sink.Kill()
	select {
	case <-sink.Done():
	default:
		t.Fatal("Done not closed after Kill")
	}
	sink.Kill() // idempotent
	require.NoError(t, sink.Stop(), "Stop after Kill reports nothing new")
}

func TestReadLinesPartialLastLine(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" with missing=true means no file
		missing bool
		want    []string
	}{
		{name: "missing file", missing: true},
		{name: "empty", content: ""},
		{name: "only partial", content: `{"resourceLogs":[`},
		{name: "complete", content: "a\nb\n", want: []string{"a", "b"}},
		{name: "partial last", content: "a\nb\n{\"res", want: []string{"a", "b"}},
		{name: "blank lines", content: "a\n\n  \nb\n", want: []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.jsonl")
			if !tc.missing {
				require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			}
			lines, err := readLines(path)
			require.NoError(t, err)
			var got []string
			for _, l := range lines {
				got = append(got, string(l))
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseFileRejectsCorruptLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.jsonl")
	b, err := (&plog.JSONMarshaler{}).MarshalLogs(makeLogs(0))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(append(b, '\n'), "not json\n"...), 0o600))
	var u plog.JSONUnmarshaler
	_, err = parseFile(path, u.UnmarshalLogs)
	require.ErrorContains(t, err, "line 2")

	require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o600))
	got, err := parseFile(path, u.UnmarshalLogs)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, perRequest, got[0].LogRecordCount())
}

func TestForwarderConfig(t *testing.T) {
	tests := []struct {
		name, target, protocol string
		opts                   ForwarderOptions
		wantErr                bool
		contains               []string
	}{
		{name: "grpc", target: "127.0.0.1:4317", protocol: "grpc", contains: []string{"otlp_grpc:", `endpoint: "127.0.0.1:4317"`, "enabled: true"}},
		{name: "http adds scheme", target: "127.0.0.1:4318", protocol: "http", contains: []string{"otlp_http:", `endpoint: "http://127.0.0.1:4318"`}},
		{name: "options", target: "127.0.0.1:1", protocol: "grpc", opts: ForwarderOptions{NoQueue: true, NoRetry: true, Compression: "none", Batch: true}, contains: []string{"enabled: false", `compression: "none"`, "processors: [batch]"}},
		{name: "bad protocol", target: "127.0.0.1:1", protocol: "kafka", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ForwarderConfig(tc.target, tc.protocol, "127.0.0.1:1", "127.0.0.1:2", tc.opts)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			for _, s := range tc.contains {
				require.Contains(t, cfg, s)
			}
		})
	}
}

// TestStartBadConfig: a collector that cannot start is reported with its
// output instead of hanging until the ready timeout.
func TestStartBadConfig(t *testing.T) {
	bin := Binary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	began := time.Now()
	_, err := start(t, bin, "receivers:\n  nosuchreceiver: {}\n", []string{addr})
	require.Error(t, err)
	require.ErrorContains(t, err, "exited before")
	require.ErrorContains(t, err, "nosuchreceiver", "error carries the collector's output")
	require.Less(t, time.Since(began), readyTimeout/2)
}

// FuzzParseLogs: whatever bytes are in a sink file, parsing returns records
// or an error, never panics, and never returns the unterminated last line.
func FuzzParseLogs(f *testing.F) {
	b, err := (&plog.JSONMarshaler{}).MarshalLogs(makeLogs(0))
	require.NoError(f, err)
	f.Add(append(b, '\n'))
	f.Add(append(append(b, '\n'), b[:len(b)/2]...))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{}]}]}]}` + "\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "logs.jsonl")
		require.NoError(t, os.WriteFile(path, data, 0o600))
		lines, err := readLines(path)
		require.NoError(t, err)
		for _, l := range lines {
			require.NotContains(t, string(l), "\n")
		}
		var u plog.JSONUnmarshaler
		got, err := parseFile(path, u.UnmarshalLogs)
		if err == nil {
			require.Len(t, got, len(lines))
		}
	})
}
