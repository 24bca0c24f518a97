package export

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/actors"
)

// FuzzHTTPDecode drives the OTLP/HTTP request path (content type ×
// content encoding × body) through the real handler: it must never panic
// and must answer 200, 400, 413 or 415.
func FuzzHTTPDecode(f *testing.F) {
	var c codecs
	for i, sig := range allSignals {
		b := testBatch(sig, 3)
		p := mustProto(f, b)
		js, err := encodeJSON(b)
		require.NoError(f, err)
		for _, enc := range []string{"", "gzip", "zstd", "deflate"} {
			var pb, jb bytes.Buffer
			require.NoError(f, c.compress(&pb, enc, p))
			require.NoError(f, c.compress(&jb, enc, js))
			f.Add(uint8(i), ctProtobuf, enc, pb.Bytes())
			f.Add(uint8(i), ctJSON+"; charset=utf-8", enc, jb.Bytes())
		}
	}
	f.Add(uint8(0), ctJSON, "", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}`))
	f.Add(uint8(0), "text/plain", "br", []byte("x"))

	cfg := DefaultOTLPReceiverConfig()
	cfg.Protocols.HTTP = &HTTPServerConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20}
	consume := func(_ context.Context, b actors.Batch) error {
		_ = b.Items()
		return nil
	}
	r, err := NewOTLPReceiver("otlp", cfg, map[actors.Signal]ConsumeFunc{
		actors.SignalLogs: consume, actors.SignalMetrics: consume, actors.SignalTraces: consume,
	}, nil, nil)
	require.NoError(f, err)
	srv, err := r.newHTTPServer(r.cfg.Protocols.HTTP)
	require.NoError(f, err)

	f.Fuzz(func(t *testing.T, sig uint8, ct, enc string, body []byte) {
		path := "/v1/" + allSignals[int(sig)%len(allSignals)].String()
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Content-Encoding", enc)
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body.String())
		}
	})
}
