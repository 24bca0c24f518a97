package wal

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	appendedRecords *prometheus.CounterVec
	appendedBytes   *prometheus.CounterVec
	refused         *prometheus.CounterVec
	corrupted       *prometheus.CounterVec
	commits         prometheus.Counter
	commitFailures  prometheus.Counter
	commitBatches   prometheus.Histogram
	commitSeconds   prometheus.Histogram
	healthy         prometheus.Gauge
}

func newMetrics(db *DB, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appendedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_wal_appended_records_total", Help: "Records appended to a WAL queue (committed).",
		}, []string{"queue"}),
		appendedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_wal_appended_bytes_total", Help: "Stored bytes (raw or s2-compressed) appended to a WAL queue (committed).",
		}, []string{"queue"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_wal_refused_total", Help: "Items refused by Append, by reason.",
		}, []string{"queue", "reason"}),
		corrupted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_wal_corrupted_entries_total", Help: "Entries found corrupted on read and moved to the dead-letter area.",
		}, []string{"queue"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "obs_wal_commits_total", Help: "Successful WAL commits (each one fsync).",
		}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "obs_wal_commit_failures_total", Help: "Failed WAL commits.",
		}),
		commitBatches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "obs_wal_commit_batches", Help: "Appends group-committed per commit.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 32, 64},
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "obs_wal_commit_seconds", Help: "Latency of one WAL commit including fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "obs_wal_healthy", Help: "1 while commits succeed; 0 after a commit or sync failure.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.appendedRecords, m.appendedBytes, m.refused, m.corrupted, m.commits,
		m.commitFailures, m.commitBatches, m.commitSeconds, m.healthy, newStateCollector(db),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register wal metrics: %w", err)
		}
	}
	return m, nil
}

// initQueue creates a queue's series at zero so rates work from the start.
func (m *metrics) initQueue(name string) {
	m.appendedRecords.WithLabelValues(name)
	m.appendedBytes.WithLabelValues(name)
	m.refused.WithLabelValues(name, "full")
	m.corrupted.WithLabelValues(name)
}

// stateCollector reads gauges from the queues' state at scrape time.
type stateCollector struct {
	db                                                 *DB
	entries, bytes, oldest, dead, disk, capacity, used *prometheus.Desc
	otelQueueSize                                      *prometheus.Desc
}

func newStateCollector(db *DB) *stateCollector {
	q := []string{"queue"}
	return &stateCollector{
		db:            db,
		entries:       prometheus.NewDesc("obs_wal_entries", "Entries in a WAL queue not yet done.", q, nil),
		bytes:         prometheus.NewDesc("obs_wal_bytes", "Stored bytes (raw or s2-compressed) of a WAL queue not yet done.", q, nil),
		oldest:        prometheus.NewDesc("obs_wal_oldest_entry_age_seconds", "Age of the oldest entry not yet done.", q, nil),
		dead:          prometheus.NewDesc("obs_wal_dead_entries", "Entries in a queue's dead-letter area.", q, nil),
		disk:          prometheus.NewDesc("obs_wal_disk_bytes", "Disk space used by badger, by kind of file.", []string{"kind"}, nil),
		capacity:      prometheus.NewDesc("obs_wal_capacity_bytes", "Cap on stored bytes (queues plus dead letters).", nil, nil),
		used:          prometheus.NewDesc("obs_wal_used_bytes", "Stored bytes counted against the cap.", nil, nil),
		otelQueueSize: prometheus.NewDesc("otelcol_exporter_queue_size", "Current size of the retry queue (in batches).", []string{"exporter"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.bytes, c.oldest, c.dead, c.disk, c.capacity, c.used, c.otelQueueSize} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, q := range c.db.Queues() {
		s := q.Stats()
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries), q.name)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes), q.name)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, s.OldestAge.Seconds(), q.name)
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(s.DeadEntries), q.name)
		ch <- prometheus.MustNewConstMetric(c.otelQueueSize, prometheus.GaugeValue, float64(s.Entries), q.name)
	}
	u := diskUsage(c.db.cfg.Dir)
	ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(u.lsm), "lsm")
	ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(u.vlog), "vlog")
	ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(u.segments), "segments")
	ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(u.other), "other")
	ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(c.db.cfg.MaxBytes))
	ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(c.db.used.Load()))
}

// disk is the allocated space of the WAL's files by kind.
type disk struct{ lsm, vlog, segments, other int64 }

// diskUsage sums the allocated blocks of the WAL's files (value-log files
// are preallocated sparse, so apparent sizes overstate them).
func diskUsage(dir string) disk {
	var u disk
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		n := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n = st.Blocks * 512
		}
		switch {
		case strings.HasSuffix(path, ".sst"):
			u.lsm += n
		case strings.HasSuffix(path, ".vlog"):
			u.vlog += n
		case strings.HasSuffix(path, segSuffix):
			u.segments += n
		default:
			u.other += n
		}
		return nil
	})
	return u
}

// DiskBytes returns the disk space the WAL's files take.
func (db *DB) DiskBytes() int64 {
	u := diskUsage(db.cfg.Dir)
	return u.lsm + u.vlog + u.segments + u.other
}
