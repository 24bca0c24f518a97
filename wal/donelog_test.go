package wal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const helperDoneEnv = "OBS_WAL_DONE_HELPER_DIR"

// TestHelperDoneProcess is not a test: run by TestKillAfterDone as a child
// process, it appends entries "i=N" from two writers and marks them done
// from two consumers, printing "acked N" after each Append, "doing N"
// before each Done and "done N" after it returned, until it is killed.
// Each line is one write(2) to the pipe, so the parent reads every line
// printed before the kill: a line held in a buffer would hide a Done that
// happened.
func TestHelperDoneProcess(t *testing.T) {
	dir := os.Getenv(helperDoneEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	db, qs := helperDB(dir, "otlp/backend")
	q := qs[0]
	say := func(line string) {
		if _, err := os.Stdout.WriteString(line + "\n"); err != nil {
			os.Exit(6)
		}
	}
	start := time.Now().UnixNano() // unique across lives
	for w := range 2 {
		go func() {
			pad := make([]byte, 4000) // values in the value log, as batches are
			for i := 0; i < 1_000_000; i++ {
				p := append(fmt.Appendf(nil, "i=%d-%d-%d\n", start, w, i), pad...)
				if err := db.Append(context.Background(), []Item{{Queue: q, Payload: p, Records: 1}}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				say(fmt.Sprintf("acked %d-%d-%d", start, w, i))
			}
		}()
	}
	for range 2 {
		go func() {
			for {
				e, err := q.Next(context.Background())
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				id, _, _ := strings.Cut(strings.TrimPrefix(string(e.Payload), "i="), "\n")
				say("doing " + id)
				if err := q.Done(e.Seq); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(5)
				}
				say("done " + id)
			}
		}()
	}
	select {}
}

// TestKillAfterDone SIGKILLs a child that appends and marks entries done
// (each append syncs, so badger's deletes wait behind syncs) and checks
// after reopening that no entry whose Done had returned is handed out
// again, and that every acknowledged entry whose Done was not called
// still is. (An entry whose Done was under way at the kill may be either.)
func TestKillAfterDone(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	for _, killAfter := range []int{200, 1000, 3000} {
		t.Run(fmt.Sprintf("kill_after_%d", killAfter), func(t *testing.T) {
			dir := t.TempDir()
			acked, doing, done := map[string]bool{}, map[string]bool{}, map[string]bool{}
			for life := range 2 {
				n := killChild(t, "TestHelperDoneProcess", helperDoneEnv, dir, killAfter, func(line string) bool {
					kind, id, _ := strings.Cut(line, " ")
					switch kind {
					case "acked":
						acked[id] = true
					case "doing":
						doing[id] = true
					case "done":
						done[id] = true
						return true
					}
					return false // "acked" and "doing" lines, test framework chatter
				})
				logs, err := filepath.Glob(filepath.Join(dir, doneLogPrefix+"*"))
				require.NoError(t, err)
				t.Logf("life %d: killed after %d done, %d acked in all; done logs left: %d", life, n, len(acked), len(logs))

				db := openRunning(t, DefaultConfig(dir))
				q := mustQueue(t, db.DB, "otlp/backend")
				present := map[string]bool{}
				for range q.Stats().Entries {
					e := next(t, q)
					id, _, _ := strings.Cut(strings.TrimPrefix(string(e.Payload), "i="), "\n")
					present[id] = true
				}
				var again, lost []string
				for id := range present {
					if done[id] {
						again = append(again, id)
					}
				}
				underWay, tookEffect := 0, 0 // Done called, not seen returning
				for id := range acked {
					if !doing[id] && !present[id] {
						lost = append(lost, id)
					}
					if doing[id] && !done[id] {
						underWay++
						if !present[id] {
							tookEffect++
						}
					}
				}
				t.Logf("life %d: %d Done calls under way at the kill, %d of them took effect", life, underWay, tookEffect)
				require.Empty(t, again, "entries whose Done returned before the kill are handed out again")
				require.Empty(t, lost, "acknowledged entries never marked done are gone")
				db.stop(t) // leaves them for the next life
			}
		})
	}
}

// TestDoneLogRotates: past the rotation size a new file starts, and a file
// goes once badger committed every delete it recorded.
func TestDoneLogRotates(t *testing.T) {
	dir := t.TempDir()
	d, err := openDoneLog(dir, 1)
	require.NoError(t, err)
	per := doneLogRotateBytes / doneRecordLen
	var gens []uint64
	for i := range per + 1 {
		g, err := d.record(1, uint64(i))
		require.NoError(t, err)
		gens = append(gens, g)
	}
	require.Equal(t, uint64(1), gens[0])
	require.Equal(t, uint64(2), gens[per], "the record past the size starts file 2")
	files := func() []uint64 { g, err := doneLogs(dir); require.NoError(t, err); return g }
	require.Equal(t, []uint64{1, 2}, files())
	require.NoError(t, d.settled(gens[:per-1]))
	require.Equal(t, []uint64{1, 2}, files(), "file 1 has a delete not committed yet")
	require.NoError(t, d.settled(gens[per-1:per]))
	require.Equal(t, []uint64{2}, files())
	require.NoError(t, d.settled(gens[per:]))
	require.Equal(t, []uint64{2}, files(), "the current file stays")
	require.NoError(t, d.close(true))
	require.Empty(t, files(), "a clean close with everything committed removes them")
}

// TestReadDoneLogStopsAtTornRecord: a record cut short or with a bad CRC
// (a crash mid-write) ends the log; the records before it count.
func TestReadDoneLogStopsAtTornRecord(t *testing.T) {
	dir := t.TempDir()
	d, err := openDoneLog(dir, 7)
	require.NoError(t, err)
	for seq := range uint64(3) {
		_, err := d.record(2, seq+10)
		require.NoError(t, err)
	}
	require.NoError(t, d.close(false))
	path := filepath.Join(dir, doneLogName(7))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		data []byte
		want int
	}{
		{"whole", b, 3},
		{"cut short", b[:len(b)-5], 2},
		{"bad crc", append(append([]byte{}, b[:doneRecordLen]...), append([]byte{9}, b[doneRecordLen+1:]...)...), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, tc.data, 0o644))
			keys, err := readDoneLog(path)
			require.NoError(t, err)
			require.Len(t, keys, tc.want)
			require.Equal(t, seqKey(prefixEntry, 2, 10), keys[0])
		})
	}
}
