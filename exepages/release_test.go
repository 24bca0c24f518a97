//go:build linux

package exepages

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadOnlyRanges(t *testing.T) {
	maps := []byte(`00400000-01e8c000 r-xp 00000000 fe:01 1234 /usr/bin/obs
01e8c000-0401a000 r--p 01a8c000 fe:01 1234 /usr/bin/obs
0401a000-04098000 rw-p 03c1a000 fe:01 1234 /usr/bin/obs
04098000-040e0000 rw-p 00000000 00:00 0
c000000000-c004000000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--s 00000000 fe:01 1234 /usr/bin/obs
7f0000002000-7f0000003000 r--p 00000000 fe:01 99 /usr/lib/other.so
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
`)
	got, err := readOnlyRanges(maps, 1234)
	require.NoError(t, err)
	require.Equal(t, []addrRange{{0x400000, 0x1e8c000}, {0x1e8c000, 0x401a000}}, got,
		"text and rodata of the executable only: not its data, not a shared or another file's mapping")

	_, err = readOnlyRanges([]byte("zz r-xp 0 fe:01 1234 /usr/bin/obs\n"), 1234)
	require.Error(t, err)
}

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			var kib int
			_, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kib)
			require.NoError(t, err)
			return kib
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseUnmapsAndRunsOn: the test binary's file-backed resident pages
// drop, and code keeps running (the pages fault back in).
func TestReleaseUnmapsAndRunsOn(t *testing.T) {
	before := rssFileKiB(t)
	n, err := Release()
	require.NoError(t, err)
	require.Positive(t, n)
	after := rssFileKiB(t)
	t.Logf("RssFile %d KiB before, %d KiB after releasing %d MiB of mappings", before, after, n>>20)
	require.Less(t, after, before)
	// Code and read-only data still work: format, sort, reflect.
	require.Equal(t, "[1 2 3]", strings.TrimSpace(fmt.Sprint([]int{1, 2, 3})))
}
