//go:build linux

package exepages

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Release unmaps the resident pages of the executable's read-only
// mappings and returns the bytes those mappings span.
func Release() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("stat own executable: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("read own mappings: %w", err)
	}
	ranges, err := readOnlyRanges(maps, st.Ino)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range ranges {
		// The raw call: these are addresses, not Go memory.
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r.start, r.end-r.start, syscall.MADV_DONTNEED); errno != 0 {
			return n, fmt.Errorf("madvise %#x-%#x: %w", r.start, r.end, errno)
		}
		n += int64(r.end - r.start)
	}
	return n, nil
}

type addrRange struct{ start, end uintptr }

// readOnlyRanges returns the mappings in maps (the format of
// /proc/self/maps) of the file with inode ino that are neither writable
// nor shared.
func readOnlyRanges(maps []byte, ino uint64) ([]addrRange, error) {
	var out []addrRange
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode [path]
		f := bytes.Fields(sc.Bytes())
		if len(f) < 5 {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		if i, err := strconv.ParseUint(string(f[4]), 10, 64); err != nil || i != ino || i == 0 {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			return nil, fmt.Errorf("parse own mappings: address %q", f[0])
		}
		s, err1 := strconv.ParseUint(string(lo), 16, 64)
		e, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || e <= s {
			return nil, fmt.Errorf("parse own mappings: address %q", f[0])
		}
		out = append(out, addrRange{uintptr(s), uintptr(e)})
	}
	return out, sc.Err()
}
