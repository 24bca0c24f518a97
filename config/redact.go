package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Redaction is the text that replaces every secret in Redacted output.
const Redaction = "[REDACTED]"

// secretKey matches keys whose values are secrets (case-insensitive).
var secretKey = regexp.MustCompile(`(?i)password|passwd|secret|token|api_key|apikey|api-key|authorization|bearer|credential|private_key|key_pem|cert_pem`)

// gossipKey matches keys under the top-level cluster section that would
// hold a gossip encryption key itself rather than a path to one.
var gossipKey = regexp.MustCompile(`(?i)^(key|keys|.*[_-]key|.*[_-]keys)$`)

// isSecretKey reports whether the value under key (at path) is a secret.
// Keys naming a file or path (bearer_token_file, key_file, ...) hold a
// path, not the secret, and are kept.
func isSecretKey(path []string, key string) bool {
	lower := strings.ToLower(key)
	if strings.HasSuffix(lower, "_file") || strings.HasSuffix(lower, "_path") {
		return false
	}
	if secretKey.MatchString(key) {
		return true
	}
	return len(path) > 0 && path[0] == "cluster" && gossipKey.MatchString(key)
}

// maxRedactNodes bounds the copy Redacted makes when aliases fan out.
const maxRedactNodes = 1 << 18

// Redacted returns the effective (expanded) configuration as YAML with
// every secret replaced by "[REDACTED]": every value under a `headers`
// mapping, the value of every key that names a password, token, secret,
// api key, credential, private key or PEM, and gossip keys under cluster.
// Aliases are resolved and comments dropped, so neither can carry a
// secret past the redaction.
func (f *File) Redacted() ([]byte, error) {
	if f.Root == nil {
		return nil, fmt.Errorf("redact config: nothing loaded")
	}
	r := &redactor{budget: maxRedactNodes, active: map[*yaml.Node]bool{}}
	root, err := r.copy(f.Root, nil, false)
	if err != nil {
		return nil, fmt.Errorf("redact config: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("redact config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("redact config: %w", err)
	}
	return buf.Bytes(), nil
}

// copy deep-copies n, resolving aliases, replacing every non-null
// value below a secret with the redaction.
type redactor struct {
	budget int
	// active holds the nodes being copied, to catch an alias to an
	// ancestor, which would otherwise expand forever.
	active map[*yaml.Node]bool
}

func (r *redactor) copy(n *yaml.Node, path []string, secret bool) (*yaml.Node, error) {
	n = resolveAlias(n)
	if r.budget--; r.budget < 0 {
		return nil, fmt.Errorf("too many nodes after alias expansion")
	}
	if n.Kind == yaml.AliasNode {
		return nil, fmt.Errorf("alias nests too deeply")
	}
	if r.active[n] {
		return nil, fmt.Errorf("line %d: alias refers to a node that contains it", n.Line)
	}
	r.active[n] = true
	defer delete(r.active, n)
	if secret && !isNull(n) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: Redaction, Line: n.Line, Column: n.Column}, nil
	}
	out := &yaml.Node{Kind: n.Kind, Style: n.Style &^ (yaml.TaggedStyle), Tag: n.Tag, Value: n.Value, Line: n.Line, Column: n.Column}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			cc, err := r.copy(c, path, false)
			if err != nil {
				return nil, err
			}
			out.Content = append(out.Content, cc)
		}
	case yaml.MappingNode:
		underHeaders := len(path) > 0 && strings.EqualFold(path[len(path)-1], "headers")
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolveAlias(n.Content[i])
			kc, err := r.copy(k, path, false)
			if err != nil {
				return nil, err
			}
			v := resolveAlias(n.Content[i+1])
			sec := underHeaders || (k.Kind == yaml.ScalarNode && isSecretKey(path, k.Value)) ||
				(k.Kind == yaml.ScalarNode && strings.EqualFold(k.Value, "headers") && v.Kind != yaml.MappingNode)
			vc, err := r.copy(v, append(path[:len(path):len(path)], k.Value), sec)
			if err != nil {
				return nil, err
			}
			out.Content = append(out.Content, kc, vc)
		}
	}
	return out, nil
}
