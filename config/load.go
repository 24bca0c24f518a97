// Package config loads, expands and checks obs' configuration: the
// OpenTelemetry Collector's YAML shape (receivers, processors, exporters,
// connectors, extensions, service) plus obs' own cluster and wal sections.
//
// It checks structure only — ids, references, pipelines, connectors, keys —
// and keeps each component's settings as a yaml node for the package that
// knows the component type to Decode. Every problem is an *Error that names
// the file, line and key path; Load reports all of them at once.
package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Component is one entry of receivers, processors, exporters, connectors or
// extensions.
type Component struct {
	ID ID
	// Node holds the component's settings after expansion; it is a null
	// scalar for "batch:" and an empty mapping for "batch: {}".
	Node *yaml.Node
	// Line is the line of the component's key.
	Line int

	file  string
	path  string
	whole map[*yaml.Node]bool
}

// Pipeline is one entry of service.pipelines.
type Pipeline struct {
	ID                               PipelineID
	Receivers, Processors, Exporters []ID
	Line                             int
}

// Telemetry is what obs takes from service.telemetry.
type Telemetry struct {
	// MetricsAddr is host:port of the self-metrics endpoint, from
	// metrics.readers[].pull.exporter.prometheus or the older
	// metrics.address; empty when not set.
	MetricsAddr string
	// MetricsLevel is none, basic, normal or detailed; empty when not set.
	MetricsLevel string
	// LogsLevel is debug, info, warn or error (lowercased); empty when not set.
	LogsLevel string
}

// ClusterSection is the top-level cluster section.
type ClusterSection struct {
	// Bind is the gossip listen address, host:port.
	Bind string `yaml:"bind"`
	// Advertise is the address other members reach this one at, host:port.
	Advertise string `yaml:"advertise"`
	// Join lists host names or addresses of members to join.
	Join []string `yaml:"join"`
	// Name is the cluster name; it also seeds scrape offsets.
	Name string `yaml:"name"`
	// KeyFile is the path of the gossip encryption key.
	KeyFile string `yaml:"key_file"`
	// NodeName defaults (elsewhere) to the host name.
	NodeName string `yaml:"node_name"`
}

// WALSection is the top-level wal section.
type WALSection struct {
	// MaxBytes caps the WAL's size on disk; 0 means the wal package default.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Dir is the WAL directory; empty means the default data dir.
	Dir string `yaml:"dir"`
	// Compression of stored entries: auto, s2 or none; empty means the
	// role's default.
	Compression string `yaml:"compression"`
	// ValueLogFileBytes is the size of badger's value-log files (1 MiB to
	// under 1 GiB); 0 means the role's default.
	ValueLogFileBytes ByteSize `yaml:"value_log_file_bytes"`
}

// checkWAL reports values of the wal section that decode but are out of
// range, at their own line.
func (p *parser) checkWAL(n *yaml.Node) {
	for k, v := range pairs(n) {
		switch k.Value {
		case "compression":
			switch p.f.WAL.Compression {
			case "", "auto", "s2", "none": // as the wal package names them
			default:
				p.fail(v, "wal.compression", "want auto, s2 or none")
			}
		case "value_log_file_bytes":
			if b := p.f.WAL.ValueLogFileBytes; b != 0 && (b < 1<<20 || b >= 1<<30) {
				p.fail(v, "wal.value_log_file_bytes", "want from 1MiB to under 1GiB")
			}
		}
	}
}

// File is one loaded configuration.
type File struct {
	Path                                                     string
	Receivers, Processors, Exporters, Connectors, Extensions map[ID]*Component
	Pipelines                                                map[PipelineID]*Pipeline
	ServiceExtensions                                        []ID
	Telemetry                                                Telemetry
	Cluster                                                  ClusterSection
	WAL                                                      WALSection
	// Warnings are problems that do not stop a load, each formatted like
	// an Error ("FILE:LINE: PATH: MSG") and sorted by line: unused components, ignored
	// extensions and telemetry settings, unset variables in lenient mode.
	Warnings []string
	// Root is the expanded document; see Redacted.
	Root *yaml.Node
}

// Options change how a file is read.
type Options struct {
	// LookupEnv finds ${env:VAR} and ${VAR}; default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads ${file:PATH}; default os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Lenient turns an unset variable without a default into a warning
	// (the value becomes ""), for `obs validate`.
	Lenient bool
}

func (o Options) withDefaults() Options {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	return o
}

// Load reads and parses the file at path; see Parse.
func Load(path string, opts Options) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data, opts)
}

// Parse parses data, naming it name in errors. It returns every problem it
// finds as Errors, sorted by line. On error the File is still returned,
// partly filled, so that its Warnings can be shown; do not run it.
func Parse(name string, data []byte, opts Options) (*File, error) {
	p := &parser{
		file: name,
		f: &File{
			Path:       name,
			Receivers:  map[ID]*Component{},
			Processors: map[ID]*Component{},
			Exporters:  map[ID]*Component{},
			Connectors: map[ID]*Component{},
			Extensions: map[ID]*Component{},
			Pipelines:  map[PipelineID]*Pipeline{},
		},
		whole: map[*yaml.Node]bool{},
	}
	p.parse(data, opts.withDefaults())
	p.warns.sort()
	for _, w := range p.warns {
		p.f.Warnings = append(p.f.Warnings, w.Error())
	}
	return p.f, p.errs.errOrNil()
}

// Section and key names.
const (
	kindReceivers  = "receivers"
	kindProcessors = "processors"
	kindExporters  = "exporters"
	kindConnectors = "connectors"
	kindExtensions = "extensions"
)

// ignoredExtensions are Collector extensions obs accepts and does not run:
// its admin port already serves health, profiles and status.
var ignoredExtensions = []string{"health_check", "pprof", "zpages", "file_storage"}

type parser struct {
	file  string
	f     *File
	errs  Errors
	warns Errors
	whole map[*yaml.Node]bool
}

func (p *parser) fail(n *yaml.Node, path, msg string) {
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Column: n.Column, Path: path, Msg: msg})
}

func (p *parser) warn(line int, path, msg string) {
	p.warns = append(p.warns, &Error{File: p.file, Line: line, Path: path, Msg: msg})
}

func (p *parser) parse(data []byte, opts Options) {
	var doc yaml.Node
	if err := unmarshalNode(data, &doc); err != nil {
		p.errs = append(p.errs, yamlError(p.file, err))
		return
	}
	p.f.Root = &doc
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		p.errs = append(p.errs, &Error{File: p.file, Line: 1, Msg: "config is empty"})
		return
	}
	root := resolveAlias(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.fail(root, "", "want a mapping at the top level")
		return
	}
	p.duplicates(root, "", map[*yaml.Node]bool{}, map[*yaml.Node]bool{})
	if len(p.errs) > 0 {
		return // a cyclic alias would make the walks below loop
	}
	p.merges(root, "", map[*yaml.Node]bool{})
	x := &expander{file: p.file, opts: opts, errs: &p.errs, warns: &p.warns, whole: p.whole, seen: map[*yaml.Node]bool{}}
	x.walk(root, "")

	var service *yaml.Node
	for k, v := range pairs(root) {
		switch k.Value {
		case kindReceivers:
			p.components(v, kindReceivers, p.f.Receivers)
		case kindProcessors:
			p.components(v, kindProcessors, p.f.Processors)
		case kindExporters:
			p.components(v, kindExporters, p.f.Exporters)
		case kindConnectors:
			p.components(v, kindConnectors, p.f.Connectors)
		case kindExtensions:
			p.components(v, kindExtensions, p.f.Extensions)
		case "service":
			service = v
			if !isNull(v) && v.Kind != yaml.MappingNode {
				p.fail(v, "service", "want a mapping")
				service = nil
			}
		case "cluster":
			p.decodeSection(v, "cluster", &p.f.Cluster)
		case "wal":
			p.decodeSection(v, "wal", &p.f.WAL)
			p.checkWAL(v)
		default:
			p.fail(k, k.Value, "unknown key")
		}
	}
	p.service(root, service)
}

// pairs iterates a mapping's keys and values, resolving aliases; keys that
// are not scalars are skipped (duplicates reports them).
func pairs(n *yaml.Node) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolveAlias(n.Content[i]), resolveAlias(n.Content[i+1])
			if k.Kind != yaml.ScalarNode {
				continue
			}
			if !yield(k, v) {
				return
			}
		}
	}
}

// duplicates reports keys defined twice in one mapping, anywhere in the
// document, and non-scalar keys. yaml.v3 checks this only when decoding
// into Go values, not into a Node. It also reports an alias to a node that
// contains it, which yaml.v3 accepts when parsing into a Node.
func (p *parser) duplicates(n *yaml.Node, path string, seen, active map[*yaml.Node]bool) {
	if n.Kind == yaml.AliasNode && n.Alias != nil && active[n.Alias] {
		p.fail(n, path, "alias refers to a node that contains it")
		return
	}
	if seen[n] {
		return
	}
	seen[n] = true
	active[n] = true
	defer delete(active, n)
	switch n.Kind {
	case yaml.MappingNode:
		first := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				p.fail(k, path, "want a string key")
				continue
			}
			kp := joinPath(path, k.Value)
			if line, dup := first[k.Value]; dup {
				p.fail(k, kp, fmt.Sprintf("duplicate key, first defined at line %d", line))
			} else {
				first[k.Value] = k.Line
			}
			p.duplicates(n.Content[i+1], kp, seen, active)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p.duplicates(c, fmt.Sprintf("%s[%d]", path, i), seen, active)
		}
	}
}

// merges applies YAML merge keys ("<<: *defaults") in place, as yaml.v3
// does when decoding into Go values: keys already in the mapping win, then
// the merged mappings in order. The merged value nodes are shared, not copied.
func (p *parser) merges(n *yaml.Node, path string, seen map[*yaml.Node]bool) {
	n = resolveAlias(n)
	if seen[n] {
		return
	}
	seen[n] = true
	switch n.Kind {
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p.merges(c, fmt.Sprintf("%s[%d]", path, i), seen)
		}
		return
	case yaml.MappingNode:
	default:
		return
	}
	var kept, merged []*yaml.Node
	have := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			continue
		}
		kept = append(kept, k, n.Content[i+1])
		if k.Kind == yaml.ScalarNode {
			have[k.Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!merge" {
			continue
		}
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, src := range sources {
			src = resolveAlias(src)
			if src.Kind != yaml.MappingNode {
				p.fail(k, joinPath(path, "<<"), "want a mapping or a list of mappings to merge")
				continue
			}
			p.merges(src, path, seen)
			for j := 0; j+1 < len(src.Content); j += 2 {
				sk := src.Content[j]
				if sk.Kind == yaml.ScalarNode && !have[sk.Value] {
					have[sk.Value] = true
					merged = append(merged, sk, src.Content[j+1])
				}
			}
		}
	}
	if len(kept) != len(n.Content) {
		n.Content = append(kept, merged...)
	}
	for i := 1; i < len(n.Content); i += 2 {
		p.merges(n.Content[i], joinPath(path, n.Content[i-1].Value), seen)
	}
}

func (p *parser) components(section *yaml.Node, kind string, into map[ID]*Component) {
	if isNull(section) {
		return
	}
	if section.Kind != yaml.MappingNode {
		p.fail(section, kind, "want a mapping of component ids to settings")
		return
	}
	for k, v := range pairs(section) {
		path := kind + "." + k.Value
		id, err := ParseID(k.Value)
		if err != nil {
			p.fail(k, path, fmt.Sprintf("invalid component id: %s", unwrapMsg(err)))
			continue
		}
		if !isNull(v) && v.Kind != yaml.MappingNode {
			p.fail(v, path, "want a mapping of settings")
			continue
		}
		if _, dup := into[id]; dup {
			continue // reported by duplicates
		}
		into[id] = &Component{ID: id, Node: v, Line: k.Line, file: p.file, path: path, whole: p.whole}
	}
}

// unwrapMsg drops the "parse component id %q: " prefix of an id error.
func unwrapMsg(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

func (p *parser) decodeSection(n *yaml.Node, path string, out any) {
	c := &Component{Node: n, file: p.file, path: path, whole: p.whole}
	if err := Decode(c, out); err != nil {
		if es, ok := err.(Errors); ok {
			p.errs = append(p.errs, es...)
			return
		}
		p.fail(n, path, err.Error())
	}
}

func (p *parser) service(root, service *yaml.Node) {
	var pipelines *yaml.Node
	for k, v := range pairs(service) {
		switch k.Value {
		case "extensions":
			p.serviceExtensions(v)
		case "pipelines":
			pipelines = v
		case "telemetry":
			p.telemetry(v)
		default:
			p.fail(k, "service."+k.Value, "unknown key")
		}
	}
	switch {
	case pipelines == nil || isNull(pipelines):
		at := root
		if service != nil {
			at = service
		}
		p.fail(at, "service.pipelines", "no pipelines defined")
	case pipelines.Kind != yaml.MappingNode:
		p.fail(pipelines, "service.pipelines", "want a mapping of pipeline ids to pipelines")
	default:
		for k, v := range pairs(pipelines) {
			p.pipeline(k, v)
		}
		if len(pipelines.Content) == 0 {
			p.fail(pipelines, "service.pipelines", "no pipelines defined")
		}
	}
	p.connectors()
	p.unused()
}

func (p *parser) serviceExtensions(n *yaml.Node) {
	const path = "service.extensions"
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "want a list of extension ids")
		return
	}
	seen := map[ID]bool{}
	for _, item := range n.Content {
		item = resolveAlias(item)
		id, ok := p.ref(item, path)
		if !ok {
			continue
		}
		if seen[id] {
			p.fail(item, path, fmt.Sprintf("%q is listed more than once", id))
			continue
		}
		seen[id] = true
		if _, ok := p.f.Extensions[id]; !ok {
			p.fail(item, path, fmt.Sprintf("%q is not defined under extensions", id))
			continue
		}
		if !slices.Contains(ignoredExtensions, id.Type) {
			p.fail(item, path, fmt.Sprintf("extension type %q is not supported (accepted and ignored: %s)", id.Type, strings.Join(ignoredExtensions, ", ")))
			continue
		}
		p.warn(item.Line, path, fmt.Sprintf("extension %q is ignored: obs serves health, status and profiles on its admin port", id))
		p.f.ServiceExtensions = append(p.f.ServiceExtensions, id)
	}
}

// ref reads one component id from a list item.
func (p *parser) ref(item *yaml.Node, path string) (ID, bool) {
	if item.Kind != yaml.ScalarNode || isNull(item) {
		p.fail(item, path, "want a component id")
		return ID{}, false
	}
	id, err := ParseID(item.Value)
	if err != nil {
		p.fail(item, path, fmt.Sprintf("invalid component id: %s", unwrapMsg(err)))
		return ID{}, false
	}
	return id, true
}

func (p *parser) pipeline(k, v *yaml.Node) {
	path := "service.pipelines." + k.Value
	id, err := ParsePipelineID(k.Value)
	if err != nil {
		p.fail(k, path, fmt.Sprintf("invalid pipeline id: %s", unwrapMsg(err)))
		return
	}
	if v.Kind != yaml.MappingNode {
		p.fail(v, path, "want a mapping with receivers, processors and exporters")
		return
	}
	pl := &Pipeline{ID: id, Line: k.Line}
	for lk, lv := range pairs(v) {
		lpath := path + "." + lk.Value
		switch lk.Value {
		case kindReceivers:
			pl.Receivers = p.refs(lv, lpath, kindReceivers, p.f.Receivers, p.f.Connectors)
		case kindProcessors:
			pl.Processors = p.refs(lv, lpath, kindProcessors, p.f.Processors, nil)
		case kindExporters:
			pl.Exporters = p.refs(lv, lpath, kindExporters, p.f.Exporters, p.f.Connectors)
		default:
			p.fail(lk, lpath, "unknown key")
		}
	}
	if len(pl.Receivers) == 0 && !p.hasList(v, kindReceivers) {
		p.fail(k, path, "must have at least one receiver")
	}
	if len(pl.Exporters) == 0 && !p.hasList(v, kindExporters) {
		p.fail(k, path, "must have at least one exporter")
	}
	p.f.Pipelines[id] = pl
}

// hasList reports whether the pipeline names at least one entry under key,
// valid or not, so that a bad entry is not also reported as "missing".
func (p *parser) hasList(v *yaml.Node, key string) bool {
	for k, l := range pairs(v) {
		if k.Value == key && l.Kind == yaml.SequenceNode && len(l.Content) > 0 {
			return true
		}
	}
	return false
}

func (p *parser) refs(n *yaml.Node, path, kind string, defined, alsoConnectors map[ID]*Component) []ID {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "want a list of component ids")
		return nil
	}
	var out []ID
	for _, item := range n.Content {
		item = resolveAlias(item)
		id, ok := p.ref(item, path)
		if !ok {
			continue
		}
		if slices.Contains(out, id) {
			p.fail(item, path, fmt.Sprintf("%q is listed more than once", id))
			continue
		}
		_, isDefined := defined[id]
		_, isConnector := alsoConnectors[id]
		if !isDefined && !isConnector {
			p.fail(item, path, fmt.Sprintf("%q is not defined under %s", id, kind))
			continue
		}
		out = append(out, id)
	}
	return out
}

// connectors checks the Collector's rules: a connector used in a pipeline
// must be an exporter of one pipeline and a receiver of another, an id must
// not be both a connector and a receiver or exporter, and pipelines joined
// by connectors must not form a cycle.
func (p *parser) connectors() {
	ids := sortedIDs(p.f.Connectors)
	pls := sortedPipelines(p.f.Pipelines)
	for _, id := range ids {
		c := p.f.Connectors[id]
		if _, ok := p.f.Receivers[id]; ok {
			p.fail(c.Node, c.path, "id is also defined under receivers")
		}
		if _, ok := p.f.Exporters[id]; ok {
			p.fail(c.Node, c.path, "id is also defined under exporters")
		}
		var asExporter, asReceiver []string
		for _, pl := range pls {
			if slices.Contains(pl.Exporters, id) {
				asExporter = append(asExporter, pl.ID.String())
			}
			if slices.Contains(pl.Receivers, id) {
				asReceiver = append(asReceiver, pl.ID.String())
			}
		}
		at := &yaml.Node{Line: c.Line}
		switch {
		case len(asExporter) > 0 && len(asReceiver) == 0:
			p.fail(at, c.path, fmt.Sprintf("connector is used as exporter in pipeline %s but not as receiver in any pipeline", strings.Join(asExporter, ", ")))
		case len(asReceiver) > 0 && len(asExporter) == 0:
			p.fail(at, c.path, fmt.Sprintf("connector is used as receiver in pipeline %s but not as exporter in any pipeline", strings.Join(asReceiver, ", ")))
		}
	}
	// Cycle check: an edge runs from a pipeline that exports to a
	// connector to every pipeline that receives from it.
	next := map[PipelineID][]PipelineID{}
	for _, from := range pls {
		for _, e := range from.Exporters {
			if _, ok := p.f.Connectors[e]; !ok {
				continue
			}
			for _, to := range pls {
				if slices.Contains(to.Receivers, e) {
					next[from.ID] = append(next[from.ID], to.ID)
				}
			}
		}
	}
	const (
		unvisited = iota
		onStack
		done
	)
	state := map[PipelineID]int{}
	var stack []PipelineID
	var visit func(id PipelineID) bool
	visit = func(id PipelineID) bool {
		state[id] = onStack
		stack = append(stack, id)
		for _, n := range next[id] {
			switch state[n] {
			case onStack:
				i := slices.Index(stack, n)
				names := make([]string, 0, len(stack)-i+1)
				for _, s := range stack[i:] {
					names = append(names, s.String())
				}
				names = append(names, n.String())
				pl := p.f.Pipelines[n]
				p.fail(&yaml.Node{Line: pl.Line}, "service.pipelines."+n.String(), "pipelines form a cycle through connectors: "+strings.Join(names, " -> "))
				return true
			case unvisited:
				if visit(n) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = done
		return false
	}
	for _, pl := range pls {
		if state[pl.ID] == unvisited {
			stack = stack[:0]
			visit(pl.ID)
		}
	}
}

// unused warns about components no pipeline (or service.extensions) uses;
// the Collector ignores them too.
func (p *parser) unused() {
	used := map[ID]bool{}
	for _, pl := range p.f.Pipelines {
		for _, l := range [][]ID{pl.Receivers, pl.Processors, pl.Exporters} {
			for _, id := range l {
				used[id] = true
			}
		}
	}
	for _, kind := range []struct {
		name string
		m    map[ID]*Component
	}{{kindReceivers, p.f.Receivers}, {kindProcessors, p.f.Processors}, {kindExporters, p.f.Exporters}, {kindConnectors, p.f.Connectors}} {
		for _, id := range sortedIDs(kind.m) {
			if !used[id] {
				p.warn(kind.m[id].Line, kind.name+"."+id.String(), "defined but not used in any pipeline")
			}
		}
	}
	for _, id := range sortedIDs(p.f.Extensions) {
		if !slices.Contains(p.f.ServiceExtensions, id) {
			p.warn(p.f.Extensions[id].Line, kindExtensions+"."+id.String(), "defined but not listed in service.extensions")
		}
	}
}

func sortedIDs(m map[ID]*Component) []ID {
	ids := make([]ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })
	return ids
}

func sortedPipelines(m map[PipelineID]*Pipeline) []*Pipeline {
	out := make([]*Pipeline, 0, len(m))
	for _, pl := range m {
		out = append(out, pl)
	}
	slices.SortFunc(out, func(a, b *Pipeline) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out
}

// telemetryYAML is the part of the Collector's service.telemetry obs reads;
// keys it accepts but does not use are typed yaml.Node.
type telemetryYAML struct {
	Metrics *struct {
		Level   string          `yaml:"level"`
		Address string          `yaml:"address"`
		Readers []metricsReader `yaml:"readers"`
		Views   *yaml.Node      `yaml:"views"`
	} `yaml:"metrics"`
	Logs *struct {
		Level             string     `yaml:"level"`
		Development       *yaml.Node `yaml:"development"`
		Encoding          *yaml.Node `yaml:"encoding"`
		DisableCaller     *yaml.Node `yaml:"disable_caller"`
		DisableStacktrace *yaml.Node `yaml:"disable_stacktrace"`
		Sampling          *yaml.Node `yaml:"sampling"`
		OutputPaths       *yaml.Node `yaml:"output_paths"`
		ErrorOutputPaths  *yaml.Node `yaml:"error_output_paths"`
		InitialFields     *yaml.Node `yaml:"initial_fields"`
		Processors        *yaml.Node `yaml:"processors"`
	} `yaml:"logs"`
	Traces   *yaml.Node `yaml:"traces"`
	Resource *yaml.Node `yaml:"resource"`
}

type metricsReader struct {
	Pull *struct {
		Exporter struct {
			Prometheus *struct {
				Host              string     `yaml:"host"`
				Port              int        `yaml:"port"`
				WithoutUnits      *yaml.Node `yaml:"without_units"`
				WithoutTypeSuffix *yaml.Node `yaml:"without_type_suffix"`
				WithoutScopeInfo  *yaml.Node `yaml:"without_scope_info"`
				WithResourceConst *yaml.Node `yaml:"with_resource_constant_labels"`
				TranslationStrat  *yaml.Node `yaml:"translation_strategy"`
			} `yaml:"prometheus"`
		} `yaml:"exporter"`
	} `yaml:"pull"`
	Periodic *yaml.Node `yaml:"periodic"`
}

func (p *parser) telemetry(n *yaml.Node) {
	const path = "service.telemetry"
	var t telemetryYAML
	before := len(p.errs)
	p.decodeSection(n, path, &t)
	if len(p.errs) > before {
		return
	}
	for k := range pairs(n) {
		switch k.Value {
		case "traces", "resource":
			p.warn(k.Line, path+"."+k.Value, "ignored by obs")
		}
	}
	if m := t.Metrics; m != nil {
		switch m.Level {
		case "", "none", "basic", "normal", "detailed":
			p.f.Telemetry.MetricsLevel = m.Level
		default:
			p.failAt(n, path+".metrics.level", "want none, basic, normal or detailed")
		}
		p.f.Telemetry.MetricsAddr = m.Address
		pulls := 0
		for i, r := range m.Readers {
			rpath := fmt.Sprintf("%s.metrics.readers[%d]", path, i)
			if r.Periodic != nil {
				p.warn(r.Periodic.Line, rpath+".periodic", "ignored by obs: only pull readers are served")
			}
			if r.Pull == nil || r.Pull.Exporter.Prometheus == nil {
				continue
			}
			if pulls++; pulls > 1 {
				p.warn(nodeAt(n, rpath).Line, rpath, "ignored: obs serves one prometheus pull reader")
				continue
			}
			prom := r.Pull.Exporter.Prometheus
			if prom.Port < 0 || prom.Port > 65535 {
				p.failAt(n, rpath+".pull.exporter.prometheus.port", "want a port between 0 and 65535")
				continue
			}
			p.f.Telemetry.MetricsAddr = net.JoinHostPort(prom.Host, strconv.Itoa(prom.Port))
		}
	}
	if l := t.Logs; l != nil {
		switch lv := strings.ToLower(l.Level); lv {
		case "", "debug", "info", "warn", "error":
			p.f.Telemetry.LogsLevel = lv
		default:
			p.failAt(n, path+".logs.level", "want debug, info, warn or error")
		}
	}
}

// failAt reports at nodeAt(n, path).
func (p *parser) failAt(n *yaml.Node, path, msg string) {
	p.fail(nodeAt(n, path), path, msg)
}

// nodeAt follows path's keys and [i] indexes down from n, the
// service.telemetry section; it stops at the deepest node found.
func nodeAt(n *yaml.Node, path string) *yaml.Node {
	at := n
	keys := strings.Split(strings.TrimPrefix(path, "service.telemetry."), ".")
	for _, key := range keys {
		key, idx, hasIdx := strings.Cut(key, "[")
		found := false
		for k, v := range pairs(at) {
			if k.Value == key {
				at, found = v, true
				break
			}
		}
		if !found {
			break
		}
		if hasIdx {
			i, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			if err != nil || at.Kind != yaml.SequenceNode || i >= len(at.Content) {
				break
			}
			at = resolveAlias(at.Content[i])
		}
	}
	return at
}

// unmarshalNode parses YAML into a node; a panic in the parser on hostile
// input becomes an error.
func unmarshalNode(data []byte, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failed on this input")
		}
	}()
	return yaml.Unmarshal(data, doc)
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into an
// *Error without any quoted input.
func yamlError(file string, err error) *Error {
	msg := cleanYAMLMsg(err)
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(num); err == nil {
				line, msg = l, tail
			}
		}
	}
	return &Error{File: file, Line: line, Msg: "parse yaml: " + msg}
}
