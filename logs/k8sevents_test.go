package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/obs-dev/obs/actors"
	k8stest "github.com/obs-dev/obs/test/k8s"
)

func TestK8sEventsConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *K8sEventsConfig)
		want string // "" = valid
	}{
		{"default", func(*K8sEventsConfig) {}, ""},
		{"kubeconfig", func(c *K8sEventsConfig) { c.AuthType = "kubeConfig" }, ""},
		{"bad auth", func(c *K8sEventsConfig) { c.AuthType = "tls" }, "auth_type"},
		{"shard over every namespace", func(c *K8sEventsConfig) { c.ShardBy = "namespace" }, ""},
		{"shard", func(c *K8sEventsConfig) { c.ShardBy = "namespace"; c.Namespaces = []string{"a", "b"} }, ""},
		{"bad shard", func(c *K8sEventsConfig) { c.ShardBy = "node" }, "shard_by"},
		{"twice", func(c *K8sEventsConfig) { c.Namespaces = []string{"a", "a"} }, "namespaces[1]"},
		{"empty ns", func(c *K8sEventsConfig) { c.Namespaces = []string{""} }, "namespaces[0]"},
		{"flush", func(c *K8sEventsConfig) { c.FlushInterval = 0 }, "flush_interval"},
		{"batch", func(c *K8sEventsConfig) { c.MaxBatchSize = 0 }, "max_batch_size"},
		{"handover", func(c *K8sEventsConfig) { c.HandoverWait = -time.Second }, "handover_wait"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultK8sEventsConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestNewK8sEventsReceiverChecks(t *testing.T) {
	cl, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"}) // never called
	require.NoError(t, err)
	consume := func(context.Context, actors.Batch, []actors.KV) error { return nil }
	fc := newFakeCluster()
	_, err = NewK8sEventsReceiver("k8s_events", DefaultK8sEventsConfig(), nil, consume, fc.duty("a", nil), nil, nil)
	require.ErrorContains(t, err, "client")
	_, err = NewK8sEventsReceiver("k8s_events", DefaultK8sEventsConfig(), cl, nil, fc.duty("a", nil), nil, nil)
	require.ErrorContains(t, err, "consume")
	_, err = NewK8sEventsReceiver("k8s_events", DefaultK8sEventsConfig(), cl, consume, Duty{}, nil, nil)
	require.ErrorContains(t, err, "duty")
	reg := prometheus.NewRegistry()
	_, err = NewK8sEventsReceiver("k8s_events", DefaultK8sEventsConfig(), cl, consume, fc.duty("a", nil), nil, reg)
	require.NoError(t, err)
	_, err = NewK8sEventsReceiver("k8s_events", DefaultK8sEventsConfig(), cl, consume, fc.duty("a", nil), nil, reg)
	require.Error(t, err, "a second receiver with the same id cannot register its metrics")
}

func TestResumePointCodec(t *testing.T) {
	long := make([]eventID, 100)
	for i := range long {
		long[i] = eventID{UID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), RV: fmt.Sprint(1000000 + i)}
	}
	tests := []struct {
		name string
		p    resumePoint
		keep int // identities kept by encode
	}{
		{"zero", resumePoint{}, 0},
		{"full", resumePoint{Seq: 42, Holder: 0xdeadbeef, Released: true, RV: "12345",
			Sent: []eventID{{"u1", "1"}, {"u2", "2"}}}, 2},
		{"over 1 KiB keeps the newest", resumePoint{Seq: 1, Holder: 1, RV: "1", Sent: long}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.p.encode()
			require.LessOrEqual(t, len(b), maxResumeBytes)
			got, err := decodeResumePoint(b)
			require.NoError(t, err)
			require.Equal(t, tc.p.Seq, got.Seq)
			require.Equal(t, tc.p.Holder, got.Holder)
			require.Equal(t, tc.p.Released, got.Released)
			require.Equal(t, tc.p.RV, got.RV)
			if tc.keep >= 0 {
				require.Len(t, got.Sent, tc.keep)
				if tc.keep > 0 {
					require.Equal(t, tc.p.Sent, got.Sent)
				}
				return
			}
			require.NotEmpty(t, got.Sent)
			require.Less(t, len(got.Sent), len(tc.p.Sent))
			require.Equal(t, tc.p.Sent[len(tc.p.Sent)-len(got.Sent):], got.Sent, "the newest identities are kept")
		})
	}
	for _, bad := range [][]byte{nil, {2, 0}, {1, 2}, {1, 0}, {1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 5, 'a'}} {
		_, err := decodeResumePoint(bad)
		require.ErrorIs(t, err, errBadResume, "%x", bad)
	}
}

func FuzzDecodeResumePoint(f *testing.F) {
	f.Add(resumePoint{Seq: 3, Holder: 9, RV: "77", Sent: []eventID{{"u", "1"}}}.encode())
	f.Add([]byte{1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeResumePoint(b)
		if err != nil {
			return
		}
		again, err := decodeResumePoint(p.encode())
		require.NoError(t, err)
		if len(p.encode()) <= maxResumeBytes {
			require.Equal(t, p.RV, again.RV)
			require.Equal(t, p.Seq, again.Seq)
		}
	})
}

func TestAppendEventAttributes(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	last := metav1.NewTime(created.Add(time.Minute))
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "web.1", Namespace: "shop", UID: "ev-uid", ResourceVersion: "9",
			CreationTimestamp: created},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web", UID: "pod-uid",
			APIVersion: "v1", ResourceVersion: "7", FieldPath: "spec.containers{c}"},
		Reason: "BackOff", Message: "Back-off restarting failed container", Type: "Warning", Count: 4,
		Action: "Restarting", Source: corev1.EventSource{Host: "node-1"}, LastTimestamp: last,
	}
	ld := plog.NewLogs()
	appendEvent(ld, ev)
	requireEventRecord(t, ld.ResourceLogs().At(0), ev)
	require.Equal(t, last.UnixNano(), ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Timestamp().AsTime().UnixNano())

	ev.Type, ev.Count = "Normal", 0
	ld = plog.NewLogs()
	appendEvent(ld, ev)
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	require.Equal(t, plog.SeverityNumberInfo, lr.SeverityNumber())
	_, ok := lr.Attributes().Get("k8s.event.count")
	require.False(t, ok, "a zero count is left out, as the Collector does")
}

func requireEventRecord(t *testing.T, rl plog.ResourceLogs, ev *corev1.Event) {
	t.Helper()
	res := rl.Resource().Attributes().AsRaw()
	require.Equal(t, map[string]any{
		"k8s.node.name":               ev.Source.Host,
		"k8s.object.kind":             ev.InvolvedObject.Kind,
		"k8s.object.name":             ev.InvolvedObject.Name,
		"k8s.object.uid":              string(ev.InvolvedObject.UID),
		"k8s.object.fieldpath":        ev.InvolvedObject.FieldPath,
		"k8s.object.api_version":      ev.InvolvedObject.APIVersion,
		"k8s.object.resource_version": ev.InvolvedObject.ResourceVersion,
	}, res)
	sl := rl.ScopeLogs().At(0)
	require.Equal(t, k8seventsScope, sl.Scope().Name())
	lr := sl.LogRecords().At(0)
	require.Equal(t, ev.Message, lr.Body().Str())
	sev := plog.SeverityNumberInfo
	if ev.Type == "Warning" {
		sev = plog.SeverityNumberWarn
	}
	require.Equal(t, sev, lr.SeverityNumber())
	require.Equal(t, ev.Type, lr.SeverityText())
	want := map[string]any{
		"k8s.event.reason":     ev.Reason,
		"k8s.event.action":     ev.Action,
		"k8s.event.start_time": ev.CreationTimestamp.String(),
		"k8s.event.name":       ev.Name,
		"k8s.event.uid":        string(ev.UID),
		"k8s.namespace.name":   ev.InvolvedObject.Namespace,
	}
	if ev.Count != 0 {
		want["k8s.event.count"] = int64(ev.Count)
	}
	require.Equal(t, want, lr.Attributes().AsRaw())
}

// fakeCluster is the contract boundary of Duty: which member leads, and
// the gossiped state, in memory. Each member also has a WAL map written
// from consume's extra, read back through Duty.Checkpoint.
type fakeCluster struct {
	mu       sync.Mutex
	leader   string
	state    map[string][]byte
	writers  map[string]string // key -> member that wrote the state
	duties   map[string][]string
	deaf     map[string]bool // members whose SetState is lost (killed before gossip)
	subs     map[string]chan struct{}
	wal      map[string]map[string][]byte
	records  map[string]int // event name -> times committed
	byMember map[string]int // member -> batches committed
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{state: map[string][]byte{}, writers: map[string]string{}, duties: map[string][]string{}, deaf: map[string]bool{}, subs: map[string]chan struct{}{},
		wal: map[string]map[string][]byte{}, records: map[string]int{}, byMember: map[string]int{}}
}

func (c *fakeCluster) duty(member string, extraCheck func()) Duty {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs[member] = ch
	if c.wal[member] == nil {
		c.wal[member] = map[string][]byte{}
	}
	c.mu.Unlock()
	return Duty{
		IsLeader: func(string) bool { c.mu.Lock(); defer c.mu.Unlock(); return c.leader == member },
		Changed:  ch,
		GetState: func(key string) ([]byte, bool) {
			c.mu.Lock()
			defer c.mu.Unlock()
			v, ok := c.state[key]
			return v, ok
		},
		SetState: func(key string, v []byte) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !c.deaf[member] {
				c.state[key] = v
				c.writers[key] = member
			}
			return nil
		},
		Self: member,
		StateWriter: func(key string) ([]byte, string, bool) {
			c.mu.Lock()
			defer c.mu.Unlock()
			v, ok := c.state[key]
			return v, c.writers[key], ok
		},
		DeleteState: func(key string) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !c.deaf[member] {
				delete(c.state, key)
				delete(c.writers, key)
			}
			return nil
		},
		Duties: func(source string, keys []string) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.duties[member+"/"+source] = keys
		},
		Checkpoint: func(key []byte) ([]byte, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.wal[member][string(key)], nil
		},
	}
}

func (c *fakeCluster) setLeader(member string) {
	c.mu.Lock()
	c.leader = member
	for _, ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
}

// consume is one member's WAL: records and checkpoint in one step.
func (c *fakeCluster) consume(member string) func(context.Context, actors.Batch, []actors.KV) error {
	return func(_ context.Context, b actors.Batch, extra []actors.KV) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		rls := b.Logs.ResourceLogs()
		for i := range rls.Len() {
			lrs := rls.At(i).ScopeLogs().At(0).LogRecords()
			for j := range lrs.Len() {
				name, _ := lrs.At(j).Attributes().Get("k8s.event.name")
				c.records[name.Str()]++
			}
		}
		for _, kv := range extra {
			c.wal[member][string(kv.Key)] = kv.Value
		}
		c.byMember[member]++
		return nil
	}
}

func (c *fakeCluster) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records[name]
}

func (c *fakeCluster) leaderIs(m string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader == m
}

// compactEtcd compacts the API server's etcd at rev through its JSON
// gateway (the address is in the harness's env file), so that watches
// from an older resourceVersion get 410 Gone.
func compactEtcd(t *testing.T, dir, rev string) {
	t.Helper()
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	require.NoError(t, err)
	etcd := ""
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "ETCD="); ok {
			etcd = strings.TrimSpace(v)
		}
	}
	require.NotEmpty(t, etcd, "ETCD in %s/env", dir)
	body := fmt.Sprintf(`{"revision":%q,"physical":true}`, rev)
	rsp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).
		Post(etcd+"/v3/kv/compaction", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	b, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	require.Equal(t, http.StatusOK, rsp.StatusCode, "compact etcd: %s", b)
}

func (c *fakeCluster) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.state[key]
	return v, ok
}

func (c *fakeCluster) batches(member string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byMember[member]
}

// member runs one receiver until stop is called.
type member struct {
	r    *K8sEventsReceiver
	stop func()
	reg  *prometheus.Registry
}

func startMember(t *testing.T, fc *fakeCluster, name string, cfg K8sEventsConfig, client kubernetes.Interface,
	consume func(context.Context, actors.Batch, []actors.KV) error) *member {
	t.Helper()
	reg := prometheus.NewRegistry()
	if consume == nil {
		consume = fc.consume(name)
	}
	r, err := NewK8sEventsReceiver("k8s_events", cfg, client, consume, fc.duty(name, nil), nil, reg)
	require.NoError(t, err)
	r.recheck = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("receiver did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return &member{r: r, stop: stop, reg: reg}
}

// newEvent returns an event about a pod in ns, timestamped now.
func newEvent(ns, name string, typ string) *corev1.Event {
	now := metav1.Now()
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "pod-" + name,
			UID: types.UID("uid-" + name), APIVersion: "v1", ResourceVersion: "1", FieldPath: "spec.containers{app}"},
		Reason: "Started", Message: "Started container " + name, Type: typ, Count: 2, Action: "Start",
		Source: corev1.EventSource{Component: "kubelet", Host: "node-a"}, FirstTimestamp: now, LastTimestamp: now,
		ReportingController: "kubelet", ReportingInstance: "node-a",
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testEventsConfig(ns string) K8sEventsConfig {
	cfg := DefaultK8sEventsConfig()
	cfg.AuthType = "kubeConfig"
	cfg.Namespaces = []string{ns}
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.MaxBatchSize = 7 // several batches per burst
	cfg.HandoverWait = 2 * time.Second
	return cfg
}

// TestK8sEventsAPIServer runs the receiver against a real kube-apiserver.
func TestK8sEventsAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	kc := k8stest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("attributes", func(t *testing.T) {
		ns := kc.Namespace(t, "attrs", nil)
		fc := newFakeCluster()
		fc.setLeader("a")
		got := map[string]plog.ResourceLogs{}
		var mu sync.Mutex
		startMember(t, fc, "a", testEventsConfig(ns), kc.Client, func(_ context.Context, b actors.Batch, _ []actors.KV) error {
			mu.Lock()
			defer mu.Unlock()
			for i := range b.Logs.ResourceLogs().Len() {
				rl := b.Logs.ResourceLogs().At(i)
				name, _ := rl.ScopeLogs().At(0).LogRecords().At(0).Attributes().Get("k8s.event.name")
				got[name.Str()] = rl
			}
			return nil
		})
		var want []*corev1.Event
		for i, typ := range []string{"Normal", "Warning"} {
			ev, err := kc.Client.CoreV1().Events(ns).Create(ctx, newEvent(ns, fmt.Sprintf("e%d", i), typ), metav1.CreateOptions{})
			require.NoError(t, err)
			want = append(want, ev)
		}
		waitFor(t, "two records", 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
		for _, ev := range want {
			mu.Lock()
			rl := got[ev.Name]
			mu.Unlock()
			requireEventRecord(t, rl, ev)
		}
	})

	t.Run("handover", func(t *testing.T) {
		ns := kc.Namespace(t, "handover", nil)
		fc := newFakeCluster()
		fc.setLeader("a")
		cfg := testEventsConfig(ns)
		a := startMember(t, fc, "a", cfg, kc.Client, nil)
		b := startMember(t, fc, "b", cfg, kc.Client, nil)

		const total = 240
		created := make(chan string, total)
		genDone := make(chan error, 1)
		go func() {
			defer close(created)
			for i := range total {
				ev, err := kc.Client.CoreV1().Events(ns).Create(ctx, newEvent(ns, fmt.Sprintf("h%03d", i), "Normal"), metav1.CreateOptions{})
				if err != nil {
					genDone <- err
					return
				}
				created <- ev.Name
				time.Sleep(15 * time.Millisecond)
			}
			genDone <- nil
		}()
		// Live hand-overs back and forth while events stream in.
		for _, next := range []string{"b", "a", "b", "a"} {
			time.Sleep(400 * time.Millisecond)
			fc.setLeader(next)
		}
		// a dies after a commit whose gossip is lost: the gossiped point
		// lags its WAL. b takes over and must wait for a's restart.
		waitFor(t, "a publishes a commit", 10*time.Second, func() bool {
			st, ok := fc.get("k8s_events/k8s_events/ns/" + ns)
			if !ok {
				return false
			}
			p, err := decodeResumePoint(st)
			return err == nil && p.Seq > 0 && fc.leaderIs("a")
		})
		before := fc.batches("a")
		fc.mu.Lock()
		fc.deaf["a"] = true
		fc.mu.Unlock()
		waitFor(t, "a commit after gossip stopped", 10*time.Second, func() bool { return fc.batches("a") > before })
		a.stop()
		fc.setLeader("b")
		time.Sleep(500 * time.Millisecond) // b waits: handover_wait is 2s
		fc.mu.Lock()
		fc.deaf["a"] = false
		fc.mu.Unlock()
		a2 := startMember(t, fc, "a", cfg, kc.Client, nil) // restarted; reports its WAL checkpoint
		require.NoError(t, <-genDone)
		var names []string
		for n := range created {
			names = append(names, n)
		}
		require.Len(t, names, total)
		waitFor(t, "every event", 30*time.Second, func() bool {
			for _, n := range names {
				if fc.count(n) == 0 {
					return false
				}
			}
			return true
		})
		time.Sleep(300 * time.Millisecond) // a late duplicate would show now
		var dups []string
		for _, n := range names {
			if c := fc.count(n); c != 1 {
				dups = append(dups, fmt.Sprintf("%s x%d", n, c))
			}
		}
		require.Empty(t, dups, "events committed more than once")
		require.Zero(t, testutil.ToFloat64(b.r.m.handoverTimeouts), "b resumed from a's WAL checkpoint, not by timeout")
		require.Positive(t, testutil.ToFloat64(a.r.m.sent)+testutil.ToFloat64(a2.r.m.sent))
		require.Positive(t, testutil.ToFloat64(b.r.m.sent))
		require.GreaterOrEqual(t, testutil.ToFloat64(b.r.m.leaderChanges), 3.0)
	})

	// A leader of a quiet stream (no event yet: no checkpoint in its WAL,
	// only its gossiped claim and list position) is killed and restarts
	// under its name within handover_wait. It recognises its previous
	// process's point and resumes at once from it: the events created
	// while it was down are sent exactly once, without waiting
	// handover_wait. About 6 s (the first start waits 5 s for gossip).
	t.Run("restart of a quiet leader", func(t *testing.T) {
		ns := kc.Namespace(t, "restart", nil)
		fc := newFakeCluster()
		fc.setLeader("a")
		cfg := testEventsConfig(ns)
		cfg.HandoverWait = 30 * time.Second
		a := startMember(t, fc, "a", cfg, kc.Client, nil)
		key := "k8s_events/k8s_events/ns/" + ns
		waitFor(t, "a's list position gossiped", 10*time.Second, func() bool {
			b, ok := fc.get(key)
			if !ok {
				return false
			}
			p, err := decodeResumePoint(b)
			return err == nil && p.RV != "" && !p.Released
		})
		// Killed: its release is never gossiped.
		fc.mu.Lock()
		fc.deaf["a"] = true
		fc.mu.Unlock()
		a.stop()
		fc.mu.Lock()
		fc.deaf["a"] = false
		require.Empty(t, fc.wal["a"][key], "a quiet stream has no checkpoint in the WAL")
		fc.mu.Unlock()
		var names []string
		for i := range 5 {
			ev, err := kc.Client.CoreV1().Events(ns).Create(ctx, newEvent(ns, fmt.Sprintf("q%d", i), "Normal"), metav1.CreateOptions{})
			require.NoError(t, err)
			names = append(names, ev.Name)
		}
		start := time.Now()
		a2 := startMember(t, fc, "a", cfg, kc.Client, nil)
		waitFor(t, "the events of the downtime", 10*time.Second, func() bool {
			for _, n := range names {
				if fc.count(n) == 0 {
					return false
				}
			}
			return true
		})
		require.Less(t, time.Since(start), cfg.HandoverWait/3, "resumed at once, not after handover_wait")
		ev, err := kc.Client.CoreV1().Events(ns).Create(ctx, newEvent(ns, "q5", "Warning"), metav1.CreateOptions{})
		require.NoError(t, err)
		names = append(names, ev.Name)
		waitFor(t, "an event after the restart", 10*time.Second, func() bool { return fc.count("q5") == 1 })
		time.Sleep(300 * time.Millisecond) // a late duplicate would show now
		for _, n := range names {
			require.Equal(t, 1, fc.count(n), "event %s", n)
		}
		require.Zero(t, testutil.ToFloat64(a2.r.m.handoverTimeouts))
	})

	t.Run("gone", func(t *testing.T) {
		ns := kc.Namespace(t, "gone", nil)
		var evs []*corev1.Event
		for i := range 5 {
			ev, err := kc.Client.CoreV1().Events(ns).Create(ctx, newEvent(ns, fmt.Sprintf("g%d", i), "Normal"), metav1.CreateOptions{})
			require.NoError(t, err)
			evs = append(evs, ev)
		}
		compactEtcd(t, kc.Dir, evs[len(evs)-1].ResourceVersion)
		fc := newFakeCluster()
		// A released point before etcd's compaction, naming the first
		// three events as sent: watching from it gets 410 Gone.
		p := resumePoint{Seq: 4, Holder: 77, Released: true, RV: "1"}
		for _, ev := range evs[:3] {
			p.Sent = append(p.Sent, eventID{UID: string(ev.UID), RV: ev.ResourceVersion})
		}
		cfg := testEventsConfig(ns)
		fc.state["k8s_events/k8s_events/ns/"+ns] = p.encode()
		fc.setLeader("a")
		m := startMember(t, fc, "a", cfg, kc.Client, nil)
		waitFor(t, "the two unsent events", 20*time.Second, func() bool { return fc.count("g3") == 1 && fc.count("g4") == 1 })
		late, err := kc.Client.CoreV1().Events(ns).Create(ctx, newEvent(ns, "g5", "Warning"), metav1.CreateOptions{})
		require.NoError(t, err)
		waitFor(t, "an event after the relist", 20*time.Second, func() bool { return fc.count(late.Name) == 1 })
		for _, ev := range evs[:3] {
			require.Zero(t, fc.count(ev.Name), "%s was in the resume point", ev.Name)
		}
		require.Equal(t, 1.0, testutil.ToFloat64(m.r.m.relists))
		require.GreaterOrEqual(t, testutil.ToFloat64(m.r.m.skipped), 3.0)
		st, ok := fc.get("k8s_events/k8s_events/ns/" + ns)
		require.True(t, ok)
		got, err := decodeResumePoint(st)
		require.NoError(t, err)
		require.Equal(t, uint64(6), got.Seq, "two commits after the relist: the list batch and g5")
		require.Equal(t, late.ResourceVersion, got.RV)
	})

	t.Run("refused then stored", func(t *testing.T) {
		ns := kc.Namespace(t, "refused", nil)
		fc := newFakeCluster()
		fc.setLeader("a")
		var mu sync.Mutex
		refusals := 0
		store := fc.consume("a")
		reg := prometheus.NewRegistry()
		r, err := NewK8sEventsReceiver("k8s_events", testEventsConfig(ns), kc.Client,
			func(ctx context.Context, b actors.Batch, extra []actors.KV) error {
				mu.Lock()
				defer mu.Unlock()
				if refusals < 2 {
					refusals++
					return &actors.RefusedError{Reason: "wal_full"}
				}
				return store(ctx, b, extra)
			}, fc.duty("a", nil), nil, reg)
		require.NoError(t, err)
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		_, err = kc.Client.CoreV1().Events(ns).Create(ctx, newEvent(ns, "r0", "Normal"), metav1.CreateOptions{})
		require.NoError(t, err)
		waitFor(t, "the event after two refusals", 20*time.Second, func() bool { return fc.count("r0") == 1 })
		rcancel()
		require.NoError(t, <-done)
		require.Equal(t, 2.0, testutil.ToFloat64(r.m.refused))
		require.Equal(t, 1.0, testutil.ToFloat64(r.m.sent))
		st, _ := fc.get("k8s_events/k8s_events/ns/" + ns)
		got, err := decodeResumePoint(st)
		require.NoError(t, err)
		require.True(t, got.Released, "a stopped receiver releases its point")
	})
}

// TestAcquire covers where a new term resumes, in a synctest bubble (the
// waits are virtual time).
func TestAcquire(t *testing.T) {
	const wait = 30 * time.Second
	other := resumePoint{Seq: 5, Holder: 11, RV: "50", Sent: []eventID{{"u", "50"}}}
	released := other
	released.Released = true
	own := resumePoint{Seq: 6, Holder: 11, RV: "60"}
	tests := []struct {
		name     string
		state    *resumePoint
		own      *resumePoint
		later    *resumePoint // published after 1s
		leader   bool
		want     resumePoint
		ok       bool
		waited   time.Duration
		timeouts float64
		found    time.Duration // the stream appeared this long after Run started (a new namespace)
	}{
		{"fresh waits for gossip, then starts fresh", nil, nil, nil, true, resumePoint{}, true, 5 * time.Second, 0, 0},
		{"released point at once", &released, nil, nil, true, released, true, 0, 0, 0},
		{"own previous life is newer than gossip", &other, &own, nil, true, own, true, 0, 0, 0},
		{"other's unreleased point: wait, then resume from it", &other, nil, nil, true, other, true, wait, 1, 0},
		{"other's point released while waiting", &other, nil, &released, true, released, true, time.Second, 0, 0},
		{"own checkpoint when nothing is gossiped", nil, &own, nil, true, own, true, 5 * time.Second, 0, 0},
		{"not leader", &released, nil, nil, false, resumePoint{}, false, 0, 0, 0},
		{"a namespace found later waits a second for gossip", nil, nil, nil, true, resumePoint{}, true, time.Second, 0, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fc := newFakeCluster()
				if tc.leader {
					fc.setLeader("a")
				}
				cl, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
				require.NoError(t, err)
				cfg := DefaultK8sEventsConfig()
				cfg.HandoverWait = wait
				r, err := NewK8sEventsReceiver("k8s_events", cfg, cl, fc.consume("a"), fc.duty("a", nil), nil, nil)
				require.NoError(t, err)
				s := r.streams[0]
				s.start = time.Now().Add(-tc.found)
				if tc.state != nil {
					fc.state[s.stateKey] = tc.state.encode()
				}
				if tc.own != nil {
					s.own, s.ownOK = *tc.own, true
				}
				if tc.later != nil {
					go func() {
						time.Sleep(time.Second)
						fc.mu.Lock()
						fc.state[s.stateKey] = tc.later.encode()
						fc.mu.Unlock()
					}()
				}
				tm := time.NewTimer(time.Hour)
				defer tm.Stop()
				start := time.Now()
				got, ok := s.acquire(context.Background(), tm)
				require.Equal(t, tc.ok, ok)
				if ok {
					require.Equal(t, tc.want.encode(), got.encode())
				}
				waited := time.Since(start)
				require.GreaterOrEqual(t, waited, tc.waited)
				require.Less(t, waited, tc.waited+500*time.Millisecond)
				require.Equal(t, tc.timeouts, testutil.ToFloat64(r.m.handoverTimeouts))
				synctest.Wait()
			})
		})
	}
}

// TestResolveOwn: a restarted member that is not the leader publishes its
// WAL checkpoint as released only when the gossip is from its own last
// term and not newer.
func TestResolveOwn(t *testing.T) {
	own := resumePoint{Seq: 6, Holder: 11, RV: "60"}
	tests := []struct {
		name    string
		state   *resumePoint
		giveUp  bool
		publish bool
		pending bool
	}{
		{"gossip lags own term", &resumePoint{Seq: 5, Holder: 11, RV: "50"}, false, true, false},
		{"gossip already released", &resumePoint{Seq: 6, Holder: 11, RV: "60", Released: true}, false, false, false},
		{"another term moved on", &resumePoint{Seq: 9, Holder: 12, RV: "90"}, false, false, false},
		{"nothing gossiped yet", nil, false, false, true},
		{"nothing gossiped, give up", nil, true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeCluster()
			cl, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
			require.NoError(t, err)
			r, err := NewK8sEventsReceiver("k8s_events", DefaultK8sEventsConfig(), cl, fc.consume("a"), fc.duty("a", nil), nil, nil)
			require.NoError(t, err)
			s := r.streams[0]
			s.own, s.ownOK, s.resolve = own, true, true
			if tc.state != nil {
				fc.state[s.stateKey] = tc.state.encode()
			}
			s.resolveOwn(tc.giveUp)
			require.Equal(t, tc.pending, s.resolve)
			got, _ := fc.get(s.stateKey)
			if tc.publish {
				want := own
				want.Released = true
				require.Equal(t, want.encode(), got)
				return
			}
			if tc.state == nil {
				require.Nil(t, got)
			} else {
				require.Equal(t, tc.state.encode(), got)
			}
		})
	}
}

// TestAcquirePreviousLife: a point gossiped under this member's own name
// by its previous process (restarted within handover_wait, e.g. a
// StatefulSet pod) is resumed from at once, even without a checkpoint in
// the WAL (a stream that never had an event); the WAL's point wins when it
// is newer. Another member's unreleased point still waits.
func TestAcquirePreviousLife(t *testing.T) {
	const wait = 30 * time.Second
	claim := resumePoint{Seq: 5, Holder: 11, RV: "50", Sent: []eventID{{"u", "50"}}}
	walNewer := resumePoint{Seq: 6, Holder: 10, RV: "60"}
	walOlder := resumePoint{Seq: 4, Holder: 10, RV: "40"}
	tests := []struct {
		name     string
		writer   string
		own      *resumePoint
		want     resumePoint
		waited   time.Duration
		timeouts float64
	}{
		{"own previous claim, no checkpoint: at once", "a", nil, claim, 0, 0},
		{"own previous claim, older checkpoint: the claim", "a", &walOlder, claim, 0, 0},
		{"own previous claim, newer checkpoint: the checkpoint", "a", &walNewer, walNewer, 0, 0},
		{"another member's claim: wait it out", "b", nil, claim, wait, 1},
		{"no writer known: wait it out", "", nil, claim, wait, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fc := newFakeCluster()
				fc.setLeader("a")
				cl, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
				require.NoError(t, err)
				cfg := DefaultK8sEventsConfig()
				cfg.HandoverWait = wait
				r, err := NewK8sEventsReceiver("k8s_events", cfg, cl, fc.consume("a"), fc.duty("a", nil), nil, nil)
				require.NoError(t, err)
				s := r.streams[0]
				fc.state[s.stateKey] = claim.encode()
				fc.writers[s.stateKey] = tc.writer
				if tc.own != nil {
					fc.wal["a"][s.stateKey] = tc.own.encode()
				}
				require.NoError(t, s.loadCheckpoint())
				tm := time.NewTimer(time.Hour)
				defer tm.Stop()
				start := time.Now()
				got, ok := s.acquire(context.Background(), tm)
				require.True(t, ok)
				require.Equal(t, tc.want.encode(), got.encode())
				waited := time.Since(start)
				require.GreaterOrEqual(t, waited, tc.waited)
				require.Less(t, waited, tc.waited+500*time.Millisecond)
				require.Equal(t, tc.timeouts, testutil.ToFloat64(r.m.handoverTimeouts))
				synctest.Wait()
			})
		})
	}
}

// TestResolvePreviousLife: a restarted member that does not lead releases
// the unreleased point its previous process gossiped, so the leader that
// waits for it resumes at once.
func TestResolvePreviousLife(t *testing.T) {
	claim := resumePoint{Seq: 5, Holder: 11, RV: "50"}
	walNewer := resumePoint{Seq: 6, Holder: 10, RV: "60"}
	tests := []struct {
		name   string
		writer string
		own    *resumePoint
		want   *resumePoint // released; nil: left alone
	}{
		{"own previous claim is released", "a", nil, &claim},
		{"newer checkpoint is released instead", "a", &walNewer, &walNewer},
		{"another member's claim is left alone", "b", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeCluster()
			cl, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
			require.NoError(t, err)
			r, err := NewK8sEventsReceiver("k8s_events", DefaultK8sEventsConfig(), cl, fc.consume("a"), fc.duty("a", nil), nil, nil)
			require.NoError(t, err)
			s := r.streams[0]
			fc.state[s.stateKey] = claim.encode()
			fc.writers[s.stateKey] = tc.writer
			if tc.own != nil {
				fc.wal["a"][s.stateKey] = tc.own.encode()
			}
			require.NoError(t, s.loadCheckpoint())
			require.True(t, s.resolve, "a restarted member checks what its previous process gossiped")
			s.resolveOwn(false)
			require.False(t, s.resolve)
			got, _ := fc.get(s.stateKey)
			if tc.want == nil {
				require.Equal(t, claim.encode(), got)
				return
			}
			want := *tc.want
			want.Released = true
			require.Equal(t, want.encode(), got)
		})
	}
}

// TestForgetDeletedNamespace: once a deleted namespace's stream exited,
// its resume point is deleted from the cluster state by the member that
// wrote it or by the namespace's owner, and kept while the namespace
// exists (it came back).
func TestForgetDeletedNamespace(t *testing.T) {
	tests := []struct {
		name    string
		writer  string
		leader  string
		listed  bool
		deleted bool
	}{
		{"written by this member", "a", "b", false, true},
		{"owned by this member", "c", "a", false, true},
		{"another member's, not owned", "c", "b", false, false},
		{"the namespace is back", "a", "a", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeCluster()
			fc.setLeader(tc.leader)
			cl, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
			require.NoError(t, err)
			cfg := DefaultK8sEventsConfig()
			cfg.ShardBy = "namespace"
			r, err := NewK8sEventsReceiver("k8s_events", cfg, cl, fc.consume("a"), fc.duty("a", nil), nil, nil)
			require.NoError(t, err)
			s, err := r.newStream("gone")
			require.NoError(t, err)
			fc.state[s.stateKey] = resumePoint{Seq: 3, Holder: 9, RV: "30", Released: true}.encode()
			fc.writers[s.stateKey] = tc.writer
			rs := &runningStreams{r: r, listed: func(ns string) bool { return tc.listed && ns == "gone" }}
			rs.forget(s)
			_, ok := fc.get(s.stateKey)
			require.Equal(t, tc.deleted, !ok)
		})
	}
}

// TestResumePointSize measures a full resume point (16 identities of
// real-shaped events: 36-byte uid, 8-digit resourceVersion): what one
// namespace costs in the cluster state (cluster.k8sEventsValueSize).
func TestResumePointSize(t *testing.T) {
	p := resumePoint{Seq: 1234, Holder: newHolder(), RV: "12345678"}
	for i := range maxSent {
		p.Sent = append(p.Sent, eventID{UID: fmt.Sprintf("6f1d2c3b-4a59-4e6f-8a7b-%012d", i), RV: fmt.Sprintf("%08d", 12345600+i)})
	}
	b := p.encode()
	t.Logf("full resume point: %d bytes", len(b))
	require.Equal(t, 758, len(b), "cluster.k8sEventsValueSize must follow")
	require.LessOrEqual(t, len(b), maxResumeBytes)
}

// TestPublishErrorsRateLimited: with a full cluster state every commit
// fails to publish; that is counted each time and logged once a minute.
func TestPublishErrorsRateLimited(t *testing.T) {
	fc := newFakeCluster()
	cl, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
	require.NoError(t, err)
	d := fc.duty("a", nil)
	d.SetState = func(string, []byte) error { return fmt.Errorf("set cluster state: cluster state is full") }
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	r, err := NewK8sEventsReceiver("k8s_events", DefaultK8sEventsConfig(), cl, fc.consume("a"), d, log, nil)
	require.NoError(t, err)
	for i := range 40 {
		r.streams[0].publish(resumePoint{Seq: uint64(i)})
	}
	require.Equal(t, 40.0, testutil.ToFloat64(r.m.publishErrors))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, strings.Count(logs.String(), "publish k8s events resume point"))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
