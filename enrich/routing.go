package enrich

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// RoutingConfig is the Collector's `routing` connector configuration.
type RoutingConfig struct {
	// DefaultPipelines receive resources no route matched.
	DefaultPipelines []string `yaml:"default_pipelines"`
	// ErrorMode is accepted for compatibility (propagate, ignore, silent).
	ErrorMode string `yaml:"error_mode"`
	// MatchOnce is accepted for compatibility; obs always routes a
	// resource to its first matching route, as the Collector now does.
	MatchOnce *bool `yaml:"match_once"`
	// Table lists the routes in order.
	Table []Route `yaml:"table"`
}

// Route is one entry of the routing table. obs understands the OTTL
// subset used for routing by resource: `true`, `false`, and
// resource.attributes["key"] == "value" (or !=), joined with `and`.
type Route struct {
	Statement string   `yaml:"statement"` // route() where <condition>
	Condition string   `yaml:"condition"`
	Context   string   `yaml:"context"`
	Pipelines []string `yaml:"pipelines"`
}

// Validate checks that every route parses and names pipelines.
func (c RoutingConfig) Validate() error {
	if len(c.Table) == 0 {
		return fmt.Errorf("table: at least one route is required")
	}
	for i, r := range c.Table {
		if _, err := r.compile(); err != nil {
			return fmt.Errorf("table[%d]: %w", i, err)
		}
		if len(r.Pipelines) == 0 {
			return fmt.Errorf("table[%d].pipelines: at least one pipeline is required", i)
		}
	}
	return nil
}

type match func(pcommon.Map) bool

type clause struct {
	key, value string
	equal      bool
}

func (r Route) compile() (match, error) {
	cond := strings.TrimSpace(r.Condition)
	if r.Statement != "" {
		if cond != "" {
			return nil, fmt.Errorf("set statement or condition, not both")
		}
		s := strings.TrimSpace(r.Statement)
		rest, ok := strings.CutPrefix(s, "route()")
		if !ok {
			return nil, fmt.Errorf("statement: want `route() where <condition>`")
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			cond = "true"
		} else if c, ok := strings.CutPrefix(rest, "where "); ok {
			cond = strings.TrimSpace(c)
		} else {
			return nil, fmt.Errorf("statement: want `route() where <condition>`")
		}
	}
	if cond == "" {
		return nil, fmt.Errorf("condition: required")
	}
	switch cond {
	case "true":
		return func(pcommon.Map) bool { return true }, nil
	case "false":
		return func(pcommon.Map) bool { return false }, nil
	}
	var clauses []clause
	for _, part := range strings.Split(cond, " and ") {
		c, err := parseClause(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("condition %q: %w", cond, err)
		}
		clauses = append(clauses, c)
	}
	return func(attrs pcommon.Map) bool {
		for _, c := range clauses {
			v, ok := attrs.Get(c.key)
			eq := ok && v.AsString() == c.value
			if eq != c.equal {
				return false
			}
		}
		return true
	}, nil
}

func parseClause(s string) (clause, error) {
	op, equal := "==", true
	if strings.Contains(s, "!=") {
		op, equal = "!=", false
	}
	lhs, rhs, ok := strings.Cut(s, op)
	if !ok {
		return clause{}, fmt.Errorf("obs supports only true, false and resource.attributes[\"k\"] == \"v\" joined by and")
	}
	lhs, rhs = strings.TrimSpace(lhs), strings.TrimSpace(rhs)
	key, ok := strings.CutPrefix(lhs, "resource.attributes[")
	if !ok || !strings.HasSuffix(key, "]") {
		return clause{}, fmt.Errorf("left side %q: want resource.attributes[\"key\"]", lhs)
	}
	k, err := strconv.Unquote(strings.TrimSuffix(key, "]"))
	if err != nil {
		return clause{}, fmt.Errorf("attribute key %s: want a quoted string", key)
	}
	v, err := strconv.Unquote(rhs)
	if err != nil {
		return clause{}, fmt.Errorf("right side %s: want a quoted string", rhs)
	}
	return clause{key: k, value: v, equal: equal}, nil
}

// Routing is the connector stage: it sends each resource of a batch to the
// pipelines of its first matching route, or to the default pipelines.
type Routing struct {
	routes   []compiledRoute
	defaults []*actors.Ref
	unrouted prometheus.Counter
}

type compiledRoute struct {
	match   match
	targets []*actors.Ref
}

// NewRouting builds the stage; pipelines maps a pipeline id to its first
// stage. Every pipeline the config names must be there.
func NewRouting(id string, cfg RoutingConfig, pipelines map[string]*actors.Ref, reg prometheus.Registerer) (*Routing, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	refs := func(names []string, path string) ([]*actors.Ref, error) {
		var out []*actors.Ref
		for _, n := range names {
			r, ok := pipelines[n]
			if !ok {
				return nil, fmt.Errorf("%s: pipeline %q does not take %s as a receiver", path, n, id)
			}
			out = append(out, r)
		}
		return out, nil
	}
	r := &Routing{}
	for i, rt := range cfg.Table {
		m, _ := rt.compile()
		t, err := refs(rt.Pipelines, fmt.Sprintf("table[%d].pipelines", i))
		if err != nil {
			return nil, err
		}
		r.routes = append(r.routes, compiledRoute{match: m, targets: t})
	}
	d, err := refs(cfg.DefaultPipelines, "default_pipelines")
	if err != nil {
		return nil, err
	}
	r.defaults = d
	r.unrouted = prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "obs_enrich_routing_unrouted_items_total",
		Help:        "Items that matched no route and had no default pipeline: dropped, and counted here.",
		ConstLabels: prometheus.Labels{"connector": id},
	})
	if reg != nil {
		if err := reg.Register(r.unrouted); err != nil {
			return nil, fmt.Errorf("register routing metrics: %w", err)
		}
	}
	return r, nil
}

// Consume implements actors.Stage.
func (r *Routing) Consume(ctx context.Context, env *actors.Envelope, _ actors.Emit) {
	if err := env.Batch.Decode(); err != nil { // routes read resource attributes
		env.Ack.Done(err)
		return
	}
	// Split by route; the common case (one route takes everything) passes
	// the batch on without copying.
	n := resourceCount(env.Batch)
	routeOf := make([]int, n) // route index per resource, -1 for default
	same := true
	for i := 0; i < n; i++ {
		routeOf[i] = -1
		attrs := resourceAttrs(env.Batch, i)
		for j, rt := range r.routes {
			if rt.match(attrs) {
				routeOf[i] = j
				break
			}
		}
		same = same && routeOf[i] == routeOf[0]
	}
	groups := map[int]actors.Batch{}
	var order []int
	if same && n > 0 {
		groups[routeOf[0]] = env.Batch
		order = append(order, routeOf[0])
	} else {
		for i, idx := range routeOf {
			if _, ok := groups[idx]; !ok {
				groups[idx] = env.Batch.Empty()
				order = append(order, idx)
			}
			copyResource(env.Batch, i, groups[idx])
		}
	}
	type out struct {
		b actors.Batch
		r *actors.Ref
	}
	var outs []out
	for _, idx := range order {
		targets := r.defaults
		if idx >= 0 {
			targets = r.routes[idx].targets
		}
		b := groups[idx]
		if len(targets) == 0 {
			r.unrouted.Add(float64(b.Items()))
			continue
		}
		for k, t := range targets {
			bb := b
			if k > 0 {
				bb = b.Clone()
			}
			outs = append(outs, out{bb, t})
		}
	}
	if len(outs) == 0 {
		env.Ack.Done(nil)
		return
	}
	env.Ack.Add(len(outs) - 1)
	for _, o := range outs {
		e := &actors.Envelope{Batch: o.b, Origin: env.Origin, Peer: env.Peer, Ack: env.Ack, Extra: env.Extra}
		if err := o.r.Send(ctx, e); err != nil {
			env.Ack.Done(err)
		}
	}
}

func resourceCount(b actors.Batch) int {
	switch b.Signal {
	case actors.SignalLogs:
		return b.Logs.ResourceLogs().Len()
	case actors.SignalMetrics:
		return b.Metrics.ResourceMetrics().Len()
	case actors.SignalTraces:
		return b.Traces.ResourceSpans().Len()
	}
	return 0
}

func resourceAttrs(b actors.Batch, i int) pcommon.Map {
	switch b.Signal {
	case actors.SignalLogs:
		return b.Logs.ResourceLogs().At(i).Resource().Attributes()
	case actors.SignalMetrics:
		return b.Metrics.ResourceMetrics().At(i).Resource().Attributes()
	default:
		return b.Traces.ResourceSpans().At(i).Resource().Attributes()
	}
}

func copyResource(src actors.Batch, i int, dst actors.Batch) {
	switch src.Signal {
	case actors.SignalLogs:
		src.Logs.ResourceLogs().At(i).CopyTo(dst.Logs.ResourceLogs().AppendEmpty())
	case actors.SignalMetrics:
		src.Metrics.ResourceMetrics().At(i).CopyTo(dst.Metrics.ResourceMetrics().AppendEmpty())
	case actors.SignalTraces:
		src.Traces.ResourceSpans().At(i).CopyTo(dst.Traces.ResourceSpans().AppendEmpty())
	}
}
