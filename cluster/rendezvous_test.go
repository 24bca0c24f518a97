package cluster

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func members(names []string) []Member {
	out := make([]Member, len(names))
	for i, n := range names {
		out[i] = Member{Name: n, State: StateAlive, Meta: Meta{Role: RoleGateway}}
	}
	return out
}

// scrapeKeys look like the keys the sharder hashes: job and instance.
func scrapeKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("kubernetes-pods/10.%d.%d.%d:9100", i/65536, i/256%256, i%256)
	}
	return out
}

func owners(r *ring, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		if j := r.owner(k); j >= 0 {
			out[i] = r.members[j].Name
		}
	}
	return out
}

func maxOverMean(owners []string, nMembers int) float64 {
	count := map[string]int{}
	most := 0
	for _, o := range owners {
		count[o]++
		most = max(most, count[o])
	}
	return float64(most) / (float64(len(owners)) / float64(nMembers))
}

func TestRendezvousMatchesRing(t *testing.T) {
	ms := names("obs-gateway", 17)
	r := newRing(members(ms))
	shuffled := append([]string(nil), ms...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range scrapeKeys(2000) {
		want, ok := Rendezvous(k, ms)
		require.True(t, ok)
		got, _ := Rendezvous(k, shuffled)
		require.Equal(t, want, got, "order of members must not matter")
		require.Equal(t, want, r.members[r.owner(k)].Name)
	}
	_, ok := Rendezvous("k", nil)
	require.False(t, ok)
	require.Equal(t, -1, newRing(nil).owner("k"))
}

// TestSimulation: 100 members, 10,000 keys, no network.
func TestSimulation(t *testing.T) {
	const nMembers, nKeys = 100, 10000
	ms := names("obs-gateway", nMembers)
	keys := scrapeKeys(nKeys)
	base := owners(newRing(members(ms)), keys)

	t.Run("balance", func(t *testing.T) {
		ratio := maxOverMean(base, nMembers)
		t.Logf("max/mean owned keys = %.3f", ratio)
		require.LessOrEqual(t, ratio, 1.25)
	})

	t.Run("join moves keys only to the new member", func(t *testing.T) {
		after := owners(newRing(members(append(append([]string(nil), ms...), "obs-gateway-new"))), keys)
		moved := 0
		for i := range keys {
			if after[i] != base[i] {
				moved++
				require.Equal(t, "obs-gateway-new", after[i], "key %s moved between old members", keys[i])
			}
		}
		t.Logf("join moved %d keys (%.3f/N of all)", moved, float64(moved)*nMembers/nKeys)
		require.Positive(t, moved)
		require.LessOrEqual(t, float64(moved), 1.2*nKeys/nMembers)
	})

	t.Run("leave moves only the leaver's keys", func(t *testing.T) {
		const gone = "obs-gateway-42"
		var rest []string
		for _, m := range ms {
			if m != gone {
				rest = append(rest, m)
			}
		}
		after := owners(newRing(members(rest)), keys)
		moved := 0
		for i := range keys {
			if after[i] != base[i] {
				moved++
				require.Equal(t, gone, base[i], "key %s moved though its owner stayed", keys[i])
			}
			require.NotEqual(t, gone, after[i])
		}
		t.Logf("leave moved %d keys (%.3f/N of all)", moved, float64(moved)*nMembers/nKeys)
		require.Positive(t, moved)
		require.LessOrEqual(t, float64(moved), 1.2*nKeys/nMembers)
	})
}

// TestSimulationSpread measures the balance over many key sets: it is
// hashing, so max/mean is a random variable (balls into 100 bins).
func TestSimulationSpread(t *testing.T) {
	if testing.Short() {
		t.Skip("statistics over many key sets")
	}
	const nMembers, nKeys, trials = 100, 10000, 30
	r := newRing(members(names("obs-gateway", nMembers)))
	over, worst, sum := 0, 0.0, 0.0
	keys := make([]string, nKeys)
	for trial := range trials {
		for i := range keys {
			keys[i] = fmt.Sprintf("trial-%d/target-%d", trial, i)
		}
		ratio := maxOverMean(owners(r, keys), nMembers)
		sum += ratio
		worst = max(worst, ratio)
		if ratio > 1.25 {
			over++
		}
	}
	t.Logf("max/mean over %d key sets: mean %.3f, worst %.3f, %d above 1.25", trials, sum/trials, worst, over)
	// Independent hashing gives about 1.25 on average here; the mean
	// staying near it is what shows the hash spreads like a fair one.
	require.Less(t, sum/trials, 1.32)
}

func BenchmarkOwner100(b *testing.B) {
	r := newRing(members(names("obs-gateway", 100)))
	n := &Node{cfg: Config{NodeName: "obs-gateway-0"}}
	n.view.Store(&view{gateway: r, any: r})
	keys := scrapeKeys(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := n.Owner(keys[i&1023], RoleGateway); !ok {
			b.Fatal("no owner")
		}
	}
}

func BenchmarkReownership10k(b *testing.B) {
	ms := names("obs-gateway", 100)
	keys := scrapeKeys(10000)
	before := newRing(members(ms))
	after := newRing(members(ms[1:])) // obs-gateway-0 left
	b.ReportAllocs()
	b.ResetTimer()
	moved := 0
	for b.Loop() {
		moved = 0
		for _, k := range keys {
			if before.members[before.owner(k)].Name != after.members[after.owner(k)].Name {
				moved++
			}
		}
	}
	b.ReportMetric(float64(moved), "moved/op")
}
