package logs

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// laggingFiles bounds obs_logs_file_lag_bytes: a node tails hundreds of
// pod logs, and a series per file would churn with every pod. The files
// furthest behind are the ones an operator looks for; the sum and the
// count of files behind cover the rest.
const laggingFiles = 10

// metrics of one filelog receiver, labelled by receiver id: bytes and lines
// read, lag and errors per receiver (one receiver is one group of include
// patterns), and the lag of the few files furthest behind by path.
type metrics struct {
	filesWatched prometheus.Gauge
	bytesRead    prometheus.Counter
	linesRead    prometheus.Counter
	lagBytes     prometheus.Gauge
	filesBehind  prometheus.Gauge
	fileLag      *prometheus.GaugeVec // path; only the laggingFiles most behind
	rotations    prometheus.Counter
	truncations  prometheus.Counter
	parseErrors  *prometheus.CounterVec // operator
	linesSplit   prometheus.Counter
	dropped      *prometheus.CounterVec // reason
	refused      *prometheus.CounterVec // reason
	lostBytes    *prometheus.CounterVec // reason
	fileErrors   *prometheus.CounterVec // op
	paused       prometheus.Gauge
	accepted     prometheus.Counter // otelcol_receiver_accepted_log_records
	failed       prometheus.Counter // otelcol_receiver_refused_log_records
}

func newMetrics(id string, reg prometheus.Registerer) (*metrics, error) {
	cl := prometheus.Labels{"receiver": id}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: cl})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: cl})
	}
	m := &metrics{
		filesWatched: g("obs_logs_files_watched", "Files the receiver tracks (open or awaiting rediscovery)."),
		bytesRead:    c("obs_logs_read_bytes_total", "Bytes read from files and committed to the WAL."),
		linesRead:    c("obs_logs_read_lines_total", "Log records committed to the WAL."),
		lagBytes:     g("obs_logs_lag_bytes", "Bytes behind the end of the watched files, summed."),
		filesBehind:  g("obs_logs_files_behind", "Watched files with bytes not yet read and committed."),
		fileLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "obs_logs_file_lag_bytes",
			Help:        fmt.Sprintf("Bytes behind the end of a file, for the %d files furthest behind (a file caught up loses its series).", laggingFiles),
			ConstLabels: cl}, []string{"path"}),
		rotations:   c("obs_logs_rotations_total", "Files found renamed (rotated) or gone while open."),
		truncations: c("obs_logs_truncations_total", "Files found truncated in place (copytruncate); read again from the start."),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "obs_logs_parse_errors_total",
			Help: "Records an operator failed to parse or edit.", ConstLabels: cl}, []string{"operator"}),
		linesSplit: c("obs_logs_lines_split_total", "Lines longer than max_log_size, split into several records."),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "obs_logs_dropped_records_total",
			Help: "Records dropped on purpose (on_error: drop).", ConstLabels: cl}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "obs_logs_refused_batches_total",
			Help: "Batches the pipeline refused or failed to store; the lines are read again later.", ConstLabels: cl}, []string{"reason"}),
		lostBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "obs_logs_lost_bytes_total",
			Help: "Bytes gone before they were read (a file truncated in place while behind, with no copy found).", ConstLabels: cl}, []string{"reason"}),
		fileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "obs_logs_file_errors_total",
			Help: "Files that could not be opened, examined or read (retried every poll).", ConstLabels: cl}, []string{"op"}),
		paused: g("obs_logs_reading_paused", "1 while reading is paused because the pipeline refused (WAL full, memory limit)."),
	}
	// The Collector's receiver counters, shaped as export/ registers them
	// (same help and labels), so both share the series on one registry.
	accepted := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "otelcol_receiver_accepted_log_records",
		Help: "Number of logs items successfully pushed into the pipeline."}, []string{"receiver", "transport"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "otelcol_receiver_refused_log_records",
		Help: "Number of logs items that could not be pushed into the pipeline."}, []string{"receiver", "transport"})
	if reg != nil {
		var err error
		if accepted, err = register(reg, accepted); err != nil {
			return nil, err
		}
		if failed, err = register(reg, failed); err != nil {
			return nil, err
		}
		for _, p := range []*prometheus.Gauge{&m.filesWatched, &m.lagBytes, &m.filesBehind, &m.paused} {
			if *p, err = register(reg, *p); err != nil {
				return nil, err
			}
		}
		for _, p := range []*prometheus.Counter{&m.bytesRead, &m.linesRead, &m.rotations, &m.truncations, &m.linesSplit} {
			if *p, err = register(reg, *p); err != nil {
				return nil, err
			}
		}
		for _, p := range []**prometheus.CounterVec{&m.parseErrors, &m.dropped, &m.refused, &m.lostBytes, &m.fileErrors} {
			if *p, err = register(reg, *p); err != nil {
				return nil, err
			}
		}
		if m.fileLag, err = register(reg, m.fileLag); err != nil {
			return nil, err
		}
	}
	m.accepted = accepted.WithLabelValues(id, "")
	m.failed = failed.WithLabelValues(id, "")
	return m, nil
}

// register registers c, or returns the identical collector registered
// before (a receiver rebuilt on the same registry, or another component
// sharing the Collector's metric names).
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register metric: %w", err)
	}
	return c, nil
}
