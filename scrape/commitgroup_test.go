package scrape

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/actors"
)

// TestCommitGroupsJoinScrapes: scrapes of several targets that commit
// within the linger reach consume as one batch, which decodes to every
// target's points; every Commit returns only after that batch was
// consumed, and each sees its outcome.
func TestCommitGroupsJoinScrapes(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry(), "prometheus")
	require.NoError(t, err)
	var (
		mu   sync.Mutex
		got  []actors.Batch
		fail error
	)
	consume := func(_ context.Context, b actors.Batch, _ []actors.KV) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, b)
		return fail
	}
	a := newAppendable(consume, newSharder(ShardNone, Sharding{}, nil, m, nil), m, nil, time.Second, nil)
	a.groups.linger, a.groups.maxPoints = time.Hour, 4 // sent by size only, never by the clock

	scrape := func(target, v int) error {
		app := a.AppenderV2(context.Background())
		ls := labels.FromStrings("__name__", "temp", "job", "node", "instance", fmt.Sprintf("10.0.0.%d:9100", target))
		if _, err := app.Append(0, ls, 0, 1_700_000_000_000, float64(v), nil, nil, storage.AOptions{
			MetricFamilyName: "temp", Metadata: metadata.Metadata{Type: model.MetricTypeGauge}}); err != nil {
			return err
		}
		return app.Commit()
	}
	run := func(targets int) []error {
		errs := make([]error, targets)
		var wg sync.WaitGroup
		for i := range targets {
			wg.Go(func() { errs[i] = scrape(i+1, i) })
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Commit did not return once the group reached maxPoints")
		}
		return errs
	}

	for _, err := range run(4) {
		require.NoError(t, err)
	}
	require.Len(t, got, 1, "four scrapes, one batch")
	b := got[0]
	require.Equal(t, 4, b.Items())
	require.NoError(t, b.Decode())
	require.Equal(t, 4, b.Metrics.DataPointCount())
	instances := map[string]bool{}
	rms := b.Metrics.ResourceMetrics()
	for i := range rms.Len() {
		inst, ok := rms.At(i).Resource().Attributes().Get("service.instance.id")
		require.True(t, ok)
		instances[inst.Str()] = true
	}
	require.Len(t, instances, 4, "every target's resource is in the joined batch")

	// A refused batch is every member's outcome (counted as dropped,
	// not an error for Prometheus, as for a single scrape).
	fail = actors.ErrRefused
	for _, err := range run(4) {
		require.NoError(t, err)
	}
	fail = errors.New("disk gone")
	for _, err := range run(4) {
		require.ErrorContains(t, err, "disk gone")
	}
	require.Len(t, got, 3)
}

// TestCommitGroupsLinger: a lone scrape is sent when its linger is over;
// with no linger (the zero value) every scrape is sent on its own.
func TestCommitGroupsLinger(t *testing.T) {
	var sent []int
	c := commitGroups{linger: 10 * time.Millisecond, maxPoints: 1000}
	c.send = func(g *commitGroup) { sent = append(sent, g.points) }
	g := c.add(func(b []byte) []byte { return append(b, 1) }, 3, time.Second)
	require.NoError(t, g.wait())
	require.Equal(t, []int{3}, sent)

	var zero commitGroups
	zero.send = func(g *commitGroup) { sent = append(sent, g.points) }
	for range 2 {
		require.NoError(t, zero.add(func(b []byte) []byte { return append(b, 1) }, 2, time.Second).wait())
	}
	require.Equal(t, []int{3, 2, 2}, sent)
}
