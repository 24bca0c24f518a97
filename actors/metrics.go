package actors

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	system    *System
	processed *prometheus.CounterVec
	restarts  *prometheus.CounterVec
	sendWait  *prometheus.CounterVec
	mailbox   *prometheus.Desc
	capacity  *prometheus.Desc
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_actors_envelopes_processed_total",
			Help: "Envelopes a component's actor has taken from its mailbox.",
		}, []string{"component"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_actors_restarts_total",
			Help: "Times a component panicked and was restarted by its supervisor.",
		}, []string{"component"}),
		sendWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_actors_backpressure_wait_seconds_total",
			Help: "Time senders spent waiting for room in a component's full mailbox.",
		}, []string{"component"}),
		mailbox: prometheus.NewDesc("obs_actors_mailbox_length",
			"Envelopes queued in a component's mailbox.", []string{"component"}, nil),
		capacity: prometheus.NewDesc("obs_actors_mailbox_capacity",
			"The bound on a component's mailbox.", []string{"component"}, nil),
	}
	if reg != nil {
		reg.MustRegister(m.processed, m.restarts, m.sendWait, m)
	}
	return m
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.mailbox
	ch <- m.capacity
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	if m.system == nil {
		return
	}
	for _, r := range m.system.Refs() {
		ch <- prometheus.MustNewConstMetric(m.mailbox, prometheus.GaugeValue, float64(r.Len()), r.name)
		ch <- prometheus.MustNewConstMetric(m.capacity, prometheus.GaugeValue, float64(r.Cap()), r.name)
	}
}
