package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// expander applies the Collector's (confmap) variable expansion to every
// scalar value of a parsed document, in place, so line numbers stay those of
// the file. Mapping keys are never expanded.
type expander struct {
	file  string
	opts  Options
	errs  *Errors
	warns *Errors
	// whole records scalars that were exactly one ${...} reference; Decode
	// lets those stand for ints, bools and floats, as the Collector types them.
	whole map[*yaml.Node]bool
	// seen keeps a node shared by a merge key from being expanded twice.
	seen map[*yaml.Node]bool
}

func (x *expander) walk(n *yaml.Node, path string) {
	if x.seen[n] {
		return
	}
	x.seen[n] = true
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			x.walk(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			x.walk(n.Content[i+1], joinPath(path, n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			x.walk(c, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, whole, probs := x.expandString(n.Value)
		for _, p := range probs {
			e := &Error{File: x.file, Line: n.Line, Column: n.Column, Path: path, Msg: p.msg}
			if p.warn {
				*x.warns = append(*x.warns, e)
				continue
			}
			*x.errs = append(*x.errs, e)
		}
		n.Value = out
		if whole {
			x.whole[n] = true
		}
	case yaml.AliasNode:
		// The anchored node is expanded where it is defined.
	}
}

type problem struct {
	msg  string
	warn bool
}

// expandString expands ${env:VAR}, ${VAR}, ${env:VAR:-default},
// ${file:PATH} and $$ in s. whole reports that s was exactly one reference.
// A '$' followed by anything else (a bare $VAR) is kept as it is, and so is
// an unterminated "${".
func (x *expander) expandString(s string) (out string, whole bool, probs []problem) {
	var b strings.Builder
	refs, literal := 0, false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c != '$':
			b.WriteByte(c)
			i++
			literal = true
		case i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i += 2
			literal = true
		case i+1 < len(s) && s[i+1] == '{':
			end := closingBrace(s, i+2)
			if end < 0 {
				b.WriteString(s[i:])
				i = len(s)
				literal = true
				continue
			}
			val, p := x.resolve(s[i+2 : end])
			if p != nil {
				probs = append(probs, *p)
			}
			b.WriteString(val)
			refs++
			i = end + 1
		default:
			b.WriteByte(c)
			i++
			literal = true
		}
	}
	return b.String(), refs == 1 && !literal, probs
}

// closingBrace finds the '}' that closes a "${" whose content starts at
// from, allowing nested braces; -1 if there is none.
func closingBrace(s string, from int) int {
	depth := 1
	for i := from; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// resolve looks one reference up. Problems never quote the reference text
// beyond a variable name or a scheme, so a mistyped secret is not echoed.
func (x *expander) resolve(ref string) (string, *problem) {
	scheme, rest, ok := splitScheme(ref)
	if !ok || strings.HasPrefix(rest, "-") { // ${VAR} or ${VAR:-default}
		return x.env(ref)
	}
	switch scheme {
	case "env":
		return x.env(rest)
	case "file":
		data, err := x.opts.ReadFile(rest)
		if err != nil {
			return "", &problem{msg: fmt.Sprintf("read ${file:...}: %v", err)}
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	default:
		return "", &problem{msg: fmt.Sprintf("unsupported variable scheme %q (want env or file; write $$ for a literal $)", scheme)}
	}
}

// splitScheme splits "scheme:rest" where scheme matches [A-Za-z][A-Za-z0-9+.-]*.
func splitScheme(ref string) (scheme, rest string, ok bool) {
	i := strings.IndexByte(ref, ':')
	if i <= 0 {
		return "", "", false
	}
	for j := 0; j < i; j++ {
		c := ref[j]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-')) {
			return "", "", false
		}
	}
	return ref[:i], ref[i+1:], true
}

func (x *expander) env(ref string) (string, *problem) {
	name, def, hasDef := strings.Cut(ref, ":-")
	if !validEnvName(name) {
		return "", &problem{msg: "invalid variable reference: a name must match [A-Za-z_][A-Za-z0-9_]* (write $$ for a literal $)"}
	}
	if v, ok := x.opts.LookupEnv(name); ok {
		return v, nil
	}
	if hasDef {
		return def, nil
	}
	if x.opts.Lenient {
		return "", &problem{msg: fmt.Sprintf("environment variable %q is not set; using an empty value", name), warn: true}
	}
	return "", &problem{msg: fmt.Sprintf("environment variable %q is not set and has no default", name)}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
