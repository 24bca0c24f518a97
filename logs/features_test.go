package logs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/actors"
)

func TestShortFingerprintGrowsAndSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "a.log")
		appendFile(t, p, "tiny")
		cfg := testConfig(filepath.Join(dir, "*.log"))
		s := newSink()
		run := start(t, cfg, s)
		waitBodies(t, s, []string{"tiny"})
		appendFile(t, p, numbered("a", 0, 40)...) // now well past 1 KiB
		waitBodies(t, s, append([]string{"tiny"}, numbered("a", 0, 40)...))
		run.stop()
		// The stored fingerprint is the full 1 KiB now.
		var fp []byte
		for k, v := range s.kv {
			if filepath.Base(filepath.Dir(k)) == "f" {
				f, err := decodeCheckpoint(v)
				require.NoError(t, err)
				fp = f.fp
			}
		}
		require.Len(t, fp, 1024)

		// A different file with the same first bytes is not the old one.
		q := filepath.Join(dir, "b.log")
		appendFile(t, q, "tiny", "but another file")
		// The old one, moved to a new inode, is.
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.Remove(p))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "a2.log"), data, 0o644))
		appendFile(t, filepath.Join(dir, "a2.log"), "a after restart")
		s2 := &sink{kv: s.kv}
		start(t, cfg, s2)
		waitBodies(t, s2, []string{"tiny", "but another file", "a after restart"})
	})
}

func TestDeleteAfterRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "batch-1.log")
		appendFile(t, p, numbered("x", 0, 5)...)
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.DeleteAfterRead = true
		s := newSink()
		start(t, cfg, s)
		waitBodies(t, s, numbered("x", 0, 5))
		time.Sleep(100 * time.Millisecond)
		_, err := os.Stat(p)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

func TestExcludeOlderThan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		old := filepath.Join(dir, "old.log")
		appendFile(t, old, "stale")
		require.NoError(t, os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)))
		appendFile(t, filepath.Join(dir, "new.log"), "fresh")
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.ExcludeOlderThan = time.Hour
		s := newSink()
		start(t, cfg, s)
		waitBodies(t, s, []string{"fresh"})
	})
}

func TestFileAttributesAndResolvedPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		real := filepath.Join(dir, "pods", "ns_p_abc", "c", "0.log")
		appendFile(t, real, "2024-03-01T10:11:12Z stdout F via link")
		link := filepath.Join(dir, "containers", "p_ns_c-123.log")
		require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o755))
		require.NoError(t, os.Symlink(real, link))
		cfg := testConfig(filepath.Join(dir, "containers", "*.log"))
		cfg.IncludeFilePath = true
		cfg.IncludeFilePathResolved = true
		cfg.IncludeFileNameResolved = true
		s := newSink()
		start(t, cfg, s)
		waitBodies(t, s, []string{"2024-03-01T10:11:12Z stdout F via link"})
		r := s.records()[0]
		resolved, err := filepath.EvalSymlinks(real)
		require.NoError(t, err)
		require.Equal(t, map[string]any{"log.file.name": "p_ns_c-123.log", "log.file.path": link,
			"log.file.path_resolved": resolved, "log.file.name_resolved": "0.log"}, r.attrs)
	})
}

func TestNopEncodingKeepsBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "bin.log")
		require.NoError(t, os.WriteFile(p, []byte("\xff\xfe raw\nok\n"), 0o644))
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.Encoding = "nop"
		s := newSink()
		start(t, cfg, s)
		require.Eventually(t, func() bool { return len(s.records()) == 2 }, 5*time.Second, 10*time.Millisecond)
		// AsString renders bytes as base64: the raw bytes were kept.
		require.Equal(t, "//4gcmF3", s.records()[0].body)

		// utf-8 (the default) replaces invalid bytes.
		dir2 := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir2, "bin.log"), []byte("\xff\xfe raw\n"), 0o644))
		s2 := newSink()
		start(t, testConfig(filepath.Join(dir2, "*.log")), s2)
		waitBodies(t, s2, []string{"\uFFFD raw"})
	})
}

func TestMaxConcurrentFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var want []string
		for i := range 5 {
			p := filepath.Join(dir, string(rune('a'+i))+".log")
			appendFile(t, p, numbered(p, 0, 3)...)
			want = append(want, numbered(p, 0, 3)...)
		}
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.MaxConcurrentFiles = 2
		s := newSink()
		run := start(t, cfg, s)
		waitBodies(t, s, want)
		// More lines after the handles were closed: reopened by path,
		// resumed at the offset.
		for i := range 5 {
			p := filepath.Join(dir, string(rune('a'+i))+".log")
			appendFile(t, p, numbered(p, 3, 5)...)
			want = append(want, numbered(p, 3, 5)...)
		}
		waitBodies(t, s, want)
		require.Equal(t, 5.0, testutil.ToFloat64(run.r.m.filesWatched))
	})
}

func TestMetricsLagAndCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "a.log")
		appendFile(t, p, numbered("a", 0, 10)...)
		s := newSink()
		// Refuse everything at first: reading pauses, the lag shows.
		refusing := true
		s.refuse = func(int) error {
			if refusing {
				return errRefusedForTest
			}
			return nil
		}
		run := start(t, testConfig(filepath.Join(dir, "*.log")), s)
		time.Sleep(time.Second)
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, float64(fi.Size()), testutil.ToFloat64(run.r.m.lagBytes))
		require.Equal(t, 1.0, testutil.ToFloat64(run.r.m.paused))
		require.Zero(t, testutil.ToFloat64(run.r.m.linesRead))
		s.mu.Lock()
		refusing = false
		s.mu.Unlock()
		waitBodies(t, s, numbered("a", 0, 10))
		time.Sleep(time.Second)
		require.Zero(t, testutil.ToFloat64(run.r.m.lagBytes))
		require.Zero(t, testutil.ToFloat64(run.r.m.paused))
		require.Equal(t, 10.0, testutil.ToFloat64(run.r.m.linesRead))
		require.Equal(t, 10.0, testutil.ToFloat64(run.r.m.accepted))
		require.Equal(t, float64(fi.Size()), testutil.ToFloat64(run.r.m.bytesRead))
		require.Equal(t, 1.0, testutil.ToFloat64(run.r.m.filesWatched))
		require.Positive(t, testutil.ToFloat64(run.r.m.refused.WithLabelValues("memory_limit")))
	})
}

var errRefusedForTest = &actors.RefusedError{Reason: "memory_limit", RetryAfter: 10 * time.Millisecond}

func TestStaticAttributesAndResource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		appendFile(t, filepath.Join(dir, "a.log"), "hello")
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.IncludeFileName = false
		cfg.Attributes = map[string]string{"log.type": "app"}
		cfg.Resource = map[string]string{"service.name": "web"}
		s := newSink()
		start(t, cfg, s)
		waitBodies(t, s, []string{"hello"})
		r := s.records()[0]
		require.Equal(t, map[string]any{"log.type": "app"}, r.attrs)
		require.Equal(t, map[string]any{"service.name": "web"}, r.res)
	})
}

func TestConstructorAndRunOnce(t *testing.T) {
	cfg := testConfig(filepath.Join(t.TempDir(), "*.log"))
	s := newSink()
	_, err := NewFilelogReceiver("", cfg, s.consume, nil, nil, nil)
	require.ErrorContains(t, err, "empty id")
	_, err = NewFilelogReceiver("filelog", cfg, nil, nil, nil, nil)
	require.ErrorContains(t, err, "nil consume")
	bad := cfg
	bad.StartAt = "now"
	_, err = NewFilelogReceiver("filelog", bad, s.consume, nil, nil, nil)
	require.ErrorContains(t, err, "start_at")

	synctest.Test(t, func(t *testing.T) {
		run := start(t, cfg, s)
		time.Sleep(time.Second)
		require.ErrorContains(t, run.r.Run(t.Context()), "already running")
		run.stop()
		require.NoError(t, <-func() chan error {
			ch := make(chan error, 1)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			ch <- run.r.Run(ctx) // runs again once stopped
			return ch
		}())
	})
}

// TestRawMatchesPdata checks that the raw OTLP encoding gives exactly the
// records the pdata path builds.
func TestRawMatchesPdata(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pods", "prod_web-1_0f6a9c2e", "nginx", "2.log")
	appendFile(t, p,
		"2024-03-01T10:11:12.000000001Z stdout F full line",
		"2024-03-01T10:11:13.000000000Z stderr P first ",
		"2024-03-01T10:11:13.300000000Z stderr F third \xff invalid utf-8",
		"not a cri line at all",
		`{"log":"docker é\n","stream":"stdout","time":"2024-03-01T10:11:12Z"}`,
		"2024-03-01T10:11:13Z stdout F "+string(make([]byte, 300)),
	)
	collect := func(raw bool) []rec {
		var out []rec
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(filepath.Join(dir, "pods", "*", "*", "*.log"))
			cfg.IncludeFilePath = true
			cfg.IncludeFilePathResolved = true
			cfg.Attributes = map[string]string{"b": "2", "a": "1"}
			cfg.Resource = map[string]string{"cluster": "c1"}
			cfg.Operators = []OperatorConfig{{Type: "container", ID: "cp"}}
			s := newSink()
			r, err := NewFilelogReceiver("filelog", cfg, s.consume, nil, nil, nil)
			require.NoError(t, err)
			require.True(t, r.raw)
			r.raw = raw
			r.now = func() time.Time { return time.Unix(1700000000, 5) }
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error)
			go func() { done <- r.Run(ctx) }()
			require.Eventually(t, func() bool { return len(s.records()) == 5 }, 5*time.Second, 10*time.Millisecond)
			cancel()
			require.NoError(t, <-done)
			out = s.records()
		})
		return out
	}
	raw, pd := collect(true), collect(false)
	require.Len(t, raw, 5)
	require.Equal(t, pd, raw)
	require.Equal(t, "third \uFFFD invalid utf-8", func() string {
		for _, r := range raw {
			if r.attrs["log.iostream"] == "stderr" {
				return r.body[len("first "):]
			}
		}
		return ""
	}())
}

func TestTruncatedWhileBehindCountsLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "a.log")
		appendFile(t, p, numbered("old", 0, 10)...)
		fi, err := os.Stat(p)
		require.NoError(t, err)
		s := newSink()
		refusing := true
		s.refuse = func(int) error {
			if refusing {
				return errRefusedForTest
			}
			return nil
		}
		run := start(t, testConfig(filepath.Join(dir, "*.log")), s)
		time.Sleep(time.Second)
		// copytruncate while nothing was stored, the copy outside the glob.
		require.NoError(t, os.Truncate(p, 0))
		appendFile(t, p, numbered("new", 0, 2)...)
		s.mu.Lock()
		refusing = false
		s.mu.Unlock()
		waitBodies(t, s, numbered("new", 0, 2))
		time.Sleep(10 * time.Second)
		require.Equal(t, float64(fi.Size()), testutil.ToFloat64(run.r.m.lostBytes.WithLabelValues("truncated")))
		require.Equal(t, 1.0, testutil.ToFloat64(run.r.m.truncations))
	})
}

func TestFingerprintSizeLoweredAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "a.log")
		appendFile(t, p, numbered("a", 0, 40)...)
		cfg := testConfig(filepath.Join(dir, "*.log"))
		s := newSink()
		run := start(t, cfg, s)
		waitBodies(t, s, numbered("a", 0, 40))
		run.stop()
		appendFile(t, p, numbered("a", 40, 45)...)
		cfg.FingerprintSize = 100
		s2 := &sink{kv: s.kv}
		start(t, cfg, s2)
		waitBodies(t, s2, numbered("a", 40, 45))
	})
}

func TestBrokenFileDoesNotStopOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		// A symlink loop matches the glob but cannot be examined.
		require.NoError(t, os.Symlink(filepath.Join(dir, "loop.log"), filepath.Join(dir, "loop.log")))
		appendFile(t, filepath.Join(dir, "good.log"), "fine")
		s := newSink()
		run := start(t, testConfig(filepath.Join(dir, "*.log")), s)
		waitBodies(t, s, []string{"fine"})
		require.Positive(t, testutil.ToFloat64(run.r.m.fileErrors.WithLabelValues("stat")))
	})
}

func TestMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	// export/ registers the Collector's receiver counters this way.
	otlp := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "otelcol_receiver_accepted_log_records",
		Help: "Number of logs items successfully pushed into the pipeline."}, []string{"receiver", "transport"})
	require.NoError(t, reg.Register(otlp))
	cfg := testConfig(filepath.Join(t.TempDir(), "*.log"))
	s := newSink()
	a, err := NewFilelogReceiver("filelog/a", cfg, s.consume, nil, nil, reg)
	require.NoError(t, err)
	_, err = NewFilelogReceiver("filelog/b", cfg, s.consume, nil, nil, reg)
	require.NoError(t, err)
	again, err := NewFilelogReceiver("filelog/a", cfg, s.consume, nil, nil, reg) // rebuilt after a restart
	require.NoError(t, err)
	again.m.accepted.Inc()
	a.m.linesRead.Inc()
	require.Equal(t, 1.0, testutil.ToFloat64(otlp.WithLabelValues("filelog/a", "")))
	require.Equal(t, 1.0, testutil.ToFloat64(again.m.linesRead), "the rebuilt receiver shares the series")
}

func TestDirCacheGlob(t *testing.T) {
	dir := t.TempDir()
	pattern := filepath.Join(dir, "pods", "*", "*", "*.log")
	mk := func(rel string) {
		p := filepath.Join(dir, "pods", rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("x\n"), 0o644))
	}
	mk("a_p_1/c/0.log")
	mk("a_p_1/c/0.log.1")
	mk("b_q_2/d/1.log")
	require.NoError(t, os.Symlink(filepath.Join(dir, "pods", "b_q_2"), filepath.Join(dir, "pods", "link")))
	c := newDirCache()
	later := time.Now().Add(time.Hour) // every mtime is old enough to trust
	check := func() {
		t.Helper()
		want, err := filepath.Glob(pattern)
		require.NoError(t, err)
		c.prune()
		require.Equal(t, want, c.glob(pattern, later, nil))
	}
	check()
	mk("a_p_1/c/1.log") // the directory's mtime changes: listed again
	check()
	require.NoError(t, os.Remove(filepath.Join(dir, "pods", "b_q_2", "d", "1.log")))
	check()
	mk("c_r_3/e/0.log")
	check()

	// An unchanged old mtime reuses the listing; a recent one does not.
	d := filepath.Join(dir, "pods", "a_p_1", "c")
	old := time.Now().Add(-time.Minute)
	require.NoError(t, os.Chtimes(d, old, old))
	before := c.glob(pattern, time.Now(), nil)
	require.NoError(t, os.WriteFile(filepath.Join(d, "2.log"), nil, 0o644))
	require.NoError(t, os.Chtimes(d, old, old))
	require.Equal(t, before, c.glob(pattern, time.Now(), nil), "cached listing reused")
	require.NoError(t, os.Chtimes(d, time.Now(), time.Now()))
	require.Contains(t, c.glob(pattern, time.Now(), nil), filepath.Join(d, "2.log"), "recent mtime: listed again")
}

func TestStartAtEndHoldsBeforeAnyLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "a.log")
		appendFile(t, p, numbered("old", 0, 5)...)
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.StartAt = "end"
		s := newSink()
		run := start(t, cfg, s)
		time.Sleep(time.Second)
		run.stop() // no line arrived: only the checkpoints were committed
		require.Empty(t, s.records())
		require.Equal(t, 1, s.batches)
		appendFile(t, p, numbered("while-down", 0, 3)...)
		s2 := &sink{kv: s.kv}
		start(t, cfg, s2)
		waitBodies(t, s2, numbered("while-down", 0, 3))
	})
}
