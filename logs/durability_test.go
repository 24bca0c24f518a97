package logs

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/wal"
)

const (
	helperWALEnv  = "OBS_FILELOG_HELPER_WAL"
	helperLogsEnv = "OBS_FILELOG_HELPER_LOGS"
)

// walConsume is what roles/ gives the receiver: the batch and the offsets
// in one WAL append.
func walConsume(db *wal.DB, q *wal.Queue) func(ctx context.Context, b actors.Batch, extra []actors.KV) error {
	var m plog.ProtoMarshaler
	return func(ctx context.Context, b actors.Batch, extra []actors.KV) error {
		p := b.Raw
		if !b.Encoded() {
			var err error
			if p, err = m.MarshalLogs(b.Logs); err != nil {
				return err
			}
		}
		kvs := make([]wal.KV, len(extra))
		for i, kv := range extra {
			kvs[i] = wal.KV{Key: kv.Key, Value: kv.Value}
		}
		return db.Append(ctx, []wal.Item{{Queue: q, Payload: p, Records: b.Items()}}, kvs...)
	}
}

// TestFilelogHelperProcess is not a test: TestKillDurability runs it as a
// child process that tails into a real WAL until SIGKILLed or SIGTERMed,
// printing "progress <records> <lag bytes>" every 50ms.
func TestFilelogHelperProcess(t *testing.T) {
	walDir, logDir := os.Getenv(helperWALEnv), os.Getenv(helperLogsEnv)
	if walDir == "" {
		t.Skip("helper process only")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	db, err := wal.Open(wal.DefaultConfig(walDir), nil, nil)
	if err != nil {
		fail(err)
	}
	dbCtx, dbCancel := context.WithCancel(context.Background())
	dbDone := make(chan struct{})
	go func() { defer close(dbDone); _ = db.Run(dbCtx) }()
	q, err := db.Queue("logs")
	if err != nil {
		fail(err)
	}
	cfg := DefaultFilelogConfig()
	cfg.Include = []string{filepath.Join(logDir, "*", "*", "*.log*")}
	cfg.StartAt = "beginning"
	cfg.PollInterval = 20 * time.Millisecond
	// Partial lines are always finished by the writer; on a loaded machine
	// it may pause longer than the default 500ms between pieces, and a
	// forced flush would (rightly) send the first piece alone.
	cfg.ForceFlushPeriod = 0
	cfg.Operators = []OperatorConfig{{Type: "container"}}
	reg := prometheus.NewRegistry()
	r, err := NewFilelogReceiver("filelog", cfg, walConsume(db, q), db.Get, nil, reg)
	if err != nil {
		fail(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- r.Run(ctx) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-runDone:
			dbCancel()
			<-dbDone
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				fail(err)
			}
			os.Exit(0)
		case <-tick.C:
			fmt.Printf("progress %d %d\n", int(testutil.ToFloat64(r.m.linesRead)), int(testutil.ToFloat64(r.m.lagBytes)))
		}
	}
}

// logWriter writes numbered lines into pod log files with rename
// rotation, copytruncate and partial lines, in CRI or Docker format.
type logWriter struct {
	dir     string
	docker  bool
	files   int
	written []int      // per file: lines written
	pending [][]string // per file: pieces of a partial line still to write
	rotN    int
	rng     *rand.Rand
}

func (w *logWriter) path(k int) string {
	return filepath.Join(w.dir, fmt.Sprintf("ns_pod-%d_0000-%04d", k, k), "app", "0.log")
}

func (w *logWriter) body(k, n int) string {
	return fmt.Sprintf("f=%d n=%d %s", k, n, strings.Repeat("abcdefghij", 1+n%12))
}

func (w *logWriter) piece(msg string, partial bool, stream string) string {
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	if w.docker {
		if !partial {
			msg += "\n"
		}
		return fmt.Sprintf(`{"log":%q,"stream":%q,"time":%q}`+"\n", msg, stream, ts)
	}
	tag := "F"
	if partial {
		tag = "P"
	}
	return fmt.Sprintf("%s %s %s %s\n", ts, stream, tag, msg)
}

// step writes one logical line to file k, sometimes in 3 partial pieces
// written separately, and sometimes rotates the file first.
func (w *logWriter) step(t *testing.T, k int) {
	p := w.path(k)
	if len(w.pending[k]) > 0 { // finish a partial line first, one piece per step
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0o644)
		require.NoError(t, err)
		defer f.Close()
		_, err = f.WriteString(w.pending[k][0])
		require.NoError(t, err)
		w.pending[k] = w.pending[k][1:]
		if len(w.pending[k]) == 0 {
			w.written[k]++
		}
		return
	}
	switch x := w.rng.IntN(400); {
	case x == 0 && w.written[k] > 0: // rename rotation, into a name the glob still matches
		w.rotN++
		require.NoError(t, os.Rename(p, fmt.Sprintf("%s.%d", p, w.rotN)))
	case x == 1 && w.written[k] > 0: // copytruncate; the copy appears atomically
		w.rotN++
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		tmp := filepath.Join(filepath.Dir(p), ".copy")
		require.NoError(t, os.WriteFile(tmp, data, 0o644))
		require.NoError(t, os.Rename(tmp, fmt.Sprintf("%s.c%d", p, w.rotN)))
		require.NoError(t, os.Truncate(p, 0))
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer f.Close()
	n := w.written[k]
	body := w.body(k, n)
	stream := "stdout"
	if n%5 == 0 {
		stream = "stderr"
	}
	if n%7 == 3 {
		// Three pieces, written over several steps (and polls, and kills).
		a, b := len(body)/3, 2*len(body)/3
		_, err = f.WriteString(w.piece(body[:a], true, stream))
		require.NoError(t, err)
		w.pending[k] = []string{w.piece(body[a:b], true, stream), w.piece(body[b:], false, stream)}
		return
	} else {
		_, err = f.WriteString(w.piece(body, false, stream))
		require.NoError(t, err)
	}
	w.written[k]++
}

type child struct {
	cmd      *exec.Cmd
	progress chan [2]int
}

func startChild(t *testing.T, walDir, logDir string) *child {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFilelogHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperWALEnv+"="+walDir, helperLogsEnv+"="+logDir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, progress: make(chan [2]int, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var p [2]int
			if _, err := fmt.Sscanf(sc.Text(), "progress %d %d", &p[0], &p[1]); err == nil {
				select {
				case <-c.progress:
				default:
				}
				c.progress <- p
			}
		}
		close(c.progress)
	}()
	return c
}

// TestKillDurability tails 10 pod log files that are written, rotated
// (rename and copytruncate) and split into partial lines while the tailer
// is SIGKILLed three times; every numbered line must be in the WAL once.
func TestKillDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	for _, format := range []string{"cri", "docker"} {
		t.Run(format, func(t *testing.T) {
			walDir, logDir := t.TempDir(), t.TempDir()
			w := &logWriter{dir: logDir, docker: format == "docker", files: 10, written: make([]int, 10), pending: make([][]string, 10), rng: rand.New(rand.NewPCG(1, uint64(len(format))))}
			for k := range w.files {
				require.NoError(t, os.MkdirAll(filepath.Dir(w.path(k)), 0o755))
			}
			c := startChild(t, walDir, logDir)
			kills := 0
			begin := time.Now()
			// ~6 s of writing at ~2,000 lines/s; a kill every 1.5 s.
			for time.Since(begin) < 6*time.Second {
				for range 20 {
					w.step(t, w.rng.IntN(w.files))
				}
				time.Sleep(10 * time.Millisecond)
				if kills < 3 && time.Since(begin) > time.Duration(kills+1)*1500*time.Millisecond {
					require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
					require.Error(t, c.cmd.Wait())
					kills++
					c = startChild(t, walDir, logDir)
				}
			}
			for k := range w.files {
				for len(w.pending[k]) > 0 {
					w.step(t, k)
				}
			}
			total := 0
			for _, n := range w.written {
				total += n
			}
			// Let the last child catch up: no lag and no new records for 1 s.
			var last [2]int
			stable := time.Now()
			for deadline := time.Now().Add(60 * time.Second); time.Since(stable) < time.Second; {
				require.True(t, time.Now().Before(deadline), "child did not catch up: %v", last)
				p, ok := <-c.progress
				require.True(t, ok, "child exited")
				if p != last || p[1] != 0 {
					stable = time.Now()
				}
				last = p
			}
			require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, c.cmd.Wait())

			seen := readWAL(t, walDir, w)
			missing, dups := 0, 0
			for k := range w.files {
				for n := range w.written[k] {
					switch seen[[2]int{k, n}] {
					case 0:
						missing++
					case 1:
					default:
						dups++
					}
				}
			}
			t.Logf("%s: %d lines in 10 files, %d rotations, 3 kills: %d missing, %d duplicates", format, total, w.rotN, missing, dups)
			require.Zero(t, missing)
			require.Zero(t, dups)
			require.Len(t, seen, total, "no line the writer did not write")
		})
	}
}

// readWAL counts every (file, n) in the WAL queue, checking each body is
// the whole logical line.
func readWAL(t *testing.T, dir string, w *logWriter) map[[2]int]int {
	db, err := wal.Open(wal.DefaultConfig(dir), nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = db.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		require.NoError(t, db.Close())
	}()
	q, err := db.Queue("logs")
	require.NoError(t, err)
	var u plog.ProtoUnmarshaler
	seen := map[[2]int]int{}
	for range q.Stats().Entries {
		nctx, ncancel := context.WithTimeout(ctx, 5*time.Second)
		e, err := q.Next(nctx)
		ncancel()
		require.NoError(t, err)
		l, err := u.UnmarshalLogs(e.Payload)
		require.NoError(t, err)
		for i := 0; i < l.ResourceLogs().Len(); i++ {
			rl := l.ResourceLogs().At(i)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for x := 0; x < lrs.Len(); x++ {
					body := lrs.At(x).Body().Str()
					var k, n int
					_, err := fmt.Sscanf(body, "f=%d n=%d", &k, &n)
					require.NoError(t, err, "body %q", body)
					require.Equal(t, w.body(k, n), body)
					seen[[2]int{k, n}]++
				}
			}
		}
	}
	return seen
}
