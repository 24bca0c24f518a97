package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// payload is one marshalled ExportLogsServiceRequest.
type payload struct {
	body    []byte
	records int
}

// words are the vocabularies of the generated log lines.
type words struct {
	services, paths, methods, errors []string
	statuses                         []int
	levels                           []level
}

type level struct {
	text string
	num  plog.SeverityNumber
}

func newWords() *words {
	return &words{
		services: []string{"checkout", "cart", "payment", "frontend", "inventory", "auth", "search", "shipping"},
		paths:    []string{"/api/v1/cart", "/api/v1/orders", "/healthz", "/api/v2/search?q=shoes", "/login", "/api/v1/items/8812", "/static/app.js"},
		methods:  []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"},
		statuses: []int{200, 200, 200, 200, 201, 204, 301, 404, 500, 503},
		levels: []level{{"INFO", plog.SeverityNumberInfo}, {"INFO", plog.SeverityNumberInfo},
			{"DEBUG", plog.SeverityNumberDebug}, {"WARN", plog.SeverityNumberWarn}, {"ERROR", plog.SeverityNumberError}},
		errors: []string{"connection reset by peer", "context deadline exceeded", "no such host", "too many open files", "upstream returned 503"},
	}
}

// genPayloads builds distinct requests of size records each from a fixed
// seed, so every system under test gets the same data; first numbers the
// first request (it varies the resource and the timestamps).
func genPayloads(first, distinct, size int, seed uint64) ([]payload, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := newWords()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]payload, 0, distinct)
	for i := first; i < first+distinct; i++ {
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		svc := w.services[i%len(w.services)]
		ra := rl.Resource().Attributes()
		ra.PutStr("service.name", svc)
		ra.PutStr("k8s.namespace.name", "shop")
		ra.PutStr("k8s.pod.name", svc+"-7d9f8c6b5-"+strconv.Itoa(10000+r.IntN(90000)))
		ra.PutStr("host.name", "node-"+strconv.Itoa(r.IntN(12)))
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("bench")
		recs := sl.LogRecords()
		recs.EnsureCapacity(size)
		for j := range size {
			lr := recs.AppendEmpty()
			ts := base.Add(time.Duration(i*size+j) * time.Millisecond)
			lr.SetTimestamp(pcommon.NewTimestampFromTime(ts))
			lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(ts.Add(3 * time.Millisecond)))
			lv := w.levels[r.IntN(len(w.levels))]
			lr.SetSeverityText(lv.text)
			lr.SetSeverityNumber(lv.num)
			lr.Body().SetStr(w.body(r, lv.text))
			a := lr.Attributes()
			a.PutStr("log.iostream", "stdout")
			a.PutInt("thread.id", int64(r.IntN(64)))
			if r.IntN(3) == 0 {
				var tid pcommon.TraceID
				for k := range tid {
					tid[k] = byte(r.Uint32())
				}
				lr.SetTraceID(tid)
			}
		}
		b, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
		if err != nil {
			return nil, fmt.Errorf("marshal payload %d: %w", i, err)
		}
		out = append(out, payload{body: b, records: size})
	}
	return out, nil
}

// genBody returns one realistic log line of roughly 60-160 bytes.
func (w *words) body(r *rand.Rand, level string) string {
	switch r.IntN(4) {
	case 0: // access log
		return fmt.Sprintf(`10.%d.%d.%d - - "%s %s HTTP/1.1" %d %d "-" "Mozilla/5.0 (X11; Linux x86_64)" rt=%.3f`,
			r.IntN(256), r.IntN(256), r.IntN(256), w.methods[r.IntN(len(w.methods))], w.paths[r.IntN(len(w.paths))],
			w.statuses[r.IntN(len(w.statuses))], r.IntN(50000), r.Float64())
	case 1: // JSON application log
		return fmt.Sprintf(`{"level":"%s","msg":"order processed","order_id":"%08x","user":"u%d","items":%d,"latency_ms":%d}`,
			level, r.Uint32(), r.IntN(100000), 1+r.IntN(9), r.IntN(900))
	case 2: // error with cause
		return fmt.Sprintf("%s failed to call %s: %s (attempt %d/5, request_id=%016x)",
			level, w.services[r.IntN(len(w.services))], w.errors[r.IntN(len(w.errors))], 1+r.IntN(5), r.Uint64())
	default: // key=value
		return fmt.Sprintf("ts=%d level=%s caller=handler.go:%d msg=\"cache lookup\" key=sess:%x hit=%t size=%d",
			1767225600+r.IntN(86400), level, 40+r.IntN(400), r.Uint32(), r.IntN(2) == 0, r.IntN(65536))
	}
}
