package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/obs-dev/obs/test/obsproc"
)

// rawCodec sends a []byte as the gRPC message as is, so a test can put
// any bytes on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// TestBadInput sends malformed OTLP to a running obs over HTTP and gRPC:
// each gets a client error with a message, and obs keeps serving.
func TestBadInput(t *testing.T) {
	obs := newObs(t, obsConfig{Exporters: otlpExporter("otlp/nowhere", obsproc.Addr(t, "127.0.0.1")), ExporterIDs: []string{"otlp/nowhere"}})
	obs.Start()

	valid, err := plogotlp.NewExportRequestFromLogs(makeLogs(0, 5)).MarshalProto()
	require.NoError(t, err)
	validJSON, err := plogotlp.NewExportRequestFromLogs(makeLogs(0, 5)).MarshalJSON()
	require.NoError(t, err)
	gzipGarbage := []byte{0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 'n', 'o', 't', ' ', 'd', 'e', 'f', 'l', 'a', 't', 'e'}

	t.Run("http", func(t *testing.T) {
		tests := []struct {
			name, contentType, encoding string
			body                        []byte
			wantStatus                  int
			wantCode                    codes.Code
		}{
			{"garbage protobuf", "application/x-protobuf", "", []byte("\xff\xff\xff\xff\x0fnot a protobuf"), http.StatusBadRequest, codes.InvalidArgument},
			{"truncated protobuf", "application/x-protobuf", "", valid[:len(valid)/2], http.StatusBadRequest, codes.InvalidArgument},
			{"truncated json", "application/json", "", validJSON[:len(validJSON)/2], http.StatusBadRequest, codes.InvalidArgument},
			{"wrong content type", "text/plain", "", valid, http.StatusUnsupportedMediaType, codes.Unimplemented},
			{"gzip header, garbage body", "application/x-protobuf", "gzip", gzipGarbage, http.StatusBadRequest, codes.InvalidArgument},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				req, err := http.NewRequest(http.MethodPost, "http://"+obs.Addr("http")+"/v1/logs", bytes.NewReader(tc.body))
				require.NoError(t, err)
				req.Header.Set("Content-Type", tc.contentType)
				if tc.encoding != "" {
					req.Header.Set("Content-Encoding", tc.encoding)
				}
				rsp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
				require.NoError(t, err)
				body, err := io.ReadAll(rsp.Body)
				rsp.Body.Close()
				require.NoError(t, err)
				require.Equal(t, tc.wantStatus, rsp.StatusCode, "body %q", body)
				var st spb.Status
				if strings.HasPrefix(rsp.Header.Get("Content-Type"), "application/json") {
					require.NoError(t, protojson.Unmarshal(body, &st), "body %q", body)
				} else {
					require.NoError(t, proto.Unmarshal(body, &st), "body %q", body)
				}
				require.Equal(t, int32(tc.wantCode), st.GetCode())
				require.NotEmpty(t, st.GetMessage())
				t.Logf("%d: %s", rsp.StatusCode, st.GetMessage())
			})
		}
	})

	t.Run("grpc", func(t *testing.T) {
		conn := dial(t, obs.Addr("grpc"))
		tests := []struct {
			name string
			body []byte
		}{
			{"garbage", []byte("\xff\xff\xff\xff\x0fnot a protobuf")},
			{"truncated", valid[:len(valid)/2]},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				in, out := tc.body, []byte(nil)
				err := conn.Invoke(ctx, "/opentelemetry.proto.collector.logs.v1.LogsService/Export", &in, &out,
					grpc.ForceCodecV2(rawCodec{}))
				st := status.Convert(err)
				require.Equal(t, codes.InvalidArgument, st.Code(), "error %v", err)
				require.NotEmpty(t, st.Message())
				t.Logf("%s: %s", st.Code(), st.Message())
			})
		}
	})

	// obs still takes good data after all that.
	_, err = plogotlp.NewGRPCClient(dial(t, obs.Addr("grpc"))).Export(context.Background(), plogotlp.NewExportRequestFromLogs(makeLogs(1, 5)))
	require.NoError(t, err)
	accepted, err := obs.Metric("otelcol_receiver_accepted_log_records")
	require.NoError(t, err)
	require.Equal(t, float64(5), accepted, "only the good request counts as accepted")
}

// brokenBase is a valid config; the cases below break one thing in it.
// Line numbers matter: the expected errors name them.
const brokenBase = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 1s
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:9
    headers:
      api-key: supersecret-123
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlphttp]
`

// TestBrokenConfigs runs `obs validate` and `obs run` on broken files: both
// exit non-zero and print the file, line, key and problem.
func TestBrokenConfigs(t *testing.T) {
	const unset = "OBS_E2E_SURELY_UNSET_VAR"
	_, isSet := os.LookupEnv(unset)
	require.False(t, isSet, "%s must not be set for this test", unset)
	tests := []struct {
		name    string
		edits   []string // old, new, ... replaced in brokenBase
		wantErr []string // in both outputs; {file} stands for the file path
		// validate exits 0 when wantValidateOK, printing wantValidate;
		// run prints wantRun. Both default to wantErr.
		wantValidateOK bool
		wantValidate   []string
		wantRun        []string
	}{
		{name: "unknown key", edits: []string{"    timeout: 1s\n", "    timeout: 1s\n    send_batch_sise: 10\n"},
			wantErr: []string{"{file}:9: processors.batch.send_batch_sise: unknown key"}},
		{name: "typo in a processor referenced by a pipeline", edits: []string{"processors: [batch]", "processors: [bacth]"},
			wantErr: []string{`{file}:18: service.pipelines.logs.processors: "bacth" is not defined under processors`}},
		{name: "typo in an exporter type", edits: []string{"  otlphttp:\n", "  otlphtp:\n"},
			// The pipeline's reference fails first; "unknown exporter type" is
			// reported once the references resolve.
			wantErr: []string{`{file}:19: service.pipelines.logs.exporters: "otlphttp" is not defined under exporters`}},
		{name: "missing pipeline component", edits: []string{"exporters: [otlphttp]", "exporters: [otlphttp, otlp/backup]"},
			wantErr: []string{`{file}:19: service.pipelines.logs.exporters: "otlp/backup" is not defined under exporters`}},
		{name: "bad duration", edits: []string{"timeout: 1s", "timeout: 5 parsecs"},
			wantErr: []string{"{file}:8: processors.batch.timeout: want a duration like 5s"}},
		{name: "unset variable", edits: []string{"api-key: supersecret-123", "api-key: ${env:" + unset + "}"},
			wantValidateOK: true,
			wantValidate:   []string{`warning: {file}:13: exporters.otlphttp.headers.api-key: environment variable "` + unset + `" is not set`, "ok: 1 pipelines"},
			wantRun:        []string{`{file}:13: exporters.otlphttp.headers.api-key: environment variable "` + unset + `" is not set and has no default`}},
		{name: "unset variable and a bad duration",
			edits: []string{"timeout: 1s", "timeout: 5 parsecs", "api-key: supersecret-123", "api-key: ${env:" + unset + "}"},
			wantValidate: []string{`warning: {file}:13: exporters.otlphttp.headers.api-key: environment variable "` + unset + `" is not set`,
				"{file}:8: processors.batch.timeout: want a duration like 5s"},
			wantRun: []string{`environment variable "` + unset + `" is not set and has no default`}},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := brokenBase
			for e := 0; e < len(tc.edits); e += 2 {
				src = strings.Replace(src, tc.edits[e], tc.edits[e+1], 1)
			}
			require.NotEqual(t, brokenBase, src, "case changes nothing")
			path := filepath.Join(dir, fmt.Sprintf("broken-%d.yaml", i))
			require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
			expand := func(want []string) []string {
				if want == nil {
					want = tc.wantErr
				}
				out := make([]string, len(want))
				for i, w := range want {
					out[i] = strings.ReplaceAll(w, "{file}", path)
				}
				return out
			}

			code, stdout, stderr := obsproc.Run(t, 20*time.Second, nil, "validate", "--config", path)
			all := stdout + stderr
			if tc.wantValidateOK {
				require.Zero(t, code, "validate output:\n%s", all)
			} else {
				require.NotZero(t, code, "validate output:\n%s", all)
			}
			for _, w := range expand(tc.wantValidate) {
				require.Contains(t, all, w)
			}

			code, stdout, stderr = obsproc.Run(t, 20*time.Second, nil, "run", "--config", path, "--data-dir", t.TempDir(),
				"--admin-addr", "127.0.0.1:0", "--no-cluster")
			all = stdout + stderr
			require.NotZero(t, code, "run output:\n%s", all)
			for _, w := range expand(tc.wantRun) {
				require.Contains(t, all, w)
			}
			require.NotContains(t, all, "supersecret-123", "a broken config's error shows the secret")
		})
	}
}

// TestValidateSeedConfigs checks the three seed configs with their
// variables set: every component they use is implemented, so validate
// passes and warns about nothing but the unused exporter.
func TestValidateSeedConfigs(t *testing.T) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	env := []string{"K8S_POD_IP=10.0.1.5", "K8S_NODE_NAME=node-a", "K8S_NODE_IP=172.16.1.7",
		"OTEL_RESOURCE_ATTRIBUTES=host.name=node-a", "METRICS_SCRAPE_INTERVAL=1m"}
	for _, name := range []string{"seed-agent.yaml", "seed-gateway.yaml", "seed-clusteragent.yaml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(root, "config", "testdata", name)
			code, stdout, stderr := obsproc.Run(t, 20*time.Second, env, "validate", "--config", path)
			require.Zero(t, code, "validate refused a seed config:\n%s", stderr)
			require.Contains(t, stdout, "ok:")
			for line := range strings.SplitSeq(strings.TrimSpace(stderr), "\n") {
				if line != "" {
					require.True(t, strings.HasPrefix(line, "warning: "), "not a warning: %s", line)
					require.NotContains(t, line, "is not set", "variable warnings with every variable set")
				}
			}
		})
	}
}
