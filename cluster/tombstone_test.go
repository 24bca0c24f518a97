package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestStoreTombstone(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newStore()
	s.now = func() time.Time { return now }
	s.ttl = time.Minute

	_, err := s.set("ns/a", []byte("rv=5"), "gw-0", 100)
	require.NoError(t, err)
	old := entry{key: "ns/a", value: []byte("rv=4"), version: 90, node: "gw-1"}

	tomb, ok, err := s.remove("ns/a", "gw-0", 200)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, tomb.deleted)
	_, found := s.get("ns/a")
	require.False(t, found, "a deleted key reads as absent")
	require.Empty(t, s.infos())
	require.Zero(t, s.len())
	tombs, _ := s.usage()
	require.Equal(t, 1, tombs)

	// An older write still in flight does not bring the key back.
	require.Equal(t, mergeStale, s.merge(old))
	_, found = s.get("ns/a")
	require.False(t, found)
	// Deleting again, or deleting what never existed, writes nothing.
	_, ok, err = s.remove("ns/a", "gw-0", 300)
	require.NoError(t, err)
	require.False(t, ok)
	_, ok, err = s.remove("never", "gw-0", 300)
	require.NoError(t, err)
	require.False(t, ok)

	// A newer write after the deletion (the namespace came back) wins.
	s2 := newStore()
	require.Equal(t, mergeApplied, s2.merge(tomb))
	require.Equal(t, mergeApplied, s2.merge(entry{key: "ns/a", value: []byte("new"), version: 250, node: "gw-2"}))
	v, found := s2.get("ns/a")
	require.True(t, found)
	require.Equal(t, "new", string(v))

	// Whatever the order, members converge: tombstone vs the same version.
	same := entry{key: "k", value: []byte("v"), version: 7, node: "n"}
	sameTomb := entry{key: "k", version: 7, node: "n", deleted: true}
	for _, order := range [][]entry{{same, sameTomb}, {sameTomb, same}} {
		s3 := newStore()
		s3.merge(order[0])
		s3.merge(order[1])
		_, found := s3.get("k")
		require.False(t, found)
	}

	// Garbage collection: kept for the TTL after it was learned, then gone.
	require.Zero(t, s.gc())
	now = now.Add(time.Minute + time.Second)
	require.Equal(t, 1, s.gc())
	tombs, size := s.usage()
	require.Zero(t, tombs)
	require.Zero(t, size)
	require.Equal(t, mergeApplied, s.merge(old), "after the TTL an old write is new again: the TTL must outlast the spread")
}

func TestDigestCarriesTombstones(t *testing.T) {
	s := newStore()
	for i := range 3 {
		_, err := s.set(fmt.Sprintf("k%d", i), []byte("v"), "gw-0", uint64(10+i))
		require.NoError(t, err)
	}
	_, ok, err := s.remove("k1", "gw-0", 50)
	require.NoError(t, err)
	require.True(t, ok)

	entries, err := decodeState(s.digest())
	require.NoError(t, err)
	require.Len(t, entries, 3)
	other := newStore()
	_, err = other.set("k1", []byte("stale"), "gw-1", 20) // missed the delete
	require.NoError(t, err)
	for _, e := range entries {
		other.merge(e)
	}
	require.Equal(t, s.infos(), other.infos())
	_, found := other.get("k1")
	require.False(t, found)

	// A digest from a member that predates tombstones (no trailing
	// section) still decodes, and the live part of a new digest is what
	// such a member reads (it ignores trailing bytes).
	legacy := []byte{msgStateDigest}
	legacy = binary.AppendUvarint(legacy, 1)
	legacy = appendEntry(legacy, entry{key: "old", value: []byte("x"), version: 1, node: "gw-9"})
	got, err := decodeState(legacy)
	require.NoError(t, err)
	require.Len(t, got, 1)
	d := s.digest()
	n, k := binary.Uvarint(d[1:])
	require.Equal(t, uint64(2), n, "the leading count is the live entries")
	rest := d[1+k:]
	for range n {
		_, rest, err = readEntry(rest)
		require.NoError(t, err)
	}
	require.True(t, bytes.HasPrefix(rest, []byte{1}), "then one tombstone")
}

// TestDeleteState: a deletion on one member reaches every member by
// gossip, and a member that joins later learns it by push/pull and does
// not bring the key back.
func TestDeleteState(t *testing.T) {
	seed := startNode(t, testConfig("d0", "127.0.0.44"))
	other := startNode(t, testConfig("d1", "127.0.0.45", seed.Addr()))
	nodes := []*testNode{seed, other}
	eventually(t, nodes, 5*time.Second, "join", func() bool { return agree(nodes, namesOf(nodes)) })

	require.NoError(t, other.SetState("k8s_events/r/ns/gone", []byte("rv=1")))
	require.NoError(t, other.SetState("k8s_events/r/ns/kept", []byte("rv=2")))
	eventually(t, nodes, 5*time.Second, "gossip of the writes", func() bool {
		for _, n := range nodes {
			if _, ok := n.State("k8s_events/r/ns/gone"); !ok {
				return false
			}
		}
		return true
	})
	require.NoError(t, seed.DeleteState("k8s_events/r/ns/gone"))
	eventually(t, nodes, 5*time.Second, "gossip of the deletion", func() bool {
		for _, n := range nodes {
			if _, ok := n.State("k8s_events/r/ns/gone"); ok {
				return false
			}
		}
		return true
	})
	require.Equal(t, 1.0, testutil.ToFloat64(other.metrics.tombstones))
	require.Equal(t, 1.0, testutil.ToFloat64(other.metrics.stateEntries))

	late := startNode(t, testConfig("d2", "127.0.0.46", seed.Addr()))
	// The late member was told of an old write before it heard of the
	// deletion (as a member partitioned away during the delete would be).
	late.store.merge(entry{key: "k8s_events/r/ns/gone", value: []byte("rv=0"), version: 1, node: "d1"})
	all := []*testNode{seed, other, late}
	eventually(t, all, 5*time.Second, "deletion reaches a late joiner", func() bool {
		_, gone := late.State("k8s_events/r/ns/gone")
		_, kept := late.State("k8s_events/r/ns/kept")
		return !gone && kept
	})
	for _, n := range all {
		_, ok := n.State("k8s_events/r/ns/gone")
		require.False(t, ok, n.Name())
		require.Len(t, n.Snapshot().State, 1, n.Name())
	}
}

func TestStateFullIsCountedAndLoggedOnce(t *testing.T) {
	n := startNode(t, testConfig("full", "127.0.0.47"))
	big := make([]byte, maxStateValue)
	var err error
	for i := 0; err == nil; i++ {
		err = n.SetState(fmt.Sprintf("k/%06d", i), big)
	}
	require.ErrorIs(t, err, errStateFull)
	for i := range 50 {
		require.ErrorIs(t, n.SetState(fmt.Sprintf("again/%d", i), big), errStateFull)
	}
	require.Equal(t, 51.0, testutil.ToFloat64(n.metrics.stateRefused.WithLabelValues("full")))
	require.Equal(t, 1, bytes.Count([]byte(n.logs.String()), []byte(`msg="cluster state is full`)), "one warning a minute, not one per write")
	_, size := n.store.usage()
	require.Equal(t, float64(size), testutil.ToFloat64(n.metrics.stateBytes))
}

func TestSnapshotDuties(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeName, cfg.ClusterName = "gw-a", "c"
	n, err := New(cfg, nil, nil)
	require.NoError(t, err)
	d := &delegate{n: n}
	start := time.Unix(100, 0)
	d.NotifyJoin(memberlistNode("gw-a", Meta{Cluster: "c", Role: RoleGateway, Start: start}))
	d.NotifyJoin(memberlistNode("gw-b", Meta{Cluster: "c", Role: RoleGateway, Start: start}))

	var keys []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("k8s-events/ns-%02d", i))
	}
	n.SetDuties("k8s_events", keys)
	v := n.Snapshot()
	require.Len(t, v.Duties, 2)
	total := 0
	for _, o := range v.Duties {
		require.Equal(t, o.Count, len(o.Duties))
		for _, duty := range o.Duties {
			owner, _ := n.Leader(duty)
			require.Equal(t, owner, o.Member, duty)
		}
		total += o.Count
	}
	require.Equal(t, 41, total, "the configured duty and every reported one")
	require.Equal(t, "gw-a", v.Duties[0].Member)

	n.SetDuties("k8s_events", nil)
	v = n.Snapshot()
	require.Len(t, v.Duties, 1)
	require.Equal(t, []string{DefaultLeaderDuty}, v.Duties[0].Duties)
}

// TestTombstonesCollected: tombstones are dropped TombstoneTTL after each
// member learned of them (at its push/pull), on every member, and the
// deleted key stays deleted.
func TestTombstonesCollected(t *testing.T) {
	cfg0 := testConfig("g0", "127.0.0.48")
	cfg0.TombstoneTTL = 500 * time.Millisecond
	seed := startNode(t, cfg0)
	cfg1 := testConfig("g1", "127.0.0.49", seed.Addr())
	cfg1.TombstoneTTL = 500 * time.Millisecond
	other := startNode(t, cfg1)
	nodes := []*testNode{seed, other}
	eventually(t, nodes, 5*time.Second, "join", func() bool { return agree(nodes, namesOf(nodes)) })

	require.NoError(t, seed.SetState("k", []byte("v")))
	eventually(t, nodes, 5*time.Second, "gossip of the write", func() bool {
		_, ok := other.State("k")
		return ok
	})
	require.NoError(t, other.DeleteState("k"))
	eventually(t, nodes, 5*time.Second, "deletion seen everywhere", func() bool {
		_, ok := seed.State("k")
		return !ok && testutil.ToFloat64(seed.metrics.tombstones) == 1
	})
	eventually(t, nodes, 5*time.Second, "tombstones collected everywhere", func() bool {
		for _, n := range nodes {
			if tombs, _ := n.store.usage(); tombs != 0 || testutil.ToFloat64(n.metrics.tombstones) != 0 {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		_, ok := n.State("k")
		require.False(t, ok, n.Name())
		_, size := n.store.usage()
		require.Zero(t, size, n.Name())
	}
}
