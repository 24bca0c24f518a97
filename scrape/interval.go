package scrape

import (
	"context"
	"time"
)

// everyInterval calls collect once after initialDelay and then every
// interval until ctx ends: the loop of the receivers that poll on their
// own (hostmetrics, kubeletstats), whose collection_interval and
// initial_delay mean what they mean in the Collector.
func everyInterval(ctx context.Context, initialDelay, interval time.Duration, collect func(context.Context)) {
	if initialDelay > 0 {
		t := time.NewTimer(initialDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		collect(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
