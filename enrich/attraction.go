package enrich

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// AttrAction is one entry of the `actions` list of the `attributes`
// processor and of the `attributes` list of the `resource` processor, with
// the Collector's keys and semantics.
type AttrAction struct {
	// Key is the attribute acted on. Required, except for delete and
	// hash, which take key and/or pattern.
	Key string `yaml:"key"`
	// Action is insert, update, upsert, delete, hash, extract or convert.
	Action string `yaml:"action"`
	// Value is the value to set (string, int, double, bool, list or map)
	// for insert, update and upsert.
	Value any `yaml:"value"`
	// FromAttribute takes the value from another attribute of the same
	// item (insert, update, upsert).
	FromAttribute string `yaml:"from_attribute"`
	// FromContext takes the value from the request context in the
	// Collector (client metadata, auth, client.address). obs carries no
	// client info in the context yet, so such an action finds no value
	// and does nothing.
	FromContext string `yaml:"from_context"`
	// Pattern is a regexp: for delete and hash, the keys it matches are
	// acted on too; for extract, its named groups become attributes.
	Pattern string `yaml:"pattern"`
	// ConvertedType is int, double or string (convert).
	ConvertedType string `yaml:"converted_type"`
}

// The actions, as the Collector spells them.
const (
	actInsert  = "insert"
	actUpdate  = "update"
	actUpsert  = "upsert"
	actDelete  = "delete"
	actHash    = "hash"
	actExtract = "extract"
	actConvert = "convert"
)

type attrAction struct {
	key         string
	action      string
	value       *pcommon.Value
	fromAttr    string
	fromContext string
	re          *regexp.Regexp
	names       []string // extract: group names, index 0 unused
	convertTo   string
}

// attrActions is a compiled, ordered list of actions.
type attrActions []attrAction

// compileActions checks and compiles acts; path names the list in errors
// ("actions" or "attributes").
func compileActions(acts []AttrAction, path string) (attrActions, error) {
	if len(acts) == 0 {
		return nil, fmt.Errorf("%s: at least one action is required", path)
	}
	out := make(attrActions, 0, len(acts))
	for i, a := range acts {
		p := fmt.Sprintf("%s[%d]", path, i)
		c, err := compileAction(a, p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func compileAction(a AttrAction, p string) (attrAction, error) {
	act := strings.ToLower(a.Action)
	c := attrAction{key: a.Key, action: act}
	switch act {
	case actDelete, actHash:
		if a.Key == "" && a.Pattern == "" {
			return c, fmt.Errorf("%s: action %s needs key or pattern", p, act)
		}
	case actInsert, actUpdate, actUpsert, actExtract, actConvert:
		if a.Key == "" {
			return c, fmt.Errorf("%s.key: required for action %s", p, act)
		}
	case "":
		return c, fmt.Errorf("%s.action: required (insert, update, upsert, delete, hash, extract, convert)", p)
	default:
		return c, fmt.Errorf("%s.action: unknown action %q (want insert, update, upsert, delete, hash, extract, convert)", p, a.Action)
	}
	hasSource := a.Value != nil || a.FromAttribute != "" || a.FromContext != ""
	switch act {
	case actInsert, actUpdate, actUpsert:
		n := 0
		if a.Value != nil {
			n++
			v := pcommon.NewValueEmpty()
			if err := v.FromRaw(a.Value); err != nil {
				return c, fmt.Errorf("%s.value: %w", p, err)
			}
			c.value = &v
		}
		if a.FromAttribute != "" {
			n++
			c.fromAttr = a.FromAttribute
		}
		if a.FromContext != "" {
			n++
			c.fromContext = a.FromContext
		}
		if n != 1 {
			return c, fmt.Errorf("%s: action %s needs exactly one of value, from_attribute or from_context", p, act)
		}
		if a.Pattern != "" {
			return c, fmt.Errorf("%s.pattern: not used by action %s", p, act)
		}
		if a.ConvertedType != "" {
			return c, fmt.Errorf("%s.converted_type: not used by action %s", p, act)
		}
	case actDelete, actHash:
		if hasSource {
			return c, fmt.Errorf("%s: action %s takes no value, from_attribute or from_context", p, act)
		}
		if a.ConvertedType != "" {
			return c, fmt.Errorf("%s.converted_type: not used by action %s", p, act)
		}
		if a.Pattern != "" {
			re, err := regexp.Compile(a.Pattern)
			if err != nil {
				return c, fmt.Errorf("%s.pattern: %w", p, err)
			}
			c.re = re
		}
	case actExtract:
		if hasSource {
			return c, fmt.Errorf("%s: action extract takes no value, from_attribute or from_context", p)
		}
		if a.ConvertedType != "" {
			return c, fmt.Errorf("%s.converted_type: not used by action extract", p)
		}
		if a.Pattern == "" {
			return c, fmt.Errorf("%s.pattern: required for action extract", p)
		}
		re, err := regexp.Compile(a.Pattern)
		if err != nil {
			return c, fmt.Errorf("%s.pattern: %w", p, err)
		}
		names := re.SubexpNames()
		if len(names) <= 1 {
			return c, fmt.Errorf("%s.pattern: needs at least one named group (?P<name>...)", p)
		}
		for _, n := range names[1:] {
			if n == "" {
				return c, fmt.Errorf("%s.pattern: every group must be named", p)
			}
		}
		c.re, c.names = re, names
	case actConvert:
		if hasSource || a.Pattern != "" {
			return c, fmt.Errorf("%s: action convert takes only key and converted_type", p)
		}
		switch a.ConvertedType {
		case "int", "double", "string":
			c.convertTo = a.ConvertedType
		case "":
			return c, fmt.Errorf("%s.converted_type: required for action convert (int, double, string)", p)
		default:
			return c, fmt.Errorf("%s.converted_type: unknown type %q (want int, double, string)", p, a.ConvertedType)
		}
	}
	return c, nil
}

// apply runs every action on attrs in order and reports whether any of
// them changed it.
func (as attrActions) apply(ctx context.Context, attrs pcommon.Map) bool {
	changed := false
	for i := range as {
		if as[i].apply(ctx, attrs) {
			changed = true
		}
	}
	return changed
}

func (a *attrAction) source(_ context.Context, attrs pcommon.Map) (pcommon.Value, bool) {
	switch {
	case a.value != nil:
		return *a.value, true
	case a.fromContext != "":
		// obs passes no client metadata in the context: nothing to read.
		return pcommon.Value{}, false
	}
	return attrs.Get(a.fromAttr)
}

func (a *attrAction) apply(ctx context.Context, attrs pcommon.Map) bool {
	switch a.action {
	case actDelete:
		changed := attrs.Remove(a.key)
		if a.re != nil {
			attrs.RemoveIf(func(k string, _ pcommon.Value) bool {
				if a.re.MatchString(k) {
					changed = true
					return true
				}
				return false
			})
		}
		return changed
	case actInsert:
		if _, ok := attrs.Get(a.key); ok {
			return false
		}
		v, ok := a.source(ctx, attrs)
		if !ok {
			return false
		}
		v.CopyTo(attrs.PutEmpty(a.key))
		return true
	case actUpdate:
		cur, ok := attrs.Get(a.key)
		if !ok {
			return false
		}
		v, ok := a.source(ctx, attrs)
		if !ok {
			return false
		}
		if a.fromAttr == a.key {
			return false
		}
		v.CopyTo(cur)
		return true
	case actUpsert:
		v, ok := a.source(ctx, attrs)
		if !ok {
			return false
		}
		if a.fromAttr == a.key {
			return false
		}
		if cur, ok := attrs.Get(a.key); ok {
			if cur.Equal(v) {
				return false
			}
			v.CopyTo(cur)
			return true
		}
		v.CopyTo(attrs.PutEmpty(a.key))
		return true
	case actHash:
		changed := false
		if v, ok := attrs.Get(a.key); ok {
			hashValue(v)
			changed = true
		}
		if a.re != nil {
			attrs.Range(func(k string, v pcommon.Value) bool {
				if k != a.key && a.re.MatchString(k) {
					hashValue(v)
					changed = true
				}
				return true
			})
		}
		return changed
	case actExtract:
		v, ok := attrs.Get(a.key)
		if !ok || v.Type() != pcommon.ValueTypeStr {
			return false
		}
		m := a.re.FindStringSubmatch(v.Str())
		if m == nil {
			return false
		}
		for i := 1; i < len(m); i++ {
			attrs.PutStr(a.names[i], m[i])
		}
		return true
	case actConvert:
		v, ok := attrs.Get(a.key)
		if !ok {
			return false
		}
		return convertValue(v, a.convertTo)
	}
	return false
}

// hashValue replaces v with the hex SHA-256 of its bytes, as the
// Collector's attraction package does: strings as they are, bools as one
// byte, ints and doubles as 8 little-endian bytes. Other types become "".
func hashValue(v pcommon.Value) {
	var b []byte
	switch v.Type() {
	case pcommon.ValueTypeStr:
		b = []byte(v.Str())
	case pcommon.ValueTypeBool:
		b = []byte{0}
		if v.Bool() {
			b[0] = 1
		}
	case pcommon.ValueTypeInt:
		b = binary.LittleEndian.AppendUint64(nil, uint64(v.Int()))
	case pcommon.ValueTypeDouble:
		b = binary.LittleEndian.AppendUint64(nil, math.Float64bits(v.Double()))
	default:
		v.SetStr("")
		return
	}
	sum := sha256.Sum256(b)
	v.SetStr(hex.EncodeToString(sum[:]))
}

// convertValue converts v in place; a value that cannot be converted
// stays as it is, as in the Collector.
func convertValue(v pcommon.Value, to string) bool {
	switch to {
	case "string":
		if v.Type() == pcommon.ValueTypeStr {
			return false
		}
		v.SetStr(v.AsString())
		return true
	case "int":
		var n int64
		switch v.Type() {
		case pcommon.ValueTypeDouble:
			n = int64(v.Double())
		case pcommon.ValueTypeBool:
			if v.Bool() {
				n = 1
			}
		case pcommon.ValueTypeStr:
			x, err := strconv.ParseInt(v.Str(), 10, 64)
			if err != nil {
				return false
			}
			n = x
		default: // already int, or a type with no int form
			return false
		}
		v.SetInt(n)
		return true
	case "double":
		var f float64
		switch v.Type() {
		case pcommon.ValueTypeInt:
			f = float64(v.Int())
		case pcommon.ValueTypeBool:
			if v.Bool() {
				f = 1
			}
		case pcommon.ValueTypeStr:
			x, err := strconv.ParseFloat(v.Str(), 64)
			if err != nil {
				return false
			}
			f = x
		default:
			return false
		}
		v.SetDouble(f)
		return true
	}
	return false
}
