package cluster

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Node's own numbers. memberlist reports to the global
// go-metrics sink, which obs does not use: these are counted in the
// delegates and the log adapter instead.
type metrics struct {
	members       *prometheus.GaugeVec   // role, state
	ownedKeys     *prometheus.GaugeVec   // kind
	leader        *prometheus.GaugeVec   // duty
	gossipMsgs    *prometheus.CounterVec // direction
	gossipBytes   *prometheus.CounterVec // direction
	pushPull      *prometheus.CounterVec // direction
	probeFailures prometheus.Counter
	probeRTT      prometheus.Histogram
	refused       *prometheus.CounterVec // reason
	joins         *prometheus.CounterVec // result
	changes       *prometheus.CounterVec // event
	stateEntries  prometheus.Gauge
	stateDropped  *prometheus.CounterVec // reason
	stateBytes    prometheus.Gauge
	tombstones    prometheus.Gauge
	stateRefused  *prometheus.CounterVec // reason
	health        prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, health func() float64) (*metrics, error) {
	m := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obs_cluster_members",
			Help: "Members known to this node by role and state (alive, leaving, dead, left).",
		}, []string{"role", "state"}),
		ownedKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obs_cluster_owned_keys",
			Help: "Keys of each kind this member owns, as reported by their users.",
		}, []string{"kind"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obs_cluster_leader",
			Help: "1 if this member leads the duty, else 0.",
		}, []string{"duty"}),
		gossipMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_cluster_gossip_messages_total",
			Help: "Cluster state gossip messages sent and received.",
		}, []string{"direction"}),
		gossipBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_cluster_gossip_bytes_total",
			Help: "Bytes of cluster state gossip messages sent and received.",
		}, []string{"direction"}),
		pushPull: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_cluster_push_pull_syncs_total",
			Help: "Full state push/pull exchanges: state sent and state merged.",
		}, []string{"direction"}),
		probeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "obs_cluster_probe_failures_total",
			Help: "Probes of a member that got no ack, direct or indirect (the member became suspect).",
		}),
		probeRTT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "obs_cluster_probe_rtt_seconds",
			Help:    "Round trip time of successful probes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_cluster_refused_total",
			Help: "Members or gossip refused, by reason (cluster_name, key, metadata).",
		}, []string{"reason"}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_cluster_join_attempts_total",
			Help: "Join attempts by result (ok, error).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_cluster_membership_changes_total",
			Help: "Membership events by kind (join, update, leave).",
		}, []string{"event"}),
		stateEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "obs_cluster_state_entries",
			Help: "Entries in the cluster-wide state.",
		}),
		stateDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_cluster_state_dropped_total",
			Help: "Cluster state entries from others that were not applied, by reason (invalid, full).",
		}, []string{"reason"}),
		stateBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "obs_cluster_state_bytes",
			Help: "Encoded size of the cluster-wide state (entries and tombstones), as sent in each push/pull.",
		}),
		tombstones: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "obs_cluster_state_tombstones",
			Help: "Deleted cluster state keys whose tombstones are still kept and gossiped.",
		}),
		stateRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_cluster_state_writes_refused_total",
			Help: "Local writes to the cluster state that were refused, by reason (full, invalid).",
		}, []string{"reason"}),
		health: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "obs_cluster_health_score",
			Help: "memberlist awareness score: 0 is healthy, higher means this member misses probes itself.",
		}, health),
	}
	for _, d := range []string{"sent", "received"} {
		m.gossipMsgs.WithLabelValues(d)
		m.gossipBytes.WithLabelValues(d)
		m.pushPull.WithLabelValues(d)
	}
	for _, r := range []string{"cluster_name", "key", "metadata"} {
		m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"full", "invalid"} {
		m.stateRefused.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.members, m.ownedKeys, m.leader, m.gossipMsgs, m.gossipBytes, m.pushPull,
		m.probeFailures, m.probeRTT, m.refused, m.joins, m.changes, m.stateEntries,
		m.stateDropped, m.stateBytes, m.tombstones, m.stateRefused, m.health,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register cluster metrics: %w", err)
		}
	}
	return m, nil
}
