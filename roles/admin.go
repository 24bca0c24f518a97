package roles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/obs-dev/obs/scrape"
	dto "github.com/prometheus/client_model/go"
)

// adminServer is the one admin port: /metrics, /healthz, /readyz,
// /config, /cluster and a status page.
type adminServer struct {
	ln    net.Listener
	srv   *http.Server
	rates *rates
}

func (rt *runtime) newAdmin() (*adminServer, error) {
	ln, err := net.Listen("tcp", rt.opts.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("admin port: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(rt.reg, promhttp.HandlerOpts{Registry: rt.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if problems := rt.problems(); len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(problems, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		b, err := rt.plan.file.Redacted()
		if err != nil {
			http.Error(w, "render config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		if rt.node == nil {
			http.Error(w, "clustering is off (--no-cluster)", http.StatusNotFound)
			return
		}
		rt.node.Handler().ServeHTTP(w, r)
	})
	// The Target Allocator's API, for the whole cluster, from any member.
	ta := scrape.Handler(rt.scrapers...)
	mux.Handle("GET /jobs", ta)
	mux.Handle("GET /jobs/", ta)
	mux.Handle("GET /scrape_configs", ta)
	rs := newRates(rt.rateCounters)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { rt.statusPage(w, rs) })
	return &adminServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, rates: rs}, nil
}

func (a *adminServer) Addr() string { return a.ln.Addr().String() }

func (a *adminServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	rctx, stopRates := context.WithCancel(ctx)
	defer stopRates()
	go a.rates.run(rctx)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *adminServer) Close() error { return a.ln.Close() }

// problems lists why this member is not ready; empty means ready.
func (rt *runtime) problems() []string {
	var out []string
	if err := rt.db.Healthy(); err != nil {
		out = append(out, "wal: "+err.Error())
	}
	if err := rt.clusterErr.Load(); err != nil {
		out = append(out, "cluster: "+(*err).Error())
	}
	if rt.k8sCache != nil && !rt.k8sCache.Synced() {
		out = append(out, "k8sattributes: the kubernetes cache has not synced (is the API server reachable, and may this service account list and watch pods, namespaces and replicasets?)")
	}
	for _, name := range rt.sys.Unhealthy() {
		out = append(out, "component "+name+": keeps failing (restarting with backoff)")
	}
	return out
}

type queueRow struct {
	Name                 string
	Entries, Bytes, Dead int64
	Oldest               string
	Sent, Failed         float64
	// Per second over the last rateWindow; "-" until two samples exist.
	AppendRate, SentRate, FailedRate string
}

type pipelineRow struct {
	pipelineInfo
	InRate string // records/s accepted by the pipeline's receivers
}

var statusTmpl = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>obs {{.Node}}</title>
<meta http-equiv="refresh" content="5">
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}th{background:#f3f3f3}.bad{color:#b00}.ok{color:#070}</style></head>
<body><h1>obs {{.Node}}</h1>
<p>role <b>{{.Role}}</b>, version {{.Version}}, up {{.Uptime}}; data goes to {{.Dest}}.
{{if .Problems}}<span class="bad">Not ready:</span><ul>{{range .Problems}}<li class="bad">{{.}}</li>{{end}}</ul>{{else}}<span class="ok">Ready.</span>{{end}}</p>
<p>Rates are per second over the last {{.Window}}.</p>
<h2>Pipelines</h2><table><tr><th>pipeline</th><th>receivers</th><th>processors</th><th>exporters</th><th>records/s in</th></tr>
{{range .Pipelines}}<tr><td>{{.ID}}</td><td>{{range .Receivers}}{{.}} {{end}}</td><td>{{range .Processors}}{{.}} {{end}}</td><td>{{range .Exporters}}{{.}} {{end}}</td><td class="rate">{{.InRate}}</td></tr>{{end}}</table>
<h2>Exporter queues (WAL)</h2><table><tr><th>exporter</th><th>records/s queued</th><th>records/s sent</th><th>records/s failed</th><th>entries</th><th>bytes</th><th>oldest</th><th>dead letters</th><th>items sent</th><th>items failed (retried)</th></tr>
{{range .Queues}}<tr><td>{{.Name}}</td><td class="rate">{{.AppendRate}}</td><td class="rate">{{.SentRate}}</td><td class="rate">{{.FailedRate}}</td><td>{{.Entries}}</td><td>{{.Bytes}}</td><td>{{.Oldest}}</td><td>{{.Dead}}</td><td>{{printf "%.0f" .Sent}}</td><td>{{printf "%.0f" .Failed}}</td></tr>{{end}}</table>
<h2>Mailboxes</h2><table><tr><th>component</th><th>queued</th><th>capacity</th></tr>
{{range .Mailboxes}}<tr><td>{{.Name}}</td><td>{{.Len}}</td><td>{{.Cap}}</td></tr>{{end}}</table>
{{if .Members}}<h2>Cluster</h2><table><tr><th>member</th><th>role</th><th>state</th><th>address</th></tr>
{{range .Members}}<tr><td>{{.Name}}</td><td>{{.Meta.Role}}</td><td>{{.State}}</td><td>{{.Address}}</td></tr>{{end}}</table>
<h2>Duties</h2><table><tr><th>owner</th><th>count</th><th>duties</th></tr>
{{range .Duties}}<tr><td>{{if .Member}}{{.Member}}{{else}}<span class="bad">no gateway</span>{{end}}</td><td>{{.Count}}</td><td>{{.List}}</td></tr>{{end}}</table>{{end}}
<p><a href="/metrics">/metrics</a> · <a href="/config">/config</a> · <a href="/cluster">/cluster</a> · <a href="/readyz">/readyz</a></p>
</body></html>`))

func (rt *runtime) statusPage(w http.ResponseWriter, rs *rates) {
	sent, failed := rt.counterSums("otelcol_exporter_sent_items_total"), rt.counterSums("otelcol_exporter_send_failed_items_total")
	rs.sample(time.Now())
	perSec := rs.perSecond()
	var queues []queueRow
	for id, q := range rt.queues {
		st := q.Stats()
		name := id.String()
		queues = append(queues, queueRow{Name: name, Entries: st.Entries, Bytes: st.Bytes, Dead: st.DeadEntries,
			Oldest: st.OldestAge.Round(time.Millisecond).String(), Sent: sent[name], Failed: failed[name],
			AppendRate: perSec.format(rateKey(rateAppended, name)),
			SentRate:   perSec.format(rateKey(rateSent, name)),
			FailedRate: perSec.format(rateKey(rateFailed, name))})
	}
	pipes := make([]pipelineRow, 0, len(rt.pipeInfo))
	for _, p := range rt.pipeInfo {
		pipes = append(pipes, pipelineRow{pipelineInfo: p, InRate: perSec.pipelineIn(p)})
	}
	sort.Slice(queues, func(i, j int) bool { return queues[i].Name < queues[j].Name })
	type mbox struct {
		Name     string
		Len, Cap int
	}
	var boxes []mbox
	for _, r := range rt.sys.Refs() {
		boxes = append(boxes, mbox{r.Name(), r.Len(), r.Cap()})
	}
	data := map[string]any{
		"Node": rt.opts.NodeName, "Role": rt.opts.Role, "Version": rt.opts.Version,
		"Uptime": time.Since(rt.started).Round(time.Second).String(), "Dest": rt.dest,
		"Problems": rt.problems(), "Pipelines": pipes, "Queues": queues, "Mailboxes": boxes,
		"Window": rateWindow.String(),
	}
	if rt.node != nil {
		data["Members"] = rt.node.Members()
		type dutyRow struct {
			Member string
			Count  int
			List   string
		}
		var duties []dutyRow
		for _, d := range rt.node.Snapshot().Duties {
			duties = append(duties, dutyRow{Member: d.Member, Count: d.Count, List: shortList(d.Duties, 20)})
		}
		data["Duties"] = duties
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTmpl.Execute(w, data); err != nil {
		fmt.Fprintf(w, "<p>render: %s</p>", template.HTMLEscapeString(err.Error()))
	}
}

// counterSums adds up a counter family by its exporter label.
func (rt *runtime) counterSums(name string) map[string]float64 {
	out := map[string]float64{}
	mfs, err := rt.reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[label(m, "exporter")] += m.GetCounter().GetValue()
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// PrintMembers asks a running member's admin port for /cluster and prints
// the members as a table.
func PrintMembers(ctx context.Context, w io.Writer, adminAddr string) error {
	var view struct {
		Members []struct {
			Name    string    `json:"name"`
			Role    string    `json:"role"`
			State   string    `json:"state"`
			Address string    `json:"address"`
			Version string    `json:"version"`
			Since   time.Time `json:"since"`
		} `json:"members"`
		Leaders map[string]string `json:"leaders"`
		Duties  []struct {
			Member string   `json:"member"`
			Count  int      `json:"count"`
			Duties []string `json:"duties"`
		} `json:"duties"`
	}
	if err := getJSON(ctx, adminAddr, "/cluster", &view); err != nil {
		return err
	}
	fmt.Fprintf(w, "%-24s %-8s %-8s %-22s %-12s %s\n", "NAME", "ROLE", "STATE", "ADDRESS", "VERSION", "SINCE")
	for _, m := range view.Members {
		fmt.Fprintf(w, "%-24s %-8s %-8s %-22s %-12s %s\n", m.Name, m.Role, m.State, m.Address, m.Version, m.Since.Format(time.RFC3339))
	}
	leaders := make([]string, 0, len(view.Leaders))
	for duty := range view.Leaders {
		leaders = append(leaders, duty)
	}
	sort.Strings(leaders)
	for _, duty := range leaders {
		fmt.Fprintf(w, "leader of %s: %s\n", duty, view.Leaders[duty])
	}
	// Every duty, per-namespace ones included, grouped by owner: one line
	// per member however many namespaces there are.
	for _, d := range view.Duties {
		owner := d.Member
		if owner == "" {
			owner = "(no gateway)"
		}
		fmt.Fprintf(w, "duties of %s (%d): %s\n", owner, d.Count, shortList(d.Duties, 10))
	}
	return nil
}

// shortList joins the first limit items and says how many more there are.
func shortList(items []string, limit int) string {
	if len(items) <= limit {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s, … %d more", strings.Join(items[:limit], ", "), len(items)-limit)
}

// PrintTargets asks a running member's Target Allocator API who scrapes
// what, for one job or all, and prints it.
func PrintTargets(ctx context.Context, w io.Writer, adminAddr, job string) error {
	get := func(path string, v any) error { return getJSON(ctx, adminAddr, path, v) }
	var jobs []string
	if job != "" {
		jobs = []string{job}
	} else {
		var all map[string]json.RawMessage
		if err := get("/jobs", &all); err != nil {
			return err
		}
		for j := range all {
			jobs = append(jobs, j)
		}
		sort.Strings(jobs)
	}
	fmt.Fprintf(w, "%-24s %-24s %s\n", "JOB", "COLLECTOR", "TARGET")
	for _, j := range jobs {
		var byCollector map[string]struct {
			Targets []struct {
				Targets []string `json:"targets"`
			} `json:"targets"`
		}
		if err := get("/jobs/"+url.PathEscape(j)+"/targets", &byCollector); err != nil {
			return err
		}
		collectors := make([]string, 0, len(byCollector))
		for c := range byCollector {
			collectors = append(collectors, c)
		}
		sort.Strings(collectors)
		for _, c := range collectors {
			for _, g := range byCollector[c].Targets {
				for _, t := range g.Targets {
					fmt.Fprintf(w, "%-24s %-24s %s\n", j, c, t)
				}
			}
		}
	}
	return nil
}

// getJSON asks a running member's admin port for path and decodes the
// JSON answer into v.
func getJSON(ctx context.Context, adminAddr, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", adminAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ask %s%s: %s", adminAddr, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
