package scrape

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/obs-dev/obs/actors"
)

// scopeName is the instrumentation scope of every scraped metric.
const scopeName = "github.com/obs-dev/obs/scrape"

// appendable is Prometheus' storage for obs: each scrape is one
// transaction that becomes one pdata batch on Commit.
type appendable struct {
	consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error
	shard   *sharder
	metrics *metrics
	scfgs   map[string]*promconfig.ScrapeConfig
	log     *slog.Logger
	series  seriesTable
	// seriesTTL is how long a series not appended is remembered.
	seriesTTL time.Duration
	lastSweep atomic.Int64 // unix ms

	ctx atomic.Pointer[context.Context] // the receiver's run context

	rbMu      sync.Mutex
	rollbacks map[*promscrape.Target]string // reason of a target's last rolled-back scrape
}

func newAppendable(consume func(context.Context, actors.Batch, []actors.KV) error, shard *sharder, m *metrics,
	scfgs map[string]*promconfig.ScrapeConfig, maxInterval time.Duration, log *slog.Logger) *appendable {
	ttl := max(10*time.Minute, 4*maxInterval)
	a := &appendable{consume: consume, shard: shard, metrics: m, scfgs: scfgs, log: log, seriesTTL: ttl,
		rollbacks: map[*promscrape.Target]string{}}
	a.series.init()
	bg := context.Background()
	a.ctx.Store(&bg)
	return a
}

func (a *appendable) setContext(ctx context.Context) { a.ctx.Store(&ctx) }

// AppenderV2 implements storage.AppendableV2.
func (a *appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	t, _ := promscrape.TargetFromContext(ctx)
	tx := &transaction{a: a, target: t, resources: map[resKey]*resBuilder{}, now: time.Now().UnixMilli()}
	if t != nil {
		tx.job = t.GetValue(model.JobLabel)
		tx.scheme = t.GetValue(model.SchemeLabel)
		if d, err := model.ParseDuration(t.GetValue(model.ScrapeIntervalLabel)); err == nil && d > 0 {
			tx.deadline = time.Duration(d)
		}
	}
	if tx.deadline == 0 {
		tx.deadline = 10 * time.Second
	}
	return tx
}

// seriesKind is what part of a metric family a series carries.
type seriesKind uint8

const (
	kindGauge seriesKind = iota
	kindCounter
	kindBucket   // classic histogram _bucket{le}
	kindHistSum  // classic histogram _sum
	kindHistCnt  // classic histogram _count
	kindQuantile // summary {quantile}
	kindSumSum   // summary _sum
	kindSumCnt   // summary _count
	kindNative   // native histogram
	kindSkip     // OpenMetrics _created when not parsed as start time
)

func (k seriesKind) cumulative() bool { return k != kindGauge && k != kindSkip }

// series is what obs remembers about one Prometheus series across scrapes:
// how it maps to OTLP and its start time.
type series struct {
	ref    storage.SeriesRef
	lset   labels.Labels
	family string
	typ    model.MetricType
	unit   string
	help   string
	kind   seriesKind
	name   string  // OTLP metric name
	bound  float64 // le or quantile
	job    string
	inst   string
	attrs  labels.Labels // data point attributes
	group  uint64        // hash of name and attrs: the data point a part belongs to

	mu    sync.Mutex
	start int64 // synthesised start, ms; 0 = not seen yet
	lastT int64
	last  float64
	seen  atomic.Int64 // unix ms of the last append
}

// classify fills the OTLP mapping from the series name and metadata.
func (s *series) classify(family string, md metadata.Metadata) {
	s.family, s.typ, s.unit, s.help = family, md.Type, md.Unit, md.Help
	name := s.lset.Get(model.MetricNameLabel)
	s.name, s.kind = name, kindGauge
	drop := []string{model.MetricNameLabel, model.JobLabel, model.InstanceLabel}
	switch md.Type {
	case model.MetricTypeCounter:
		s.kind = kindCounter
		if family != "" && isCreatedSeries(name, family, md.Type) {
			s.kind = kindSkip
		}
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram:
		switch {
		case name == family:
			s.kind, s.name = kindNative, family
		case name == family+"_bucket":
			s.kind, s.name = kindBucket, family
			s.bound = parseBound(s.lset.Get(model.BucketLabel))
			drop = append(drop, model.BucketLabel)
		case name == family+"_sum" || name == family+"_gsum":
			s.kind, s.name = kindHistSum, family
		case name == family+"_count" || name == family+"_gcount":
			s.kind, s.name = kindHistCnt, family
		case name == family+"_created":
			s.kind = kindSkip
		}
	case model.MetricTypeSummary:
		switch {
		case name == family:
			s.kind, s.name = kindQuantile, family
			s.bound = parseBound(s.lset.Get(model.QuantileLabel))
			drop = append(drop, model.QuantileLabel)
		case name == family+"_sum":
			s.kind, s.name = kindSumSum, family
		case name == family+"_count":
			s.kind, s.name = kindSumCnt, family
		case name == family+"_created":
			s.kind = kindSkip
		}
	}
	s.job, s.inst = s.lset.Get(model.JobLabel), s.lset.Get(model.InstanceLabel)
	b := labels.NewBuilder(s.lset)
	b.Del(drop...)
	s.attrs = b.Labels()
	b.Reset(s.attrs)
	b.Set(model.MetricNameLabel, s.name)
	s.group = b.Labels().Hash()
}

// isCreatedSeries reports an OpenMetrics _created series of a cumulative
// family.
func isCreatedSeries(name, family string, typ model.MetricType) bool {
	switch typ {
	case model.MetricTypeCounter:
		return name == strings.TrimSuffix(family, "_total")+"_created"
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram, model.MetricTypeSummary:
		return name == family+"_created"
	}
	return false
}

func parseBound(v string) float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// startTime returns the start timestamp for a cumulative sample: the
// parser's (created timestamps) when given, else the first time this
// receiver saw the series, moved just past the previous sample after a
// reset.
func (s *series) startTime(st, t int64, v float64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.start == 0 || t < s.lastT:
		s.start = t
	case v < s.last:
		s.start = s.lastT + 1
	}
	s.lastT, s.last = t, v
	if st != 0 && st <= t {
		return st
	}
	return s.start
}

// seriesTable hands out stable, non-zero series references.
type seriesTable struct {
	shards [16]seriesShard
}

type seriesShard struct {
	mu     sync.Mutex
	byHash map[uint64][]*series
	byRef  map[storage.SeriesRef]*series
	next   uint64
}

func (t *seriesTable) init() {
	for i := range t.shards {
		t.shards[i].byHash = map[uint64][]*series{}
		t.shards[i].byRef = map[storage.SeriesRef]*series{}
	}
}

// get finds the series by ref (fast path) or labels; created reports a new
// series that the caller must classify.
func (t *seriesTable) get(ref storage.SeriesRef, ls labels.Labels) (s *series, created bool) {
	if ref != 0 {
		sh := &t.shards[ref&15]
		sh.mu.Lock()
		s = sh.byRef[ref]
		sh.mu.Unlock()
		if s != nil {
			return s, false
		}
	}
	h := ls.Hash()
	idx := h & 15
	sh := &t.shards[idx]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, c := range sh.byHash[h] {
		if labels.Equal(c.lset, ls) {
			return c, false
		}
	}
	sh.next++
	s = &series{ref: storage.SeriesRef(sh.next<<4 | idx), lset: ls.Copy()}
	sh.byHash[h] = append(sh.byHash[h], s)
	sh.byRef[s.ref] = s
	return s, true
}

// sweep forgets series not appended since before.
func (t *seriesTable) sweep(before int64) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for ref, s := range sh.byRef {
			if s.seen.Load() >= before {
				continue
			}
			delete(sh.byRef, ref)
			h := s.lset.Hash()
			list := sh.byHash[h]
			for j, c := range list {
				if c == s {
					list = append(list[:j], list[j+1:]...)
					break
				}
			}
			if len(list) == 0 {
				delete(sh.byHash, h)
			} else {
				sh.byHash[h] = list
			}
		}
		sh.mu.Unlock()
	}
}

func (t *seriesTable) len() int {
	n := 0
	for i := range t.shards {
		t.shards[i].mu.Lock()
		n += len(t.shards[i].byRef)
		t.shards[i].mu.Unlock()
	}
	return n
}

// transaction collects one scrape's samples as pdata.
type transaction struct {
	a        *appendable
	target   *promscrape.Target
	job      string
	scheme   string
	deadline time.Duration
	now      int64 // unix ms when the scrape began

	md      pmetric.Metrics
	samples int // appended samples, report series excluded

	lastFamily string // family of the last sample with metadata
	lastMD     metadata.Metadata
	resources  map[resKey]*resBuilder
	points     int
	closed     bool

	// The scrape report.
	hasUp                   bool
	up                      float64
	scraped                 float64
	postRelabel             float64
	duration                float64
	staleChecked, handedOff bool
}

type resKey struct{ job, instance string }

type resBuilder struct {
	sm      pmetric.ScopeMetrics
	metrics map[metricKey]pmetric.Metric
	groups  map[groupKey]*groupAcc
	order   []groupKey
}

type metricKey struct {
	name string
	kind seriesKind
}

type groupKey struct {
	group uint64
	t     int64
}

// groupAcc gathers the series of one classic histogram or summary point.
type groupAcc struct {
	s        *series // any part, for name, attributes, metadata
	t        int64
	start    int64
	startCnt bool // start came from the _count part
	bounds   []float64
	counts   []float64
	sum      float64
	count    float64
	hasSum   bool
	hasCount bool
	stale    bool
}

var errTxClosed = errors.New("append to a committed or rolled back scrape transaction")

// Append implements storage.AppenderV2.
func (tx *transaction) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram,
	fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	if tx.closed {
		return 0, errTxClosed
	}
	family := opts.MetricFamilyName
	report := strings.HasSuffix(family, "\xff") // up and scrape_*: Prometheus marks their family name
	if report {
		family = family[:len(family)-1]
	}
	md := opts.Metadata
	if family == "" && !report && tx.lastFamily != "" && isCreatedSeries(ls.Get(model.MetricNameLabel), tx.lastFamily, tx.lastMD.Type) {
		// Prometheus passes no metadata with an OpenMetrics _created line:
		// it belongs to the family before it.
		family, md = tx.lastFamily, tx.lastMD
	}
	s, created := tx.a.series.get(ref, ls)
	if created || (family != "" && (family != s.family || md.Type != s.typ)) {
		if family == "" {
			md.Type = model.MetricTypeUnknown
		}
		s.classify(family, md)
	}
	if family != "" && !report {
		tx.lastFamily, tx.lastMD = family, md
	}
	s.seen.Store(tx.now)
	if !report {
		tx.samples++
	}
	stale := (h == nil && fh == nil && value.IsStaleNaN(v)) ||
		(h != nil && value.IsStaleNaN(h.Sum)) || (fh != nil && value.IsStaleNaN(fh.Sum))
	if stale && tx.target != nil {
		if !tx.staleChecked {
			tx.staleChecked = true
			tx.handedOff = tx.a.shard.handedOff(targetKeyOf(tx.target))
		}
		if tx.handedOff {
			// The target only moved: its new owner goes on with the series.
			tx.a.metrics.staleDrop.WithLabelValues(tx.job).Inc()
			return s.ref, nil
		}
	}
	if report && !stale {
		switch family {
		case "up":
			tx.hasUp, tx.up = true, v
		case "scrape_samples_scraped":
			tx.scraped = v
		case "scrape_samples_post_metric_relabeling":
			tx.postRelabel = v
		case "scrape_duration_seconds":
			tx.duration = v
		}
	}
	kind := s.kind
	switch {
	case h != nil || fh != nil:
		kind = kindNative
	case kind == kindNative:
		kind = kindGauge // a float sample named like its histogram family
	}
	if kind == kindSkip {
		return s.ref, nil
	}
	rb := tx.resource(s)
	switch kind {
	case kindGauge, kindCounter:
		m := rb.metric(s, kind)
		var dp pmetric.NumberDataPoint
		if kind == kindCounter {
			dp = m.Sum().DataPoints().AppendEmpty()
		} else {
			dp = m.Gauge().DataPoints().AppendEmpty()
		}
		setAttrs(dp.Attributes(), s.attrs)
		dp.SetTimestamp(msToTS(t))
		if stale {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		} else {
			dp.SetDoubleValue(v)
			if kind == kindCounter {
				dp.SetStartTimestamp(msToTS(s.startTime(st, t, v)))
			}
		}
		tx.points++
	case kindNative:
		tx.appendNative(rb, s, st, t, h, fh, stale)
	default:
		tx.appendPart(rb, s, st, t, v, stale)
	}
	return s.ref, nil
}

func (tx *transaction) resource(s *series) *resBuilder {
	k := resKey{s.job, s.inst}
	if rb, ok := tx.resources[k]; ok {
		return rb
	}
	if tx.md == (pmetric.Metrics{}) {
		tx.md = pmetric.NewMetrics()
	}
	rm := tx.md.ResourceMetrics().AppendEmpty()
	attrs := rm.Resource().Attributes()
	attrs.PutStr("service.name", k.job)
	attrs.PutStr("service.instance.id", k.instance)
	if host, port, err := net.SplitHostPort(k.instance); err == nil {
		attrs.PutStr("server.address", host)
		if p, err := strconv.Atoi(port); err == nil {
			attrs.PutInt("server.port", int64(p))
		}
	} else if k.instance != "" {
		attrs.PutStr("server.address", k.instance)
	}
	if tx.scheme != "" {
		attrs.PutStr("url.scheme", tx.scheme)
	}
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(scopeName)
	rb := &resBuilder{sm: sm, metrics: map[metricKey]pmetric.Metric{}}
	tx.resources[k] = rb
	return rb
}

// metric returns the OTLP metric a series' points go to, creating it.
func (rb *resBuilder) metric(s *series, kind seriesKind) pmetric.Metric {
	switch kind {
	case kindBucket, kindHistSum, kindHistCnt:
		kind = kindBucket
	case kindQuantile, kindSumSum, kindSumCnt:
		kind = kindQuantile
	}
	k := metricKey{s.name, kind}
	if m, ok := rb.metrics[k]; ok {
		return m
	}
	m := rb.sm.Metrics().AppendEmpty()
	m.SetName(s.name)
	m.SetDescription(s.help)
	m.SetUnit(s.unit)
	switch kind {
	case kindCounter:
		sum := m.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case kindBucket:
		m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case kindQuantile:
		m.SetEmptySummary()
	case kindNative:
		m.SetEmptyExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	default:
		m.SetEmptyGauge()
	}
	rb.metrics[k] = m
	return m
}

// appendPart adds one series of a classic histogram or summary to its
// data point; Commit turns the parts into the point.
func (tx *transaction) appendPart(rb *resBuilder, s *series, st, t int64, v float64, stale bool) {
	if rb.groups == nil {
		rb.groups = map[groupKey]*groupAcc{}
	}
	k := groupKey{s.group, t}
	g, ok := rb.groups[k]
	if !ok {
		g = &groupAcc{s: s, t: t}
		rb.groups[k] = g
		rb.order = append(rb.order, k)
		rb.metric(s, s.kind) // keep the metric in exposition order
	}
	if stale {
		g.stale = true
		return
	}
	start := s.startTime(st, t, v)
	switch s.kind {
	case kindBucket, kindQuantile:
		g.bounds = append(g.bounds, s.bound)
		g.counts = append(g.counts, v)
	case kindHistSum, kindSumSum:
		g.sum, g.hasSum = v, true
	case kindHistCnt, kindSumCnt:
		g.count, g.hasCount = v, true
	}
	isCnt := s.kind == kindHistCnt || s.kind == kindSumCnt
	if g.start == 0 || (isCnt && !g.startCnt) {
		g.start, g.startCnt = start, isCnt
	}
}

// appendNative adds a native histogram as an exponential histogram (or,
// for custom buckets, an explicit-bounds histogram).
func (tx *transaction) appendNative(rb *resBuilder, s *series, st, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram, stale bool) {
	if h != nil {
		fh = h.ToFloat(nil)
	}
	if fh == nil {
		return
	}
	if fh.UsesCustomBuckets() {
		m := rb.metric(s, kindBucket)
		dp := m.Histogram().DataPoints().AppendEmpty()
		setAttrs(dp.Attributes(), s.attrs)
		dp.SetTimestamp(msToTS(t))
		tx.points++
		if stale {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			return
		}
		dp.SetStartTimestamp(msToTS(s.startTime(st, t, fh.Count)))
		dp.SetCount(uint64(fh.Count))
		dp.SetSum(fh.Sum)
		dp.ExplicitBounds().FromRaw(fh.CustomValues)
		counts := make([]uint64, len(fh.CustomValues)+1)
		it := fh.PositiveBucketIterator()
		for it.Next() {
			b := it.At()
			if i := int(b.Index); i >= 0 && i < len(counts) {
				counts[i] = uint64(b.Count)
			}
		}
		dp.BucketCounts().FromRaw(counts)
		return
	}
	m := rb.metric(s, kindNative)
	dp := m.ExponentialHistogram().DataPoints().AppendEmpty()
	setAttrs(dp.Attributes(), s.attrs)
	dp.SetTimestamp(msToTS(t))
	tx.points++
	if stale {
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		return
	}
	dp.SetStartTimestamp(msToTS(s.startTime(st, t, fh.Count)))
	dp.SetScale(fh.Schema)
	dp.SetCount(uint64(fh.Count))
	dp.SetSum(fh.Sum)
	dp.SetZeroCount(uint64(fh.ZeroCount))
	dp.SetZeroThreshold(fh.ZeroThreshold)
	expBuckets(dp.Positive(), fh.PositiveBucketIterator())
	expBuckets(dp.Negative(), fh.NegativeBucketIterator())
}

// expBuckets converts Prometheus buckets (index i covers (b^(i-1), b^i])
// to OTLP's (index i covers (b^i, b^(i+1)]): offset = first index - 1, and
// gaps between spans become zero counts.
func expBuckets(dst pmetric.ExponentialHistogramDataPointBuckets, it histogram.BucketIterator[float64]) {
	var counts []uint64
	first, next := int32(0), int32(0)
	for it.Next() {
		b := it.At()
		if counts == nil {
			first, next = b.Index, b.Index
		}
		for ; next < b.Index; next++ {
			counts = append(counts, 0)
		}
		counts = append(counts, uint64(b.Count))
		next = b.Index + 1
	}
	if counts == nil {
		return
	}
	dst.SetOffset(first - 1)
	dst.BucketCounts().FromRaw(counts)
}

// finish turns the classic histogram and summary parts into points.
func (tx *transaction) finish() {
	for _, rb := range tx.resources {
		for _, k := range rb.order {
			g := rb.groups[k]
			s := g.s
			m := rb.metric(s, s.kind)
			switch m.Type() {
			case pmetric.MetricTypeHistogram:
				dp := m.Histogram().DataPoints().AppendEmpty()
				setAttrs(dp.Attributes(), s.attrs)
				dp.SetTimestamp(msToTS(g.t))
				tx.points++
				if g.stale {
					dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
					continue
				}
				dp.SetStartTimestamp(msToTS(g.start))
				fillHistogram(dp, g)
			case pmetric.MetricTypeSummary:
				dp := m.Summary().DataPoints().AppendEmpty()
				setAttrs(dp.Attributes(), s.attrs)
				dp.SetTimestamp(msToTS(g.t))
				tx.points++
				if g.stale {
					dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
					continue
				}
				dp.SetStartTimestamp(msToTS(g.start))
				dp.SetCount(uint64(g.count))
				dp.SetSum(g.sum)
				idx := sortedIndex(g.bounds)
				for _, i := range idx {
					q := dp.QuantileValues().AppendEmpty()
					q.SetQuantile(g.bounds[i])
					q.SetValue(g.counts[i])
				}
			}
		}
	}
}

// fillHistogram turns cumulative `le` buckets into OTLP bounds and
// per-bucket counts.
func fillHistogram(dp pmetric.HistogramDataPoint, g *groupAcc) {
	idx := sortedIndex(g.bounds)
	bounds := make([]float64, 0, len(idx))
	counts := make([]uint64, 0, len(idx)+1)
	var prev float64
	total := g.count
	haveInf := false
	for _, i := range idx {
		b, c := g.bounds[i], g.counts[i]
		if math.IsNaN(b) {
			continue
		}
		if math.IsInf(b, 1) {
			haveInf = true
			total = c
			break
		}
		bounds = append(bounds, b)
		counts = append(counts, uint64(max(c-prev, 0)))
		prev = c
	}
	if !g.hasCount && haveInf {
		g.count = total
	}
	if len(idx) > 0 {
		counts = append(counts, uint64(max(total-prev, 0)))
		dp.ExplicitBounds().FromRaw(bounds)
		dp.BucketCounts().FromRaw(counts)
	}
	dp.SetCount(uint64(g.count))
	if g.hasSum {
		dp.SetSum(g.sum)
	}
}

func sortedIndex(v []float64) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	// insertion sort: a handful of buckets
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && v[idx[j]] < v[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	return idx
}

func setAttrs(m pcommon.Map, ls labels.Labels) {
	m.EnsureCapacity(ls.Len())
	ls.Range(func(l labels.Label) { m.PutStr(l.Name, l.Value) })
}

func msToTS(ms int64) pcommon.Timestamp { return pcommon.Timestamp(ms * int64(time.Millisecond)) }

// Commit implements storage.AppenderTransaction: the scrape becomes one
// batch, and Commit returns once it is durable (or refused).
func (tx *transaction) Commit() error {
	if tx.closed {
		return errTxClosed
	}
	tx.closed = true
	a := tx.a
	defer a.maybeSweep()
	tx.report()
	tx.finish()
	n := tx.points
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(*a.ctx.Load(), tx.deadline)
	defer cancel()
	err := a.consume(ctx, actors.MetricsBatch(tx.md), nil)
	if err == nil {
		a.metrics.appended.WithLabelValues(tx.job).Add(float64(n))
		a.metrics.accepted.Add(float64(n))
		return nil
	}
	a.metrics.refused.Add(float64(n))
	if errors.Is(err, actors.ErrRefused) || errors.Is(err, context.DeadlineExceeded) {
		a.metrics.dropped.WithLabelValues(tx.job, "refused").Add(float64(n))
		a.log.Debug("scrape dropped: pipeline full", "job", tx.job, "points", n, "err", err)
		return nil
	}
	a.metrics.dropped.WithLabelValues(tx.job, "error").Add(float64(n))
	return err
}

// report updates the per-job counters from the scrape's up and scrape_*
// series.
func (tx *transaction) report() {
	if !tx.hasUp {
		return
	}
	m := tx.a.metrics
	m.scraped.WithLabelValues(tx.job).Add(tx.scraped)
	m.duration.WithLabelValues(tx.job).Observe(tx.duration)
	if tx.up == 0 {
		m.failed.WithLabelValues(tx.job).Inc()
		reason := "scrape_error"
		if tx.target != nil {
			tx.a.rbMu.Lock()
			if r, ok := tx.a.rollbacks[tx.target]; ok {
				reason = r
				delete(tx.a.rollbacks, tx.target)
			}
			tx.a.rbMu.Unlock()
		}
		if tx.postRelabel > 0 {
			m.dropped.WithLabelValues(tx.job, reason).Add(tx.postRelabel)
		}
	}
}

// Rollback implements storage.AppenderTransaction. Prometheus rolls back a
// scrape that failed to parse or went over a limit; the report that
// follows (up=0) counts its samples as dropped.
func (tx *transaction) Rollback() error {
	if tx.closed {
		return nil
	}
	tx.closed = true
	if tx.target == nil || tx.samples == 0 {
		return nil
	}
	reason := "scrape_error"
	if sc := tx.a.scfgs[tx.job]; sc != nil && sc.SampleLimit > 0 && tx.samples >= int(sc.SampleLimit) {
		reason = "sample_limit"
	}
	tx.a.rbMu.Lock()
	tx.a.rollbacks[tx.target] = reason
	tx.a.rbMu.Unlock()
	return nil
}

// maybeSweep forgets idle series about once a minute.
func (a *appendable) maybeSweep() {
	now := time.Now().UnixMilli()
	last := a.lastSweep.Load()
	if now-last < time.Minute.Milliseconds() || !a.lastSweep.CompareAndSwap(last, now) {
		return
	}
	a.series.sweep(now - a.seriesTTL.Milliseconds())
	a.rbMu.Lock()
	clear(a.rollbacks)
	a.rbMu.Unlock()
}
