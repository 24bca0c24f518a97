package cluster

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestStoreLastWriterWins(t *testing.T) {
	tests := []struct {
		name   string
		have   entry
		remote entry
		want   mergeResult
		value  string
	}{
		{"higher version wins", entry{key: "k", value: []byte("a"), version: 5, node: "x"}, entry{key: "k", value: []byte("b"), version: 6, node: "a"}, mergeApplied, "b"},
		{"lower version loses", entry{key: "k", value: []byte("a"), version: 5, node: "x"}, entry{key: "k", value: []byte("b"), version: 4, node: "z"}, mergeStale, "a"},
		{"same version: higher writer name wins", entry{key: "k", value: []byte("a"), version: 5, node: "x"}, entry{key: "k", value: []byte("b"), version: 5, node: "y"}, mergeApplied, "b"},
		{"same version: lower writer name loses", entry{key: "k", value: []byte("a"), version: 5, node: "x"}, entry{key: "k", value: []byte("b"), version: 5, node: "w"}, mergeStale, "a"},
		{"duplicate is stale", entry{key: "k", value: []byte("a"), version: 5, node: "x"}, entry{key: "k", value: []byte("a"), version: 5, node: "x"}, mergeStale, "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore()
			require.Equal(t, mergeApplied, s.merge(tc.have))
			require.Equal(t, tc.want, s.merge(tc.remote))
			v, ok := s.get("k")
			require.True(t, ok)
			require.Equal(t, tc.value, string(v))
			// Order of arrival must not matter.
			s2 := newStore()
			s2.merge(tc.remote)
			s2.merge(tc.have)
			v2, _ := s2.get("k")
			require.Equal(t, tc.value, string(v2))
		})
	}
}

func TestStoreClock(t *testing.T) {
	s := newStore()
	// A remote entry from the future moves the clock: the next local write
	// must beat it even if the wall clock is behind.
	require.Equal(t, mergeApplied, s.merge(entry{key: "k", value: []byte("remote"), version: 1000, node: "z"}))
	e, err := s.set("k", []byte("local"), "a", 10)
	require.NoError(t, err)
	require.Greater(t, e.version, uint64(1000))
	v, _ := s.get("k")
	require.Equal(t, "local", string(v))
	// The wall clock wins when it is ahead (a restarted writer).
	e2, err := s.set("k", []byte("later"), "a", 5000)
	require.NoError(t, err)
	require.Equal(t, uint64(5000), e2.version)
}

func TestStoreLimits(t *testing.T) {
	s := newStore()
	_, err := s.set("", []byte("v"), "a", 1)
	require.Error(t, err)
	_, err = s.set(strings.Repeat("k", maxStateKey+1), nil, "a", 1)
	require.Error(t, err)
	_, err = s.set("k", make([]byte, maxStateValue+1), "a", 1)
	require.Error(t, err)
	require.NotErrorIs(t, err, errStateFull)

	// Small entries: the count bounds the state.
	for i := range maxStateEntries {
		_, err := s.set(fmt.Sprint(i), nil, "a", 1)
		require.NoError(t, err)
	}
	_, err = s.set("one-too-many", nil, "a", 1)
	require.ErrorIs(t, err, errStateFull)
	_, err = s.set("0", []byte("update of an existing key still works"), "a", 1)
	require.NoError(t, err)
	require.Equal(t, mergeFull, s.merge(entry{key: "remote-new", value: []byte{}, version: 9, node: "b"}))

	// Large entries: the encoded bytes bound it, well below the 20 MiB
	// memberlist accepts in one push/pull.
	s = newStore()
	big := make([]byte, maxStateValue)
	n := 0
	for ; ; n++ {
		if _, err := s.set(fmt.Sprintf("big-%06d", n), big, "gateway-0", 1); err != nil {
			require.ErrorIs(t, err, errStateFull)
			break
		}
	}
	_, size := s.usage()
	require.LessOrEqual(t, size, maxStateBytes)
	require.Greater(t, size, maxStateBytes-2*len(big))
	require.Equal(t, size, len(s.digest())-1-uvarintLen(uint64(n))-1, "usage counts the digest's bytes")
	// Updates of existing keys go on: a writer that has its key keeps it.
	_, err = s.set("big-000000", big[:10], "gateway-0", 2)
	require.NoError(t, err)
	_, err = s.set("big-000001", big, "gateway-0", 3)
	require.NoError(t, err)
}

func TestStateEncoding(t *testing.T) {
	s := newStore()
	for i := range 20 {
		_, err := s.set(fmt.Sprintf("key-%d", i), bytes.Repeat([]byte{byte(i)}, i), "writer", uint64(i))
		require.NoError(t, err)
	}
	entries, err := decodeState(s.digest())
	require.NoError(t, err)
	require.Len(t, entries, 20)
	s2 := newStore()
	for _, e := range entries {
		require.Equal(t, mergeApplied, s2.merge(e))
	}
	require.Equal(t, s.infos(), s2.infos())

	e := entry{key: "k8s-events/resume", value: []byte("rv=12345"), version: 77, node: "gw-1"}
	got, err := decodeState(encodeEntryMsg(e))
	require.NoError(t, err)
	require.Equal(t, []entry{e}, got)

	name, start, err := decodeLeaving(encodeLeaving("gw-2", time.Unix(0, 42)))
	require.NoError(t, err)
	require.Equal(t, "gw-2", name)
	require.Equal(t, int64(42), start.UnixNano())

	for _, bad := range [][]byte{nil, {0}, {msgStateEntry}, {msgStateDelete}, {msgStateDigest, 0xff}, {msgStateDigest, 5, 1, 'k'},
		{msgStateDigest, 0, 2, 1, 'k'}} {
		_, err := decodeState(bad)
		require.Error(t, err, "%v", bad)
	}
}

// FuzzDecodeState: gossip from other members is outside input.
func FuzzDecodeState(f *testing.F) {
	s := newStore()
	_, _ = s.set("a", []byte("1"), "n", 1)
	_, _ = s.set("b", []byte("22"), "n", 2)
	f.Add(s.digest())
	f.Add(encodeEntryMsg(entry{key: "k", value: []byte("v"), version: 3, node: "x"}))
	f.Add(encodeLeaving("x", time.Unix(1, 0)))
	f.Add(encodeEntryMsg(entry{key: "gone", version: 4, node: "x", deleted: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodeState(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			require.NotEmpty(t, e.key)
			require.LessOrEqual(t, len(e.key), maxStateKey)
			require.LessOrEqual(t, len(e.value), maxStateValue)
			// Decoded entries re-encode to something that decodes the same.
			again, err := decodeState(encodeEntryMsg(e))
			require.NoError(t, err)
			require.Equal(t, []entry{e}, again)
		}
		_, _, _ = decodeLeaving(b)
	})
}

// TestSharedState: a value written on one member reaches all by gossip,
// survives its writer's crash and reaches a member that joins afterwards
// by push/pull.
func TestSharedState(t *testing.T) {
	seed := startNode(t, testConfig("s0", "127.0.0.40"))
	writer := startNode(t, testConfig("s1", "127.0.0.41", seed.Addr()))
	third := startNode(t, testConfig("s2", "127.0.0.42", seed.Addr()))
	nodes := []*testNode{seed, writer, third}
	eventually(t, nodes, 5*time.Second, "join", func() bool { return agree(nodes, namesOf(nodes)) })

	require.NoError(t, writer.SetState("k8s-events/resume", []byte("rv=100")))
	require.NoError(t, writer.SetState("k8s-events/resume", []byte("rv=101")))
	eventually(t, nodes, 5*time.Second, "gossip of the state", func() bool {
		for _, n := range nodes {
			if v, ok := n.State("k8s-events/resume"); !ok || string(v) != "rv=101" {
				return false
			}
		}
		return true
	})
	require.Positive(t, testutil.ToFloat64(writer.metrics.gossipMsgs.WithLabelValues("sent")))
	require.Positive(t, testutil.ToFloat64(seed.metrics.gossipBytes.WithLabelValues("received")))

	writer.stop(t, true)
	// A later write elsewhere wins over the dead writer's.
	require.NoError(t, third.SetState("k8s-events/resume", []byte("rv=150")))
	late := startNode(t, testConfig("s3", "127.0.0.43", seed.Addr()))
	eventually(t, []*testNode{seed, third, late}, 5*time.Second, "state reaches a late joiner", func() bool {
		for _, n := range []*testNode{seed, third, late} {
			if v, ok := n.State("k8s-events/resume"); !ok || string(v) != "rv=150" {
				return false
			}
		}
		return true
	})
	require.Positive(t, testutil.ToFloat64(late.metrics.pushPull.WithLabelValues("received")))
	info := late.Snapshot().State
	require.Len(t, info, 1)
	require.Equal(t, "s2", info[0].Writer)

	_, ok := late.State("missing")
	require.False(t, ok)
	require.Error(t, late.SetState("", nil))
}
