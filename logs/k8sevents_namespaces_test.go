package logs

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obs-dev/obs/actors"
	k8stest "github.com/obs-dev/obs/test/k8s"
)

// owners assigns each "k8s-events/<ns>" duty to a member, as the
// cluster's rendezvous hashing would; unassigned namespaces belong to
// "a".
type owners struct {
	mu sync.Mutex
	by map[string]string
}

func (o *owners) set(ns, member string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.by[ns] = member
}

func (o *owners) isLeader(member string) func(string) bool {
	return func(key string) bool {
		ns, ok := strings.CutPrefix(key, "k8s-events/")
		if !ok {
			return false
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		m, ok := o.by[ns]
		if !ok {
			m = "a"
		}
		return m == member
	}
}

// TestK8sEventsShardByNamespace: with shard_by: namespace and no
// namespaces listed, two receivers find the namespaces from the API
// server; each namespace's events are sent by its owner only, a
// namespace created later is picked up, a namespace that moves is
// resumed by its new owner without loss or duplicates, and a deleted
// namespace's stream stops. A real kube-apiserver; about 15 s.
func TestK8sEventsShardByNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	kc := k8stest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nsA, nsB := kc.Namespace(t, "shard-a", nil), kc.Namespace(t, "shard-b", nil)

	fc := newFakeCluster()
	own := &owners{by: map[string]string{nsA: "a", nsB: "b"}}
	var mu sync.Mutex
	sentBy := map[string]map[string]int{} // event name -> member -> times
	consume := func(member string) func(context.Context, actors.Batch, []actors.KV) error {
		inner := fc.consume(member)
		return func(ctx context.Context, b actors.Batch, extra []actors.KV) error {
			mu.Lock()
			rls := b.Logs.ResourceLogs()
			for i := range rls.Len() {
				name, _ := rls.At(i).ScopeLogs().At(0).LogRecords().At(0).Attributes().Get("k8s.event.name")
				if sentBy[name.Str()] == nil {
					sentBy[name.Str()] = map[string]int{}
				}
				sentBy[name.Str()][member]++
			}
			mu.Unlock()
			return inner(ctx, b, extra)
		}
	}
	cfg := DefaultK8sEventsConfig()
	cfg.AuthType = "kubeConfig"
	cfg.ShardBy = "namespace"
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.HandoverWait = 5 * time.Second
	members := map[string]*member{}
	for _, name := range []string{"a", "b"} {
		reg := prometheus.NewRegistry()
		d := fc.duty(name, nil)
		d.IsLeader = own.isLeader(name)
		r, err := NewK8sEventsReceiver("k8s_events", cfg, kc.Client, consume(name), d, nil, reg)
		require.NoError(t, err)
		require.Empty(t, r.streams, "streams come from the API server")
		r.recheck = 50 * time.Millisecond
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		t.Cleanup(func() {
			rcancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Error("receiver did not stop")
			}
		})
		members[name] = &member{r: r, reg: reg}
	}
	waitFor(t, "both receivers watch their namespace", 20*time.Second, func() bool {
		return testutil.ToFloat64(members["a"].r.m.leader) >= 1 && testutil.ToFloat64(members["b"].r.m.leader) >= 1
	})

	// A quiet namespace (no events) has its list position gossiped, so a
	// leader after a crash would watch from there, not start fresh.
	waitFor(t, "kube-public's position gossiped", 10*time.Second, func() bool {
		b, ok := fc.get("k8s_events/k8s_events/ns/kube-public")
		if !ok {
			return false
		}
		p, err := decodeResumePoint(b)
		return err == nil && p.RV != "" && p.Seq == 0
	})

	var created []string
	create := func(ns, name string) {
		t.Helper()
		_, err := kc.Client.CoreV1().Events(ns).Create(ctx, newEvent(ns, name, "Normal"), metav1.CreateOptions{})
		require.NoError(t, err)
		created = append(created, name)
	}
	for i := range 10 {
		create(nsA, fmt.Sprintf("a%02d", i))
		create(nsB, fmt.Sprintf("b%02d", i))
	}
	// A namespace created now, owned by b, with events right away.
	nsC := kc.Namespace(t, "shard-c", nil)
	own.set(nsC, "b")
	for i := range 5 {
		create(nsC, fmt.Sprintf("c%02d", i))
	}
	allOnce := func() bool {
		for _, n := range created {
			if fc.count(n) != 1 {
				return false
			}
		}
		return true
	}
	waitFor(t, "every event sent once", 30*time.Second, allOnce)
	mu.Lock()
	for _, n := range created {
		want := "a"
		if n[0] != 'a' {
			want = "b"
		}
		require.Equal(t, map[string]int{want: 1}, sentBy[n], "event %s sent by its namespace's owner only", n)
	}
	mu.Unlock()

	// nsA moves to b while events keep coming: b resumes where a stopped.
	for i := range 5 {
		create(nsA, fmt.Sprintf("a%02d", 10+i))
	}
	own.set(nsA, "b")
	fc.setLeader("") // signal Changed to both
	for i := range 5 {
		create(nsA, fmt.Sprintf("a%02d", 15+i))
	}
	waitFor(t, "every event sent once after the move", 30*time.Second, allOnce)
	time.Sleep(500 * time.Millisecond) // late duplicates
	require.True(t, allOnce(), "no event sent twice")
	mu.Lock()
	require.Equal(t, map[string]int{"b": 1}, sentBy["a19"], "the new owner sends the moved namespace's events")
	mu.Unlock()
	require.Zero(t, testutil.ToFloat64(members["b"].r.m.handoverTimeouts), "a released its point; b did not wait it out")

	// A deleted namespace's stream stops. There is no namespace
	// controller: finalize it by hand, as that controller would.
	before := testutil.ToFloat64(members["a"].r.m.namespaces)
	require.NoError(t, kc.Client.CoreV1().Namespaces().Delete(ctx, nsC, metav1.DeleteOptions{}))
	n, err := kc.Client.CoreV1().Namespaces().Get(ctx, nsC, metav1.GetOptions{})
	require.NoError(t, err)
	n.Spec.Finalizers = nil
	_, err = kc.Client.CoreV1().Namespaces().Finalize(ctx, n, metav1.UpdateOptions{})
	require.NoError(t, err)
	waitFor(t, "the deleted namespace's stream gone", 20*time.Second, func() bool {
		return testutil.ToFloat64(members["a"].r.m.namespaces) == before-1 &&
			testutil.ToFloat64(members["b"].r.m.namespaces) == before-1
	})
	_, err = kc.Client.CoreV1().Namespaces().Get(ctx, nsC, metav1.GetOptions{})
	require.Error(t, err, "namespace %s is gone", nsC)
}
