package events

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"github.com/obs-dev/obs/test/obsproc"
	"github.com/obs-dev/obs/test/otelpeer"
)

// logRec is one k8s_events line of a gateway's JSON log.
type logRec struct {
	life int // 0 for the first run of the process, 1 after a restart
	time time.Time
	msg  string
	ns   string
}

// records reads g's JSON log; each life of the process starts with the
// "----- start N: obs" line obsproc writes.
func records(g *gateway) []logRec {
	var out []logRec
	life := -1
	sc := bufio.NewScanner(strings.NewReader(g.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "----- start ") {
			life++
			continue
		}
		var rec struct {
			Time      time.Time `json:"time"`
			Msg       string    `json:"msg"`
			Namespace string    `json:"namespace"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Namespace == "" {
			continue
		}
		out = append(out, logRec{life: life, time: rec.Time, msg: rec.Msg, ns: rec.Namespace})
	}
	return out
}

// watchSpan is one member's watch of one namespace, from "k8s events
// watch starts" to "k8s events watch ends" (logged before the release is
// published), or to the SIGKILL.
type watchSpan struct {
	gateway, ns string
	from, to    time.Time
}

// watchSpans are g's watches. A life that ended by SIGKILL closes its
// open watches at the kill time the test recorded for it (kills[i] for
// life i); the running life closes them at now.
func watchSpans(g *gateway, kills []time.Time) []watchSpan {
	var out []watchSpan
	open := map[string]time.Time{}
	life := 0
	closeAll := func(at time.Time) {
		for ns, from := range open {
			out = append(out, watchSpan{g.Name(), ns, from, at})
		}
		clear(open)
	}
	for _, r := range records(g) {
		for life < r.life {
			if life < len(kills) {
				closeAll(kills[life])
			}
			clear(open)
			life++
		}
		switch r.msg {
		case "k8s events watch starts":
			open[r.ns] = r.time
		case "k8s events watch ends":
			if from, ok := open[r.ns]; ok {
				out = append(out, watchSpan{g.Name(), r.ns, from, r.time})
				delete(open, r.ns)
			}
		}
	}
	if life < len(kills) {
		closeAll(kills[life])
	}
	closeAll(time.Now())
	return out
}

// watching is what g watches now (its last life).
func watching(g *gateway) []string {
	var out []string
	for _, sp := range watchSpans(g, nil) {
		if time.Since(sp.to) < time.Second {
			out = append(out, sp.ns)
		}
	}
	return out
}

// tookOver reports whether g took the duty of ns after t.
func tookOver(g *gateway, ns string, t time.Time) bool {
	for _, r := range records(g) {
		if r.ns == ns && r.msg == "k8s events leadership taken" && r.time.After(t) {
			return true
		}
	}
	return false
}

// TestEventsShardByNamespace: three gateways with shard_by: namespace and
// no namespaces listed. Events are created in four namespaces at 20/s for
// 40 s; a fifth namespace is created 10 s in and gets events too. The
// gateway watching the most of them is SIGKILLed 20 s in and comes back
// 5 s later with its data dir (within handover_wait). Every event must
// reach the sink exactly once (but for a batch the kill caught in flight,
// see relay), and no two gateways may watch one namespace at the same
// time (from their logs). About 70 s.
func TestEventsShardByNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a kube-apiserver, an otelcol and three obs processes for about a minute")
	}
	kc := k8stest.Start(t)
	sink := otelpeer.StartSink(t)
	rl := startRelay(t, sink.GRPCAddr)
	var (
		mu         sync.Mutex
		namespaces []string
	)
	for range 4 {
		namespaces = append(namespaces, kc.Namespace(t, "shard", nil))
	}

	gs := newGateways(t, rl.Addr, kc.Kubeconfig, `
    auth_type: kubeConfig
    shard_by: namespace
    handover_wait: 30s`, "--log-format", "json")
	for _, g := range gs {
		g.Start()
	}
	// Every test namespace watched by someone before events start, so the
	// receivers' fresh start (events since they started) covers them all.
	obsproc.WaitFor(t, 30*time.Second, "every namespace watched", func() (bool, string) {
		var all []string
		for _, g := range gs {
			all = append(all, watching(g)...)
		}
		for _, ns := range namespaces {
			if !slices.Contains(all, ns) {
				return false, ns + " is not watched"
			}
		}
		return true, ""
	})

	const rate, seconds = 20, 40
	const total = rate * seconds
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var created []string
	lateNS := make(chan string, 1)
	genErr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := range total {
			<-tick.C
			if i == 10*rate {
				ns, err := kc.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
					ObjectMeta: metav1.ObjectMeta{GenerateName: "shard-late-"}}, metav1.CreateOptions{})
				if err != nil {
					genErr <- fmt.Errorf("create namespace: %w", err)
					return
				}
				lateNS <- ns.Name
				mu.Lock()
				namespaces = append(namespaces, ns.Name)
				mu.Unlock()
			}
			mu.Lock()
			ns := namespaces[i%len(namespaces)]
			mu.Unlock()
			now := metav1.Now()
			name := fmt.Sprintf("ev-%04d", i)
			_, err := kc.Client.CoreV1().Events(ns).Create(ctx, &corev1.Event{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "pod-" + name,
					UID: types.UID("uid-" + name), APIVersion: "v1"},
				Reason: "Tick", Message: "event " + name, Type: "Normal", Count: 1,
				Source: corev1.EventSource{Component: "test"}, FirstTimestamp: now, LastTimestamp: now,
			}, metav1.CreateOptions{})
			if err != nil {
				genErr <- fmt.Errorf("create %s/%s: %w", ns, name, err)
				return
			}
			mu.Lock()
			created = append(created, name)
			mu.Unlock()
		}
		genErr <- nil
	}()

	// The victim: the gateway watching the most namespaces now.
	time.Sleep(20 * time.Second)
	var victim *gateway
	var theirs []string
	for _, g := range gs {
		if w := watching(g); victim == nil || len(w) > len(theirs) {
			victim, theirs = g, w
		}
	}
	require.NotEmpty(t, theirs, "some gateway watches a namespace")
	k := killTimed(victim)
	killed := k.after
	t.Logf("killed %s at %s; it watched %v", victim.Name(), killed.Format("15:04:05.000"), theirs)
	// Its namespaces' duties move to the others within failure detection
	// (they wait for its hand-over: it comes back within handover_wait).
	took := obsproc.WaitFor(t, 30*time.Second, "the killed gateway's namespaces taken over", func() (bool, string) {
		for _, ns := range theirs {
			ok := false
			for _, g := range gs {
				ok = ok || (g != victim && tookOver(g, ns, killed))
			}
			if !ok {
				return false, ns + " is not taken over by another gateway"
			}
		}
		return true, ""
	})
	t.Logf("its namespaces taken over %s after the kill", took.Round(time.Millisecond))
	time.Sleep(time.Until(killed.Add(5 * time.Second)))
	victim.Start()

	require.NoError(t, <-genErr)
	late := <-lateNS
	mu.Lock()
	want := slices.Clone(created)
	mu.Unlock()
	require.Len(t, want, total)

	var counts map[string]int
	took = obsproc.WaitFor(t, 120*time.Second, "every event at the sink", func() (bool, string) {
		counts = sinkCounts(t, sink)
		missing := 0
		for _, n := range want {
			if counts[n] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d missing", missing, total)
	})
	time.Sleep(2 * time.Second) // late duplicates
	observed := sinkObserved(t, sink)
	counts = countsOf(observed)
	resent, readAgain := duplicates(observed, total)
	killedInFlight, resent := explain(resent, inFlight(rl.requests(), []kill{k}))
	t.Logf("all %d events at the sink %s after the last was created; %d duplicated: %d in a request in flight at the kill, %d otherwise sent twice, %d read twice",
		total, took.Round(time.Millisecond), len(killedInFlight)+len(resent)+len(readAgain), len(killedInFlight), len(resent), len(readAgain))
	require.Empty(t, slices.Concat(resent, readAgain), "events delivered more than once (beyond a request in flight at the kill: %v)", killedInFlight)
	require.Len(t, counts, total, "records for events that were never created")

	// One watcher per namespace at a time, and the work was shared.
	var spans []watchSpan
	for _, g := range gs {
		kills := []time.Time(nil)
		if g == victim {
			kills = []time.Time{killed}
		}
		spans = append(spans, watchSpans(g, kills)...)
	}
	byNS := map[string][]watchSpan{}
	watchers := map[string]bool{}
	for _, sp := range spans {
		byNS[sp.ns] = append(byNS[sp.ns], sp)
		if slices.Contains(namespaces, sp.ns) {
			watchers[sp.gateway] = true
		}
	}
	for ns, list := range byNS {
		slices.SortFunc(list, func(a, b watchSpan) int { return a.from.Compare(b.from) })
		for i := 1; i < len(list); i++ {
			prev, cur := list[i-1], list[i]
			require.False(t, cur.from.Before(prev.to),
				"namespace %s watched by %s from %s while %s watched it until %s", ns,
				cur.gateway, cur.from.Format("15:04:05.000"), prev.gateway, prev.to.Format("15:04:05.000"))
		}
	}
	require.NotEmpty(t, byNS[late], "the namespace created mid-run was watched")
	require.GreaterOrEqual(t, len(watchers), 2, "namespaces are shared among the gateways")
	// Its namespaces that had events come back to it at once: it resumes
	// from its own WAL checkpoint. (One whose stream never committed has
	// no checkpoint; the restarted owner cannot tell the gossiped claim is
	// its own previous life's and waits handover_wait for it.)
	for _, ns := range theirs {
		if !slices.Contains(namespaces, ns) {
			continue
		}
		back := false
		for _, sp := range byNS[ns] {
			back = back || (sp.gateway == victim.Name() && sp.from.After(killed))
		}
		require.True(t, back, "namespace %s moved back to its owner %s after it restarted", ns, victim.Name())
	}
}
