package scrape

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	yamlv2 "go.yaml.in/yaml/v2"
	"gopkg.in/yaml.v3"
)

// The Target Allocator's JSON shapes (opentelemetry-operator,
// cmd/otel-allocator server): GET /jobs answers {job: {"_link": ...}};
// GET /jobs/{job}/targets answers {collector: {"_link", "targets"}};
// with ?collector_id=NAME it answers that collector's target groups.
type linkJSON struct {
	Link string `json:"_link"`
}

type collectorJSON struct {
	Link    string        `json:"_link"`
	Targets []*targetJSON `json:"targets"`
}

type targetJSON struct {
	Targets []string      `json:"targets"`
	Labels  labels.Labels `json:"labels"`
}

// Handler serves the Target Allocator's API for the given receivers, for
// the whole cluster: every member computes every target's owner.
//
//	GET /jobs
//	GET /jobs/{job}/targets[?collector_id=NAME]
//	GET /scrape_configs
func Handler(receivers ...*PrometheusReceiver) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jobs", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]linkJSON{}
		for _, r := range receivers {
			for _, j := range r.Jobs() {
				out[j] = linkJSON{Link: "/jobs/" + url.QueryEscape(j) + "/targets"}
			}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /jobs/{job}/targets", func(w http.ResponseWriter, req *http.Request) {
		job := req.PathValue("job")
		if j, err := url.QueryUnescape(job); err == nil {
			job = j
		}
		var all []TargetInfo
		collectors := map[string]bool{}
		for _, r := range receivers {
			for _, c := range r.collectors() {
				collectors[c] = true
			}
			all = append(all, r.Targets(job)...)
		}
		if q := req.URL.Query(); q.Has("collector_id") {
			id := q.Get("collector_id")
			list := []*targetJSON{}
			for _, t := range all {
				if t.Owner == id {
					list = append(list, toTargetJSON(t))
				}
			}
			writeJSON(w, list)
			return
		}
		out := map[string]collectorJSON{}
		for c := range collectors {
			out[c] = collectorJSON{Link: collectorLink(job, c), Targets: []*targetJSON{}}
		}
		for _, t := range all {
			if t.Owner == "" {
				continue
			}
			c, ok := out[t.Owner]
			if !ok {
				c = collectorJSON{Link: collectorLink(job, t.Owner), Targets: []*targetJSON{}}
			}
			c.Targets = append(c.Targets, toTargetJSON(t))
			out[t.Owner] = c
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /scrape_configs", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]any{}
		for _, r := range receivers {
			for job, sc := range r.scfgs {
				v, err := scrapeConfigJSON(sc)
				if err != nil {
					http.Error(w, fmt.Sprintf("marshal scrape config %q: %v", job, err), http.StatusInternalServerError)
					return
				}
				out[job] = v
			}
		}
		writeJSON(w, out)
	})
	return mux
}

// collectors names the members that scrape for this receiver's jobs,
// idle ones included: every live member in cluster mode, else this one.
func (r *PrometheusReceiver) collectors() []string {
	sh := r.shard.sh
	var out []string
	if r.shard.mode == ShardCluster && sh.Members != nil {
		for _, m := range sh.Members() {
			out = append(out, m.Name)
		}
	}
	if sh.Self != "" && !slices.Contains(out, sh.Self) {
		out = append(out, sh.Self)
	}
	return out
}

func collectorLink(job, collector string) string {
	return "/jobs/" + url.QueryEscape(job) + "/targets?collector_id=" + url.QueryEscape(collector)
}

func toTargetJSON(t TargetInfo) *targetJSON {
	return &targetJSON{Targets: []string{t.Address}, Labels: t.Labels}
}

// scrapeConfigJSON renders a scrape config as the Target Allocator does:
// Prometheus' own YAML marshalling (secrets shown as <secret>), as JSON.
func scrapeConfigJSON(sc *promconfig.ScrapeConfig) (any, error) {
	b, err := yamlv2.Marshal(sc)
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return jsonSafe(v), nil
}

// jsonSafe turns yaml's map[any]any leftovers into JSON-encodable maps.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonSafe(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonSafe(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonSafe(e)
		}
		return x
	}
	return v
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// TargetsTable renders who scrapes what, one line per target, for
// `obs targets [--job J]`.
func TargetsTable(receivers []*PrometheusReceiver, job string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-24s %-40s %s\n", "JOB", "TARGET", "SCRAPED BY")
	for _, r := range receivers {
		for _, j := range r.Jobs() {
			if job != "" && j != job {
				continue
			}
			ts := r.Targets(j)
			slices.SortFunc(ts, func(a, b TargetInfo) int { return strings.Compare(a.Address, b.Address) })
			for _, t := range ts {
				owner := t.Owner
				if owner == "" {
					owner = "-"
				}
				fmt.Fprintf(&b, "%-24s %-40s %s\n", j, t.Address, owner)
			}
		}
	}
	return b.String()
}
