// Package filepages gives back resident pages of file mappings that the
// process keeps mapped but does not need resident.
//
// Two kinds count in the RSS of every agent of a DaemonSet although the
// page cache holds them anyway:
//
//   - The executable. Start-up touches code and read-only data scattered
//     over the whole binary (some 460 package initialisers, configuration
//     parsing, pipeline building); each first touch maps a whole window of
//     the file (the kernel's fault-around), so about 50 MiB of a 90 MB
//     binary stays mapped, of which a running pipeline uses a fraction.
//   - Badger's value log, written through a shared mapping: every page
//     written stays mapped until its file is collected.
//
// Dropping the page-table entries (madvise MADV_DONTNEED) unmaps them; what
// the process still uses faults back in from the page cache (a minor
// fault, no disk read). For a shared file mapping a dirty page stays dirty
// in the page cache, so nothing written is lost and msync still writes it.
// Private writable mappings (data, bss) are never touched: there the advice
// would discard the process' own state.
package filepages

import (
	"context"
	"log/slog"
	"time"
)

// RunExecutable releases the executable's pages now and then every
// interval until ctx ends.
func RunExecutable(ctx context.Context, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := ReleaseExecutable()
		if err != nil {
			log.Warn("release executable pages", "err", err)
			return nil // the process runs on, only with more resident memory
		}
		log.Debug("released executable pages", "mapped_bytes", n)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
