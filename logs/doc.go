// Package logs tails log files into log records: the filelog receiver,
// with the OpenTelemetry Collector's settings and container-log parsing.
//
// # Reading
//
// One goroutine (Run) polls every poll_interval: it matches the include
// globs (minus exclude), reads every open file from its offset to its end
// into one reused buffer, cuts lines, runs the operators and appends the
// records to a batch of at most 1,000 records or 1 MiB of bodies. Each
// full batch, and what is left at the end of a poll, goes to consume
// together with the new offsets of every file it read from.
//
// # Identity
//
// A file is its fingerprint: its first fingerprint_size bytes (fewer while
// the file is shorter; the fingerprint grows with it). A file renamed by
// rotation keeps its identity and offset. A file that is no longer matched
// (renamed out of the globs, deleted) but still open is read to its end and
// forgotten after a few polls. A file found shorter than its offset, or
// whose first bytes changed, was truncated in place (copytruncate): its
// path is read again from the start as a new file, while a copy of the old
// content found under another matched name continues at the old offset. A
// new file whose first bytes are a prefix of a known file's fingerprint
// is a copy in progress and waits until it is complete or differs.
//
// # Checkpoints
//
// The offsets ride in the extra key/values of the same consume call as the
// records they produced, so the WAL commits both or neither:
//
//	filelog/<id>/f/<16 hex>   version, offset, fingerprint, first path
//	filelog/<id>/index        the 16-hex ids of every tracked file
//
// The index is rewritten only when the set of files changes; such a change
// is committed at the end of the poll even without records (a batch of
// zero records carrying only checkpoints). An offset
// never points into a record not yet complete (a partial container line
// waiting for its end, a multiline record): after a crash such a record
// is read again whole. In memory an offset advances only once consume
// returned nil; on an error (actors.ErrRefused when the WAL is full or the
// memory limit is reached) the batch is dropped, every file it read from
// goes back to its committed offset, reading pauses with backoff (the file
// is the buffer) and obs_logs_reading_paused says so.
//
// start_at applies only on the receiver's very first start (no index
// stored yet); files found later, or after a restart, are read from their
// beginning, so lines written while obs was down are not skipped. Files
// that stop matching and are fully read are forgotten (their checkpoints
// deleted) after a few polls; bytes of a file truncated before they were
// read, with no copy found, are counted in obs_logs_lost_bytes_total.
package logs
