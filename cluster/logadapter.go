package cluster

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// mlLogWriter receives memberlist's log lines ("[LEVEL] memberlist: msg")
// and turns them into slog records. It also recognises the lines that carry
// facts obs counts (decryption failures, failed probes), because memberlist
// reports those only to its global metrics sink.
type mlLogWriter struct {
	log     *slog.Logger
	metrics *metrics
	limit   *rateLimiter
}

var _ io.Writer = (*mlLogWriter)(nil)

// Decryption failures, seen from the receiving side (packet or stream) and
// from a joiner that cannot read the answer.
var decryptMarkers = []string{
	"could not decrypt",
	"keys could decrypt",
	"Decrypt packet failed",
	"encryption is configured but remote state is not encrypted",
	"remote state is encrypted and encryption is not configured",
	"message authentication failed",
}

func (w *mlLogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\r\n"))
	level, msg := parseMLLine(line)
	ctx := context.Background()
	w.log.Log(ctx, level, msg)

	for _, m := range decryptMarkers {
		if strings.Contains(msg, m) {
			from := peerOf(msg)
			w.metrics.refused.WithLabelValues("key").Inc()
			if w.limit.allow("key/" + from) {
				w.log.Warn("gossip from "+from+" could not be decrypted: wrong or missing cluster key", "peer", from)
			}
			return len(p), nil
		}
	}
	if strings.HasPrefix(msg, "Suspect ") && strings.Contains(msg, " has failed") {
		w.metrics.probeFailures.Inc()
	}
	return len(p), nil
}

// parseMLLine splits "[LEVEL] memberlist: msg" into a slog level and msg.
func parseMLLine(line string) (slog.Level, string) {
	level := slog.LevelInfo
	if strings.HasPrefix(line, "[") {
		if end := strings.IndexByte(line, ']'); end > 0 {
			switch line[1:end] {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			line = strings.TrimLeft(line[end+1:], " ")
		}
	} else if strings.HasPrefix(line, "Err:") {
		level = slog.LevelError
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	return level, line
}

// peerOf finds the peer address in a memberlist message: "from=ADDR" or
// "failed to join ADDR: ...".
func peerOf(msg string) string {
	if i := strings.LastIndex(msg, "from="); i >= 0 {
		s := msg[i+len("from="):]
		if j := strings.IndexAny(s, " \t"); j >= 0 {
			s = s[:j]
		}
		if s != "" {
			return s
		}
	}
	if i := strings.Index(msg, "failed to join "); i >= 0 {
		s := msg[i+len("failed to join "):]
		if j := strings.Index(s, ": "); j >= 0 {
			return s[:j]
		}
	}
	return "unknown peer"
}

// rateLimiter lets one log line per key through per interval, so a peer
// that keeps sending undecryptable gossip does not flood the log.
type rateLimiter struct {
	mu    sync.Mutex
	every time.Duration
	last  map[string]time.Time
	now   func() time.Time
}

func newRateLimiter(every time.Duration) *rateLimiter {
	return &rateLimiter{every: every, last: make(map[string]time.Time), now: time.Now}
}

func (r *rateLimiter) allow(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if t, ok := r.last[key]; ok && now.Sub(t) < r.every {
		return false
	}
	if len(r.last) >= 1024 {
		clear(r.last)
	}
	r.last[key] = now
	return true
}
