package scrape

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
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
	"google.golang.org/protobuf/encoding/protowire"

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

	// metricPool keeps the data point buffers of committed scrapes for
	// the next ones.
	metricPool sync.Pool

	groups commitGroups // scrapes committed together (commitgroup.go)
}

func newAppendable(consume func(context.Context, actors.Batch, []actors.KV) error, shard *sharder, m *metrics,
	scfgs map[string]*promconfig.ScrapeConfig, maxInterval time.Duration, log *slog.Logger) *appendable {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ttl := max(10*time.Minute, 4*maxInterval)
	a := &appendable{consume: consume, shard: shard, metrics: m, scfgs: scfgs, log: log, seriesTTL: ttl,
		rollbacks: map[*promscrape.Target]string{}}
	a.series.init()
	a.groups.send = a.sendGroup
	bg := context.Background()
	a.ctx.Store(&bg)
	return a
}

func (a *appendable) setContext(ctx context.Context) { a.ctx.Store(&ctx) }

// AppenderV2 implements storage.AppendableV2.
func (a *appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	t, _ := promscrape.TargetFromContext(ctx)
	tx := &transaction{a: a, target: t, now: time.Now().UnixMilli()}
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
	kindCreated  // OpenMetrics _created: the start time of its family's point, not a series
)

func (k seriesKind) cumulative() bool { return k != kindGauge && k != kindCreated }

// series is what obs remembers about one Prometheus series across scrapes:
// how it maps to OTLP and its start time.
type series struct {
	ref   storage.SeriesRef
	lset  labels.Labels
	meta  *seriesMeta // shared with the family's other series of the target
	kind  seriesKind
	bound float64 // le or quantile
	attrs []byte  // data point attributes, encoded (see encodeAttrs)
	group uint64  // hash of name and attributes: the data point a part belongs to
	next  *series // in the same seriesTable hash chain

	mu    sync.Mutex
	start int64 // synthesised start, ms; 0 = not seen yet
	lastT int64
	last  float64
	seen  atomic.Int64 // unix ms of the last append
}

// seriesMeta is what the series of one metric of one target have in
// common; the series table keeps one copy (intern), which saves about 100
// bytes per series.
type seriesMeta struct {
	family string
	typ    model.MetricType
	unit   string
	help   string
	name   string // OTLP metric name
	job    string
	inst   string
}

// classify fills the OTLP mapping from the series name and metadata.
func (s *series) classify(t *seriesTable, family string, md metadata.Metadata) {
	var m seriesMeta
	m.family, m.typ, m.unit, m.help = family, md.Type, md.Unit, md.Help
	name := s.lset.Get(model.MetricNameLabel)
	m.name, s.kind = name, kindGauge
	drop := []string{model.MetricNameLabel, model.JobLabel, model.InstanceLabel}
	switch md.Type {
	case model.MetricTypeCounter:
		s.kind = kindCounter
		if family != "" && isCreatedSeries(name, family, md.Type) {
			// Its group is the counter point's (same attributes).
			s.kind, m.name = kindCreated, strings.TrimSuffix(family, "_total")+"_total"
		}
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram:
		switch {
		case name == family:
			s.kind, m.name = kindNative, family
		case name == family+"_bucket":
			s.kind, m.name = kindBucket, family
			s.bound = parseBound(s.lset.Get(model.BucketLabel))
			drop = append(drop, model.BucketLabel)
		case name == family+"_sum" || name == family+"_gsum":
			s.kind, m.name = kindHistSum, family
		case name == family+"_count" || name == family+"_gcount":
			s.kind, m.name = kindHistCnt, family
		case name == family+"_created":
			s.kind, m.name = kindCreated, family
		}
	case model.MetricTypeSummary:
		switch {
		case name == family:
			s.kind, m.name = kindQuantile, family
			s.bound = parseBound(s.lset.Get(model.QuantileLabel))
			drop = append(drop, model.QuantileLabel)
		case name == family+"_sum":
			s.kind, m.name = kindSumSum, family
		case name == family+"_count":
			s.kind, m.name = kindSumCnt, family
		case name == family+"_created":
			s.kind, m.name = kindCreated, family
		}
	}
	m.job, m.inst = s.lset.Get(model.JobLabel), s.lset.Get(model.InstanceLabel)
	t.setMeta(s, m)
	b := labels.NewBuilder(s.lset)
	b.Del(drop...)
	attrs := b.Labels()
	s.attrs = encodeAttrs(attrs)
	b.Set(model.MetricNameLabel, m.name)
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

// seriesTable hands out stable, non-zero series references. A reference
// is a slot index (plus one) in the low 32 bits and a sequence number in
// the high ones, so finding a series by the reference Prometheus hands
// back is an array index without a lock; a reference to a slot that was
// swept and reused no longer matches and falls back to the labels.
type seriesTable struct {
	dir atomic.Pointer[[]*seriesChunk] // grows by copy under mu

	mu     sync.Mutex
	byHash map[uint64]*series // chained by series.next
	metas  map[seriesMeta]*seriesMeta
	free   []uint32 // swept slots
	used   uint32   // slots ever handed out
	seq    uint32
	count  int
}

const seriesChunkLen = 1024

type seriesChunk [seriesChunkLen]atomic.Pointer[series]

func (t *seriesTable) init() {
	t.byHash = map[uint64]*series{}
	t.metas = map[seriesMeta]*seriesMeta{}
	t.dir.Store(&[]*seriesChunk{})
}

// setMeta gives s the table's copy of m (under the lock sweep reads
// it with).
func (t *seriesTable) setMeta(s *series, m seriesMeta) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.metas[m]
	if !ok {
		p = &m
		t.metas[m] = p
	}
	s.meta = p
}

func (t *seriesTable) byRef(ref storage.SeriesRef) *series {
	slot := uint32(ref) - 1
	dir := *t.dir.Load()
	if int(slot/seriesChunkLen) >= len(dir) {
		return nil
	}
	s := dir[slot/seriesChunkLen][slot%seriesChunkLen].Load()
	if s == nil || s.ref != ref {
		return nil
	}
	return s
}

// get finds the series by ref (fast path) or labels; created reports a new
// series that the caller must classify.
func (t *seriesTable) get(ref storage.SeriesRef, ls labels.Labels) (s *series, created bool) {
	if ref != 0 {
		if s := t.byRef(ref); s != nil {
			return s, false
		}
	}
	h := ls.Hash()
	t.mu.Lock()
	defer t.mu.Unlock()
	head := t.byHash[h]
	for c := head; c != nil; c = c.next {
		if labels.Equal(c.lset, ls) {
			return c, false
		}
	}
	var slot uint32
	if n := len(t.free); n > 0 {
		slot, t.free = t.free[n-1], t.free[:n-1]
	} else {
		slot = t.used
		t.used++
		dir := *t.dir.Load()
		if int(slot/seriesChunkLen) >= len(dir) {
			grown := append(dir[:len(dir):len(dir)], new(seriesChunk))
			t.dir.Store(&grown)
		}
	}
	t.seq++
	// ls is kept, not copied: AppenderV2 lets an appender retain the label
	// set (TSDB's head does), and Prometheus' scrape cache holds the same
	// immutable string, so a copy would store every series' labels twice.
	s = &series{ref: storage.SeriesRef(uint64(t.seq)<<32 | uint64(slot+1)), lset: ls, next: head}
	t.byHash[h] = s
	(*t.dir.Load())[slot/seriesChunkLen][slot%seriesChunkLen].Store(s)
	t.count++
	return s, true
}

// sweep forgets series not appended since before.
func (t *seriesTable) sweep(before int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	dir := *t.dir.Load()
	for slot := uint32(0); slot < t.used; slot++ {
		p := &dir[slot/seriesChunkLen][slot%seriesChunkLen]
		s := p.Load()
		if s == nil || s.seen.Load() >= before {
			continue
		}
		p.Store(nil)
		t.free = append(t.free, slot)
		t.count--
		h := s.lset.Hash()
		if head := t.byHash[h]; head == s {
			if s.next == nil {
				delete(t.byHash, h)
			} else {
				t.byHash[h] = s.next
			}
		} else {
			for c := head; c != nil; c = c.next {
				if c.next == s {
					c.next = s.next
					break
				}
			}
		}
	}
	// Forget the metadata no series uses any more (targets that went).
	used := make(map[*seriesMeta]struct{}, len(t.metas))
	for slot := uint32(0); slot < t.used; slot++ {
		if s := dir[slot/seriesChunkLen][slot%seriesChunkLen].Load(); s != nil && s.meta != nil {
			used[s.meta] = struct{}{}
		}
	}
	for k, p := range t.metas {
		if _, ok := used[p]; !ok {
			delete(t.metas, k)
		}
	}
}

func (t *seriesTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count
}

// transaction collects one scrape's samples as encoded OTLP.
type transaction struct {
	a        *appendable
	target   *promscrape.Target
	job      string
	scheme   string
	deadline time.Duration
	now      int64 // unix ms when the scrape began

	samples int // appended samples, report series excluded

	lastFamily string // family of the last sample with metadata
	lastMD     metadata.Metadata
	resources  []*resBuilder // in first-seen order; one per job and instance
	lastRes    *resBuilder
	lastMetric *txMetric // where the last gauge or counter point went
	lastSeries *series   // the series it came from
	// The last counter point with a synthesised start: where its start
	// time is in lastCounter.dps, for a _created sample that follows it.
	lastCounter      *txMetric
	lastCounterGroup uint64
	lastCounterOff   int
	points           int
	closed           bool

	// The scrape report.
	hasUp                   bool
	up                      float64
	scraped                 float64
	postRelabel             float64
	duration                float64
	staleChecked, handedOff bool
}

type resKey struct{ job, instance string }

// resBuilder is one resource's metrics in a scrape.
type resBuilder struct {
	key     resKey
	metrics []*txMetric // in exposition order
	byKey   map[metricKey]*txMetric
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
	created  bool // start came from a _created sample
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
	if created || s.meta == nil || (family != "" && (family != s.meta.family || md.Type != s.meta.typ)) {
		if family == "" {
			md.Type = model.MetricTypeUnknown
		}
		s.classify(&tx.a.series, family, md)
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
	if kind == kindCreated {
		if !stale {
			tx.applyCreated(s, t, v)
		}
		return s.ref, nil
	}
	switch kind {
	case kindGauge, kindCounter:
		m := tx.lastMetric
		if m == nil || tx.lastSeries.meta != s.meta || m.kind != kind {
			m = tx.resource(s).metric(tx.a, s, kind)
			tx.lastMetric, tx.lastSeries = m, s
		}
		var start int64
		if kind == kindCounter && !stale {
			start = s.startTime(st, t, v)
			if st == 0 || start != st {
				// The start time's 8 bytes: after the point's tag and
				// length, the attributes and the start's tag.
				n := len(s.attrs) + 9 + 9 + 9
				tx.lastCounter, tx.lastCounterGroup = m, s.group
				tx.lastCounterOff = len(m.dps) + 1 + protowire.SizeVarint(uint64(n)) + len(s.attrs) + 1
			}
		}
		m.dps = appendNumberPoint(m.dps, s.attrs, start, t, v, stale)
		tx.points++
	case kindNative:
		tx.appendNative(tx.resource(s), s, st, t, h, fh, stale)
	default:
		tx.appendPart(tx.resource(s), s, st, t, v, stale)
	}
	return s.ref, nil
}

func (tx *transaction) resource(s *series) *resBuilder {
	if rb := tx.lastRes; rb != nil && rb.key.job == s.meta.job && rb.key.instance == s.meta.inst {
		return rb
	}
	k := resKey{s.meta.job, s.meta.inst}
	for _, rb := range tx.resources {
		if rb.key == k {
			tx.lastRes = rb
			return rb
		}
	}
	rb := &resBuilder{key: k, byKey: map[metricKey]*txMetric{}}
	tx.resources = append(tx.resources, rb)
	tx.lastRes = rb
	return rb
}

// metric returns the OTLP metric a series' points go to, creating it.
func (rb *resBuilder) metric(a *appendable, s *series, kind seriesKind) *txMetric {
	switch kind {
	case kindBucket, kindHistSum, kindHistCnt:
		kind = kindBucket
	case kindQuantile, kindSumSum, kindSumCnt:
		kind = kindQuantile
	}
	k := metricKey{s.meta.name, kind}
	if m, ok := rb.byKey[k]; ok {
		return m
	}
	m, _ := a.metricPool.Get().(*txMetric)
	if m == nil {
		m = &txMetric{}
	}
	m.name, m.help, m.unit, m.kind, m.dps = s.meta.name, s.meta.help, s.meta.unit, kind, m.dps[:0]
	rb.metrics = append(rb.metrics, m)
	rb.byKey[k] = m
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
		rb.metric(tx.a, s, s.kind) // keep the metric in exposition order
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
	if !g.created && (g.start == 0 || (isCnt && !g.startCnt)) {
		g.start, g.startCnt = start, isCnt
	}
}

// applyCreated makes an OpenMetrics _created sample (v: seconds since the
// epoch) the start time of its point: the counter point just before it,
// or the histogram or summary point being gathered. Prometheus' own
// created-timestamp parsing (ParseST) is off, see ManagerOptions;
// reading the _created samples here needs no look-ahead in the parser.
// A _created that is not a plausible start (not positive, after the
// sample) or whose point is not found is ignored.
func (tx *transaction) applyCreated(s *series, t int64, v float64) {
	if !(v > 0) || v*1000 > float64(t) {
		return
	}
	ms := int64(v * 1000)
	if m := tx.lastCounter; m != nil && tx.lastCounterGroup == s.group && s.meta.typ == model.MetricTypeCounter {
		binary.LittleEndian.PutUint64(m.dps[tx.lastCounterOff:], msToNanos(ms))
		tx.lastCounter = nil
		return
	}
	if g := tx.resource(s).groups[groupKey{s.group, t}]; g != nil {
		g.start, g.created = ms, true
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
	tx.points++
	if fh.UsesCustomBuckets() {
		m := rb.metric(tx.a, s, kindBucket)
		p := histPoint{t: t, stale: stale}
		if !stale {
			p.start = s.startTime(st, t, fh.Count)
			p.count, p.sum, p.hasSum = uint64(fh.Count), fh.Sum, true
			p.bounds = fh.CustomValues
			p.counts = make([]uint64, len(fh.CustomValues)+1)
			it := fh.PositiveBucketIterator()
			for it.Next() {
				b := it.At()
				if i := int(b.Index); i >= 0 && i < len(p.counts) {
					p.counts[i] = uint64(b.Count)
				}
			}
		}
		m.dps = appendHistPoint(m.dps, s.attrs, &p)
		return
	}
	m := rb.metric(tx.a, s, kindNative)
	p := expPoint{t: t, stale: stale}
	if !stale {
		p.start = s.startTime(st, t, fh.Count)
		p.scale = fh.Schema
		p.count, p.sum = uint64(fh.Count), fh.Sum
		p.zeroCount, p.zeroThreshold = uint64(fh.ZeroCount), fh.ZeroThreshold
		p.posOffset, p.posCounts = expBuckets(fh.PositiveBucketIterator())
		p.negOffset, p.negCounts = expBuckets(fh.NegativeBucketIterator())
	}
	m.dps = appendExpPoint(m.dps, s.attrs, &p)
}

// expBuckets converts Prometheus buckets (index i covers (b^(i-1), b^i])
// to OTLP's (index i covers (b^i, b^(i+1)]): offset = first index - 1, and
// gaps between spans become zero counts.
func expBuckets(it histogram.BucketIterator[float64]) (offset int32, counts []uint64) {
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
		return 0, nil
	}
	return first - 1, counts
}

// finish turns the classic histogram and summary parts into points.
func (tx *transaction) finish() {
	for _, rb := range tx.resources {
		for _, k := range rb.order {
			g := rb.groups[k]
			s := g.s
			m := rb.metric(tx.a, s, s.kind)
			tx.points++
			switch m.kind {
			case kindBucket:
				p := histPoint{t: g.t, stale: g.stale, start: g.start}
				if !g.stale {
					fillHistogram(&p, g)
				}
				m.dps = appendHistPoint(m.dps, s.attrs, &p)
			case kindQuantile:
				p := summaryPoint{t: g.t, stale: g.stale, start: g.start}
				if !g.stale {
					p.count, p.sum = uint64(g.count), g.sum
					for _, i := range sortedIndex(g.bounds) {
						p.quantiles = append(p.quantiles, g.bounds[i])
						p.values = append(p.values, g.counts[i])
					}
				}
				m.dps = appendSummaryPoint(m.dps, s.attrs, &p)
			}
		}
	}
}

// fillHistogram turns cumulative `le` buckets into OTLP bounds and
// per-bucket counts.
func fillHistogram(p *histPoint, g *groupAcc) {
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
		p.bounds, p.counts = bounds, counts
	}
	p.count = uint64(g.count)
	p.sum, p.hasSum = g.sum, g.hasSum
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

// release gives the scrape's metric buffers back for the next scrapes.
func (tx *transaction) release() {
	for _, rb := range tx.resources {
		for _, m := range rb.metrics {
			m.name, m.help, m.unit = "", "", ""
			tx.a.metricPool.Put(m)
		}
	}
	tx.resources, tx.lastRes, tx.lastMetric, tx.lastSeries, tx.lastCounter = nil, nil, nil, nil, nil
}

// Commit implements storage.AppenderTransaction: the scrape joins a batch
// (commitgroup.go), and Commit returns once it is durable (or refused).
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
		tx.release()
		return nil
	}
	g := a.groups.add(func(b []byte) []byte { return appendRequest(b, tx.resources, tx.scheme) }, n, tx.deadline)
	tx.release()
	err := g.wait()
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
	tx.release()
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
