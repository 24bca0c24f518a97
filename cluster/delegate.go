package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's callbacks. They run on memberlist's
// packet and timer goroutines, often under its node lock: they never block
// and never call back into memberlist, and copy any byte slice they keep.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.AliveDelegate = (*delegate)(nil)
	_ memberlist.MergeDelegate = (*delegate)(nil)
	_ memberlist.PingDelegate  = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	if len(d.n.metaBuf) > limit {
		return nil
	}
	return append([]byte(nil), d.n.metaBuf...)
}

func (d *delegate) NotifyMsg(b []byte) {
	d.n.metrics.gossipMsgs.WithLabelValues("received").Inc()
	d.n.metrics.gossipBytes.WithLabelValues("received").Add(float64(len(b)))
	if len(b) > 0 && b[0] == msgLeaving {
		name, start, err := decodeLeaving(b)
		if err != nil {
			d.n.log.Debug("drop leaving message", "err", err)
			return
		}
		d.n.markLeaving(name, start)
		return
	}
	entries, err := decodeState(b)
	if err != nil {
		d.n.metrics.stateDropped.WithLabelValues("invalid").Inc()
		d.n.log.Debug("drop cluster state message", "err", err)
		return
	}
	for _, e := range entries {
		if d.apply(e) {
			// Spread what is new to us further (epidemic), so a write
			// reaches everyone even if the writer dies right away.
			d.n.bq.QueueBroadcast(&stateBroadcast{key: e.key, msg: encodeEntryMsg(e)})
		}
	}
}

func (d *delegate) apply(e entry) bool {
	switch d.n.store.merge(e) {
	case mergeApplied:
		d.n.stateChanged()
		return true
	case mergeFull:
		d.n.metrics.stateDropped.WithLabelValues("full").Inc()
	}
	return false
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	msgs := d.n.bq.GetBroadcasts(overhead, limit)
	if len(msgs) > 0 {
		size := 0
		for _, m := range msgs {
			size += len(m)
		}
		d.n.metrics.gossipMsgs.WithLabelValues("sent").Add(float64(len(msgs)))
		d.n.metrics.gossipBytes.WithLabelValues("sent").Add(float64(size))
	}
	return msgs
}

func (d *delegate) LocalState(join bool) []byte {
	d.n.metrics.pushPull.WithLabelValues("sent").Inc()
	// Each push/pull is also when tombstones that have had their time
	// to spread are dropped.
	if d.n.store.gc() > 0 {
		d.n.stateChanged()
	}
	return d.n.store.digest()
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	d.n.metrics.pushPull.WithLabelValues("received").Inc()
	entries, err := decodeState(buf)
	if err != nil {
		d.n.metrics.stateDropped.WithLabelValues("invalid").Inc()
		d.n.log.Debug("drop cluster state from push/pull", "err", err)
		return
	}
	for _, e := range entries {
		d.apply(e)
	}
}

func (d *delegate) NotifyJoin(mn *memberlist.Node)   { d.n.observe(mn, "join") }
func (d *delegate) NotifyUpdate(mn *memberlist.Node) { d.n.observe(mn, "update") }
func (d *delegate) NotifyLeave(mn *memberlist.Node)  { d.n.observe(mn, "leave") }

// check refuses members of another cluster or with unreadable metadata.
func (d *delegate) check(mn *memberlist.Node) error {
	meta, err := decodeMeta(mn.Meta)
	if err != nil {
		d.n.metrics.refused.WithLabelValues("metadata").Inc()
		if d.n.limit.allow("meta/" + mn.Name) {
			d.n.log.Warn("refusing member "+mn.Name+": unreadable metadata", "member", mn.Name, "err", err)
		}
		return fmt.Errorf("refuse member %s: %w", mn.Name, err)
	}
	if meta.Cluster != d.n.cfg.ClusterName {
		d.n.metrics.refused.WithLabelValues("cluster_name").Inc()
		if d.n.limit.allow("cluster/" + mn.Name) {
			d.n.log.Warn(fmt.Sprintf("refusing member %s: cluster name %q, want %q", mn.Name, meta.Cluster, d.n.cfg.ClusterName),
				"member", mn.Name, "address", mn.Address())
		}
		return fmt.Errorf("refuse member %s: cluster name %q, want %q", mn.Name, meta.Cluster, d.n.cfg.ClusterName)
	}
	return nil
}

func (d *delegate) NotifyAlive(mn *memberlist.Node) error { return d.check(mn) }

func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.check(p); err != nil {
			return err
		}
	}
	return nil
}

func (d *delegate) AckPayload() []byte { return nil }

func (d *delegate) NotifyPingComplete(_ *memberlist.Node, rtt time.Duration, _ []byte) {
	d.n.metrics.probeRTT.Observe(rtt.Seconds())
}
