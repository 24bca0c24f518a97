package roles

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The status page shows rates, not only totals: counters are sampled every
// rateEvery (and on each page view), and a rate is the increase between the
// oldest and the newest sample within rateWindow, per second.
const (
	rateEvery  = 2 * time.Second
	rateWindow = 10 * time.Second
	// rateMinSpan is the shortest span a rate is computed over; a page
	// viewed right after another would otherwise divide by almost nothing.
	rateMinSpan = 500 * time.Millisecond
)

// Counter families the page turns into rates, by the label that names the
// component.
const (
	rateAppended = "wal"      // obs_wal_appended_records_total{queue}
	rateSent     = "sent"     // otelcol_exporter_sent_items_total{exporter}
	rateFailed   = "failed"   // otelcol_exporter_send_failed_items_total{exporter}
	rateAccepted = "accepted" // otelcol_receiver_accepted_<items>{receiver}, + "/" + signal
)

func rateKey(kind, component string) string { return kind + "\x00" + component }

// rateFamily names the rate kind, component label and (for receivers)
// signal of a metric family; ok is false for families not shown as rates.
func rateFamily(name string) (kind, label, signal string, ok bool) {
	switch name {
	case "obs_wal_appended_records_total":
		return rateAppended, "queue", "", true
	case "otelcol_exporter_sent_items_total":
		return rateSent, "exporter", "", true
	case "otelcol_exporter_send_failed_items_total":
		return rateFailed, "exporter", "", true
	case "otelcol_receiver_accepted_log_records":
		return rateAccepted, "receiver", "logs", true
	case "otelcol_receiver_accepted_metric_points":
		return rateAccepted, "receiver", "metrics", true
	case "otelcol_receiver_accepted_spans":
		return rateAccepted, "receiver", "traces", true
	}
	return "", "", "", false
}

// rateCounters reads the counters the status page shows as rates, summed
// by component (and by signal for receivers).
func (rt *runtime) rateCounters() (map[string]float64, error) {
	mfs, err := rt.reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather counters for rates: %w", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		kind, by, signal, ok := rateFamily(mf.GetName())
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			c := label(m, by)
			if signal != "" {
				c += "/" + signal
			}
			out[rateKey(kind, c)] += m.GetCounter().GetValue()
		}
	}
	return out, nil
}

type rateSample struct {
	at     time.Time
	values map[string]float64
}

// rates keeps recent samples of a set of counters.
type rates struct {
	read func() (map[string]float64, error)

	mu      sync.Mutex
	samples []rateSample // oldest first, all within rateWindow of the newest
}

func newRates(read func() (map[string]float64, error)) *rates {
	return &rates{read: read}
}

// run samples every rateEvery until ctx ends, so the first page view
// already has a rate.
func (r *rates) run(ctx context.Context) {
	t := time.NewTicker(rateEvery)
	defer t.Stop()
	r.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.sample(now)
		}
	}
}

// sample reads the counters now; samples closer than rateMinSpan to the
// newest one are not kept (a burst of page views adds nothing).
func (r *rates) sample(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.samples); n > 0 && now.Sub(r.samples[n-1].at) < rateMinSpan {
		return
	}
	v, err := r.read()
	if err != nil {
		return // the page shows "-" for what it cannot rate
	}
	r.samples = append(r.samples, rateSample{at: now, values: v})
	drop := 0
	for drop < len(r.samples)-2 && now.Sub(r.samples[drop+1].at) >= rateWindow {
		drop++
	}
	r.samples = append(r.samples[:0], r.samples[drop:]...)
}

// perSecond is the rate of every counter between the oldest and the newest
// sample; nil while there is no span of at least rateMinSpan.
func (r *rates) perSecond() ratesView {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.samples)
	if n < 2 {
		return nil
	}
	first, last := r.samples[0], r.samples[n-1]
	span := last.at.Sub(first.at).Seconds()
	if span < rateMinSpan.Seconds() {
		return nil
	}
	out := ratesView{}
	for k, v := range last.values {
		// A counter that appeared within the window started at zero.
		d := v - first.values[k]
		out[k] = max(d, 0) / span
	}
	return out
}

// ratesView holds per-second rates by rateKey.
type ratesView map[string]float64

// format renders one rate for the page: "-" before there is a span to
// rate over; a counter never created (nothing counted yet) is 0.
func (v ratesView) format(key string) string {
	if v == nil {
		return "-"
	}
	return formatRate(v[key])
}

// pipelineIn is the rate of records the pipeline's receivers accepted for
// its signal ("-" when none of them counts them, e.g. a connector feeds it).
func (v ratesView) pipelineIn(p pipelineInfo) string {
	signal, _, _ := strings.Cut(p.ID, "/")
	sum, found := 0.0, false
	for _, recv := range p.Receivers {
		if r, ok := v[rateKey(rateAccepted, recv+"/"+signal)]; ok {
			sum, found = sum+r, true
		}
	}
	if !found {
		return "-"
	}
	return formatRate(sum)
}

func formatRate(r float64) string {
	switch {
	case r >= 10:
		return fmt.Sprintf("%.0f", r)
	case r > 0:
		return fmt.Sprintf("%.2f", r)
	}
	return "0"
}
