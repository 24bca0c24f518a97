package wal

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const helperDirEnv = "OBS_WAL_HELPER_DIR"

// TestHelperProcess is not a test: run by TestKillDurability as a child
// process, it appends from 4 writers in a loop (each append carries the
// writer's checkpoint in the same transaction) and prints "acked W I" after
// every successful Append, until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	db, qs := helperDB(dir, "otlp/backend", "debug")
	q, q2 := qs[0], qs[1]
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < 1_000_000; i++ {
				p := append(fmt.Appendf(nil, "w=%d i=%d\n", w, i), logBatch(r, 20+r.IntN(200))...)
				err := db.Append(context.Background(),
					[]Item{{Queue: q, Payload: p, Records: 1}, {Queue: q2, Payload: p[:16], Records: 1}},
					KV{Key: fmt.Appendf(nil, "ckpt/%d", w), Value: strconv.AppendInt(nil, int64(i), 10)})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "acked %d %d\n", w, i)
				_ = out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

// helperDB opens and runs the DB in dir of a helper child process, and
// its queues by name; a failure ends the child with status 2.
func helperDB(dir string, queues ...string) (*DB, []*Queue) {
	db, err := Open(DefaultConfig(dir), nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() { _ = db.Run(context.Background()) }()
	var qs []*Queue
	for _, name := range queues {
		q, err := db.Queue(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		qs = append(qs, q)
	}
	return db, qs
}

// killChild runs the test named helper as a child process with env set to
// dir and hands each line it prints to line, which says whether the line
// counts. Once killAfter lines counted (or after 20 s) it SIGKILLs the
// child and reads on until it is gone: lines printed before the kill
// happened. It returns the lines counted.
func killChild(t *testing.T, helper, env, dir string, killAfter int, line func(string) bool) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	n := 0
	deadline := time.Now().Add(20 * time.Second)
	killed := false
	for sc.Scan() {
		if !line(sc.Text()) {
			continue
		}
		n++
		if !killed && (n >= killAfter || time.Now().After(deadline)) {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	err = cmd.Wait()
	require.True(t, killed, "child exited before the kill: %v", err)
	require.Error(t, err)
	return n
}

// TestKillDurability SIGKILLs a child mid-append three times and checks that
// every acknowledged entry survived, in both queues, and that each writer's
// checkpoint agrees with the entries (written in the same transaction).
func TestKillDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	for round, killAfter := range []int{50, 300, 800} {
		t.Run(fmt.Sprintf("kill_after_%d", killAfter), func(t *testing.T) {
			dir := t.TempDir()
			acked := map[[2]int]bool{}
			// Each round reuses the directory twice: the second child starts
			// on the survivors of the first kill.
			for life := range 2 {
				n := killChild(t, "TestHelperProcess", helperDirEnv, dir, killAfter, func(line string) bool {
					var w, i int
					if _, err := fmt.Sscanf(line, "acked %d %d", &w, &i); err != nil {
						return false // test framework chatter
					}
					acked[[2]int{w, i + life*1_000_000}] = true
					return true
				})
				t.Logf("round %d life %d: killed after %d acks", round, life, n)
				verify(t, dir, acked)
			}
		})
	}
}

// verify reopens the DB and checks every acked (writer, i) of lives up to
// life is present in both queues, once, and checkpoints match entries.
func verify(t *testing.T, dir string, acked map[[2]int]bool) {
	t.Helper()
	db := openRunning(t, DefaultConfig(dir))
	defer db.stop(t)
	q := mustQueue(t, db.DB, "otlp/backend")
	q2 := mustQueue(t, db.DB, "debug")
	require.Equal(t, q.Stats().Entries, q2.Stats().Entries, "fan-out appends are all or none")

	present := map[[2]int]int{}
	last := map[int]int{}  // per writer: i of its newest entry (seq order)
	lifeW := map[int]int{} // per writer: life of the entry being read
	n := int(q.Stats().Entries)
	for range n {
		e := next(t, q)
		line, _, _ := strings.Cut(string(e.Payload), "\n")
		var w, i int
		_, err := fmt.Sscanf(line, "w=%d i=%d", &w, &i)
		require.NoError(t, err, "payload %q", line)
		// Entries come in seq order; a writer's i going back marks its next life.
		if p, ok := last[w]; ok && i <= p {
			lifeW[w]++
		}
		last[w] = i
		present[[2]int{w, i + lifeW[w]*1_000_000}]++
		e2 := next(t, q2)
		require.Equal(t, e.Payload[:16], e2.Payload)
	}
	missing := 0
	for k := range acked {
		if present[k] == 0 {
			missing++
		}
	}
	require.Zero(t, missing, "acked entries lost (of %d acked)", len(acked))
	for k, c := range present {
		require.Equal(t, 1, c, "entry %v duplicated", k)
	}
	for w := range 4 {
		v, err := db.Get(fmt.Appendf(nil, "ckpt/%d", w))
		require.NoError(t, err)
		if v == nil {
			_, ok := last[w]
			require.False(t, ok, "writer %d has entries but no checkpoint", w)
			continue
		}
		ck, err := strconv.Atoi(string(v))
		require.NoError(t, err)
		require.Equal(t, last[w], ck, "writer %d: checkpoint and last entry agree", w)
	}
}
