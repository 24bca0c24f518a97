package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// k8sEventsValueSize is the encoded size of a k8s_events resume point
// holding its full 16 event identities (uid 36 bytes, resourceVersion 8
// digits), as logs.TestResumePointSize measures it: the largest entry
// that receiver writes, one per namespace with shard_by: namespace.
const k8sEventsValueSize = 758

// TestStateSizeAtScale measures what 5,000 namespaces' resume points
// cost in a push/pull (one receiver, shard_by: namespace) and checks the
// budget holds them. Run with -v for the figures.
func TestStateSizeAtScale(t *testing.T) {
	const namespaces = 5000
	s := newStore()
	value := make([]byte, k8sEventsValueSize)
	for i := range namespaces {
		// Namespace names of a typical length (team-app-env, ~20 bytes).
		key := fmt.Sprintf("k8s_events/k8s_events/ns/team-%04d-app-prod", i)
		_, err := s.set(key, value, "obs-gateway-2", uint64(time.Now().UnixNano()))
		require.NoError(t, err)
	}
	digest := s.digest()
	perEntry := float64(len(digest)) / namespaces
	t.Logf("push/pull state at %d namespaces: %d bytes (%.1f MiB), %.0f bytes per entry; budget %d MiB for new keys, memberlist limit 20 MiB",
		namespaces, len(digest), float64(len(digest))/(1<<20), perEntry, maxStateBytes>>20)
	require.Less(t, len(digest), maxStateBytes)
	require.InDelta(t, k8sEventsValueSize+70, perEntry, 30, "value, key (~42), writer (13), version (9), lengths")

	// A digest that size decodes and merges into an empty member.
	start := time.Now()
	entries, err := decodeState(digest)
	require.NoError(t, err)
	other := newStore()
	for _, e := range entries {
		require.Equal(t, mergeApplied, other.merge(e))
	}
	t.Logf("decode and merge of %d entries: %s", len(entries), time.Since(start))
	require.Equal(t, namespaces, other.len())

	// How many such namespaces fit before new keys are refused.
	fits := maxStateBytes / int(perEntry)
	t.Logf("new keys are refused at about %d such entries", fits)
	require.Greater(t, fits, 2*namespaces-2000, "room for thousands of namespaces")
}

// BenchmarkStatePushPull is one push/pull's state work at 5,000
// namespaces: encode the digest on one side, decode and merge (all stale:
// the steady state) on the other.
func BenchmarkStatePushPull(b *testing.B) {
	const namespaces = 5000
	s := newStore()
	value := make([]byte, k8sEventsValueSize)
	for i := range namespaces {
		_, _ = s.set(fmt.Sprintf("k8s_events/k8s_events/ns/team-%04d-app-prod", i), value, "obs-gateway-2", uint64(i+1))
	}
	peer := newStore()
	entries, _ := decodeState(s.digest())
	for _, e := range entries {
		peer.merge(e)
	}
	b.ReportAllocs()
	var size int
	for b.Loop() {
		d := s.digest()
		size = len(d)
		es, err := decodeState(d)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range es {
			peer.merge(e)
		}
	}
	b.ReportMetric(float64(size), "bytes/pushpull")
}
