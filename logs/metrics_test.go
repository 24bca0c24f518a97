package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// series returns the values of name on reg for one receiver, by the value
// of label (or "" when the metric has no other label).
func series(t *testing.T, reg *prometheus.Registry, name, receiver, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["receiver"] != receiver {
				continue
			}
			out[labels[label]] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

func fileSize(t *testing.T, p string) float64 {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return float64(fi.Size())
}

// TestLagPerFileBoundedAndCountsPerReceiver runs two receivers (two groups
// of include patterns) on one registry: /metrics must name the files
// furthest behind with their lag, at most laggingFiles of them per
// receiver, and count bytes and lines per receiver.
func TestLagPerFileBoundedAndCountsPerReceiver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		reg := prometheus.NewRegistry()
		var refusing atomic.Bool
		refusing.Store(true)
		start := func(id, include string, s *sink) {
			s.refuse = func(int) error {
				if refusing.Load() {
					return errRefusedForTest
				}
				return nil
			}
			r, err := NewFilelogReceiver(id, testConfig(include), s.consume, s.get, nil, reg)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
		}

		// Group "app": 12 files, file i holds i+1 lines, so the sizes differ.
		const n = laggingFiles + 2
		app := make([]string, n)
		var appLines []string
		for i := range n {
			app[i] = filepath.Join(dir, "app", fmt.Sprintf("f%02d.log", i))
			lines := numbered(fmt.Sprintf("app%02d", i), 0, i+1)
			appendFile(t, app[i], lines...)
			appLines = append(appLines, lines...)
		}
		sysPath := filepath.Join(dir, "sys", "kubelet.log")
		sysLines := numbered("sys", 0, 3)
		appendFile(t, sysPath, sysLines...)
		appSink, sysSink := newSink(), newSink()
		start("filelog/app", filepath.Join(dir, "app", "*.log"), appSink)
		start("filelog/sys", filepath.Join(dir, "sys", "*.log"), sysSink)
		time.Sleep(time.Second)

		// Everything is behind; only the laggingFiles largest have a series.
		lag := series(t, reg, "obs_logs_file_lag_bytes", "filelog/app", "path")
		want := map[string]float64{}
		var appSize float64
		for i, p := range app {
			appSize += fileSize(t, p)
			if i >= n-laggingFiles {
				want[p] = fileSize(t, p)
			}
		}
		require.Equal(t, want, lag)
		require.Equal(t, map[string]float64{"": n}, series(t, reg, "obs_logs_files_behind", "filelog/app", ""))
		require.Equal(t, map[string]float64{"": appSize}, series(t, reg, "obs_logs_lag_bytes", "filelog/app", ""))
		require.Equal(t, map[string]float64{sysPath: fileSize(t, sysPath)},
			series(t, reg, "obs_logs_file_lag_bytes", "filelog/sys", "path"))

		// The smallest file falls far behind: it takes the place of the
		// smallest of the ten, whose series goes.
		appendFile(t, app[0], numbered("app00", 1, 200)...)
		appLines = append(appLines, numbered("app00", 1, 200)...)
		time.Sleep(time.Second)
		lag = series(t, reg, "obs_logs_file_lag_bytes", "filelog/app", "path")
		require.Len(t, lag, laggingFiles)
		require.Equal(t, fileSize(t, app[0]), lag[app[0]])
		require.NotContains(t, lag, app[n-laggingFiles])

		// Accepted: every file catches up and loses its series; bytes and
		// lines are counted per receiver.
		refusing.Store(false)
		waitBodies(t, appSink, appLines)
		waitBodies(t, sysSink, sysLines)
		time.Sleep(time.Second)
		for _, id := range []string{"filelog/app", "filelog/sys"} {
			require.Empty(t, series(t, reg, "obs_logs_file_lag_bytes", id, "path"), id)
			require.Equal(t, map[string]float64{"": 0}, series(t, reg, "obs_logs_files_behind", id, ""), id)
			require.Equal(t, map[string]float64{"": 0}, series(t, reg, "obs_logs_lag_bytes", id, ""), id)
		}
		var appTotal float64
		for _, p := range app {
			appTotal += fileSize(t, p)
		}
		require.Equal(t, map[string]float64{"": appTotal}, series(t, reg, "obs_logs_read_bytes_total", "filelog/app", ""))
		require.Equal(t, map[string]float64{"": float64(len(appLines))}, series(t, reg, "obs_logs_read_lines_total", "filelog/app", ""))
		require.Equal(t, map[string]float64{"": fileSize(t, sysPath)}, series(t, reg, "obs_logs_read_bytes_total", "filelog/sys", ""))
		require.Equal(t, map[string]float64{"": float64(len(sysLines))}, series(t, reg, "obs_logs_read_lines_total", "filelog/sys", ""))
	})
}
