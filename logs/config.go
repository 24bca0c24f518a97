package logs

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FilelogConfig is the filelog receiver's configuration, with the
// OpenTelemetry Collector's key names.
type FilelogConfig struct {
	// Include lists globs ("**" matches any number of directories) of the
	// files to tail. Required.
	Include []string `yaml:"include"`
	// Exclude lists globs of files never to tail, even if included.
	Exclude []string `yaml:"exclude"`
	// StartAt is "end" (default) or "beginning": where to start in files
	// found on the receiver's very first start. Files found later, or
	// after a restart with checkpoints, are read from their beginning.
	StartAt string `yaml:"start_at"`
	// PollInterval is how often the globs are matched and files read.
	// Default 200ms.
	PollInterval time.Duration `yaml:"poll_interval"`
	// IncludeFilePath adds the log.file.path attribute. Default false.
	IncludeFilePath bool `yaml:"include_file_path"`
	// IncludeFileName adds the log.file.name attribute. Default true.
	IncludeFileName bool `yaml:"include_file_name"`
	// IncludeFilePathResolved adds log.file.path_resolved (symlinks
	// resolved). Default false.
	IncludeFilePathResolved bool `yaml:"include_file_path_resolved"`
	// IncludeFileNameResolved adds log.file.name_resolved. Default false.
	IncludeFileNameResolved bool `yaml:"include_file_name_resolved"`
	// FingerprintSize is how many leading bytes identify a file. Default
	// 1 KiB; at least 16 bytes.
	FingerprintSize ByteSize `yaml:"fingerprint_size"`
	// MaxLogSize caps one record's body; longer lines are split into
	// several records and counted. Default 1 MiB.
	MaxLogSize ByteSize `yaml:"max_log_size"`
	// MaxConcurrentFiles caps the open file handles. Default 1024.
	MaxConcurrentFiles int `yaml:"max_concurrent_files"`
	// Encoding is "utf-8" (default; invalid bytes become U+FFFD) or "nop"
	// (the body is the raw bytes; no operators then).
	Encoding string `yaml:"encoding"`
	// ForceFlushPeriod is how long an unterminated last line (or a
	// partial record waiting for its end) waits before it is sent as it
	// is. Default 500ms; 0 never sends it early.
	ForceFlushPeriod time.Duration `yaml:"force_flush_period"`
	// Multiline joins lines into one record: a record starts at a line
	// matching LineStartPattern, or ends at one matching LineEndPattern.
	Multiline MultilineConfig `yaml:"multiline"`
	// DeleteAfterRead deletes a file once it was read to its end and the
	// records are durable. Needs start_at: beginning.
	DeleteAfterRead bool `yaml:"delete_after_read"`
	// ExcludeOlderThan skips files not modified for this long; 0 off.
	ExcludeOlderThan time.Duration `yaml:"exclude_older_than"`
	// Operators parse and edit each record, in order.
	Operators []OperatorConfig `yaml:"operators"`

	// Attributes are added to every record.
	Attributes map[string]string `yaml:"attributes"`
	// Resource attributes are added to every file's resource.
	Resource map[string]string `yaml:"resource"`

	// Accepted for compatibility with Collector configs and ignored:
	// obs keeps checkpoints in its WAL (storage), and a refused batch is
	// always retried by reading the file again (retry_on_failure).
	Storage     string     `yaml:"storage"`
	RetryOnFail *yaml.Node `yaml:"retry_on_failure"`
}

// MultilineConfig sets how lines are joined into records; at most one
// pattern may be set.
type MultilineConfig struct {
	LineStartPattern string `yaml:"line_start_pattern"`
	LineEndPattern   string `yaml:"line_end_pattern"`
	OmitPattern      bool   `yaml:"omit_pattern"`
}

// OperatorConfig is one operator. Type selects which other keys apply:
//
//	container:    format (auto|docker|crio|containerd), add_metadata_from_filepath (default true),
//	              max_log_size of a joined record (0: the receiver's max_log_size)
//	json_parser:  parse_from (default body), parse_to (default attributes), timestamp
//	regex_parser: regex (named groups), parse_from, parse_to, timestamp
//	move:         from, to
//	add:          field, value
//	remove:       field
//
// Fields are "body", "body.x", "attributes.x", "attributes[\"x.y\"]",
// "resource.x". on_error is send (default), send_quiet, drop or
// drop_quiet; every error is counted either way.
type OperatorConfig struct {
	Type    string `yaml:"type"`
	ID      string `yaml:"id"`
	Output  string `yaml:"output"`
	OnError string `yaml:"on_error"`

	Format                  string   `yaml:"format"`
	AddMetadataFromFilepath *bool    `yaml:"add_metadata_from_filepath"`
	MaxLogSize              ByteSize `yaml:"max_log_size"`

	ParseFrom string           `yaml:"parse_from"`
	ParseTo   string           `yaml:"parse_to"`
	Regex     string           `yaml:"regex"`
	Timestamp *TimestampConfig `yaml:"timestamp"`

	From  string    `yaml:"from"`
	To    string    `yaml:"to"`
	Field string    `yaml:"field"`
	Value yaml.Node `yaml:"value"`
}

// TimestampConfig sets a record's time from a parsed field.
type TimestampConfig struct {
	ParseFrom  string `yaml:"parse_from"`
	LayoutType string `yaml:"layout_type"` // gotime (default), strptime, epoch
	Layout     string `yaml:"layout"`      // for epoch: s, ms, us, ns
	Location   string `yaml:"location"`
}

// ByteSize is a byte count written as an integer or as "1KiB", "16kb",
// "1MiB", "1mb".
type ByteSize int64

// UnmarshalYAML accepts an integer or a size string.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func parseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a byte size such as 1024 or 16KiB, got %q", s)
	}
	mul := int64(1)
	switch strings.TrimSpace(t[i:]) {
	case "", "b":
	case "k", "kb", "kib":
		mul = 1 << 10
	case "m", "mb", "mib":
		mul = 1 << 20
	case "g", "gb", "gib":
		mul = 1 << 30
	default:
		return 0, fmt.Errorf("want a byte size such as 1024 or 16KiB, got %q", s)
	}
	if n > (1<<62)/mul {
		return 0, fmt.Errorf("byte size %q too large", s)
	}
	return ByteSize(n * mul), nil
}

// DefaultFilelogConfig returns the Collector's defaults.
func DefaultFilelogConfig() FilelogConfig {
	return FilelogConfig{
		StartAt:            "end",
		PollInterval:       200 * time.Millisecond,
		IncludeFileName:    true,
		FingerprintSize:    1 << 10,
		MaxLogSize:         1 << 20,
		MaxConcurrentFiles: 1024,
		Encoding:           "utf-8",
		ForceFlushPeriod:   500 * time.Millisecond,
	}
}

// Validate names the first offending key.
func (c *FilelogConfig) Validate() error {
	if len(c.Include) == 0 {
		return errors.New("include: at least one glob is required")
	}
	for i, g := range c.Include {
		if err := validateGlob(g); err != nil {
			return fmt.Errorf("include[%d]: %w", i, err)
		}
	}
	for i, g := range c.Exclude {
		if err := validateGlob(g); err != nil {
			return fmt.Errorf("exclude[%d]: %w", i, err)
		}
	}
	switch c.StartAt {
	case "beginning", "end":
	default:
		return fmt.Errorf("start_at: want beginning or end, got %q", c.StartAt)
	}
	switch {
	case c.PollInterval <= 0:
		return fmt.Errorf("poll_interval: must be positive, got %s", c.PollInterval)
	case c.FingerprintSize < 16:
		return fmt.Errorf("fingerprint_size: must be at least 16 bytes, got %d", c.FingerprintSize)
	case c.FingerprintSize > 1<<20:
		return fmt.Errorf("fingerprint_size: must be at most 1MiB, got %d", c.FingerprintSize)
	case c.MaxLogSize < 1:
		return fmt.Errorf("max_log_size: must be positive, got %d", c.MaxLogSize)
	case c.MaxLogSize > 64<<20:
		return fmt.Errorf("max_log_size: must be at most 64MiB, got %d", c.MaxLogSize)
	case c.MaxConcurrentFiles < 1:
		return fmt.Errorf("max_concurrent_files: must be at least 1, got %d", c.MaxConcurrentFiles)
	case c.ForceFlushPeriod < 0:
		return fmt.Errorf("force_flush_period: must not be negative, got %s", c.ForceFlushPeriod)
	case c.ExcludeOlderThan < 0:
		return fmt.Errorf("exclude_older_than: must not be negative, got %s", c.ExcludeOlderThan)
	case c.DeleteAfterRead && c.StartAt != "beginning":
		return errors.New("delete_after_read: needs start_at: beginning")
	}
	switch strings.ToLower(c.Encoding) {
	case "utf-8", "utf8", "":
	case "nop":
		if len(c.Operators) > 0 {
			return errors.New("encoding: nop gives raw bytes, which operators cannot parse")
		}
	default:
		return fmt.Errorf("encoding: want utf-8 or nop, got %q", c.Encoding)
	}
	if c.Multiline.LineStartPattern != "" && c.Multiline.LineEndPattern != "" {
		return errors.New("multiline: only one of line_start_pattern and line_end_pattern may be set")
	}
	for _, p := range []struct{ key, re string }{{"multiline.line_start_pattern", c.Multiline.LineStartPattern}, {"multiline.line_end_pattern", c.Multiline.LineEndPattern}} {
		if p.re != "" {
			if _, err := regexp.Compile(p.re); err != nil {
				return fmt.Errorf("%s: %w", p.key, err)
			}
		}
	}
	_, err := compileOperators(c.Operators)
	return err
}

func validateGlob(g string) error {
	if g == "" {
		return errors.New("empty glob")
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("bad glob %q: %w", g, err)
		}
	}
	return nil
}
