package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // obs compresses with gzip by default
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/obs-dev/obs/test/obsproc"
)

const (
	httpSecret = "supersecret-123"
	grpcSecret = "grpc-secret-456" // reaches obs through ${env:...}
)

// failingBackend answers every OTLP export with an error and remembers the
// header values it saw, so the test knows obs really sent the secrets.
type failingBackend struct {
	plogotlp.UnimplementedGRPCServer
	mu   sync.Mutex
	seen map[string]int // header value → requests
}

func (b *failingBackend) saw(v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen[v]++
}

func (b *failingBackend) count(v string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[v]
}

func (b *failingBackend) Export(ctx context.Context, _ plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		b.saw(v)
	}
	return plogotlp.NewExportResponse(), status.Error(codes.Unavailable, "backend down for the test")
}

func (b *failingBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	b.saw(r.Header.Get("api-key"))
	http.Error(w, "backend down for the test", http.StatusServiceUnavailable) // retryable
}

// TestSecretsNeverShown gives obs exporter headers holding secrets (one
// literal, one from an environment variable), makes the backends fail so
// every error path logs, and checks that neither secret appears
// in obs's output, in its admin pages, in `obs validate` output, nor in
// the errors of a broken config holding them.
func TestSecretsNeverShown(t *testing.T) {
	t.Setenv("OBS_E2E_GRPC_TOKEN", "Bearer "+grpcSecret)
	backend := &failingBackend{seen: map[string]int{}}

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	plogotlp.RegisterGRPCServer(gs, backend)
	go func() { _ = gs.Serve(gl) }()
	defer gs.Stop()

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: backend, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(hl) }()
	defer hs.Close()

	retry := `    retry_on_failure:
      initial_interval: 100ms
      max_interval: 200ms
      max_elapsed_time: 2s
`
	exporters := fmt.Sprintf(`  otlphttp/backend:
    endpoint: "http://%s"
    headers:
      api-key: %s
%s  otlp/backend:
    endpoint: %q
    tls:
      insecure: true
    headers:
      authorization: ${env:OBS_E2E_GRPC_TOKEN}
%s`, hl.Addr(), httpSecret, retry, gl.Addr().String(), retry)
	obs := newObs(t, obsConfig{Exporters: exporters, ExporterIDs: []string{"otlphttp/backend", "otlp/backend"}},
		"--log-level", "debug")
	obs.Start()

	_, err = plogotlp.NewGRPCClient(dial(t, obs.Addr("grpc"))).Export(context.Background(),
		plogotlp.NewExportRequestFromLogs(makeLogs(0, 5)))
	require.NoError(t, err)
	// Both exporters send with their headers, fail, retry, then give up
	// and dead-letter: every error path has logged by then.
	require.Eventually(t, func() bool {
		dead, err := obs.Metric("obs_export_dead_lettered_items_total")
		return err == nil && dead >= 10
	}, 30*time.Second, 100*time.Millisecond, "both exporters dead-letter the batch")
	require.GreaterOrEqual(t, backend.count(httpSecret), 2, "otlphttp did not send its api-key header")
	require.GreaterOrEqual(t, backend.count("Bearer "+grpcSecret), 2, "otlp did not send its authorization header")

	// The admin port, every page.
	for _, page := range []string{"/", "/config", "/metrics", "/cluster", "/readyz", "/healthz"} {
		rsp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + obs.AdminAddr() + page)
		require.NoError(t, err)
		body, err := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		require.NoError(t, err)
		requireNoSecret(t, "GET "+page, string(body))
		if page == "/config" {
			require.Equal(t, http.StatusOK, rsp.StatusCode)
			require.Contains(t, string(body), "api-key:", "/config leaves out the header instead of redacting it")
			require.Contains(t, string(body), "authorization:")
		}
	}
	require.NoError(t, obs.Stop())
	out := obs.Log()
	require.Contains(t, out, "level=DEBUG", "obs did not log at debug level")
	require.Contains(t, out, "backend down for the test", "the backends' errors were not logged")
	requireNoSecret(t, "obs output", out)

	// validate, on the same config and with the variable set.
	code, stdout, stderr := obsproc.Run(t, 20*time.Second, nil, "validate", "--config", obs.ConfigPath())
	require.Zero(t, code, "validate: %s%s", stdout, stderr)
	requireNoSecret(t, "obs validate", stdout+stderr)

	// Broken configs that hold the secrets, some broken right at them.
	good, err := os.ReadFile(obs.ConfigPath())
	require.NoError(t, err)
	broken := []struct{ name, from, to string }{
		{"header value is a list", "api-key: " + httpSecret, "api-key: [" + httpSecret + "]"},
		{"header value is a map", "api-key: " + httpSecret, "api-key: {value: " + httpSecret + "}"},
		{"headers is a scalar", "headers:\n      api-key: " + httpSecret, "headers: " + httpSecret},
		{"unknown key next to it", "api-key: " + httpSecret, "api-key: " + httpSecret + "\n    heders: x"},
		{"header written as one string", "headers:\n      api-key: " + httpSecret, `headers: "api-key: ` + httpSecret + `"`},
		{"bad duration in the same exporter", "max_elapsed_time: 2s", "max_elapsed_time: 2 fortnights"},
	}
	dir := t.TempDir()
	for i, tc := range broken {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(string(good), tc.from, tc.to, 1)
			require.NotEqual(t, string(good), src)
			path := filepath.Join(dir, fmt.Sprintf("broken-%d.yaml", i))
			require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
			code, stdout, stderr := obsproc.Run(t, 20*time.Second, nil, "validate", "--config", path)
			require.NotZero(t, code, "validate accepted:\n%s", src)
			require.Contains(t, stderr, path+":")
			requireNoSecret(t, "obs validate", stdout+stderr)
			code, stdout, stderr = obsproc.Run(t, 20*time.Second, nil, "run", "--config", path, "--data-dir", t.TempDir(),
				"--admin-addr", "127.0.0.1:0", "--no-cluster", "--log-level", "debug")
			require.NotZero(t, code, "run accepted:\n%s", src)
			requireNoSecret(t, "obs run", stdout+stderr)
			t.Logf("error: %s", strings.TrimSpace(stderr))
		})
	}
}

func requireNoSecret(t *testing.T, where, s string) {
	t.Helper()
	for _, secret := range []string{httpSecret, grpcSecret} {
		if i := strings.Index(s, secret); i >= 0 {
			t.Errorf("%s shows secret %q: ...%s...", where, secret, s[max(0, i-200):min(len(s), i+50)])
		}
	}
}
