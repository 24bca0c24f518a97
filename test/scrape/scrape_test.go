package scrape

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/obs-dev/obs/test/obsproc"
	"github.com/obs-dev/obs/test/otelpeer"
)

const (
	job         = "synth"
	numTargets  = 200
	firstTarget = 10 // targets on 127.0.0.10 … 127.0.0.209
	interval    = 2 * time.Second
	// steadyIntervals is how long the three gateways run untouched.
	steadyIntervals = 20
	// detectWithin bounds failure detection of a killed gateway with the
	// LAN profile (see test/cluster: about 3-8 s, worst about 22 s).
	detectWithin = 25 * time.Second
	// handoffDelay is the gateways' scrape.Sharding.HandoffDelay (roles/
	// leaves it zero, which means 2 s): a join's hand-off happens that long
	// after the joiner's start, at the next point half-way between two
	// scrapes of each target.
	handoffDelay = 2 * time.Second
	// reloadSlack covers the scrape manager's 250 ms reload tick, the
	// sharder's wake-up and the test's 50 ms polling.
	reloadSlack = 500 * time.Millisecond
)

// taGroup and taCollector are the Target Allocator's JSON shapes
// (opentelemetry-operator cmd/otel-allocator): GET /jobs/{job}/targets
// answers {collector: {"_link", "targets": [{"targets": [addr], "labels"}]}}.
type taGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

type taCollector struct {
	Link    string    `json:"_link"`
	Targets []taGroup `json:"targets"`
}

// ownership reads GET /jobs/{job}/targets from gateway g and
// checks it is in the Target Allocator's shape, that every collector's
// list is also what ?collector_id= answers, and that no target appears
// twice. It returns target address → collector and the collectors.
func ownership(g *gateway) (map[string]string, []string, error) {
	var jobs map[string]map[string]string
	if err := g.GetJSON("/jobs", &jobs); err != nil {
		return nil, nil, err
	}
	if want := map[string]map[string]string{job: {"_link": "/jobs/" + job + "/targets"}}; !maps.EqualFunc(jobs, want, maps.Equal) {
		return nil, nil, fmt.Errorf("GET /jobs = %v, want %v", jobs, want)
	}
	var raw map[string]json.RawMessage
	if err := g.GetJSON("/jobs/"+job+"/targets", &raw); err != nil {
		return nil, nil, err
	}
	owner := map[string]string{}
	var collectors []string
	for name, b := range raw {
		collectors = append(collectors, name)
		var c taCollector
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, nil, fmt.Errorf("decode collector %s: %w", name, err)
		}
		if want := "/jobs/" + job + "/targets?collector_id=" + url.QueryEscape(name); c.Link != want {
			return nil, nil, fmt.Errorf("collector %s: _link %q, want %q", name, c.Link, want)
		}
		if !strings.Contains(string(b), `"targets":[`) {
			return nil, nil, fmt.Errorf("collector %s: targets is not a list: %s", name, b)
		}
		for _, g := range c.Targets {
			if len(g.Targets) != 1 {
				return nil, nil, fmt.Errorf("collector %s: group with %d targets, want 1", name, len(g.Targets))
			}
			addr := g.Targets[0]
			if g.Labels["__address__"] != addr || g.Labels["job"] != job {
				return nil, nil, fmt.Errorf("collector %s: target %s labels %v: want __address__ and job", name, addr, g.Labels)
			}
			if prev, dup := owner[addr]; dup {
				return nil, nil, fmt.Errorf("target %s listed by %s and %s", addr, prev, name)
			}
			owner[addr] = name
		}
		var own []taGroup
		if err := g.GetJSON(c.Link, &own); err != nil {
			return nil, nil, err
		}
		if own == nil || len(own) != len(c.Targets) {
			return nil, nil, fmt.Errorf("%s: %d groups (nil %v), want %d", c.Link, len(own), own == nil, len(c.Targets))
		}
	}
	sort.Strings(collectors)
	return owner, collectors, nil
}

// agree reports whether every gateway in gws lists exactly the collectors
// want, every target once, and the same owners; it returns the owners.
func agree(gws []*gateway, want []string) (map[string]string, bool, string) {
	var first map[string]string
	for _, g := range gws {
		var v clusterView
		if err := g.GetJSON("/cluster", &v); err != nil {
			return nil, false, err.Error()
		}
		if got := v.alive(); !slices.Equal(got, want) {
			return nil, false, fmt.Sprintf("%s sees alive %v, want %v", g.Name(), got, want)
		}
		owner, collectors, err := ownership(g)
		if err != nil {
			return nil, false, fmt.Sprintf("%s: %v", g.Name(), err)
		}
		if !slices.Equal(collectors, want) {
			return nil, false, fmt.Sprintf("%s lists collectors %v, want %v", g.Name(), collectors, want)
		}
		if len(owner) != numTargets {
			return nil, false, fmt.Sprintf("%s lists %d targets, want %d", g.Name(), len(owner), numTargets)
		}
		if first == nil {
			first = owner
		} else if !maps.Equal(first, owner) {
			return nil, false, fmt.Sprintf("%s disagrees with %s on owners", g.Name(), gws[0].Name())
		}
	}
	return first, true, ""
}

func names(gws ...*gateway) []string {
	var out []string
	for _, g := range gws {
		out = append(out, g.Name())
	}
	sort.Strings(out)
	return out
}

// slotted is one target's scrapes bucketed into intervals aligned on the
// target's phase (the time of its first scrape modulo the interval).
type slotted struct {
	phase  int64         // ns, in [0, interval)
	counts map[int64]int // slot → scrapes
	maxDev time.Duration // largest distance of a scrape from its slot's time
}

func slotOf(t time.Time, phase int64) (int64, time.Duration) {
	x := t.UnixNano() - phase
	iv := int64(interval)
	k := (x + iv/2) / iv // nearest slot; x > 0 for any time after 1970
	return k, time.Duration(x - k*iv)
}

func slotTime(k, phase int64) time.Time { return time.Unix(0, k*int64(interval)+phase) }

func bucket(times []time.Time, from time.Time) slotted {
	s := slotted{counts: map[int64]int{}}
	ref := -1
	for i, tm := range times {
		if !tm.Before(from) {
			ref = i
			break
		}
	}
	if ref < 0 {
		return s
	}
	s.phase = times[ref].UnixNano() % int64(interval)
	for _, tm := range times {
		k, dev := slotOf(tm, s.phase)
		s.counts[k]++
		s.maxDev = max(s.maxDev, dev.Abs())
	}
	return s
}

// staleness counts, per service.instance.id, data points flagged "no
// recorded value" (Prometheus staleness markers), and which instances sent
// any point at all.
func staleness(mds []pmetric.Metrics) (stale map[string]int, seen map[string]bool) {
	stale, seen = map[string]int{}, map[string]bool{}
	for _, md := range mds {
		rms := md.ResourceMetrics()
		for i := range rms.Len() {
			rm := rms.At(i)
			v, _ := rm.Resource().Attributes().Get("service.instance.id")
			inst := v.AsString()
			sms := rm.ScopeMetrics()
			for j := range sms.Len() {
				ms := sms.At(j).Metrics()
				for k := range ms.Len() {
					seen[inst] = true
					if n := noValuePoints(ms.At(k)); n > 0 {
						stale[inst] += n
					}
				}
			}
		}
	}
	return stale, seen
}

func noValuePoints(m pmetric.Metric) int {
	n := 0
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		for i := range m.Gauge().DataPoints().Len() {
			if m.Gauge().DataPoints().At(i).Flags().NoRecordedValue() {
				n++
			}
		}
	case pmetric.MetricTypeSum:
		for i := range m.Sum().DataPoints().Len() {
			if m.Sum().DataPoints().At(i).Flags().NoRecordedValue() {
				n++
			}
		}
	case pmetric.MetricTypeHistogram:
		for i := range m.Histogram().DataPoints().Len() {
			if m.Histogram().DataPoints().At(i).Flags().NoRecordedValue() {
				n++
			}
		}
	case pmetric.MetricTypeExponentialHistogram:
		for i := range m.ExponentialHistogram().DataPoints().Len() {
			if m.ExponentialHistogram().DataPoints().At(i).Flags().NoRecordedValue() {
				n++
			}
		}
	case pmetric.MetricTypeSummary:
		for i := range m.Summary().DataPoints().Len() {
			if m.Summary().DataPoints().At(i).Flags().NoRecordedValue() {
				n++
			}
		}
	}
	return n
}

// TestShardedScrapeHandOff runs 3 gateways sharding 200 targets, kills one
// with SIGKILL, then adds a 4th, and checks at the targets that each is
// scraped once per interval throughout, apart from the measured gap after
// the kill.
func TestShardedScrapeHandOff(t *testing.T) {
	if testing.Short() {
		t.Skip("about 2-3 minutes of real processes")
	}
	sink := otelpeer.StartSink(t)
	targets := startTargets(t, numTargets, firstTarget)

	var pc strings.Builder
	fmt.Fprintf(&pc, "      scrape_configs:\n      - job_name: %s\n        scrape_interval: %s\n        scrape_timeout: 1s\n        static_configs:\n        - targets:\n", job, interval)
	for _, tg := range targets {
		fmt.Fprintf(&pc, "          - %q\n", tg.addr)
	}
	gw1 := newGateway(t, "gw-1", "127.0.0.2", "", pc.String(), sink.GRPCAddr)
	gw2 := newGateway(t, "gw-2", "127.0.0.3", gw1.GossipAddr(), pc.String(), sink.GRPCAddr)
	gw3 := newGateway(t, "gw-3", "127.0.0.4", gw1.GossipAddr(), pc.String(), sink.GRPCAddr)
	gw4 := newGateway(t, "gw-4", "127.0.0.5", gw1.GossipAddr(), pc.String(), sink.GRPCAddr)
	for _, g := range []*gateway{gw1, gw2, gw3} {
		g.Start()
	}

	// 1. Three gateways agree on who scrapes what.
	var own3 map[string]string
	took := obsproc.WaitFor(t, 30*time.Second, "3 gateways agree on /jobs", func() (bool, string) {
		o, ok, why := agree([]*gateway{gw1, gw2, gw3}, names(gw1, gw2, gw3))
		own3 = o
		return ok, why
	})
	t.Logf("3 gateways agree on owners %s after start", took.Round(time.Millisecond))
	perOwner := map[string]int{}
	for _, o := range own3 {
		perOwner[o]++
	}
	t.Logf("targets per gateway: %v", perOwner)

	// obs targets prints every target once.
	code, out, stderr := obsproc.Run(t, 20*time.Second, nil, "targets", "--admin-addr", gw3.AdminAddr(), "--job", job)
	require.Zero(t, code, "obs targets: %s", stderr)
	for _, tg := range targets {
		require.Equal(t, 1, strings.Count(out, tg.addr+"\n")+strings.Count(out, tg.addr+" "), "obs targets lists %s once:\n%s", tg.addr, out)
	}

	// 2. Steady state: 20 intervals untouched.
	// The first scrapes come a hand-off delay after the newest start, at
	// the next point half-way between scrapes; the steady window begins
	// after that.
	steadyFrom := time.Now().Add(handoffDelay + 2*interval)
	time.Sleep(time.Until(steadyFrom.Add(steadyIntervals * interval)))

	// 3. kill -9 one gateway.
	victims := map[string]bool{}
	for addr, o := range own3 {
		if o == gw2.Name() {
			victims[addr] = true
		}
	}
	killedAt := time.Now()
	gw2.Kill()
	detection := obsproc.WaitFor(t, detectWithin, "survivors see gw-2 gone", func() (bool, string) {
		for _, g := range []*gateway{gw1, gw3} {
			var v clusterView
			if err := g.GetJSON("/cluster", &v); err != nil {
				return false, err.Error()
			}
			if slices.Contains(v.alive(), gw2.Name()) {
				return false, g.Name() + " still sees gw-2 alive"
			}
		}
		return true, ""
	})
	var own2 map[string]string
	obsproc.WaitFor(t, 10*time.Second, "survivors agree on /jobs", func() (bool, string) {
		o, ok, why := agree([]*gateway{gw1, gw3}, names(gw1, gw3))
		own2 = o
		return ok, why
	})
	for addr, o := range own2 {
		if !victims[addr] {
			require.Equal(t, own3[addr], o, "target %s of a survivor kept its owner", addr)
		}
	}
	// Every victim is scraped again.
	obsproc.WaitFor(t, 3*interval+handoffDelay+reloadSlack, "victims scraped again", func() (bool, string) {
		for _, tg := range targets {
			if !victims[tg.addr] {
				continue
			}
			ts := tg.scrapes()
			if len(ts) == 0 || !ts[len(ts)-1].After(killedAt) {
				return false, tg.addr + " not scraped since the kill"
			}
		}
		return true, ""
	})
	time.Sleep(2 * interval)

	// 4. A 4th gateway joins.
	joinedAt := time.Now()
	gw4.Start()
	var own3b map[string]string
	took = obsproc.WaitFor(t, 30*time.Second, "3 gateways with gw-4 agree on /jobs", func() (bool, string) {
		o, ok, why := agree([]*gateway{gw1, gw3, gw4}, names(gw1, gw3, gw4))
		own3b = o
		return ok, why
	})
	t.Logf("gw-4 listed by all %s after its start", took.Round(time.Millisecond))
	moved := map[string]bool{}
	for addr, o := range own3b {
		if o != own2[addr] {
			moved[addr] = true
			require.Equal(t, gw4.Name(), o, "target %s moved between old members", addr)
		}
	}
	bar := int(1.2 / 3 * numTargets)
	t.Logf("join: %d of %d targets moved to gw-4 (bar %d = 1.2/N of them, N=3)", len(moved), numTargets, bar)
	require.LessOrEqual(t, len(moved), bar)
	require.NotEmpty(t, moved)
	time.Sleep(4 * interval)
	end := time.Now()

	// 5. Count at the targets.
	var (
		doubles, unexpectedGaps []string
		maxDev                  time.Duration
		worstSinceKill          time.Duration // kill → first scrape by the new owner
		worstGap                time.Duration // last scrape by the killed owner → first by the new
		victimMissed            int           // intervals without a scrape after the kill
		joinMissed              int
	)
	if dump := os.Getenv("OBS_SCRAPE_DUMP"); dump != "" {
		writeDump(t, dump, targets, own3, own2, own3b, map[string]time.Time{"steady": steadyFrom, "kill": killedAt, "join": joinedAt, "end": end})
	}
	for _, tg := range targets {
		times := tg.scrapes()
		s := bucket(times, steadyFrom)
		require.NotEmpty(t, s.counts, "%s never scraped", tg.addr)
		maxDev = max(maxDev, s.maxDev)
		var firstAfterKill, lastBeforeKill time.Time
		if victims[tg.addr] {
			for _, tm := range times {
				if tm.Before(killedAt) {
					lastBeforeKill = tm
				} else if firstAfterKill.IsZero() {
					firstAfterKill = tm
				}
			}
			require.False(t, firstAfterKill.IsZero(), "%s never scraped after the kill", tg.addr)
			worstSinceKill = max(worstSinceKill, firstAfterKill.Sub(killedAt))
			worstGap = max(worstGap, firstAfterKill.Sub(lastBeforeKill))
		}
		kFrom, _ := slotOf(steadyFrom.Add(interval/2), s.phase)
		kTo, _ := slotOf(end.Add(-interval), s.phase)
		for k := kFrom; k < kTo; k++ {
			at := slotTime(k, s.phase)
			switch n := s.counts[k]; {
			case n > 1:
				doubles = append(doubles, fmt.Sprintf("%s: %d scrapes in the interval at %s", tg.addr, n, at.Format("15:04:05.000")))
			case n == 0 && victims[tg.addr] && at.After(killedAt) && at.Before(firstAfterKill):
				victimMissed++
			case n == 0:
				if moved[tg.addr] && at.After(joinedAt) {
					joinMissed++
				}
				unexpectedGaps = append(unexpectedGaps, fmt.Sprintf("%s: no scrape in the interval at %s (victim %v, moved %v)",
					tg.addr, at.Format("15:04:05.000"), victims[tg.addr], moved[tg.addr]))
			}
		}
	}
	t.Logf("kill -9: %d victims; failure detection (survivors' /cluster) %s; kill → first scrape by the new owner ≤ %s; longest gap between scrapes %s; %d intervals missed in all",
		len(victims), detection.Round(time.Millisecond), worstSinceKill.Round(time.Millisecond), worstGap.Round(time.Millisecond), victimMissed)
	t.Logf("phase: every scrape within %s of its target's phase (all owners)", maxDev.Round(time.Millisecond))
	t.Logf("join: %d intervals of moved targets without a scrape", joinMissed)
	require.Empty(t, doubles, "%d intervals with two scrapes, first ones:\n%s", len(doubles), strings.Join(doubles[:min(len(doubles), 10)], "\n"))
	require.Empty(t, unexpectedGaps, "%d intervals without a scrape (outside the kill's gap), first ones:\n%s", len(unexpectedGaps), strings.Join(unexpectedGaps[:min(len(unexpectedGaps), 10)], "\n"))
	require.Less(t, maxDev, interval/4, "every owner scrapes a target at the same phase")
	require.LessOrEqual(t, worstSinceKill, detection+interval+reloadSlack,
		"victims scraped again within failure detection + 1 interval")

	// 6. No staleness markers at the sink, and every target's samples got there.
	time.Sleep(3 * time.Second) // the last batches leave the WALs
	stale, seen := staleness(sink.Metrics(t))
	for _, tg := range targets {
		require.True(t, seen[tg.addr], "no data at the sink from %s", tg.addr)
	}
	require.Empty(t, stale, "staleness markers at the sink (moved: %d, victims: %d)", len(moved), len(victims))
}

// writeDump writes every target's scrape times and owners as JSON to path,
// for a closer look at a failure (OBS_SCRAPE_DUMP=path).
func writeDump(t *testing.T, path string, targets []*target, own3, own2, own3b map[string]string, events map[string]time.Time) {
	type row struct {
		Addr   string      `json:"addr"`
		Owners []string    `json:"owners"`
		Times  []time.Time `json:"times"`
	}
	out := struct {
		Events  map[string]time.Time `json:"events"`
		Targets []row                `json:"targets"`
	}{Events: events}
	for _, tg := range targets {
		out.Targets = append(out.Targets, row{Addr: tg.addr, Owners: []string{own3[tg.addr], own2[tg.addr], own3b[tg.addr]}, Times: tg.scrapes()})
	}
	b, err := json.Marshal(out)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}
