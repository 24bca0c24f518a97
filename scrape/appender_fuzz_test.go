package scrape

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/actors"
)

// labelsT keeps test helpers short.
type labelsT = labels.Labels

// FuzzAppender feeds random exposition text through Prometheus' parsers
// into obs' appender the way the scrape loop does (metadata first, then
// samples), and checks the batch decodes as OTLP and its point count matches.
func FuzzAppender(f *testing.F) {
	for _, seed := range []string{textFixture, omFixture, "a 1\n", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3\n",
		"# TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum 1\ns_count 1\n", "# TYPE c counter\nc_total -1\nc_total 5 100\n", "x{a=\"\\\"\"} +Inf\n"} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	m, err := newMetrics(prometheus.NewRegistry(), "prometheus")
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, text string, om bool) {
		ct := "text/plain; version=0.0.4"
		if om {
			ct = "application/openmetrics-text; version=1.0.0"
		}
		var got []actors.Batch
		consume := func(_ context.Context, b actors.Batch, _ []actors.KV) error {
			got = append(got, b)
			return nil
		}
		a := newAppendable(consume, newSharder(ShardNone, Sharding{}, nil, m, nil), m, nil, time.Second, nil)
		for round := 0; round < 2; round++ {
			p, err := textparse.New([]byte(text), ct, labels.NewSymbolTable(), textparse.ParserOptions{})
			if err != nil || p == nil {
				return
			}
			app := a.AppenderV2(context.Background())
			appended := feed(p, app)
			require.NoError(t, app.Commit())
			if appended == 0 {
				continue
			}
			require.NotEmpty(t, got)
			b := got[len(got)-1]
			require.Equal(t, actors.SignalMetrics, b.Signal)
			items := b.Items()
			require.Positive(t, items)
			require.LessOrEqual(t, items, appended, "a histogram or summary folds several samples into one point")
			require.NoError(t, b.Decode(), "the appender's OTLP encoding must be valid protobuf")
			require.Equal(t, items, b.Metrics.DataPointCount(), "the batch's item count is its data points")
		}
	})
}

// feed appends every sample of p with its family's metadata, as the
// scrape loop does (without start timestamps: see ParseST), and returns the number appended
// that are data points (an OpenMetrics _created sample is a start time). The fuzzed parser
// stops at the first error, like a scrape.
func feed(p textparse.Parser, app storage.AppenderV2) int {
	var (
		family string
		md     metadata.Metadata
		n      int
		ls     labels.Labels
	)
	now := time.Now().UnixMilli()
	for {
		et, err := p.Next()
		if err != nil {
			return n
		}
		switch et {
		case textparse.EntryType:
			name, typ := p.Type()
			if string(name) != family {
				md = metadata.Metadata{}
			}
			family, md.Type = string(name), typ
			continue
		case textparse.EntryHelp:
			name, help := p.Help()
			if string(name) != family {
				md = metadata.Metadata{}
			}
			family, md.Help = string(name), string(help)
			continue
		case textparse.EntryUnit:
			name, unit := p.Unit()
			if string(name) != family {
				md = metadata.Metadata{}
			}
			family, md.Unit = string(name), string(unit)
			continue
		case textparse.EntryComment, textparse.EntryInvalid:
			continue
		}
		var (
			v  float64
			h  *histogram.Histogram
			fh *histogram.FloatHistogram
			ts *int64
		)
		if et == textparse.EntryHistogram {
			_, ts, h, fh = p.Histogram()
		} else {
			_, ts, v = p.Series()
		}
		t := now
		if ts != nil {
			t = *ts
		}
		p.Labels(&ls)
		if !ls.Has(labels.MetricName) {
			continue
		}
		if _, err := app.Append(0, ls, 0, t, v, h, fh, storage.AOptions{MetricFamilyName: family, Metadata: md}); err != nil {
			return n
		}
		if !isCreatedSeries(ls.Get(labels.MetricName), family, md.Type) { // a start time, not a point
			n++
		}
	}
}
