package export

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/obs-dev/obs/actors"
)

// FileExporterConfig is the Collector's file exporter block.
type FileExporterConfig struct {
	// Path is the file written to. Required.
	Path string `yaml:"path"`
	// Format is json (default: one OTLP/JSON export request per line) or
	// proto (each request prefixed by its 4-byte big-endian length).
	Format string `yaml:"format"`
	// Rotation, when present, rotates the file by size.
	Rotation *RotationConfig `yaml:"rotation"`
}

// RotationConfig is the Collector's rotation block.
type RotationConfig struct {
	// MaxMegabytes is the size (MiB) at which the file is rotated.
	// Default 100.
	MaxMegabytes int `yaml:"max_megabytes"`
	// MaxDays removes backups older than this many days; 0 keeps them.
	MaxDays int `yaml:"max_days"`
	// MaxBackups is how many rotated files are kept; 0 keeps all.
	// Default 100.
	MaxBackups int `yaml:"max_backups"`
	// LocalTime names backups in local time instead of UTC.
	LocalTime bool `yaml:"localtime"`
}

// DefaultFileExporterConfig returns the Collector's defaults (no path).
func DefaultFileExporterConfig() FileExporterConfig {
	return FileExporterConfig{Format: "json"}
}

// DefaultRotationConfig returns the Collector's rotation defaults.
func DefaultRotationConfig() *RotationConfig {
	return &RotationConfig{MaxMegabytes: 100, MaxBackups: 100}
}

// Validate checks the values.
func (c FileExporterConfig) Validate() error {
	if c.Path == "" {
		return errors.New("path: required")
	}
	switch c.Format {
	case "", "json", "proto":
	default:
		return fmt.Errorf("format: unsupported %q (want json or proto)", c.Format)
	}
	if r := c.Rotation; r != nil {
		if r.MaxMegabytes < 0 || r.MaxDays < 0 || r.MaxBackups < 0 {
			return errors.New("rotation: max_megabytes, max_days and max_backups must be >= 0")
		}
	}
	return nil
}

// backupTimeFormat names rotated files, as lumberjack (the Collector's
// rotation library) does.
const backupTimeFormat = "2006-01-02T15-04-05.000"

// FileSender appends payloads to a file.
type FileSender struct {
	cfg   FileExporterConfig
	proto bool
	log   *slog.Logger
	max   int64
	now   func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  bytes.Buffer
}

// NewFileSender validates cfg; the file is opened on the first Send.
func NewFileSender(cfg FileExporterConfig, log *slog.Logger) (*FileSender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new file sender: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &FileSender{cfg: cfg, proto: cfg.Format == "proto", log: log, now: time.Now}
	if r := cfg.Rotation; r != nil {
		mb := r.MaxMegabytes
		if mb == 0 {
			mb = DefaultRotationConfig().MaxMegabytes
		}
		s.max = int64(mb) << 20
	}
	return s, nil
}

// Send appends the payload in one write (no fsync: the OS has it when Send
// returns, which survives a process crash).
func (s *FileSender) Send(_ context.Context, sig actors.Signal, payload []byte) (SendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	if s.proto {
		if _, err := decodeProto(sig, payload); err != nil {
			return SendResult{}, Permanent(fmt.Errorf("file %s: %w", sig, err))
		}
		s.buf.Write(binary.BigEndian.AppendUint32(nil, uint32(len(payload))))
		s.buf.Write(payload)
	} else {
		b, err := decodeProto(sig, payload)
		if err != nil {
			return SendResult{}, Permanent(fmt.Errorf("file %s: %w", sig, err))
		}
		js, err := encodeJSON(b)
		if err != nil {
			return SendResult{}, Permanent(fmt.Errorf("file %s: %w", sig, err))
		}
		s.buf.Write(js)
		s.buf.WriteByte('\n')
	}
	if err := s.ensureOpen(int64(s.buf.Len())); err != nil {
		return SendResult{}, err
	}
	n, err := s.f.Write(s.buf.Bytes())
	s.size += int64(n)
	if err != nil {
		return SendResult{}, fmt.Errorf("file %s: write %q: %w", sig, s.cfg.Path, err)
	}
	return SendResult{}, nil
}

// ensureOpen opens the file and rotates it when the next write of n bytes
// would pass the size limit.
func (s *FileSender) ensureOpen(n int64) error {
	if s.f == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.max > 0 && s.size > 0 && s.size+n > s.max {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	return nil
}

func (s *FileSender) open() error {
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o755); err != nil {
		return fmt.Errorf("open file exporter path: %w", err)
	}
	f, err := os.OpenFile(s.cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open file exporter path: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat %q: %w", s.cfg.Path, err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// rotate renames the current file to a timestamped backup, opens a new one
// and prunes old backups.
func (s *FileSender) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("rotate %q: close: %w", s.cfg.Path, err)
	}
	s.f = nil
	t := s.now()
	if !s.cfg.Rotation.LocalTime {
		t = t.UTC()
	}
	dir, base := filepath.Split(s.cfg.Path)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	backup := filepath.Join(dir, prefix+t.Format(backupTimeFormat)+ext)
	if err := os.Rename(s.cfg.Path, backup); err != nil {
		return fmt.Errorf("rotate %q: %w", s.cfg.Path, err)
	}
	if err := s.open(); err != nil {
		return err
	}
	s.prune(dir, prefix, ext)
	return nil
}

// prune removes backups beyond max_backups and older than max_days. A
// failure is logged: it must not stop delivery.
func (s *FileSender) prune(dir, prefix, ext string) {
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.log.Warn("list file exporter backups", "err", err)
		return
	}
	type backup struct {
		name string
		t    time.Time
	}
	var bs []backup
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, ext) {
			continue
		}
		t, err := time.Parse(backupTimeFormat, strings.TrimSuffix(strings.TrimPrefix(n, prefix), ext))
		if err != nil {
			continue
		}
		bs = append(bs, backup{n, t})
	}
	slices.SortFunc(bs, func(a, b backup) int { return b.t.Compare(a.t) }) // newest first
	r := s.cfg.Rotation
	cutoff := time.Time{}
	if r.MaxDays > 0 {
		cutoff = s.now().Add(-time.Duration(r.MaxDays) * 24 * time.Hour)
	}
	for i, b := range bs {
		if (r.MaxBackups > 0 && i >= r.MaxBackups) || (!cutoff.IsZero() && b.t.Before(cutoff)) {
			if err := os.Remove(filepath.Join(dir, b.name)); err != nil {
				s.log.Warn("remove file exporter backup", "file", b.name, "err", err)
			}
		}
	}
}

// Close closes the file (every Send has already written its bytes).
func (s *FileSender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("close %q: %w", s.cfg.Path, err)
	}
	return nil
}
