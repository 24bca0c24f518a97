package logs

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"gopkg.in/yaml.v3"
)

type opKind uint8

const (
	opContainer opKind = iota + 1
	opJSON
	opRegex
	opMove
	opAdd
	opRemove
)

type errMode uint8

const (
	onErrorSend errMode = iota
	onErrorSendQuiet
	onErrorDrop
	onErrorDropQuiet
)

func (m errMode) drops() bool { return m == onErrorDrop || m == onErrorDropQuiet }

type fieldRoot uint8

const (
	rootBody fieldRoot = iota + 1
	rootAttributes
	rootResource
)

// field is a parsed "body.x", "attributes[\"a.b\"]", "resource.x".
type field struct {
	root fieldRoot
	path []string
}

func (f field) String() string {
	s := [...]string{rootBody: "body", rootAttributes: "attributes", rootResource: "resource"}[f.root]
	for _, p := range f.path {
		s += "[" + strconv.Quote(p) + "]"
	}
	return s
}

func parseField(s string) (field, error) {
	var f field
	rest := s
	switch {
	case strings.HasPrefix(rest, "body"):
		f.root, rest = rootBody, rest[len("body"):]
	case strings.HasPrefix(rest, "attributes"):
		f.root, rest = rootAttributes, rest[len("attributes"):]
	case strings.HasPrefix(rest, "resource"):
		f.root, rest = rootResource, rest[len("resource"):]
	default:
		return f, fmt.Errorf("field %q: must start with body, attributes or resource", s)
	}
	for rest != "" {
		switch rest[0] {
		case '.':
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				return f, fmt.Errorf("field %q: empty name", s)
			}
			f.path = append(f.path, rest[:end])
			rest = rest[end:]
		case '[':
			inner := strings.TrimLeft(rest[1:], " ")
			var name string
			switch {
			case strings.HasPrefix(inner, `"`):
				q, err := strconv.QuotedPrefix(inner)
				if err != nil {
					return f, fmt.Errorf("field %q: bad quoted name", s)
				}
				name, _ = strconv.Unquote(q)
				inner = inner[len(q):]
			case strings.HasPrefix(inner, "'"):
				end := strings.IndexByte(inner[1:], '\'')
				if end < 0 {
					return f, fmt.Errorf("field %q: missing '", s)
				}
				name = inner[1 : 1+end]
				inner = inner[2+end:]
			default:
				end := strings.IndexByte(inner, ']')
				if end < 0 {
					return f, fmt.Errorf("field %q: missing ]", s)
				}
				name = strings.TrimSpace(inner[:end])
				inner = inner[end:]
			}
			inner = strings.TrimLeft(inner, " ")
			if !strings.HasPrefix(inner, "]") {
				return f, fmt.Errorf("field %q: missing ]", s)
			}
			if name == "" {
				return f, fmt.Errorf("field %q: empty name", s)
			}
			f.path = append(f.path, name)
			rest = inner[1:]
		default:
			return f, fmt.Errorf("field %q: unexpected %q", s, rest[:1])
		}
	}
	if f.root != rootBody && len(f.path) == 0 {
		// "attributes" alone means the whole map, allowed as parse_to.
		return f, nil
	}
	return f, nil
}

// operator is one compiled operator.
type operator struct {
	kind    opKind
	id      string
	onError errMode

	// container
	format  containerFormat
	addMeta bool
	maxSize int

	from, to field // parse_from/parse_to, or move's from/to
	field    field // add, remove
	value    pcommon.Value
	re       *regexp.Regexp
	names    []string
	ts       *tsParser
}

type tsParser struct {
	from   field
	kind   string // gotime, strptime, epoch
	layout string
	loc    *time.Location
}

func compileOperators(cfgs []OperatorConfig) ([]operator, error) {
	ops := make([]operator, 0, len(cfgs))
	ids := map[string]bool{}
	for i, c := range cfgs {
		key := fmt.Sprintf("operators[%d]", i)
		op := operator{id: c.ID}
		if op.id == "" {
			op.id = c.Type
		}
		if ids[op.id] {
			return nil, fmt.Errorf("%s.id: duplicate id %q", key, op.id)
		}
		ids[op.id] = true
		switch c.OnError {
		case "", "send":
			op.onError = onErrorSend
		case "send_quiet":
			op.onError = onErrorSendQuiet
		case "drop":
			op.onError = onErrorDrop
		case "drop_quiet":
			op.onError = onErrorDropQuiet
		default:
			return nil, fmt.Errorf("%s.on_error: want send, send_quiet, drop or drop_quiet, got %q", key, c.OnError)
		}
		for _, k := range []struct {
			name    string
			set     bool
			allowed string
		}{
			{"format", c.Format != "", "container"},
			{"add_metadata_from_filepath", c.AddMetadataFromFilepath != nil, "container"},
			{"max_log_size", c.MaxLogSize != 0, "container"},
			{"parse_from", c.ParseFrom != "" && !(c.Type == "container" && c.ParseFrom == "body"), "json_parser regex_parser"},
			{"parse_to", c.ParseTo != "" && !(c.Type == "container" && c.ParseTo == "attributes"), "json_parser regex_parser"},
			{"regex", c.Regex != "", "regex_parser"},
			{"timestamp", c.Timestamp != nil, "json_parser regex_parser"},
			{"from", c.From != "", "move"},
			{"to", c.To != "", "move"},
			{"field", c.Field != "", "add remove"},
			{"value", c.Value.Kind != 0, "add"},
		} {
			if k.set && c.Type != "" && !slices.Contains(strings.Fields(k.allowed), c.Type) {
				return nil, fmt.Errorf("%s.%s: not a setting of %s operators", key, k.name, c.Type)
			}
		}
		var err error
		fieldOr := func(name, s, def string) field {
			if err != nil {
				return field{}
			}
			if s == "" {
				s = def
			}
			var f field
			if f, err = parseField(s); err != nil {
				err = fmt.Errorf("%s.%s: %w", key, name, err)
			}
			return f
		}
		switch c.Type {
		case "container":
			if i != 0 {
				return nil, fmt.Errorf("%s.type: container must be the first operator", key)
			}
			op.kind = opContainer
			if op.format, err = parseContainerFormat(c.Format); err != nil {
				return nil, fmt.Errorf("%s.format: %w, got %q", key, err, c.Format)
			}
			op.addMeta = c.AddMetadataFromFilepath == nil || *c.AddMetadataFromFilepath
			op.maxSize = int(c.MaxLogSize)
			if c.MaxLogSize < 0 {
				return nil, fmt.Errorf("%s.max_log_size: must not be negative", key)
			}
		case "json_parser", "regex_parser":
			op.kind = opJSON
			op.from = fieldOr("parse_from", c.ParseFrom, "body")
			op.to = fieldOr("parse_to", c.ParseTo, "attributes")
			if err != nil {
				return nil, err
			}
			if c.Type == "regex_parser" {
				op.kind = opRegex
				if c.Regex == "" {
					return nil, fmt.Errorf("%s.regex: required", key)
				}
				if op.re, err = regexp.Compile(c.Regex); err != nil {
					return nil, fmt.Errorf("%s.regex: %w", key, err)
				}
				op.names = op.re.SubexpNames()
				named := false
				for _, n := range op.names {
					named = named || n != ""
				}
				if !named {
					return nil, fmt.Errorf("%s.regex: needs at least one named group (?P<name>...)", key)
				}
			}
			if c.Timestamp != nil {
				if op.ts, err = compileTimestamp(c.Timestamp); err != nil {
					return nil, fmt.Errorf("%s.timestamp.%w", key, err)
				}
			}
		case "move":
			op.kind = opMove
			if c.From == "" || c.To == "" {
				return nil, fmt.Errorf("%s: move needs from and to", key)
			}
			op.from = fieldOr("from", c.From, "")
			op.to = fieldOr("to", c.To, "")
		case "add":
			op.kind = opAdd
			if c.Field == "" {
				return nil, fmt.Errorf("%s.field: required", key)
			}
			op.field = fieldOr("field", c.Field, "")
			if err == nil {
				op.value, err = yamlValue(c.Value)
				if err != nil {
					err = fmt.Errorf("%s.value: %w", key, err)
				}
			}
		case "remove":
			op.kind = opRemove
			if c.Field == "" {
				return nil, fmt.Errorf("%s.field: required", key)
			}
			op.field = fieldOr("field", c.Field, "")
		case "":
			return nil, fmt.Errorf("%s.type: required", key)
		default:
			return nil, fmt.Errorf("%s.type: unsupported operator %q (want container, json_parser, regex_parser, move, add or remove)", key, c.Type)
		}
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	// Operators run in order: an output may only name the next one.
	for i, c := range cfgs {
		if c.Output == "" {
			continue
		}
		if i+1 >= len(ops) || ops[i+1].id != c.Output {
			return nil, fmt.Errorf("operators[%d].output: %q is not the next operator (only a linear chain is supported)", i, c.Output)
		}
	}
	return ops, nil
}

func yamlValue(n yaml.Node) (pcommon.Value, error) {
	v := pcommon.NewValueEmpty()
	if n.Kind == 0 {
		return v, errors.New("required")
	}
	if n.Kind == yaml.ScalarNode && strings.HasPrefix(n.Value, "EXPR(") {
		return v, errors.New("EXPR(...) values are not supported")
	}
	var raw any
	if err := n.Decode(&raw); err != nil {
		return v, err
	}
	raw = normalizeYAML(raw)
	if err := v.FromRaw(raw); err != nil {
		return v, err
	}
	return v, nil
}

func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalizeYAML(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

func compileTimestamp(c *TimestampConfig) (*tsParser, error) {
	p := &tsParser{kind: c.LayoutType, layout: c.Layout, loc: time.UTC}
	if c.ParseFrom == "" {
		return nil, errors.New("parse_from: required")
	}
	var err error
	if p.from, err = parseField(c.ParseFrom); err != nil {
		return nil, fmt.Errorf("parse_from: %w", err)
	}
	if c.Location != "" {
		if p.loc, err = time.LoadLocation(c.Location); err != nil {
			return nil, fmt.Errorf("location: %w", err)
		}
	}
	switch p.kind {
	case "", "gotime":
		p.kind = "gotime"
		if p.layout == "" {
			return nil, errors.New("layout: required")
		}
	case "strptime":
		if p.layout, err = strptimeToGo(c.Layout); err != nil {
			return nil, fmt.Errorf("layout: %w", err)
		}
	case "epoch":
		switch p.layout {
		case "s", "ms", "us", "ns", "s.ms", "s.us", "s.ns":
		default:
			return nil, fmt.Errorf("layout: epoch wants s, ms, us, ns, s.ms, s.us or s.ns, got %q", p.layout)
		}
	default:
		return nil, fmt.Errorf("layout_type: want gotime, strptime or epoch, got %q", p.kind)
	}
	return p, nil
}

var strptimeDirectives = map[byte]string{
	'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'H': "15", 'I': "03", 'M': "04",
	'S': "05", 'f': "000000", 'L': "000", 'p': "PM", 'b': "Jan", 'h': "Jan", 'B': "January",
	'a': "Mon", 'A': "Monday", 'z': "-0700", 'Z': "MST", 'j': "002", '%': "%",
}

func strptimeToGo(s string) (string, error) {
	if s == "" {
		return "", errors.New("required")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("dangling %% in %q", s)
		}
		i++
		g, ok := strptimeDirectives[s[i]]
		if !ok {
			return "", fmt.Errorf("unsupported directive %%%c in %q", s[i], s)
		}
		if s[i] == 'f' || s[i] == 'L' {
			// Go needs the fraction after a separator it knows.
			if b.Len() > 0 && (strings.HasSuffix(b.String(), ".") || strings.HasSuffix(b.String(), ",")) {
				g = strings.Repeat("9", len(g))
			}
		}
		b.WriteString(g)
	}
	return b.String(), nil
}

func (p *tsParser) parse(v pcommon.Value) (time.Time, error) {
	if p.kind == "epoch" {
		var f float64
		switch v.Type() {
		case pcommon.ValueTypeInt:
			f = float64(v.Int())
		case pcommon.ValueTypeDouble:
			f = v.Double()
		default:
			var err error
			if f, err = strconv.ParseFloat(v.AsString(), 64); err != nil {
				return time.Time{}, fmt.Errorf("parse epoch %q: %w", v.AsString(), err)
			}
		}
		switch p.layout {
		case "ms":
			return time.UnixMilli(int64(f)), nil
		case "us":
			return time.UnixMicro(int64(f)), nil
		case "ns":
			return time.Unix(0, int64(f)), nil
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	t, err := time.ParseInLocation(p.layout, v.AsString(), p.loc)
	if err != nil {
		return t, fmt.Errorf("parse time: %w", err)
	}
	return t, nil
}

// entry is what operators see of one record.
type entry struct {
	lr  plog.LogRecord
	res pcommon.Map
}

func (e *entry) rootMap(r fieldRoot) pcommon.Map {
	if r == rootResource {
		return e.res
	}
	return e.lr.Attributes()
}

// get returns the value at f.
func (e *entry) get(f field) (pcommon.Value, bool) {
	var v pcommon.Value
	path := f.path
	if f.root == rootBody {
		v = e.lr.Body()
	} else {
		if len(path) == 0 {
			return pcommon.NewValueMap(), false
		}
		var ok bool
		if v, ok = e.rootMap(f.root).Get(path[0]); !ok {
			return v, false
		}
		path = path[1:]
	}
	for _, p := range path {
		if v.Type() != pcommon.ValueTypeMap {
			return v, false
		}
		var ok bool
		if v, ok = v.Map().Get(p); !ok {
			return v, false
		}
	}
	return v, true
}

// target returns the value at f, creating maps on the way.
func (e *entry) target(f field) (pcommon.Value, error) {
	var m pcommon.Map
	path := f.path
	if f.root == rootBody {
		if len(path) == 0 {
			return e.lr.Body(), nil
		}
		b := e.lr.Body()
		if b.Type() != pcommon.ValueTypeMap {
			if b.Type() != pcommon.ValueTypeEmpty {
				return b, fmt.Errorf("set %s: body is a %s, not a map", f, b.Type())
			}
			b.SetEmptyMap()
		}
		m = b.Map()
	} else {
		if len(path) == 0 {
			return pcommon.Value{}, fmt.Errorf("set %s: name a key", f)
		}
		m = e.rootMap(f.root)
	}
	for i, p := range path {
		v, ok := m.Get(p)
		if i == len(path)-1 {
			if !ok {
				v = m.PutEmpty(p)
			}
			return v, nil
		}
		if !ok || v.Type() != pcommon.ValueTypeMap {
			m = m.PutEmptyMap(p)
			continue
		}
		m = v.Map()
	}
	return pcommon.Value{}, fmt.Errorf("set %s: empty path", f)
}

// remove deletes f and reports whether it was there.
func (e *entry) remove(f field) bool {
	path := f.path
	var m pcommon.Map
	if f.root == rootBody {
		if len(path) == 0 {
			had := e.lr.Body().Type() != pcommon.ValueTypeEmpty
			pcommon.NewValueEmpty().CopyTo(e.lr.Body())
			return had
		}
		b := e.lr.Body()
		if b.Type() != pcommon.ValueTypeMap {
			return false
		}
		m = b.Map()
	} else {
		if len(path) == 0 {
			had := e.rootMap(f.root).Len() > 0
			e.rootMap(f.root).Clear()
			return had
		}
		m = e.rootMap(f.root)
	}
	for _, p := range path[:len(path)-1] {
		v, ok := m.Get(p)
		if !ok || v.Type() != pcommon.ValueTypeMap {
			return false
		}
		m = v.Map()
	}
	return m.Remove(path[len(path)-1])
}

// mergeInto writes the key/values of src into the map at f.
func (e *entry) mergeInto(f field, src map[string]any) error {
	var m pcommon.Map
	if f.root != rootBody && len(f.path) == 0 {
		m = e.rootMap(f.root)
	} else {
		v, err := e.target(f)
		if err != nil {
			return err
		}
		if v.Type() != pcommon.ValueTypeMap {
			v.SetEmptyMap()
		}
		m = v.Map()
	}
	m.EnsureCapacity(m.Len() + len(src))
	for k, x := range src {
		if err := m.PutEmpty(k).FromRaw(x); err != nil {
			return fmt.Errorf("set %s.%s: %w", f, k, err)
		}
	}
	return nil
}

// apply runs one non-container operator on e.
func (op *operator) apply(e *entry) error {
	switch op.kind {
	case opJSON, opRegex:
		v, ok := e.get(op.from)
		if !ok {
			return fmt.Errorf("parse %s: field is missing", op.from)
		}
		if v.Type() != pcommon.ValueTypeStr {
			return fmt.Errorf("parse %s: is a %s, not a string", op.from, v.Type())
		}
		s := v.Str()
		var parsed map[string]any
		if op.kind == opJSON {
			if err := json.Unmarshal([]byte(s), &parsed); err != nil {
				return fmt.Errorf("parse %s as json object: %w", op.from, err)
			}
		} else {
			idx := op.re.FindStringSubmatchIndex(s)
			if idx == nil {
				return fmt.Errorf("parse %s: regex does not match", op.from)
			}
			parsed = make(map[string]any, len(op.names))
			for i, n := range op.names {
				if n != "" && idx[2*i] >= 0 {
					parsed[n] = s[idx[2*i]:idx[2*i+1]]
				}
			}
		}
		if err := e.mergeInto(op.to, parsed); err != nil {
			return err
		}
		if op.ts != nil {
			tv, ok := e.get(op.ts.from)
			if !ok {
				return fmt.Errorf("parse timestamp: %s is missing", op.ts.from)
			}
			t, err := op.ts.parse(tv)
			if err != nil {
				return err
			}
			e.lr.SetTimestamp(pcommon.NewTimestampFromTime(t))
		}
	case opMove:
		v, ok := e.get(op.from)
		if !ok {
			return fmt.Errorf("move %s: field is missing", op.from)
		}
		tmp := pcommon.NewValueEmpty()
		v.CopyTo(tmp)
		e.remove(op.from)
		dst, err := e.target(op.to)
		if err != nil {
			return err
		}
		tmp.CopyTo(dst)
	case opAdd:
		dst, err := e.target(op.field)
		if err != nil {
			return err
		}
		op.value.CopyTo(dst)
	case opRemove:
		if !e.remove(op.field) {
			return fmt.Errorf("remove %s: field is missing", op.field)
		}
	}
	return nil
}

// touchesResource reports whether any operator may write the resource.
func touchesResource(ops []operator) bool {
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opJSON, opRegex, opMove:
			if o.to.root == rootResource || (o.kind == opMove && o.from.root == rootResource) {
				return true
			}
		case opAdd, opRemove:
			if o.field.root == rootResource {
				return true
			}
		}
	}
	return false
}
