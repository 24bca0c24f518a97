package roles

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/config"
	"github.com/obs-dev/obs/enrich"
)

// plan is a checked configuration: every used component decoded and
// validated, and the pipelines in the order they must be built.
type plan struct {
	file     *config.File
	settings map[kind]map[config.ID]any
	// order lists pipelines so that a pipeline comes after every pipeline
	// it feeds through a connector (build consumers first).
	order []*config.Pipeline
	// signals of each pipeline
	signal map[config.PipelineID]actors.Signal
}

// loadPlan reads the file (or the role's default when path is empty) and
// checks everything that can be checked without starting: every error is
// collected, each naming its file, line and key.
func loadPlan(path string, role Role, dataDir string, lenient bool, lookup func(string) (string, bool)) (*plan, string, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	opts := config.Options{LookupEnv: lookup, Lenient: lenient}
	var (
		f    *config.File
		err  error
		dest string
	)
	if path == "" {
		var y string
		y, dest = defaultConfig(role, dataDir, lookup)
		f, err = config.Parse("built-in config of role "+string(role), []byte(y), opts)
	} else {
		f, err = config.Load(path, opts)
	}
	// Structural errors do not stop the component checks below, so one
	// run reports every problem of the file.
	var errs config.Errors
	if err != nil && (f == nil || !errors.As(err, &errs)) {
		return &plan{file: f}, dest, err
	}
	p := &plan{file: f, settings: map[kind]map[config.ID]any{}, signal: map[config.PipelineID]actors.Signal{}}
	fail := func(line int, path, format string, args ...any) {
		errs = append(errs, &config.Error{File: f.Path, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
	}

	table := components()
	sections := map[kind]map[config.ID]*config.Component{
		kindReceiver: f.Receivers, kindProcessor: f.Processors, kindExporter: f.Exporters, kindConnector: f.Connectors,
	}
	for _, k := range []kind{kindReceiver, kindProcessor, kindExporter, kindConnector} {
		p.settings[k] = map[config.ID]any{}
		for _, id := range sortedIDs(sections[k]) {
			c := sections[k][id]
			path := string(k) + "." + id.String()
			t, ok := table[k][id.Type]
			if !ok {
				fail(c.Line, path, "unknown %s type %q (known: %s)", k.singular(), id.Type, typeNames(table[k]))
				continue
			}
			v, err := t.decode(c)
			if err != nil {
				var ce *config.Error
				var ces config.Errors
				switch {
				case errors.As(err, &ces):
					errs = append(errs, ces...)
				case errors.As(err, &ce):
					errs = append(errs, ce)
				default:
					fail(c.Line, path, "%s", strings.TrimPrefix(err.Error(), id.String()+": "))
				}
				continue
			}
			p.settings[k][id] = v
		}
	}

	pipes := make([]*config.Pipeline, 0, len(f.Pipelines))
	for _, pl := range f.Pipelines {
		pipes = append(pipes, pl)
	}
	sort.Slice(pipes, func(i, j int) bool { return pipes[i].ID.String() < pipes[j].ID.String() })
	for _, pl := range pipes {
		sig, err := actors.ParseSignal(pl.ID.Signal)
		if err != nil {
			fail(pl.Line, "service.pipelines."+pl.ID.String(), "%v", err)
			continue
		}
		p.signal[pl.ID] = sig
		check := func(ids []config.ID, k kind, list string) {
			for _, id := range ids {
				kk := k
				if _, ok := f.Connectors[id]; ok && k != kindProcessor {
					kk = kindConnector
				}
				t, ok := table[kk][id.Type]
				if !ok {
					continue // reported above
				}
				if !slices.Contains(t.signals, sig) {
					fail(pl.Line, "service.pipelines."+pl.ID.String()+"."+list,
						"%s %q does not support %s", kk.singular(), id, sig)
				}
			}
		}
		for _, id := range pl.Processors {
			// Some keys of attributes apply to one signal only.
			if ac, ok := p.settings[kindProcessor][id].(enrich.AttributesConfig); ok {
				if err := ac.ValidateFor(sig); err != nil {
					fail(pl.Line, "service.pipelines."+pl.ID.String()+".processors", "%s: %v", id, err)
				}
			}
		}
		check(pl.Receivers, kindReceiver, "receivers")
		check(pl.Processors, kindProcessor, "processors")
		check(pl.Exporters, kindExporter, "exporters")
	}
	if len(errs) == 0 {
		order, err := buildOrder(pipes, f)
		if err != nil {
			fail(0, "service.pipelines", "%v", err)
		}
		p.order = order
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return p, dest, errs
	}
	return p, dest, nil
}

// buildOrder sorts pipelines so that consumers of a connector come before
// the pipelines exporting to it, and rejects cycles.
func buildOrder(pipes []*config.Pipeline, f *config.File) ([]*config.Pipeline, error) {
	// feeds[a] = pipelines a sends to through connectors.
	feeds := map[config.PipelineID][]*config.Pipeline{}
	for _, a := range pipes {
		for _, e := range a.Exporters {
			if _, ok := f.Connectors[e]; !ok {
				continue
			}
			for _, b := range pipes {
				if slices.Contains(b.Receivers, e) {
					feeds[a.ID] = append(feeds[a.ID], b)
				}
			}
		}
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := map[config.PipelineID]int{}
	var order []*config.Pipeline
	var visit func(p *config.Pipeline, path []string) error
	visit = func(p *config.Pipeline, path []string) error {
		switch state[p.ID] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("connectors form a cycle: %s", strings.Join(append(path, p.ID.String()), " → "))
		}
		state[p.ID] = visiting
		for _, q := range feeds[p.ID] {
			if err := visit(q, append(path, p.ID.String())); err != nil {
				return err
			}
		}
		state[p.ID] = done
		order = append(order, p)
		return nil
	}
	for _, p := range pipes {
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func sortedIDs(m map[config.ID]*config.Component) []config.ID {
	ids := make([]config.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	return ids
}

// summary is validate's one line: each pipeline as receivers → processors → exporters.
func (p *plan) summary() string {
	var parts []string
	for _, pl := range p.order {
		parts = append(parts, fmt.Sprintf("%s: %s → %s → %s", pl.ID, joinIDs(pl.Receivers), joinIDs(pl.Processors), joinIDs(pl.Exporters)))
	}
	sort.Strings(parts)
	return fmt.Sprintf("ok: %d pipelines; %s", len(parts), strings.Join(parts, "; "))
}

func joinIDs(ids []config.ID) string {
	if len(ids) == 0 {
		return "-"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return strings.Join(s, ",")
}

// Validate loads, expands and checks a config without starting anything.
// Unset variables are warnings here, so CI can check a config without its
// secrets.
func Validate(path string, role Role) (summary string, warnings []string, err error) {
	p, _, err := loadPlan(path, role, "data", true, nil)
	if p != nil && p.file != nil {
		warnings = p.file.Warnings
	}
	if err != nil {
		return "", warnings, err
	}
	return p.summary(), warnings, nil
}
