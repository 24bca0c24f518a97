package cluster

import (
	"bytes"
	"log"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestParseMLLine(t *testing.T) {
	tests := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5", slog.LevelDebug, "Stream connection from=1.2.3.4:5"},
		{"[INFO] memberlist: Suspect m1 has failed, no acks received", slog.LevelInfo, "Suspect m1 has failed, no acks received"},
		{"[WARN] memberlist: Refuting a suspect message (from: m4)", slog.LevelWarn, "Refuting a suspect message (from: m4)"},
		{"[ERR] memberlist: failed to receive: x", slog.LevelError, "failed to receive: x"},
		{"[ERROR] memberlist: Failed to compress payload: x", slog.LevelError, "Failed to compress payload: x"},
		{"[ERR] Failed to shutdown transport: x", slog.LevelError, "Failed to shutdown transport: x"},
		{"Err: Could not set the deadline: x", slog.LevelError, "Err: Could not set the deadline: x"},
		{"no level", slog.LevelInfo, "no level"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			level, msg := parseMLLine(tc.line)
			require.Equal(t, tc.level, level)
			require.Equal(t, tc.msg, msg)
		})
	}
}

func TestLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	m, err := newMetrics(nil, func() float64 { return 0 })
	require.NoError(t, err)
	w := &mlLogWriter{log: slog.New(slog.NewTextHandler(&buf, nil)), metrics: m, limit: newRateLimiter(time.Minute)}
	l := log.New(w, "", 0)

	l.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=127.0.0.9:4000")
	l.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=127.0.0.9:4000")
	l.Printf("[DEBUG] memberlist: failed to join 127.0.0.8:7946: remote state is encrypted and encryption is not configured")
	l.Printf("[INFO] memberlist: Suspect m1 has failed, no acks received")
	l.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.1:1")

	out := buf.String()
	require.Equal(t, 1, bytes.Count(buf.Bytes(), []byte("gossip from 127.0.0.9:4000 could not be decrypted: wrong or missing cluster key")),
		"the warning is rate limited per peer:\n%s", out)
	require.Contains(t, out, "gossip from 127.0.0.8:7946 could not be decrypted")
	require.Contains(t, out, "level=ERROR msg=\"failed to receive: no installed keys")
	require.NotContains(t, out, "Stream connection", "debug lines are filtered by the handler level")
	require.Equal(t, 3.0, testutil.ToFloat64(m.refused.WithLabelValues("key")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.probeFailures))
}

func TestRateLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	r := newRateLimiter(time.Minute)
	r.now = func() time.Time { return now }
	require.True(t, r.allow("a"))
	require.False(t, r.allow("a"))
	require.True(t, r.allow("b"))
	now = now.Add(time.Minute)
	require.True(t, r.allow("a"))
}
