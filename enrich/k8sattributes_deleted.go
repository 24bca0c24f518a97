package enrich

import (
	"context"
	"slices"
	"sync"
	"time"
)

// deletedPods keeps pods the API server deleted for pod_delete_grace_period,
// as the Collector does: a pod's last logs are often flushed after it died
// (by its node's agent, or by the pod's own exporter on the way out), and
// they still deserve its attributes. A live pod always wins over a deleted
// one with the same IP or name.
type deletedPods struct {
	grace time.Duration // 0: forget deleted pods at once

	mu    sync.RWMutex
	byID  map[string][]*deletedPod // podID.String() → deletions, oldest first
	queue []*deletedPod            // in deletion order, for expiry
}

type deletedPod struct {
	p  *cachedPod
	at time.Time
}

func newDeletedPods(grace time.Duration) *deletedPods {
	return &deletedPods{grace: max(grace, 0), byID: map[string][]*deletedPod{}}
}

// ids are the lookups that find p: its IPs (unless host network), its UID
// and its namespace/name.
func (p *cachedPod) ids() []string {
	out := make([]string, 0, len(p.IPs)+2)
	if !p.HostNetwork {
		for _, ip := range p.IPs {
			out = append(out, podID{kind: 'i', value: ip}.String())
		}
	}
	if p.UID != "" {
		out = append(out, podID{kind: 'u', value: string(p.UID)}.String())
	}
	return append(out, podID{kind: 'n', value: p.key()}.String())
}

// add records p as deleted at now.
func (d *deletedPods) add(p *cachedPod, now time.Time) {
	if d.grace <= 0 {
		return
	}
	e := &deletedPod{p: p, at: now}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range p.ids() {
		d.byID[id] = append(d.byID[id], e)
	}
	d.queue = append(d.queue, e)
}

// find returns the most recently deleted pod for id still within the
// grace period at now, or nil.
func (d *deletedPods) find(id podID, now time.Time) *cachedPod {
	if d.grace <= 0 {
		return nil
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	es := d.byID[id.String()]
	for i := len(es) - 1; i >= 0; i-- {
		if now.Sub(es[i].at) < d.grace {
			return es[i].p
		}
	}
	return nil
}

// expire forgets the pods deleted a grace period or more before now.
func (d *deletedPods) expire(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for n < len(d.queue) && now.Sub(d.queue[n].at) >= d.grace {
		e := d.queue[n]
		for _, id := range e.p.ids() {
			es := slices.DeleteFunc(d.byID[id], func(o *deletedPod) bool { return o == e })
			if len(es) == 0 {
				delete(d.byID, id)
			} else {
				d.byID[id] = es
			}
		}
		d.queue[n] = nil
		n++
	}
	d.queue = d.queue[n:]
}

func (d *deletedPods) len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.queue)
}

// run expires deleted pods until ctx ends. find already ignores expired
// ones; this only frees their memory, so a coarse tick is enough.
func (d *deletedPods) run(ctx context.Context) {
	if d.grace <= 0 {
		return
	}
	t := time.NewTicker(min(max(d.grace/2, 100*time.Millisecond), 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.expire(now)
		}
	}
}
