//go:build linux

package filepages

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseExecutable unmaps the resident pages of the executable's
// read-only private mappings and returns the bytes those mappings span.
func ReleaseExecutable() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("stat own executable: %w", err)
	}
	// smaps, for the anonymous pages: a read-only private mapping with
	// some was written before it was made read-only (a PIE's relocations
	// under RELRO), and the advice would drop what was written.
	return release("/proc/self/smaps", func(m mapping) bool {
		return m.inode == st.Ino && !m.write && !m.shared && m.anonKiB == 0
	})
}

// ReleaseShared unmaps the resident pages of the shared mappings of files
// directly in dir whose names end in suffix, and returns the bytes those
// mappings span. The caller makes sure no such mapping is unmapped, moved
// or shrunk while it runs: between reading /proc/self/maps and the advice,
// another mapping could take the addresses, and its memory would be lost.
func ReleaseShared(dir, suffix string) (int64, error) {
	// The kernel names mappings by absolute path, symlinks resolved.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return 0, fmt.Errorf("release pages of %s: %w", dir, err)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return release("/proc/self/maps", func(m mapping) bool {
		return m.shared && filepath.Dir(m.path) == dir && strings.HasSuffix(m.path, suffix)
	})
}

// release advises away the mappings listed in path (maps or smaps) that
// keep selects.
func release(path string, keep func(mapping) bool) (int64, error) {
	maps, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read own mappings: %w", err)
	}
	ms, err := parseMaps(maps)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, m := range ms {
		if !keep(m) {
			continue
		}
		// The raw call: these are addresses, not Go memory.
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_DONTNEED); errno != 0 {
			return n, fmt.Errorf("madvise %#x-%#x %s: %w", m.start, m.end, m.path, errno)
		}
		n += int64(m.end - m.start)
	}
	return n, nil
}

// mapping is one line of /proc/self/maps.
type mapping struct {
	start, end    uintptr
	write, shared bool
	inode         uint64
	path          string
	anonKiB       uint64 // from smaps: copy-on-write pages
}

// parseMaps reads the file-backed mappings of maps (the format of
// /proc/self/maps: address perms offset dev inode [path]) or of smaps (the
// same lines, each followed by "Key: value" lines).
func parseMaps(maps []byte) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	inFile := false // the lines that follow belong to a file mapping in out
	for sc.Scan() {
		line := sc.Bytes()
		f := bytes.Fields(line)
		if len(f) >= 2 && bytes.HasSuffix(f[0], []byte(":")) {
			if inFile && string(f[0]) == "Anonymous:" {
				kib, err := strconv.ParseUint(string(f[1]), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("parse own mappings: %q", line)
				}
				out[len(out)-1].anonKiB = kib
			}
			continue
		}
		inFile = false
		if len(f) < 6 || len(f[1]) != 4 {
			continue // anonymous
		}
		ino, err := strconv.ParseUint(string(f[4]), 10, 64)
		if err != nil || ino == 0 {
			continue // not a file: [vdso], [heap]
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		s, err1 := strconv.ParseUint(string(lo), 16, 64)
		e, err2 := strconv.ParseUint(string(hi), 16, 64)
		if !ok || err1 != nil || err2 != nil || e <= s {
			return nil, fmt.Errorf("parse own mappings: address %q", f[0])
		}
		// The path is the rest of the line after the inode (it may hold
		// spaces); a deleted file ends in " (deleted)".
		rest := line
		for range 5 {
			rest = bytes.TrimLeft(rest, " \t")
			rest = rest[bytes.IndexAny(rest, " \t"):] // 6 fields: found
		}
		path := string(bytes.TrimSpace(rest))
		out = append(out, mapping{start: uintptr(s), end: uintptr(e), write: f[1][1] == 'w',
			shared: f[1][3] == 's', inode: ino, path: path})
		inFile = true
	}
	return out, sc.Err()
}
