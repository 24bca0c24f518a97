package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem found in a configuration file. It names the file,
// the line and column and the key path (e.g.
// "receivers.otlp.protocols.grpc.endpoint"). Msg never contains the value
// of the offending scalar, so an Error is safe to print even when the value
// is a secret.
type Error struct {
	File   string
	Line   int
	Column int
	Path   string
	Msg    string
}

// Error formats as "FILE:LINE: PATH: MSG"; parts that are unknown are left out.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, sorted by line.
type Errors []*Error

// Error joins the errors, one per line.
func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap lets errors.As find the individual *Error values.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
}

// errOrNil returns nil for an empty list, so callers never hold a non-nil
// error interface around an empty Errors.
func (es Errors) errOrNil() error {
	if len(es) == 0 {
		return nil
	}
	es.sort()
	return es
}
