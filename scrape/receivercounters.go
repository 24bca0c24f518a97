package scrape

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// receiverCounters returns the Collector's accepted/refused metric-point
// counters of receiver id. They are registered on the unwrapped registry
// exactly as export/ registers its own (same help, labels receiver and
// transport), so every receiver's series share one family.
func receiverCounters(reg prometheus.Registerer, id, transport string) (accepted, refused prometheus.Counter, err error) {
	vec := func(name, help string) (*prometheus.CounterVec, error) {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"receiver", "transport"})
		if reg == nil {
			return v, nil
		}
		if err := reg.Register(v); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					return existing, nil
				}
			}
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
		return v, nil
	}
	a, err := vec("otelcol_receiver_accepted_metric_points", "Number of metrics items successfully pushed into the pipeline.")
	if err != nil {
		return nil, nil, err
	}
	r, err := vec("otelcol_receiver_refused_metric_points", "Number of metrics items that could not be pushed into the pipeline.")
	if err != nil {
		return nil, nil, err
	}
	return a.WithLabelValues(id, transport), r.WithLabelValues(id, transport), nil
}
