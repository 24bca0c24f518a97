package scrape

import (
	"context"
	"sync"
	"time"

	"github.com/obs-dev/obs/actors"
)

// Scrapes of different targets that commit within commitLinger of each
// other go down the pipeline as one batch. Prometheus spreads the targets
// of a job over the interval, so without this every scrape was a WAL
// commit of its own, with two syncs: 40 commits a second in the
// benchmark's 200 targets at 5 s, where the exporters want one batch of
// send_batch_size. A Commit still returns only once its scrape is durable
// (or refused); it waits at most commitLinger longer for that. Nothing is
// lost by waiting: a scrape not yet in the WAL was never acknowledged to
// anyone, and a crash loses it with or without the linger.
const (
	commitLinger = 200 * time.Millisecond
	// commitGroupPoints sends a group at once when it holds this many
	// data points: the Collector's default send_batch_size.
	commitGroupPoints = 8192
)

// commitGroups gathers encoded scrapes into groups. The zero value sends
// every scrape on its own (linger 0), which the appender's unit tests use.
type commitGroups struct {
	linger    time.Duration
	maxPoints int
	send      func(g *commitGroup) // consumes g.raw and sets g.err

	mu  sync.Mutex
	cur *commitGroup // open for more scrapes; nil when none is
}

// commitGroup is one batch of scrapes: their encoded requests one after
// the other (concatenated OTLP export requests are one request with the
// resource_metrics of both).
type commitGroup struct {
	raw      []byte
	points   int
	deadline time.Duration // the shortest of its scrapes' (their interval)
	timer    *time.Timer
	done     chan struct{} // closed once sent; err is then set
	err      error
}

// add appends one scrape, encoded by encode onto the group's buffer, and
// returns its group; wait on it for the outcome.
func (c *commitGroups) add(encode func([]byte) []byte, points int, deadline time.Duration) *commitGroup {
	c.mu.Lock()
	g := c.cur
	if g == nil {
		g = &commitGroup{deadline: deadline, done: make(chan struct{})}
	}
	g.raw = encode(g.raw)
	g.points += points
	g.deadline = min(g.deadline, deadline)
	if c.linger <= 0 || g.points >= c.maxPoints {
		if c.cur == g {
			c.cur = nil
			g.timer.Stop() // its func would find g detached anyway
		}
		c.mu.Unlock()
		c.flush(g)
		return g
	}
	if c.cur == nil {
		c.cur = g
		g.timer = time.AfterFunc(c.linger, func() { c.expire(g) })
	}
	c.mu.Unlock()
	return g
}

// expire sends g when its linger is over, unless it was sent already.
func (c *commitGroups) expire(g *commitGroup) {
	c.mu.Lock()
	if c.cur != g {
		c.mu.Unlock()
		return
	}
	c.cur = nil
	c.mu.Unlock()
	c.flush(g)
}

// flush sends g; exactly one caller does, the one that detached it.
func (c *commitGroups) flush(g *commitGroup) {
	c.send(g)
	close(g.done)
}

// wait returns the group's outcome once it was sent.
func (g *commitGroup) wait() error {
	<-g.done
	return g.err
}

// sendGroup is the appendable's commitGroups.send: one batch of the
// group's points, bounded by the shortest scrape interval in it.
func (a *appendable) sendGroup(g *commitGroup) {
	ctx, cancel := context.WithTimeout(*a.ctx.Load(), g.deadline)
	defer cancel()
	g.err = a.consume(ctx, actors.RawBatch(actors.SignalMetrics, g.raw, g.points), nil)
}
