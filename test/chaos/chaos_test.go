package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const duty = "k8s-events"

// Timing. The members run the default flags, i.e. the LAN profile: probe
// every 1s, suspicion 4·log10(7)·1s ≈ 3.4s with confirmations, up to 6×
// that alone; so a member is seen dead within ~4-10s, at worst ~25s.
const (
	agreeWithin   = 10 * time.Second // members agree after a step
	deadWithin    = 30 * time.Second // failure detection, worst case and spread
	deliverWithin = 60 * time.Second // every acked record reaches the sink
	pauseFor      = 30 * time.Second
	// slowAgreeLimit is how long a late agreement is still waited for
	// (memberlist's push/pull every 30s repairs what gossip missed).
	slowAgreeLimit = 75 * time.Second
	// isolatedDeadWithin bounds how long a gateway cut off from everyone
	// takes to see all six others dead (see the partition step).
	isolatedDeadWithin = 100 * time.Second
)

const gatewayConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
exporters:
  otlp:
    endpoint: sink:4317
    tls:
      insecure: true
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 2s
      max_elapsed_time: 0s
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp]
`

var agentConfig = strings.Replace(gatewayConfig, "endpoint: sink:4317", "endpoint: cluster:gateway", 1)

// clusterView is the part of GET /cluster the test reads.
type clusterView struct {
	Self    string `json:"self"`
	Members []struct {
		Name  string `json:"name"`
		Role  string `json:"role"`
		State string `json:"state"`
		Meta  struct {
			Start time.Time `json:"start"`
		} `json:"metadata"`
	} `json:"members"`
	Leaders map[string]string `json:"leaders"`
}

func (v clusterView) alive() []string {
	var out []string
	for _, m := range v.Members {
		if m.State == "alive" {
			out = append(out, m.Name)
		}
	}
	sort.Strings(out)
	return out
}

func (v clusterView) start(name string) time.Time {
	for _, m := range v.Members {
		if m.Name == name {
			return m.Meta.Start
		}
	}
	return time.Time{}
}

// startOf is the start time member m advertises (from its own view).
func (c *chaos) startOf(t *testing.T, m *ctr) time.Time {
	t.Helper()
	var v clusterView
	require.NoError(t, c.getJSON(m, "/cluster", &v))
	st := v.start(m.name)
	require.False(t, st.IsZero(), "%s advertises no start time", m.name)
	return st
}

// requireRestarted: every member sees m's new process (a start time other
// than before), so agreement is on the restarted member, not a stale one.
func (c *chaos) requireRestarted(t *testing.T, m *ctr, before time.Time) {
	t.Helper()
	waitFor(t, agreeWithin, "all see the restarted "+m.name, func() (bool, string) {
		vs, err := c.views(c.members())
		if err != nil {
			return false, err.Error()
		}
		for name, v := range vs {
			if st := v.start(m.name); st.Equal(before) {
				return false, fmt.Sprintf("%s still sees %s started at %s", name, m.name, st)
			}
		}
		return true, ""
	})
}

func (v clusterView) state(name string) string {
	for _, m := range v.Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

type chaos struct {
	*lab
	gws, agents []*ctr
	sink, gen   *ctr
}

func (c *chaos) members() []*ctr { return append(append([]*ctr{}, c.gws...), c.agents...) }

func (c *chaos) views(side []*ctr) (map[string]clusterView, error) {
	out := map[string]clusterView{}
	for _, m := range side {
		var v clusterView
		if err := c.getJSON(m, "/cluster", &v); err != nil {
			return nil, err
		}
		out[m.name] = v
	}
	return out, nil
}

func ctrNames(cs []*ctr) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name)
	}
	sort.Strings(out)
	return out
}

func without(cs []*ctr, drop ...*ctr) []*ctr {
	var out []*ctr
	for _, c := range cs {
		if !slices.Contains(drop, c) {
			out = append(out, c)
		}
	}
	return out
}

// agree reports whether every member of side sees exactly side alive, and
// each of gone as dead (or not at all).
func (c *chaos) agree(side, gone []*ctr) (bool, string) {
	vs, err := c.views(side)
	if err != nil {
		return false, err.Error()
	}
	want := ctrNames(side)
	for name, v := range vs {
		if got := v.alive(); !slices.Equal(got, want) {
			return false, fmt.Sprintf("%s sees alive %v, want %v", name, got, want)
		}
		for _, g := range gone {
			if st := v.state(g.name); st != "" && st != "dead" {
				return false, fmt.Sprintf("%s sees %s %q, want dead", name, g.name, st)
			}
		}
	}
	return true, ""
}

// oneLeader returns the leader if every member of side names the same
// one, alive in every view and a gateway of side.
func (c *chaos) oneLeader(side []*ctr) (string, string) {
	vs, err := c.views(side)
	if err != nil {
		return "", err.Error()
	}
	leader := ""
	for name, v := range vs {
		l := v.Leaders[duty]
		switch {
		case l == "":
			return "", name + " names no leader"
		case leader != "" && l != leader:
			return "", fmt.Sprintf("%s names %s, another names %s", name, l, leader)
		case v.state(l) != "alive":
			return "", fmt.Sprintf("%s names %s, which it sees %q", name, l, v.state(l))
		}
		leader = l
	}
	if !slices.Contains(ctrNames(c.gws), leader) || !slices.Contains(ctrNames(side), leader) {
		return "", fmt.Sprintf("leader %s is not a gateway of this side %v", leader, ctrNames(side))
	}
	return leader, ""
}

func (c *chaos) requireAgree(t *testing.T, what string, within time.Duration, side, gone []*ctr) time.Duration {
	t.Helper()
	took := waitFor(t, within, what, func() (bool, string) { return c.agree(side, gone) })
	t.Logf("%s: %s", what, took.Round(time.Millisecond))
	return took
}

// expectAgree is requireAgree for the "members agree within 10s" checks:
// a slower agreement fails the test but the wait goes on up to
// slowAgreeLimit, so the time is measured and the later steps still run.
func (c *chaos) expectAgree(t *testing.T, what string, side, gone []*ctr) {
	t.Helper()
	var why string
	took := waitFor(t, slowAgreeLimit, what, func() (ok bool, reason string) {
		ok, reason = c.agree(side, gone)
		if !ok {
			why = reason
		}
		return ok, reason
	})
	if took > agreeWithin {
		t.Errorf("%s took %s, want at most %s; still disagreeing at %s: %s", what, took.Round(time.Millisecond), agreeWithin, agreeWithin, why)
		return
	}
	t.Logf("%s: %s", what, took.Round(time.Millisecond))
}

func (c *chaos) requireLeader(t *testing.T, what string, side []*ctr) string {
	t.Helper()
	var leader string
	took := waitFor(t, agreeWithin, what, func() (bool, string) {
		l, why := c.oneLeader(side)
		leader = l
		return l != "", why
	})
	// Once agreed, it must hold: poll a while longer.
	for range 8 {
		l, why := c.oneLeader(side)
		require.Equal(t, leader, l, "%s: leader not stable: %s", what, why)
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("%s: %s after %s", what, leader, took.Round(time.Millisecond))
	return leader
}

type ackedReply struct {
	Acked   []int64 `json:"acked"`
	Batches int     `json:"batches"`
	Retries int     `json:"retries"`
	Stopped bool    `json:"stopped"`
	LastErr string  `json:"last_error"`
}

type idsReply struct {
	Records int     `json:"records"`
	NoID    int     `json:"no_id"`
	IDs     []int64 `json:"ids"`
}

// requireDelivered: every id the generator has had acknowledged so far
// reaches the sink within deliverWithin; duplicates are logged.
func (c *chaos) requireDelivered(t *testing.T, what string) {
	t.Helper()
	var acked ackedReply
	require.NoError(t, c.getJSON(c.gen, "/acked", &acked))
	require.NotEmpty(t, acked.Acked, "the generator got nothing acknowledged (last error %q)", acked.LastErr)
	var sink idsReply
	missing := 0
	took := waitFor(t, deliverWithin, what+": every acked record at the sink", func() (bool, string) {
		if err := c.getJSON(c.sink, "/ids", &sink); err != nil {
			return false, err.Error()
		}
		seen := make(map[int64]bool, len(sink.IDs))
		for _, id := range sink.IDs {
			seen[id] = true
		}
		missing = 0
		var sample []int64
		for _, id := range acked.Acked {
			if !seen[id] {
				missing++
				if len(sample) < 10 {
					sample = append(sample, id)
				}
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d acked records missing, e.g. %v", missing, len(acked.Acked), sample)
	})
	counts := map[int64]int{}
	for _, id := range sink.IDs {
		counts[id]++
	}
	dupIDs, extra := 0, 0
	for _, n := range counts {
		if n > 1 {
			dupIDs++
			extra += n - 1
		}
	}
	t.Logf("%s: %d acked records (%d batches, %d generator retries) all at the sink after %s; sink holds %d records, %d ids duplicated (%d extra copies)",
		what, len(acked.Acked), acked.Batches, acked.Retries, took.Round(time.Millisecond), sink.Records, dupIDs, extra)
}

// TestChaos: see the package doc.
func TestChaos(t *testing.T) {
	requireDocker(t)
	testStart := time.Now()
	buildImages(t)
	c := &chaos{lab: newLab(t)}
	t.Logf("images built and networks made in %s", time.Since(testStart).Round(time.Second))

	dir := t.TempDir()
	gwCfg, agCfg := filepath.Join(dir, "gateway.yaml"), filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(gwCfg, []byte(gatewayConfig), 0o644))
	require.NoError(t, os.WriteFile(agCfg, []byte(agentConfig), 0o644))

	c.sink = c.create("sink", 30, "8080", nil, []string{"--entrypoint", "/sink"}, toolsImage)
	join := "gw1,gw2,gw3,gw4,gw5"
	obsArgs := func(role, name, ip string) []string {
		return []string{"run", "--role", role, "--node-name", name, "--config", "/obs.yaml", "--data-dir", "/data", "--admin-addr", ":8888",
			"--cluster-bind", ip + ":7946", "--cluster-name", "chaos", "--join", join, "--shutdown-timeout", "5s"}
	}
	for i := range 5 {
		name := fmt.Sprintf("gw%d", i+1)
		host := 11 + i
		ip := fmt.Sprintf("%s.%d", c.prefix, host)
		c.gws = append(c.gws, c.create(name, host, "8888", map[string]string{"/obs.yaml": gwCfg}, nil, append([]string{obsImage}, obsArgs("gateway", name, ip)...)...))
	}
	for i := range 2 {
		name := fmt.Sprintf("agent%d", i+1)
		host := 21 + i
		ip := fmt.Sprintf("%s.%d", c.prefix, host)
		c.agents = append(c.agents, c.create(name, host, "8888", map[string]string{"/obs.yaml": agCfg}, nil, append([]string{obsImage}, obsArgs("agent", name, ip)...)...))
	}
	all := c.members()
	c.requireAgree(t, "seven members agree after start", 30*time.Second, all, nil)
	c.requireLeader(t, "one leader after start", all)

	c.gen = c.create("gen", 31, "8080", nil, []string{"--entrypoint", "/gen"}, toolsImage,
		"-targets", "agent1:4317,agent2:4317", "-batch", "50", "-interval", "50ms", "-resources", "16")
	waitFor(t, 30*time.Second, "the generator gets batches acknowledged", func() (bool, string) {
		var a ackedReply
		if err := c.getJSON(c.gen, "/acked", &a); err != nil {
			return false, err.Error()
		}
		return a.Batches >= 20, fmt.Sprintf("%d batches acked, last error %q", a.Batches, a.LastErr)
	})
	c.requireDelivered(t, "before chaos")

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"docker kill the leader", func(t *testing.T) {
			leader, why := c.oneLeader(all)
			require.NotEmpty(t, leader, why)
			victim := c.ctrs[leader]
			before := c.startOf(t, victim)
			_, err := docker(time.Minute, "kill", victim.full)
			require.NoError(t, err)
			rest := without(all, victim)
			c.requireAgree(t, "survivors see "+victim.name+" dead", deadWithin, rest, []*ctr{victim})
			require.NotEqual(t, leader, c.requireLeader(t, "one new leader among survivors", rest))
			c.start(victim)
			c.expectAgree(t, "all agree after "+victim.name+" restarted", all, nil)
			c.requireRestarted(t, victim, before)
			c.requireLeader(t, "one leader after restart", all)
			c.requireDelivered(t, "after kill")
		}},
		{"docker pause a gateway for 30s", func(t *testing.T) {
			victim := c.gws[2]
			_, err := docker(time.Minute, "pause", victim.full)
			require.NoError(t, err)
			paused := time.Now()
			unpaused := false
			defer func() {
				if !unpaused {
					_, _ = docker(time.Minute, "unpause", victim.full)
				}
			}()
			rest := without(all, victim)
			c.requireAgree(t, "others see paused "+victim.name+" dead", deadWithin, rest, []*ctr{victim})
			c.requireLeader(t, "one leader while "+victim.name+" is paused", rest)
			time.Sleep(time.Until(paused.Add(pauseFor)))
			_, err = docker(time.Minute, "unpause", victim.full)
			require.NoError(t, err)
			unpaused = true
			c.expectAgree(t, "all agree after unpause", all, nil)
			c.requireLeader(t, "one leader after unpause", all)
			c.requireDelivered(t, "after pause")
		}},
		{"partition two gateways", func(t *testing.T) {
			// docker network disconnect leaves a container with no
			// interface on the data network, so each cut-off gateway is a
			// side of its own: three sides, each with one leader.
			cutOff := []*ctr{c.gws[3], c.gws[4]}
			majority := without(all, cutOff...)
			cut := time.Now()
			for _, m := range cutOff {
				c.disconnect(m)
			}
			connected := false
			defer func() {
				if !connected {
					for _, m := range cutOff {
						_, _ = docker(time.Minute, "network", "connect", "--ip", m.ip, "--alias", m.name, c.dataNet, m.full)
					}
				}
			}()
			c.requireAgree(t, "majority side sees the cut-off gateways dead", deadWithin, majority, cutOff)
			// A member that reaches nobody gets no acks and no
			// confirmations: memberlist's Lifeguard (awareness) stretches
			// its probe interval up to 8x, so it declares the others dead
			// one after another, about 8s apart.
			for _, m := range cutOff {
				c.requireAgree(t, m.name+" alone sees every other member dead", isolatedDeadWithin-time.Since(cut), []*ctr{m}, without(all, m))
			}
			t.Logf("every side sees the others dead %s after the cut", time.Since(cut).Round(time.Millisecond))
			leaders := []string{c.requireLeader(t, "one leader on the majority side", majority)}
			for _, m := range cutOff {
				leaders = append(leaders, c.requireLeader(t, "one leader on "+m.name+"'s side", []*ctr{m}))
			}
			require.Equal(t, []string{leaders[0], cutOff[0].name, cutOff[1].name}, leaders)
			healing := time.Now()
			for _, m := range cutOff {
				c.connect(m)
			}
			connected = true
			c.expectAgree(t, "all agree after healing", all, nil)
			c.requireLeader(t, "one leader after healing", all)
			t.Logf("healed %s after reconnecting", time.Since(healing).Round(time.Millisecond))
			c.requireDelivered(t, "after partition")
		}},
		{"rolling restart of all gateways", func(t *testing.T) {
			for _, gw := range c.gws {
				before := c.startOf(t, gw)
				_, err := docker(time.Minute, "restart", "-t", "10", gw.full)
				require.NoError(t, err)
				c.refreshPort(gw)
				c.expectAgree(t, "all agree after restarting "+gw.name, all, nil)
				c.requireRestarted(t, gw, before)
				c.requireLeader(t, "one leader after restarting "+gw.name, all)
			}
			c.requireDelivered(t, "after rolling restart")
		}},
	}
	for _, s := range steps {
		// A step that failed only on timing (expectAgree) leaves the
		// cluster whole, so the next steps still run.
		if !t.Run(s.name, s.run) {
			if ok, why := c.agree(all, nil); !ok {
				t.Fatalf("cluster not whole after %q: %s", s.name, why)
			}
		}
	}

	require.NoError(t, c.post(c.gen, "/stop"))
	waitFor(t, 30*time.Second, "the generator stops", func() (bool, string) {
		var a ackedReply
		if err := c.getJSON(c.gen, "/acked", &a); err != nil {
			return false, err.Error()
		}
		return a.Stopped, "still sending"
	})
	c.requireDelivered(t, "final")
	t.Logf("chaos suite took %s", time.Since(testStart).Round(time.Second))
}
