package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Decode strictly decodes a component's settings into out, a non-nil
// pointer to a struct (or any type yaml.v3 can hold) with yaml tags. It
// walks the node against the struct itself, so every problem — an unknown
// key, a wrong type, a bad duration — comes back as an *Error (inside
// Errors) that names the file, the line and the full key path, such as
// "exporters.otlp.timeout". Fields whose key is absent or null keep the
// value they had, so callers fill defaults first.
//
// Beyond yaml.v3's rules: time.Duration takes "5s"-style strings; ByteSize
// takes an int or "512MiB"; a *yaml.Node or yaml.Node field takes the raw
// subtree; and a scalar that was exactly one ${...} reference is accepted
// for int, uint, float and bool fields, as the Collector types it.
func Decode(c *Component, out any) error {
	if c == nil {
		return fmt.Errorf("decode component: nil component")
	}
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decode component %s: out must be a non-nil pointer", c.ID)
	}
	path := c.path
	if path == "" {
		path = c.ID.String()
	}
	if c.Node == nil {
		return nil
	}
	d := &decoder{file: c.file, whole: c.whole, active: map[*yaml.Node]bool{}}
	d.value(c.Node, rv.Elem(), path)
	return d.errs.errOrNil()
}

// maxDecodeNodes bounds the work one Decode may do when aliases fan out.
const maxDecodeNodes = 1 << 18

type decoder struct {
	file  string
	whole map[*yaml.Node]bool
	errs  Errors
	nodes int
	// active holds the nodes being decoded, to catch an alias to an
	// ancestor.
	active map[*yaml.Node]bool
}

func (d *decoder) fail(n *yaml.Node, path, msg string) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Path: path, Msg: msg})
}

var (
	typeDuration  = reflect.TypeFor[time.Duration]()
	typeByteSize  = reflect.TypeFor[ByteSize]()
	typeNode      = reflect.TypeFor[yaml.Node]()
	typeNodePtr   = reflect.TypeFor[*yaml.Node]()
	typeUnmarshal = reflect.TypeFor[yaml.Unmarshaler]()
	typeText      = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	d.nodes++
	if d.nodes > maxDecodeNodes {
		if d.nodes == maxDecodeNodes+1 {
			d.fail(n, path, "too many nodes after alias expansion")
		}
		return
	}
	n = resolveAlias(n)
	if n.Kind == yaml.AliasNode {
		d.fail(n, path, "alias nests too deeply")
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	t := v.Type()
	switch t {
	case typeNodePtr:
		v.Set(reflect.ValueOf(n))
		return
	case typeNode:
		v.Set(reflect.ValueOf(*n))
		return
	}
	if isNull(n) {
		// As in the Collector, a present but empty section ("grpc:")
		// turns the section on with its defaults.
		if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return
	}
	switch t {
	case typeDuration:
		d.duration(n, v, path)
		return
	case typeByteSize:
		d.byteSize(n, v, path)
		return
	}
	if v.CanAddr() {
		if pt := v.Addr().Type(); pt.Implements(typeUnmarshal) {
			d.unmarshaler(n, v, path)
			return
		} else if pt.Implements(typeText) && n.Kind == yaml.ScalarNode {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
				d.fail(n, path, safeMsg(fmt.Sprintf("want a valid %s: %v", t, err), n.Value))
			}
			return
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		delete(d.active, n) // the pointee is the same node, not a cycle
		d.value(n, v.Elem(), path)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.fail(n, path, fmt.Sprintf("cannot decode into interface %s", t))
			return
		}
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(n, path, safeMsg(cleanYAMLMsg(err), n.Value))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.Array:
		if n.Kind != yaml.SequenceNode || len(n.Content) != v.Len() {
			d.fail(n, path, fmt.Sprintf("want a list of %d items", v.Len()))
			return
		}
		if !d.enter(n, path) {
			return
		}
		defer delete(d.active, n)
		for i, c := range n.Content {
			d.value(c, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "want a string")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		s, ok := d.scalarFor(n, "!!bool")
		b, err := strconv.ParseBool(strings.ToLower(s))
		if !ok || err != nil {
			d.fail(n, path, "want true or false")
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s, ok := d.scalarFor(n, "!!int")
		i, err := parseInt(s)
		if !ok || err != nil {
			d.fail(n, path, "want an integer")
			return
		}
		if v.OverflowInt(i) {
			d.fail(n, path, fmt.Sprintf("integer out of range for %s", t.Kind()))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		s, ok := d.scalarFor(n, "!!int")
		i, err := parseInt(s)
		if !ok || err != nil {
			d.fail(n, path, "want a non-negative integer")
			return
		}
		if i < 0 || v.OverflowUint(uint64(i)) {
			d.fail(n, path, fmt.Sprintf("integer out of range for %s", t.Kind()))
			return
		}
		v.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		f, ok := d.float(n)
		if !ok {
			d.fail(n, path, "want a number")
			return
		}
		if v.OverflowFloat(f) {
			d.fail(n, path, fmt.Sprintf("number out of range for %s", t.Kind()))
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, fmt.Sprintf("cannot decode into %s", t))
	}
}

// enter marks a collection as being decoded; false when it already is,
// which means an alias refers to a node that contains it.
func (d *decoder) enter(n *yaml.Node, path string) bool {
	if d.active[n] {
		d.fail(n, path, "alias refers to a node that contains it")
		return false
	}
	d.active[n] = true
	return true
}

// scalarFor returns the text of a scalar tagged tag, or of a scalar that was
// exactly one ${...} reference (typed late, as the Collector does).
func (d *decoder) scalarFor(n *yaml.Node, tag string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		return "", false
	}
	if n.ShortTag() == tag || d.whole[n] {
		return n.Value, true
	}
	return "", false
}

func parseInt(s string) (int64, error) {
	s = strings.ReplaceAll(s, "_", "")
	if u, ok := strings.CutPrefix(s, "0o"); ok {
		s = "0" + u
	}
	return strconv.ParseInt(s, 0, 64)
}

func (d *decoder) float(n *yaml.Node) (float64, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	switch tag := n.ShortTag(); {
	case tag == "!!int":
		i, err := parseInt(n.Value)
		return float64(i), err == nil
	case tag == "!!float":
		var f float64
		return f, n.Decode(&f) == nil
	case d.whole[n]:
		f, err := strconv.ParseFloat(n.Value, 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	const want = "want a duration like 5s"
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, want)
		return
	}
	if n.ShortTag() == "!!int" && n.Value == "0" {
		v.SetInt(0)
		return
	}
	if n.ShortTag() != "!!str" {
		d.fail(n, path, want)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(n, path, want)
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) byteSize(n *yaml.Node, v reflect.Value, path string) {
	const want = "want a size like 512MiB or a number of bytes"
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, want)
		return
	}
	b, err := ParseByteSize(n.Value)
	if err != nil {
		d.fail(n, path, want)
		return
	}
	v.SetInt(int64(b))
}

func (d *decoder) unmarshaler(n *yaml.Node, v reflect.Value, path string) {
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.fail(n, path, safeMsg(cleanYAMLMsg(err), n.Value))
	}
}

type fieldInfo struct {
	index []int
}

// structFields maps yaml keys to field indexes, following yaml.v3's rules:
// the tag name, or the lowercased field name; "-" skips; ",inline" lifts the
// fields of an embedded struct, or names the map that takes unknown keys.
func structFields(t reflect.Type) (map[string]fieldInfo, []int) {
	fields := map[string]fieldInfo{}
	var inlineMap []int
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			inline := strings.Contains(","+opts+",", ",inline,")
			if !f.IsExported() && !(f.Anonymous && inline && f.Type.Kind() == reflect.Struct) {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			if inline {
				switch f.Type.Kind() {
				case reflect.Struct:
					walk(f.Type, idx)
				case reflect.Map:
					inlineMap = idx
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fields[name] = fieldInfo{index: idx}
		}
	}
	walk(t, nil)
	return fields, inlineMap
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping")
		return
	}
	if !d.enter(n, path) {
		return
	}
	defer delete(d.active, n)
	fields, inlineMap := structFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "want a string key")
			continue
		}
		kp := joinPath(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.fail(k, kp, fmt.Sprintf("duplicate key, first defined at line %d", line))
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			if inlineMap != nil {
				d.mapEntry(k, val, v.FieldByIndex(inlineMap), kp)
				continue
			}
			d.fail(k, kp, "unknown key")
			continue
		}
		d.value(val, v.FieldByIndex(f.index), kp)
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping")
		return
	}
	if !d.enter(n, path) {
		return
	}
	defer delete(d.active, n)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "want a string key")
			continue
		}
		kp := joinPath(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.fail(k, kp, fmt.Sprintf("duplicate key, first defined at line %d", line))
			continue
		}
		seen[k.Value] = k.Line
		d.mapEntry(k, val, v, kp)
	}
}

func (d *decoder) mapEntry(k, val *yaml.Node, m reflect.Value, path string) {
	t := m.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(k, path, fmt.Sprintf("cannot decode into %s", t))
		return
	}
	if m.IsNil() {
		m.Set(reflect.MakeMap(t))
	}
	ev := reflect.New(t.Elem()).Elem()
	d.value(val, ev, path)
	m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), ev)
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list")
		return
	}
	if !d.enter(n, path) {
		return
	}
	defer delete(d.active, n)
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.value(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

var backticked = regexp.MustCompile("`[^`]*`")

// cleanYAMLMsg strips yaml.v3's prefixes and any quoted input from err.
func cleanYAMLMsg(err error) string {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = strings.Join(te.Errors, "; ")
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = backticked.ReplaceAllString(msg, "value")
	return msg
}

// safeMsg drops msg for a generic one when it would repeat the value.
func safeMsg(msg, value string) string {
	if value != "" && strings.Contains(msg, value) {
		return "invalid value"
	}
	return msg
}
