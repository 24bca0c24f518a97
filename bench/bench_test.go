package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func marshalLogs(t testing.TB, shape []int) []byte {
	t.Helper()
	ld := plog.NewLogs()
	for _, n := range shape {
		sl := ld.ResourceLogs().AppendEmpty().ScopeLogs()
		sl.AppendEmpty() // an empty scope counts nothing
		recs := sl.AppendEmpty().LogRecords()
		for i := range n {
			recs.AppendEmpty().Body().SetStr(strings.Repeat("x", i%50))
		}
	}
	b, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)
	return b
}

func TestCountLogRecords(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int // records per resource
		want  int
	}{
		{"empty request", nil, 0},
		{"one resource", []int{7}, 7},
		{"several resources", []int{3, 0, 1000, 1}, 1004},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := countLogRecords(marshalLogs(t, tc.shape))
			require.NoError(t, err)
			require.Equal(t, tc.want, n)
		})
	}
	t.Run("truncated", func(t *testing.T) {
		b := marshalLogs(t, []int{5})
		_, err := countLogRecords(b[:len(b)-3])
		require.Error(t, err)
	})
}

// FuzzCountLogRecords: the wire walker never panics; whenever pdata can
// decode the bytes, the walker counts the same records in pdata's
// re-encoding, and in the bytes themselves unless it finds them malformed
// (pdata skips some malformed unknown fields, such as unterminated groups).
func FuzzCountLogRecords(f *testing.F) {
	f.Add(marshalLogs(f, []int{2, 3}))
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := countLogRecords(b)
		req := plogotlp.NewExportRequest()
		if req.UnmarshalProto(b) != nil {
			return
		}
		want := req.Logs().LogRecordCount()
		if err == nil {
			require.Equal(t, want, n)
		}
		again, merr := req.MarshalProto()
		require.NoError(t, merr)
		n, err = countLogRecords(again)
		require.NoError(t, err)
		require.Equal(t, want, n)
	})
}

func TestGenPayloads(t *testing.T) {
	ps, err := genPayloads(0, 4, 1000, 1)
	require.NoError(t, err)
	require.Len(t, ps, 4)
	again, err := genPayloads(0, 4, 1000, 1)
	require.NoError(t, err)
	bodies := map[string]bool{}
	for i, p := range ps {
		require.Equal(t, again[i].body, p.body, "same seed, same bytes")
		n, err := countLogRecords(p.body)
		require.NoError(t, err)
		require.Equal(t, 1000, n)
		per := len(p.body) / p.records
		require.True(t, per >= 150 && per <= 260, "~200 bytes per record, got %d", per)
		req := plogotlp.NewExportRequest()
		require.NoError(t, req.UnmarshalProto(p.body))
		recs := req.Logs().ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
		for j := range recs.Len() {
			bodies[recs.At(j).Body().Str()] = true
		}
	}
	require.Greater(t, len(bodies), 3900, "bodies are varied")
}

func TestWorkHandsOutExactlyTheRecords(t *testing.T) {
	ps, err := genPayloads(0, 3, 10, 1)
	require.NoError(t, err)
	tail, err := genPayloads(3, 1, 4, 2)
	require.NoError(t, err)
	w := &work{payloads: ps, full: 5, tail: &tail[0]}
	total := 0
	for range 100 {
		p, ok := w.take()
		if !ok {
			break
		}
		total += p.records
	}
	require.Equal(t, 54, total)
}

// TestSendAllIntoSink runs the senders against the sink itself: every
// record arrives, and the sink signals the target.
func TestSendAllIntoSink(t *testing.T) {
	sk, err := newSink(nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- sk.serve() }()
	defer func() { sk.stop(); require.NoError(t, <-done) }()

	ps, err := genPayloads(0, 2, 100, 1)
	require.NoError(t, err)
	reached := sk.expect(1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sendAll(ctx, sk.addr(), 4, &work{payloads: ps, full: 10})
	require.NoError(t, err)
	require.EqualValues(t, 1000, st.sentRecords)
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("sink never reached 1000 records")
	}
	require.EqualValues(t, 1000, sk.records.Load())
	require.EqualValues(t, 10, sk.requests.Load())
	require.False(t, sk.reachedAt().IsZero())
}

func TestParseProc(t *testing.T) {
	t.Run("stat with spaces in the name", func(t *testing.T) {
		line := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 12345 1000 50 18446744073709551615\n"
		s, err := parseStatCPU([]byte(line))
		require.NoError(t, err)
		require.InDelta(t, 3.25, s, 1e-9)
	})
	t.Run("stat too short", func(t *testing.T) {
		_, err := parseStatCPU([]byte("1 (x) S 1 2"))
		require.Error(t, err)
	})
	t.Run("own process", func(t *testing.T) {
		_, err := cpuSeconds("self")
		require.NoError(t, err)
		rss, err := peakRSS("self")
		require.NoError(t, err)
		require.Greater(t, rss, int64(1<<20))
	})
	t.Run("VmHWM", func(t *testing.T) {
		n, err := parseVmHWM(strings.NewReader("Name:\tx\nVmPeak:\t 999 kB\nVmHWM:\t   2048 kB\nVmRSS:\t1 kB\n"))
		require.NoError(t, err)
		require.EqualValues(t, 2048<<10, n)
		_, err = parseVmHWM(strings.NewReader("Name:\tx\n"))
		require.Error(t, err)
	})
	t.Run("RSS split", func(t *testing.T) {
		anon, file, err := rssSplit("self")
		require.NoError(t, err)
		require.Greater(t, anon, int64(1<<20))
		require.Greater(t, file, int64(0))
		v, err := parseStatusKB(strings.NewReader("RssAnon:\t  10 kB\nRssFile:\t 3 kB\n"), "RssAnon", "RssFile", "RssShmem")
		require.Error(t, err, "RssShmem is missing")
		require.Nil(t, v)
	})
}

func TestParseSmaps(t *testing.T) {
	in := `7f0000000000-7f0004000000 rw-s 00000000 fd:01 123 /data/000001.vlog
Size:              65536 kB
Rss:                2048 kB
7f0004000000-7f0005000000 rw-p 00000000 00:00 0 
Rss:                4096 kB
7f0005000000-7f0006000000 r--s 00000000 fd:01 124 /data/000001.vlog
Rss:                1024 kB
VmFlags: rd sh mr mw me ms sd
00400000-00500000 r-xp 00000000 fd:01 99 /usr/bin/obs (deleted)
Rss:                 512 kB
`
	ms, err := parseSmaps(strings.NewReader(in), 2)
	require.NoError(t, err)
	require.Equal(t, []mapping{{"[anon]", 4096 << 10}, {"/data/000001.vlog", 3072 << 10}}, ms)
	all, err := parseSmaps(strings.NewReader(in), 10)
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.Equal(t, "/usr/bin/obs (deleted)", all[2].name)
}
