//go:build linux

package filepages

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestParseMaps(t *testing.T) {
	maps := []byte(`00400000-01e8c000 r-xp 00000000 fe:01 1234                               /usr/bin/obs
01e8c000-0401a000 r--p 01a8c000 fe:01 1234                               /usr/bin/obs
0401a000-04098000 rw-p 03c1a000 fe:01 1234                               /usr/bin/obs
04098000-040e0000 rw-p 00000000 00:00 0
7f0000000000-7f0000800000 rw-s 00000000 fe:01 77                         /data/my wal/000001.vlog
7f0000900000-7f0000901000 r--p 00000000 fe:01 99                         /usr/lib/old.so (deleted)
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
`)
	got, err := parseMaps(maps)
	require.NoError(t, err)
	require.Equal(t, []mapping{
		{start: 0x400000, end: 0x1e8c000, inode: 1234, path: "/usr/bin/obs"},
		{start: 0x1e8c000, end: 0x401a000, inode: 1234, path: "/usr/bin/obs"},
		{start: 0x401a000, end: 0x4098000, write: true, inode: 1234, path: "/usr/bin/obs"},
		{start: 0x7f0000000000, end: 0x7f0000800000, write: true, shared: true, inode: 77, path: "/data/my wal/000001.vlog"},
		{start: 0x7f0000900000, end: 0x7f0000901000, inode: 99, path: "/usr/lib/old.so (deleted)"},
	}, got, "file mappings only, paths with spaces whole")

	_, err = parseMaps([]byte("zz r-xp 0 fe:01 1234 /usr/bin/obs\n"))
	require.Error(t, err)

	// smaps: the same lines, each followed by its counters.
	smaps := []byte(`00400000-01e8c000 r-xp 00000000 fe:01 1234                               /usr/bin/obs
Size:              27184 kB
Rss:               20480 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw sd
01e8c000-01e9c000 r--p 01a8c000 fe:01 1234                               /usr/bin/obs
Size:                 64 kB
Anonymous:            16 kB
VmFlags: rd mr mw me dw sd
04098000-040e0000 rw-p 00000000 00:00 0
Size:                288 kB
Anonymous:           288 kB
VmFlags: rd wr mr mw me ac sd
`)
	got, err = parseMaps(smaps)
	require.NoError(t, err)
	require.Equal(t, []mapping{
		{start: 0x400000, end: 0x1e8c000, inode: 1234, path: "/usr/bin/obs"},
		{start: 0x1e8c000, end: 0x1e9c000, inode: 1234, path: "/usr/bin/obs", anonKiB: 16},
	}, got, "a read-only mapping with copy-on-write pages (RELRO) shows them; an anonymous mapping's count goes nowhere")
}

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			var kib int
			_, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib)
			require.NoError(t, err)
			return kib
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseExecutable: the test binary's file-backed resident pages
// drop, and code keeps running (the pages fault back in).
func TestReleaseExecutable(t *testing.T) {
	before := rssFileKiB(t)
	n, err := ReleaseExecutable()
	require.NoError(t, err)
	require.Positive(t, n)
	after := rssFileKiB(t)
	t.Logf("RssFile %d KiB before, %d KiB after releasing %d MiB of mappings", before, after, n>>20)
	require.Less(t, after, before)
	require.Equal(t, "[1 2 3]", fmt.Sprint([]int{1, 2, 3}), "code and read-only data still work")
}

// TestReleaseSharedKeepsWrites: pages written through a shared mapping
// leave the RSS and stay in the file, unsynced and synced alike.
func TestReleaseSharedKeepsWrites(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 20
	path := filepath.Join(dir, "000001.vlog")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Truncate(size))
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	require.NoError(t, err)
	defer syscall.Munmap(m)
	want := bytes.Repeat([]byte("obs wal entry "), size/14)
	copy(m, want)

	// Named through a symlink and relative to the working directory: the
	// kernel names the mapping by its absolute, resolved path.
	link := filepath.Join(t.TempDir(), "wal")
	require.NoError(t, os.Symlink(dir, link))
	t.Chdir(filepath.Dir(link))
	before := rssFileKiB(t)
	n, err := ReleaseShared("wal/", ".vlog")
	require.NoError(t, err)
	require.Equal(t, int64(size), n)
	after := rssFileKiB(t)
	t.Logf("RssFile %d KiB before, %d KiB after", before, after)
	require.Less(t, after, before-size/1024/2, "the written pages left the RSS")

	require.Equal(t, want, m[:len(want)], "the mapping reads what was written")
	onDisk, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, want, onDisk[:len(want)], "the file holds it")
	copy(m, "after release")
	_, _, errno := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafe.Pointer(&m[0])), size, syscall.MS_SYNC)
	require.Zero(t, errno)
	onDisk, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "after release", string(onDisk[:13]))

	n, err = ReleaseShared(dir, ".sst")
	require.NoError(t, err)
	require.Zero(t, n, "other suffixes are left alone")
}
