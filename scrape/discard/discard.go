// Package discard is a Prometheus storage that keeps nothing: Prometheus'
// scrape loop run against it costs what the loop itself costs (HTTP,
// parser, its series cache). The scrape benchmarks use it as the floor
// under obs' receiver.
package discard

import (
	"context"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// Appendable hands out stable refs, as a real storage does, so
// Prometheus' series cache works as it does under obs.
type Appendable struct{}

// AppenderV2 implements storage.AppendableV2.
func (Appendable) AppenderV2(context.Context) storage.AppenderV2 { return appender{} }

type appender struct{}

func (appender) Append(ref storage.SeriesRef, ls labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram,
	_ *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if ref != 0 {
		return ref, nil
	}
	return storage.SeriesRef(ls.Hash() | 1), nil
}
func (appender) Commit() error   { return nil }
func (appender) Rollback() error { return nil }
