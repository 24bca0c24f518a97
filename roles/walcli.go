package roles

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/obs-dev/obs/wal"
)

// WALRow is one queue in `obs wal stats`.
type WALRow struct {
	Queue     string
	Entries   int64
	Bytes     int64
	OldestAge time.Duration
	Dead      int64
}

// DeadRow is one dead-lettered batch in `obs wal dead`.
type DeadRow struct {
	Queue   string
	Seq     uint64
	Records int
	Bytes   int64
	Time    time.Time
	Reason  string
}

// openWAL opens the WAL of a stopped member (badger holds a directory
// lock, so a running member's WAL is read through its admin port instead).
// The returned close func stops the WAL's committer and closes it.
func openWAL(dataDir string) (*wal.DB, func(), error) {
	db, err := wal.Open(wal.DefaultConfig(filepath.Join(dataDir, "wal")), nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open wal in %s (is a member still running on it?): %w", dataDir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = db.Run(ctx)
	}()
	return db, func() {
		cancel()
		<-done
		_ = db.Close()
	}, nil
}

// WALStats reports every queue of the WAL under dataDir.
func WALStats(dataDir string) ([]WALRow, error) {
	db, closeWAL, err := openWAL(dataDir)
	if err != nil {
		return nil, err
	}
	defer closeWAL()
	var rows []WALRow
	for _, q := range db.Queues() {
		st := q.Stats()
		rows = append(rows, WALRow{Queue: q.Name(), Entries: st.Entries, Bytes: st.Bytes, OldestAge: st.OldestAge, Dead: st.DeadEntries})
	}
	return rows, nil
}

// WALDead lists dead-lettered batches of one queue, or of all when queue is "".
func WALDead(dataDir, queue string) ([]DeadRow, error) {
	db, closeWAL, err := openWAL(dataDir)
	if err != nil {
		return nil, err
	}
	defer closeWAL()
	var names []string
	if queue != "" {
		names = []string{queue}
	} else {
		for _, q := range db.Queues() {
			names = append(names, q.Name())
		}
	}
	var rows []DeadRow
	for _, n := range names {
		dead, err := db.DeadLetters(n)
		if err != nil {
			return nil, err
		}
		for _, d := range dead {
			rows = append(rows, DeadRow{Queue: n, Seq: d.Seq, Records: d.Records, Bytes: d.Bytes, Time: d.Time, Reason: d.Reason})
		}
	}
	return rows, nil
}

// WALReplay re-enqueues dead-lettered batches (all when no seqs given).
func WALReplay(dataDir, queue string, seqs ...uint64) (int, error) {
	db, closeWAL, err := openWAL(dataDir)
	if err != nil {
		return 0, err
	}
	defer closeWAL()
	return db.ReplayDead(queue, seqs...)
}
