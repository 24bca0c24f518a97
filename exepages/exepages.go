// Package exepages gives back the resident pages of the obs executable
// that the process no longer uses.
//
// Start-up touches code and read-only data scattered over the whole binary:
// some 460 package initialisers, configuration parsing, pipeline building.
// Each first touch maps a whole window of the file (the kernel's fault-
// around over large page-cache folios), so about 50 MiB of a 90 MB binary
// stays mapped and counts in the RSS of every agent of a DaemonSet,
// although a running pipeline uses a fraction of it. Dropping the read-only
// mappings' page-table entries (madvise MADV_DONTNEED) unmaps them; the
// pages the process still runs fault back in from the page cache (a minor
// fault, no disk read). Writable mappings (data, bss) are never touched:
// there the advice would discard the process' own state.
package exepages

import (
	"context"
	"log/slog"
	"time"
)

// Run releases the pages now and then every interval until ctx ends.
func Run(ctx context.Context, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := Release()
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
