package config

import (
	"fmt"
	"strings"
	"unicode"
)

// ID names a component: its type and an optional name, written "type" or
// "type/name" as in the Collector ("otlp/backend").
type ID struct {
	Type string
	Name string
}

// String gives "type" or "type/name".
func (id ID) String() string {
	if id.Name == "" {
		return id.Type
	}
	return id.Type + "/" + id.Name
}

// ParseID parses "type" or "type/name". The type must match [a-z][a-z0-9_]*
// and a name, when a '/' is present, must be non-empty and hold no '/',
// spaces or control characters.
func ParseID(s string) (ID, error) {
	typ, name, hasName := strings.Cut(s, "/")
	if err := validateType(typ); err != nil {
		return ID{}, fmt.Errorf("parse component id %q: %w", s, err)
	}
	if hasName {
		if err := validateName(name); err != nil {
			return ID{}, fmt.Errorf("parse component id %q: %w", s, err)
		}
	}
	return ID{Type: typ, Name: name}, nil
}

func validateType(typ string) error {
	if typ == "" {
		return fmt.Errorf("type is empty")
	}
	for i, r := range typ {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_'):
		default:
			return fmt.Errorf("type must match [a-z][a-z0-9_]*")
		}
	}
	return nil
}

func validateName(name string) error {
	if name == "" {
		return fmt.Errorf("name after '/' is empty")
	}
	for _, r := range name {
		if r == '/' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("name must not contain '/', spaces or control characters")
		}
	}
	return nil
}

// Signals a pipeline may carry.
const (
	SignalLogs    = "logs"
	SignalMetrics = "metrics"
	SignalTraces  = "traces"
)

// PipelineID names a pipeline: "metrics" or "metrics/self".
type PipelineID struct {
	Signal string
	Name   string
}

// String gives "signal" or "signal/name".
func (id PipelineID) String() string {
	if id.Name == "" {
		return id.Signal
	}
	return id.Signal + "/" + id.Name
}

// ParsePipelineID parses "signal" or "signal/name"; the signal is one of
// logs, metrics or traces.
func ParsePipelineID(s string) (PipelineID, error) {
	sig, name, hasName := strings.Cut(s, "/")
	switch sig {
	case SignalLogs, SignalMetrics, SignalTraces:
	default:
		return PipelineID{}, fmt.Errorf("parse pipeline id %q: signal must be logs, metrics or traces", s)
	}
	if hasName {
		if err := validateName(name); err != nil {
			return PipelineID{}, fmt.Errorf("parse pipeline id %q: %w", s, err)
		}
	}
	return PipelineID{Signal: sig, Name: name}, nil
}
