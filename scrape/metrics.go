package scrape

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is one receiver's self-telemetry; every series carries the
// receiver id as a constant label (added by the wrapping registerer).
type metrics struct {
	discovered *prometheus.GaugeVec   // job
	owned      *prometheus.GaugeVec   // job
	handoffs   *prometheus.CounterVec // job, direction=in|out
	scraped    *prometheus.CounterVec // job
	appended   *prometheus.CounterVec // job
	dropped    *prometheus.CounterVec // job, reason
	failed     *prometheus.CounterVec // job
	staleDrop  *prometheus.CounterVec // job
	duration   *prometheus.HistogramVec
	accepted   prometheus.Counter // otelcol_receiver_accepted_metric_points
	refused    prometheus.Counter // otelcol_receiver_refused_metric_points
}

// newMetrics registers receiver id's metrics: its own under
// receiver=<id> on reg, the Collector's receiver counters on reg as well
// but shaped as export/ shapes them (see receiverCounters).
func newMetrics(reg prometheus.Registerer, id string) (*metrics, error) {
	accepted, refused, err := receiverCounters(reg, id, "http")
	if err != nil {
		return nil, err
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"receiver": id}, reg)
	m := &metrics{
		accepted: accepted,
		refused:  refused,
		discovered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obs_scrape_targets_discovered", Help: "Targets discovered for the job (after relabelling), cluster-wide.",
		}, []string{"job"}),
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obs_scrape_targets_owned", Help: "Targets of the job this member scrapes.",
		}, []string{"job"}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_scrape_target_handoffs_total", Help: "Targets that moved to (in) or away from (out) this member while still discovered.",
		}, []string{"job", "direction"}),
		scraped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_scrape_samples_scraped_total", Help: "Samples parsed from scrape responses.",
		}, []string{"job"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_scrape_samples_appended_total", Help: "Data points made durable in the pipeline (including up and scrape_* series).",
		}, []string{"job"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_scrape_samples_dropped_total", Help: "Samples not stored, by reason: sample_limit, scrape_error, refused (pipeline full), error.",
		}, []string{"job", "reason"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_scrape_failed_scrapes_total", Help: "Scrapes that reported up=0.",
		}, []string{"job"}),
		staleDrop: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_scrape_handoff_stale_markers_dropped_total", Help: "Staleness markers dropped because their target only moved to another member.",
		}, []string{"job"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "obs_scrape_duration_seconds", Help: "Scrape duration as Prometheus reports it in scrape_duration_seconds.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"job"}),
	}
	for _, c := range []prometheus.Collector{m.discovered, m.owned, m.handoffs, m.scraped, m.appended, m.dropped,
		m.failed, m.staleDrop, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
