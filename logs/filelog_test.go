package logs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/obs-dev/obs/actors"
)

// rec is one received record, flattened for assertions.
type rec struct {
	body     string
	ts       int64
	observed int64
	attrs    map[string]any
	res      map[string]any
}

// sink is the test's consume/get pair: records and KVs stored together,
// like the WAL does in one transaction.
type sink struct {
	mu      sync.Mutex
	recs    []rec
	kv      map[string][]byte
	batches int
	refuse  func(n int) error // called per batch; non-nil refuses it
}

func newSink() *sink { return &sink{kv: map[string][]byte{}} }

func (s *sink) consume(_ context.Context, b actors.Batch, extra []actors.KV) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Signal != actors.SignalLogs {
		return errors.New("not logs")
	}
	if err := b.Decode(); err != nil { // a raw batch must be valid OTLP
		return err
	}
	if s.refuse != nil {
		if err := s.refuse(s.batches); err != nil {
			s.batches++
			return err
		}
	}
	s.batches++
	rls := b.Logs.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			lrs := rl.ScopeLogs().At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				s.recs = append(s.recs, rec{body: lr.Body().AsString(), ts: int64(lr.Timestamp()), observed: int64(lr.ObservedTimestamp()),
					attrs: lr.Attributes().AsRaw(), res: rl.Resource().Attributes().AsRaw()})
			}
		}
	}
	for _, kv := range extra {
		if kv.Value == nil {
			delete(s.kv, string(kv.Key))
		} else {
			s.kv[string(kv.Key)] = append([]byte(nil), kv.Value...)
		}
	}
	return nil
}

func (s *sink) get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kv[string(key)], nil
}

func (s *sink) bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.recs))
	for i, r := range s.recs {
		out[i] = r.body
	}
	return out
}

func (s *sink) records() []rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rec(nil), s.recs...)
}

// running is one receiver run in the background.
type running struct {
	r      *FilelogReceiver
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg FilelogConfig, s *sink) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := NewFilelogReceiver("filelog", cfg, s.consume, s.get, nil, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(run.stop)
	return run
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

func testConfig(include ...string) FilelogConfig {
	c := DefaultFilelogConfig()
	c.Include = include
	c.StartAt = "beginning"
	c.PollInterval = 10 * time.Millisecond
	c.ForceFlushPeriod = 100 * time.Millisecond
	return c
}

func appendFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	for _, l := range lines {
		_, err = f.WriteString(l + "\n")
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
}

func numbered(prefix string, from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s line %06d with some padding to make it longer", prefix, i))
	}
	return out
}

// waitBodies waits until the sink holds exactly want (in any order).
func waitBodies(t *testing.T, s *sink, want []string) {
	t.Helper()
	w := append([]string(nil), want...)
	sort.Strings(w)
	var got []string
	ok := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = s.bodies()
		if len(got) >= len(w) {
			sort.Strings(got)
			ok = true
			break
		}
	}
	require.True(t, ok, "got %d of %d records", len(got), len(w))
	time.Sleep(50 * time.Millisecond) // a few more polls: nothing extra may come
	got = s.bodies()
	sort.Strings(got)
	require.Equal(t, w, got)
}

func TestStartAtBeginningAndEnd(t *testing.T) {
	for _, startAt := range []string{"beginning", "end"} {
		t.Run(startAt, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				p := filepath.Join(dir, "a.log")
				appendFile(t, p, numbered("old", 0, 10)...)
				cfg := testConfig(filepath.Join(dir, "*.log"))
				cfg.StartAt = startAt
				s := newSink()
				run := start(t, cfg, s)
				time.Sleep(50 * time.Millisecond)
				appendFile(t, p, numbered("new", 0, 10)...)
				want := numbered("new", 0, 10)
				if startAt == "beginning" {
					want = append(numbered("old", 0, 10), want...)
				}
				waitBodies(t, s, want)
				run.stop()

				// Restart: resume after the checkpoint, whatever start_at says;
				// a file created while stopped is read from its beginning.
				appendFile(t, p, numbered("while-down", 0, 5)...)
				appendFile(t, filepath.Join(dir, "b.log"), numbered("b", 0, 3)...)
				s2 := &sink{kv: s.kv}
				start(t, cfg, s2)
				waitBodies(t, s2, append(numbered("while-down", 0, 5), numbered("b", 0, 3)...))
			})
		})
	}
}

func TestContainerCRIAndDocker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		pod := filepath.Join(dir, "pods", "prod_web-1_0f6a9c2e-1111-2222-3333-444455556666")
		cri := filepath.Join(pod, "nginx", "2.log")
		docker := filepath.Join(pod, "sidecar", "0.log")
		appendFile(t, cri,
			"2024-03-01T10:11:12.000000001Z stdout F full line",
			"2024-03-01T10:11:13.000000000Z stderr P first ",
			"2024-03-01T10:11:13.100000000Z stdout F interleaved",
			"2024-03-01T10:11:13.200000000Z stderr P second ",
			"2024-03-01T10:11:13.300000000Z stderr F third",
			"not a cri line at all",
		)
		appendFile(t, docker,
			`{"log":"docker full\n","stream":"stdout","time":"2024-03-01T10:11:12Z"}`,
			`{"log":"docker part one ","stream":"stderr","time":"2024-03-01T10:11:14Z"}`,
			`{"log":"and two\n","stream":"stderr","time":"2024-03-01T10:11:15Z"}`,
		)
		cfg := testConfig(filepath.Join(dir, "pods", "*", "*", "*.log"))
		cfg.IncludeFilePath = true
		cfg.Operators = []OperatorConfig{{Type: "container", ID: "container-parser"}}
		s := newSink()
		run := start(t, cfg, s)
		waitBodies(t, s, []string{"full line", "interleaved", "first second third", "not a cri line at all",
			"docker full", "docker part one and two"})
		byBody := map[string]rec{}
		for _, r := range s.records() {
			byBody[r.body] = r
		}
		full := byBody["full line"]
		require.Equal(t, mustTime(t, "2024-03-01T10:11:12.000000001Z"), full.ts)
		require.Equal(t, "stdout", full.attrs["log.iostream"])
		require.Equal(t, cri, full.attrs["log.file.path"])
		require.Equal(t, "2.log", full.attrs["log.file.name"])
		require.Equal(t, map[string]any{"k8s.namespace.name": "prod", "k8s.pod.name": "web-1",
			"k8s.pod.uid": "0f6a9c2e-1111-2222-3333-444455556666", "k8s.container.name": "nginx",
			"k8s.container.restart_count": "2"}, full.res)
		joined := byBody["first second third"]
		require.Equal(t, "stderr", joined.attrs["log.iostream"])
		require.Equal(t, mustTime(t, "2024-03-01T10:11:13Z"), joined.ts, "time of the first piece")
		bad := byBody["not a cri line at all"]
		require.Contains(t, bad.attrs[errorAttr], "container-parser")
		require.Equal(t, "sidecar", byBody["docker full"].res["k8s.container.name"])
		require.Equal(t, "stderr", byBody["docker part one and two"].attrs["log.iostream"])
		require.Equal(t, 1.0, testutil.ToFloat64(run.r.m.parseErrors.WithLabelValues("container-parser")))
	})
}

func TestExcludeSeedPattern(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		pods := filepath.Join(dir, "var", "log", "pods")
		app := filepath.Join(pods, "ns_app-1_abc", "app", "0.log")
		own := filepath.Join(pods, "obs_otel-1_def", "otel-collector", "0.log")
		appendFile(t, app, "2024-03-01T10:11:12Z stdout F from app")
		appendFile(t, own, "2024-03-01T10:11:12Z stdout F from ourselves")
		cfg := testConfig(filepath.Join(pods, "*", "*", "*.log"))
		cfg.Exclude = []string{filepath.Join(pods, "*", "otel-collector", "*.log")}
		cfg.Operators = []OperatorConfig{{Type: "container"}}
		s := newSink()
		start(t, cfg, s)
		waitBodies(t, s, []string{"from app"})
	})
}

func TestRotationByRename(t *testing.T) {
	tests := []struct {
		name    string
		rotated string // name the file is renamed to
	}{
		{"out of the glob, drained by handle", "app.log.1"},
		{"within the glob, same identity", "app-1.log"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				p := filepath.Join(dir, "app.log")
				appendFile(t, p, numbered("gen0", 0, 50)...)
				s := newSink()
				run := start(t, testConfig(filepath.Join(dir, "*.log")), s)
				waitBodies(t, s, numbered("gen0", 0, 50))
				// The writer still appends to the renamed file, then a new file
				// takes the name.
				require.NoError(t, os.Rename(p, filepath.Join(dir, tc.rotated)))
				appendFile(t, filepath.Join(dir, tc.rotated), numbered("gen0", 50, 60)...)
				appendFile(t, p, numbered("gen1", 0, 20)...)
				waitBodies(t, s, append(numbered("gen0", 0, 60), numbered("gen1", 0, 20)...))
				require.GreaterOrEqual(t, testutil.ToFloat64(run.r.m.rotations), 1.0)
			})
		})
	}
}

func TestCopyTruncate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		appendFile(t, p, numbered("before", 0, 30)...)
		s := newSink()
		run := start(t, testConfig(filepath.Join(dir, "*.log")), s)
		waitBodies(t, s, numbered("before", 0, 30))
		// logrotate copytruncate: copy (to a name outside the glob), truncate.
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p+".1", data, 0o644))
		require.NoError(t, os.Truncate(p, 0))
		appendFile(t, p, numbered("after", 0, 10)...)
		waitBodies(t, s, append(numbered("before", 0, 30), numbered("after", 0, 10)...))
		require.Equal(t, 1.0, testutil.ToFloat64(run.r.m.truncations))
	})
}

func TestCopyTruncateCopyInGlobContinues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		appendFile(t, p, numbered("before", 0, 30)...)
		s := newSink()
		cfg := testConfig(filepath.Join(dir, "app.log*"))
		run := start(t, cfg, s)
		waitBodies(t, s, numbered("before", 0, 30))
		run.stop()
		// While stopped: more lines, then copy + truncate. The copy holds
		// the unread lines: they must come once, from the copy.
		appendFile(t, p, numbered("before", 30, 40)...)
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p+".tmp", data, 0o644))
		require.NoError(t, os.Rename(p+".tmp", p+".1"))
		require.NoError(t, os.Truncate(p, 0))
		appendFile(t, p, numbered("after", 0, 10)...)
		s2 := &sink{kv: s.kv}
		start(t, cfg, s2)
		waitBodies(t, s2, append(numbered("before", 30, 40), numbered("after", 0, 10)...))
	})
}

func TestDeletedWhileOpenIsDrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		appendFile(t, p, numbered("a", 0, 10)...)
		s := newSink()
		start(t, testConfig(filepath.Join(dir, "*.log")), s)
		waitBodies(t, s, numbered("a", 0, 10))
		// The writer keeps its handle and writes after the unlink.
		w, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		require.NoError(t, os.Remove(p))
		for _, l := range numbered("a", 10, 20) {
			_, err := w.WriteString(l + "\n")
			require.NoError(t, err)
		}
		require.NoError(t, w.Close())
		waitBodies(t, s, numbered("a", 0, 20))
	})
}

func TestFingerprintIdentityAcrossRestartAndRename(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "x.log")
		appendFile(t, p, numbered("x", 0, 20)...)
		q := filepath.Join(dir, "y.log")
		appendFile(t, q, numbered("y", 0, 20)...)
		cfg := testConfig(filepath.Join(dir, "*.log"))
		s := newSink()
		run := start(t, cfg, s)
		waitBodies(t, s, append(numbered("x", 0, 20), numbered("y", 0, 20)...))
		run.stop()
		// Renamed and copied (new inodes) while stopped: identity is the
		// content, so nothing is read twice.
		require.NoError(t, os.Rename(p, filepath.Join(dir, "x-renamed.log")))
		data, err := os.ReadFile(q)
		require.NoError(t, err)
		require.NoError(t, os.Remove(q))
		require.NoError(t, os.WriteFile(q, data, 0o644))
		appendFile(t, filepath.Join(dir, "x-renamed.log"), numbered("x", 20, 25)...)
		appendFile(t, q, numbered("y", 20, 25)...)
		s2 := &sink{kv: s.kv}
		start(t, cfg, s2)
		waitBodies(t, s2, append(numbered("x", 20, 25), numbered("y", 20, 25)...))
	})
}

func TestRefusedBatchesAreReadAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		var lines []string
		for i := range 2500 {
			lines = append(lines, fmt.Sprintf("2024-03-01T10:11:12Z stdout P part-%d ", i))
			lines = append(lines, fmt.Sprintf("2024-03-01T10:11:12Z stdout F end-%d", i))
		}
		appendFile(t, p, lines...)
		s := newSink()
		// Refuse every other batch: the lines must come again, once.
		s.refuse = func(n int) error {
			if n%2 == 0 {
				return &actors.RefusedError{Reason: "wal_full", RetryAfter: time.Millisecond}
			}
			return nil
		}
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.Operators = []OperatorConfig{{Type: "container"}}
		run := start(t, cfg, s)
		want := make([]string, 2500)
		for i := range want {
			want[i] = fmt.Sprintf("part-%d end-%d", i, i)
		}
		waitBodies(t, s, want)
		require.GreaterOrEqual(t, testutil.ToFloat64(run.r.m.refused.WithLabelValues("wal_full")), 3.0)
	})
}

func TestMaxLogSizeSplits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		long := strings.Repeat("x", 250)
		appendFile(t, p, long, "short")
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.MaxLogSize = 100
		s := newSink()
		run := start(t, cfg, s)
		waitBodies(t, s, []string{long[:100], long[100:200], long[200:], "short"})
		require.Equal(t, 2.0, testutil.ToFloat64(run.r.m.linesSplit))
	})
}

func TestUnterminatedLineForceFlushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		require.NoError(t, os.WriteFile(p, []byte("done\nno newline yet"), 0o644))
		s := newSink()
		start(t, testConfig(filepath.Join(dir, "*.log")), s)
		waitBodies(t, s, []string{"done", "no newline yet"})
	})
}

func TestMultilineLineStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		appendFile(t, p, "2024 first", "  at a", "  at b", "2024 second", "2024 third")
		cfg := testConfig(filepath.Join(dir, "*.log"))
		cfg.Multiline.LineStartPattern = `^\d{4} `
		s := newSink()
		start(t, cfg, s)
		waitBodies(t, s, []string{"2024 first\n  at a\n  at b", "2024 second", "2024 third"})
	})
}

func TestOperators(t *testing.T) {
	val := func(s string) yaml.Node { return yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	tests := []struct {
		name  string
		line  string
		ops   []OperatorConfig
		check func(t *testing.T, r rec)
		drop  bool
	}{
		{name: "json to attributes", line: `{"level":"warn","n":3,"m":{"k":"v"}}`,
			ops: []OperatorConfig{{Type: "json_parser"}},
			check: func(t *testing.T, r rec) {
				require.Equal(t, "warn", r.attrs["level"])
				require.Equal(t, 3.0, r.attrs["n"])
				require.Equal(t, map[string]any{"k": "v"}, r.attrs["m"])
			}},
		{name: "json with timestamp", line: `{"ts":"2024-03-01 10:11:12"}`,
			ops: []OperatorConfig{{Type: "json_parser", Timestamp: &TimestampConfig{ParseFrom: "attributes.ts", LayoutType: "strptime", Layout: "%Y-%m-%d %H:%M:%S"}}},
			check: func(t *testing.T, r rec) {
				require.Equal(t, mustTime(t, "2024-03-01T10:11:12Z"), r.ts)
			}},
		{name: "regex to body map", line: `GET /x 200`,
			ops: []OperatorConfig{{Type: "regex_parser", Regex: `^(?P<method>\S+) (?P<path>\S+) (?P<code>\d+)$`, ParseTo: "body"}},
			check: func(t *testing.T, r rec) {
				require.Contains(t, r.body, `"method":"GET"`)
			}},
		{name: "move add remove", line: `{"a":"1","b":"2"}`,
			ops: []OperatorConfig{{Type: "json_parser"}, {Type: "move", From: "attributes.a", To: `attributes["x.y"]`},
				{Type: "add", Field: "resource.team", Value: val("core")}, {Type: "remove", Field: "attributes.b"}},
			check: func(t *testing.T, r rec) {
				require.Equal(t, map[string]any{"x.y": "1", "log.file.name": "app.log"}, r.attrs)
				require.Equal(t, "core", r.res["team"])
			}},
		{name: "on_error send marks", line: `not json`,
			ops: []OperatorConfig{{Type: "json_parser", ID: "j"}},
			check: func(t *testing.T, r rec) {
				require.Equal(t, "not json", r.body)
				require.Contains(t, r.attrs[errorAttr], "j: ")
			}},
		{name: "on_error drop", line: `not json`, drop: true,
			ops: []OperatorConfig{{Type: "json_parser", OnError: "drop"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				p := filepath.Join(dir, "app.log")
				appendFile(t, p, tc.line, "sentinel")
				cfg := testConfig(filepath.Join(dir, "*.log"))
				cfg.Operators = append(tc.ops, OperatorConfig{Type: "add", ID: "mark", Field: "attributes.seen", Value: val("y")})
				s := newSink()
				run := start(t, cfg, s)
				require.Eventually(t, func() bool {
					if tc.drop { // the sentinel is no JSON either
						return testutil.ToFloat64(run.r.m.dropped.WithLabelValues("parse_error")) == 2
					}
					for _, r := range s.records() {
						if r.body == "sentinel" {
							return true
						}
					}
					return false
				}, 5*time.Second, 10*time.Millisecond)
				run.stop()
				recs := s.records()
				if tc.drop {
					require.Empty(t, recs)
					require.Equal(t, 2.0, testutil.ToFloat64(run.r.m.parseErrors.WithLabelValues("json_parser")))
					return
				}
				require.Len(t, recs, 2)
				r := recs[0]
				require.Equal(t, "y", r.attrs["seen"])
				delete(r.attrs, "seen")
				tc.check(t, r)
			})
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *FilelogConfig)
		want string
	}{
		{"no include", func(c *FilelogConfig) { c.Include = nil }, "include"},
		{"bad glob", func(c *FilelogConfig) { c.Include = []string{"/x/[a"} }, "include[0]"},
		{"bad start_at", func(c *FilelogConfig) { c.StartAt = "middle" }, "start_at"},
		{"tiny fingerprint", func(c *FilelogConfig) { c.FingerprintSize = 4 }, "fingerprint_size"},
		{"delete needs beginning", func(c *FilelogConfig) { c.DeleteAfterRead = true; c.StartAt = "end" }, "delete_after_read"},
		{"bad encoding", func(c *FilelogConfig) { c.Encoding = "latin1" }, "encoding"},
		{"bad operator", func(c *FilelogConfig) { c.Operators = []OperatorConfig{{Type: "csv_parser"}} }, "operators[0].type"},
		{"container not first", func(c *FilelogConfig) {
			c.Operators = []OperatorConfig{{Type: "remove", Field: "attributes.x"}, {Type: "container"}}
		}, "operators[1].type"},
		{"bad field", func(c *FilelogConfig) { c.Operators = []OperatorConfig{{Type: "remove", Field: "foo.x"}} }, "operators[0].field"},
		{"bad on_error", func(c *FilelogConfig) { c.Operators = []OperatorConfig{{Type: "json_parser", OnError: "ignore"}} }, "operators[0].on_error"},
		{"non-linear output", func(c *FilelogConfig) {
			c.Operators = []OperatorConfig{{Type: "json_parser", Output: "elsewhere"}, {Type: "remove", Field: "attributes.x"}}
		}, "operators[0].output"},
		{"key of another type", func(c *FilelogConfig) {
			c.Operators = []OperatorConfig{{Type: "move", From: "body", To: "attributes.x", Regex: "(?P<a>.)"}}
		}, "operators[0].regex: not a setting of move"},
		{"container parse_to elsewhere", func(c *FilelogConfig) {
			c.Operators = []OperatorConfig{{Type: "container", ParseTo: "body"}}
		}, "operators[0].parse_to"},
		{"both multiline", func(c *FilelogConfig) { c.Multiline = MultilineConfig{LineStartPattern: "a", LineEndPattern: "b"} }, "multiline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultFilelogConfig()
			c.Include = []string{"/var/log/pods/*/*/*.log"}
			require.NoError(t, c.Validate())
			tc.edit(&c)
			err := c.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"/var/log/pods/*/*/*.log", "/var/log/pods/a_b_c/x/0.log", true},
		{"/var/log/pods/*/*/*.log", "/var/log/pods/a_b_c/x/0.log.1", false},
		{"/var/log/**/*.log", "/var/log/a/b/c.log", true},
		{"/var/log/**/*.log", "/var/log/c.log", true},
		{"/var/log/**/x/*.log", "/var/log/a/y/c.log", false},
	}
	for _, tc := range tests {
		t.Run(tc.pat+" "+tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, matchGlob(tc.pat, tc.name))
		})
	}
}
