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
//
// Each scrape is encoded into a pooled buffer of its own, outside the
// lock, and the group joins them once, into one buffer of exactly their
// size, when it is sent. Appending the scrapes to one growing buffer
// instead allocated 3.5 times their size (Go grows large slices by a
// quarter at a time), and that garbage was most of what made obs' GC run
// in the scrape benchmark.
type commitGroups struct {
	linger    time.Duration
	maxPoints int
	send      func(g *commitGroup) // consumes g.raw and sets g.err
	bufs      sync.Pool            // *[]byte: one scrape's encoded request

	mu  sync.Mutex
	cur *commitGroup // open for more scrapes; nil when none is
}

// commitGroup is one batch of scrapes.
type commitGroup struct {
	parts    []*[]byte // the scrapes' encoded requests, pooled buffers
	size     int
	points   int
	deadline time.Duration // the shortest of its scrapes' (their interval)
	timer    *time.Timer

	// raw is set when the group is sent: the signal byte, then the
	// parts one after the other (actors.RawFramedBatch; concatenated
	// OTLP export requests are one request with the resource_metrics of
	// both).
	raw  []byte
	done chan struct{} // closed once sent; err is then set
	err  error
}

// add encodes one scrape (encode appends its request to the buffer it is
// given) into its group and returns the group; wait on it for the
// outcome.
func (c *commitGroups) add(encode func([]byte) []byte, points int, deadline time.Duration) *commitGroup {
	buf, _ := c.bufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	*buf = encode((*buf)[:0])

	c.mu.Lock()
	g := c.cur
	if g == nil {
		g = &commitGroup{deadline: deadline, done: make(chan struct{})}
	}
	g.parts = append(g.parts, buf)
	g.size += len(*buf)
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

// flush joins and sends g; exactly one caller does, the one that
// detached it.
func (c *commitGroups) flush(g *commitGroup) {
	g.raw = make([]byte, 1, 1+g.size)
	g.raw[0] = byte(actors.SignalMetrics)
	for _, p := range g.parts {
		g.raw = append(g.raw, *p...)
		c.bufs.Put(p)
	}
	g.parts = nil
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
	g.err = a.consume(ctx, actors.RawFramedBatch(actors.SignalMetrics, g.raw, g.points), nil)
}
