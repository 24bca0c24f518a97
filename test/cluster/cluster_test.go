package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/test/obsproc"
)

const duty = "k8s-events"

// Failure detection uses the default flags, i.e. the cluster package's LAN
// profile (memberlist.DefaultLANConfig; obs has no timing flags): probe
// interval 1s, probe timeout 500ms, suspicion multiplier 4, maximum
// suspicion multiplier 6, gossip every 200ms. With 5 members a survivor
// probes the killed one within one round over the 4 others (about 4s),
// and the suspicion timeout is 4·log10(5)·1s ≈ 2.8s once two other members
// confirm the suspicion, at most 6× that (≈ 16.8s) without confirmation.
// So detection takes about 3-8s and at worst about 4.5s + 16.8s plus
// gossip spread; deadAfter allows 25s. The LAN profile is what runs in
// production, so the test measures that, not a shortened test profile.
const deadAfter = 25 * time.Second

// convergeWithin is how fast five members joining through one seed must
// all agree on the member list.
const convergeWithin = 5 * time.Second

// steadyFor is how long a settled cluster is polled for a stable leader.
const steadyFor = 2 * time.Second

func running(ms []*member) []*member {
	var out []*member
	for _, m := range ms {
		if m.Running() {
			out = append(out, m)
		}
	}
	return out
}

func names(ms []*member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name()
	}
	slices.Sort(out)
	return out
}

// agreeAlive reports whether every member in ms sees exactly want alive.
func agreeAlive(ms []*member, want []string) (bool, string) {
	vs, err := views(ms)
	if err != nil {
		return false, err.Error()
	}
	for name, v := range vs {
		if got := v.alive(); !slices.Equal(got, want) {
			return false, fmt.Sprintf("%s sees alive %v, want %v", name, got, want)
		}
	}
	return true, ""
}

// oneLeader reports the leader of the duty if every member in ms names the
// same one and it is alive in every member's view and one of ms.
func oneLeader(ms []*member) (string, string) {
	vs, err := views(ms)
	if err != nil {
		return "", err.Error()
	}
	leader := ""
	for name, v := range vs {
		l := v.Leaders[duty]
		if l == "" {
			return "", name + " names no leader"
		}
		if leader != "" && l != leader {
			return "", fmt.Sprintf("members disagree on the leader: %s names %s, another names %s", name, l, leader)
		}
		leader = l
		if v.states()[l] != "alive" {
			return "", fmt.Sprintf("%s names leader %s which it sees %q", name, l, v.states()[l])
		}
	}
	if !slices.Contains(names(ms), leader) {
		return "", fmt.Sprintf("leader %s is not a running member", leader)
	}
	return leader, ""
}

// steadyLeader polls ms for steadyFor; every poll must name the same alive
// leader (exactly one leader at all times in a settled cluster).
func steadyLeader(t *testing.T, ms []*member) string {
	t.Helper()
	first := ""
	for end := time.Now().Add(steadyFor); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		l, why := oneLeader(ms)
		require.NotEmpty(t, l, why)
		if first == "" {
			first = l
		}
		require.Equal(t, first, l, "leader changed in a settled cluster")
	}
	return first
}

func byName(ms []*member, name string) *member {
	for _, m := range ms {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

// TestGatewaysOnLoopback: five gateways on 127.0.0.2-6 join through one
// seed and agree on the members within 5s; after kill -9 of a member the
// others see it dead within failure detection while the leader stays put;
// a member stopped with SIGTERM is seen as "left"; a killed leader is
// replaced by one leader that everyone names.
func TestGatewaysOnLoopback(t *testing.T) {
	ms := []*member{newMember(t, "gw1", "127.0.0.2", "", "--cluster-name", "loopback")}
	seed := ms[0].GossipAddr()
	for i := 1; i < 5; i++ {
		ms = append(ms, newMember(t, fmt.Sprintf("gw%d", i+1), fmt.Sprintf("127.0.0.%d", i+2), seed, "--cluster-name", "loopback"))
	}

	start := time.Now()
	for _, m := range ms {
		m.Start()
	}
	started := time.Since(start)
	took := obsproc.WaitFor(t, convergeWithin, "five members agree on the member list", func() (bool, string) {
		return agreeAlive(ms, names(ms))
	})
	t.Logf("converged %s after the last start (starting five took %s)", took.Round(time.Millisecond), started.Round(time.Millisecond))
	vs, err := views(ms)
	require.NoError(t, err)
	for name, v := range vs {
		require.Equal(t, name, v.Self)
		require.Equal(t, "loopback", v.Cluster)
		for _, vm := range v.Members {
			require.Equal(t, "gateway", vm.Role, "%s sees %s", name, vm.Name)
			require.Equal(t, byName(ms, vm.Name).GossipAddr(), vm.Address, "%s sees %s", name, vm.Name)
		}
	}
	leader := steadyLeader(t, ms)
	t.Logf("leader of %s: %s", duty, leader)

	t.Run("kill -9 a member", func(t *testing.T) {
		// A member that is not the leader: the leader must not change at
		// any time while the others detect the failure.
		var victim *member
		for _, m := range ms {
			if m.Name() != leader {
				victim = m
				break
			}
		}
		victim.Kill()
		survivors := running(ms)
		took := obsproc.WaitFor(t, deadAfter, "survivors see "+victim.Name()+" dead", func() (bool, string) {
			if l, why := oneLeader(survivors); l != leader {
				t.Fatalf("leader changed or disagreed while a non-leader was dying (want %s): %s", leader, why)
			}
			vs, err := views(survivors)
			if err != nil {
				return false, err.Error()
			}
			for name, v := range vs {
				if st, ok := v.states()[victim.Name()]; ok && st != "dead" {
					return false, fmt.Sprintf("%s sees %s %q", name, victim.Name(), st)
				}
			}
			return true, ""
		})
		t.Logf("%s seen dead by all %d survivors %s after SIGKILL", victim.Name(), len(survivors), took.Round(time.Millisecond))
		ok, why := agreeAlive(survivors, names(survivors))
		require.True(t, ok, why)
		require.Equal(t, leader, steadyLeader(t, survivors))
	})

	t.Run("SIGTERM the leader is seen as left", func(t *testing.T) {
		victim := byName(ms, leader)
		stopped := time.Now()
		require.NoError(t, victim.Stop())
		survivors := running(ms)
		took := obsproc.WaitFor(t, 10*time.Second, "survivors see "+victim.Name()+" left", func() (bool, string) {
			vs, err := views(survivors)
			if err != nil {
				return false, err.Error()
			}
			for name, v := range vs {
				st, ok := v.states()[victim.Name()]
				require.True(t, ok, "%s forgot %s at once instead of listing it as left", name, victim.Name())
				require.NotEqual(t, "dead", st, "%s sees the gracefully stopped %s as dead", name, victim.Name())
				if st != "left" {
					return false, fmt.Sprintf("%s sees %s %q", name, victim.Name(), st)
				}
			}
			return true, ""
		})
		t.Logf("%s seen left by all %d survivors %s after its exit (stop took %s)",
			victim.Name(), len(survivors), took.Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond)-took.Round(time.Millisecond))
		newLeader := steadyLeader(t, survivors)
		require.NotEqual(t, leader, newLeader)
		leader = newLeader
		// Still "left" after a while, never turned into "dead".
		vs, err := views(survivors)
		require.NoError(t, err)
		for name, v := range vs {
			require.Equal(t, "left", v.states()[victim.Name()], "%s", name)
		}
	})

	t.Run("kill -9 the leader", func(t *testing.T) {
		victim := byName(ms, leader)
		victim.Kill()
		survivors := running(ms)
		took := obsproc.WaitFor(t, deadAfter, "survivors agree on a new leader", func() (bool, string) {
			l, why := oneLeader(survivors)
			if l == "" {
				return false, why
			}
			return l != victim.Name(), "still " + l
		})
		t.Logf("new leader named by all %d survivors %s after SIGKILL of leader %s", len(survivors), took.Round(time.Millisecond), victim.Name())
		vs, err := views(survivors)
		require.NoError(t, err)
		for name, v := range vs {
			require.Equal(t, "dead", v.states()[victim.Name()], "%s", name)
		}
		require.NotEqual(t, victim.Name(), steadyLeader(t, survivors))
	})
}

func writeKeyFile(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	p := filepath.Join(t.TempDir(), "gossip.key")
	require.NoError(t, os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600))
	return p
}

// TestRefused: a member with another --cluster-name and one with another
// gossip key join the seed of an encrypted two-member cluster; both are
// refused (nobody lists them, they stay alone) and the logs say why.
func TestRefused(t *testing.T) {
	key, otherKey := writeKeyFile(t), writeKeyFile(t)
	a := newMember(t, "a", "127.0.0.2", "", "--cluster-name", "refusal", "--cluster-key-file", key)
	a.Start()
	join := a.GossipAddr()
	b := newMember(t, "b", "127.0.0.3", join, "--cluster-name", "refusal", "--cluster-key-file", key)
	b.Start()
	good := []*member{a, b}
	obsproc.WaitFor(t, convergeWithin, "a and b agree", func() (bool, string) { return agreeAlive(good, []string{"a", "b"}) })

	wrongName := newMember(t, "wrong-name", "127.0.0.4", join, "--cluster-name", "another", "--cluster-key-file", key)
	wrongKey := newMember(t, "wrong-key", "127.0.0.5", join, "--cluster-name", "refusal", "--cluster-key-file", otherKey)
	wrongName.Start()
	wrongKey.Start()

	logs := func(ms ...*member) string {
		var b strings.Builder
		for _, m := range ms {
			b.WriteString(m.Log())
		}
		return b.String()
	}
	obsproc.WaitFor(t, 15*time.Second, "a log line refusing the other cluster name", func() (bool, string) {
		l := logs(a, b, wrongName)
		return strings.Contains(l, "refusing member wrong-name: cluster name") ||
			strings.Contains(l, "refusing member a: cluster name") || strings.Contains(l, "refusing member b: cluster name"), "no such line yet"
	})
	obsproc.WaitFor(t, 15*time.Second, "a log line about the wrong gossip key", func() (bool, string) {
		return strings.Contains(logs(a, b, wrongKey), "could not be decrypted: wrong or missing cluster key"), "no such line yet"
	})
	t.Log("refusal lines:\n" + grepLines(logs(a, b, wrongName, wrongKey), "refusing member", "could not be decrypted"))

	// A few more join retries of the refused members must not get them in.
	time.Sleep(3 * time.Second)
	vs, err := views([]*member{a, b, wrongName, wrongKey})
	require.NoError(t, err)
	for _, n := range []string{"a", "b"} {
		require.Equal(t, []string{"a", "b"}, memberNames(vs[n]), "%s lists a refused member", n)
	}
	require.Equal(t, []string{"wrong-name"}, vs["wrong-name"].alive(), "the member of another cluster must stay alone")
	require.Equal(t, []string{"wrong-key"}, vs["wrong-key"].alive(), "the member with another key must stay alone")
}

// memberNames lists the names of a view's members, sorted.
func memberNames(v clusterView) []string {
	out := make([]string, len(v.Members))
	for i, vm := range v.Members {
		out[i] = vm.Name
	}
	slices.Sort(out)
	return out
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
				break
			}
		}
	}
	if len(out) > 10 {
		out = out[:10]
	}
	return strings.Join(out, "\n")
}
