package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Limits of the cluster-wide state. An entry is meant to be small (a
// resume point, a resourceVersion) so that one fits in a gossip packet.
// The whole state travels in every push/pull (each member, every push/pull
// interval), and memberlist refuses a remote state over 20 MiB (it warns
// from 12 MiB), so the budget is in encoded bytes: new keys stop at
// maxStateBytes; updates of existing keys may go on to maxStateHardBytes,
// so a full state never stops a writer that already has its key. A
// k8s_events resume point with 16 event identities costs about 900 bytes
// encoded (TestStateSizeAtScale prints the figures): 8 MiB holds about
// 9,000 such entries, 5,000 namespaces with one receiver each take ~4.4 MiB.
// maxStateEntries only bounds what a digest may claim to hold.
const (
	maxStateKey       = 128
	maxStateValue     = 1024
	maxStateWriter    = 256
	maxStateEntries   = 65536
	maxStateBytes     = 8 << 20
	maxStateHardBytes = 16 << 20
)

// DefaultTombstoneTTL is how long a deleted key's tombstone is kept (and
// gossiped in push/pull) after this member learned of it. It must outlast
// the spread of the deletion: a member that was partitioned away for
// longer can bring the deleted entry back.
const DefaultTombstoneTTL = 10 * time.Minute

// Gossip message types (first byte of a user message or push/pull state).
const (
	msgStateEntry  byte = 1 // one entry, broadcast
	msgStateDigest byte = 2 // all entries, push/pull
	msgLeaving     byte = 3 // a member announces its graceful stop
	msgStateDelete byte = 4 // one tombstone, broadcast
)

// entry is one versioned value, or a tombstone (deleted) that records a
// deletion so that older writes still in flight cannot bring the key back.
// Between two entries for the same key the higher (version, node,
// deleted, value) wins, so every member converges on the same value
// whatever the order it hears them in.
type entry struct {
	key     string
	value   []byte
	version uint64
	node    string
	deleted bool
	// seen is when this member learned of the tombstone (local only).
	seen time.Time
}

func (e entry) newer(o entry) bool {
	if e.version != o.version {
		return e.version > o.version
	}
	if e.node != o.node {
		return e.node > o.node
	}
	if e.deleted != o.deleted {
		return e.deleted
	}
	return bytes.Compare(e.value, o.value) > 0
}

// size is what the entry costs in a push/pull digest.
func (e entry) size() int {
	n := uvarintLen(uint64(len(e.key))) + len(e.key) + uvarintLen(e.version) +
		uvarintLen(uint64(len(e.node))) + len(e.node)
	if !e.deleted {
		n += uvarintLen(uint64(len(e.value))) + len(e.value)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// StateInfo describes one cluster state entry, without its value.
type StateInfo struct {
	Key     string `json:"key"`
	Version uint64 `json:"version"`
	Writer  string `json:"writer"`
	Size    int    `json:"size"`
}

// store holds the cluster state. Its clock is a hybrid logical clock:
// a write takes max(last seen + 1, wall clock ns), so a restarted writer
// (which lost its counter) still beats its own older writes.
type store struct {
	mu      sync.Mutex
	entries map[string]entry
	clock   uint64
	bytes   int // sum of entry sizes, tombstones included
	live    int // entries that are not tombstones
	ttl     time.Duration
	now     func() time.Time
}

func newStore() *store {
	return &store{entries: make(map[string]entry), ttl: DefaultTombstoneTTL, now: time.Now}
}

// errStateFull is returned when a write would exceed the state's budget.
var errStateFull = errors.New("cluster state is full")

// roomLocked reports whether e may replace what the store holds for its key.
func (s *store) roomLocked(e entry) bool {
	old, ok := s.entries[e.key]
	if !ok {
		return len(s.entries) < maxStateEntries && s.bytes+e.size() <= maxStateBytes
	}
	return s.bytes-old.size()+e.size() <= maxStateHardBytes
}

// putLocked stores e, keeping the byte and live counts.
func (s *store) putLocked(e entry) {
	if old, ok := s.entries[e.key]; ok {
		s.bytes -= old.size()
		if !old.deleted {
			s.live--
		}
	}
	if e.deleted && e.seen.IsZero() {
		e.seen = s.now()
	}
	s.entries[e.key] = e
	s.bytes += e.size()
	if !e.deleted {
		s.live++
	}
}

func checkEntry(key string, value []byte) error {
	if key == "" {
		return errors.New("key is empty")
	}
	if len(key) > maxStateKey {
		return fmt.Errorf("key is %d bytes, limit is %d", len(key), maxStateKey)
	}
	if len(value) > maxStateValue {
		return fmt.Errorf("value is %d bytes, limit is %d", len(value), maxStateValue)
	}
	return nil
}

// set writes a local value and returns the new entry.
func (s *store) set(key string, value []byte, node string, nowNanos uint64) (entry, error) {
	if err := checkEntry(key, value); err != nil {
		return entry{}, err
	}
	if len(node) > maxStateWriter {
		return entry{}, fmt.Errorf("writer name is %d bytes, limit is %d", len(node), maxStateWriter)
	}
	if value == nil {
		value = []byte{}
	}
	return s.write(entry{key: key, value: bytes.Clone(value), node: node}, nowNanos)
}

// remove writes a tombstone for key and returns it; ok is false when
// the key holds nothing (no tombstone is needed).
func (s *store) remove(key, node string, nowNanos uint64) (entry, bool, error) {
	if err := checkEntry(key, nil); err != nil {
		return entry{}, false, err
	}
	s.mu.Lock()
	old, ok := s.entries[key]
	s.mu.Unlock()
	if !ok || old.deleted {
		return entry{}, false, nil
	}
	e, err := s.write(entry{key: key, node: node, deleted: true}, nowNanos)
	return e, err == nil, err
}

// write versions e with the clock and stores it.
func (s *store) write(e entry, nowNanos uint64) (entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.roomLocked(e) {
		return entry{}, fmt.Errorf("%w: %d entries, %d bytes (limit %d bytes for new keys)",
			errStateFull, len(s.entries), s.bytes, maxStateBytes)
	}
	v := s.clock + 1
	if nowNanos > v {
		v = nowNanos
	}
	if old, ok := s.entries[e.key]; ok && old.version >= v {
		v = old.version + 1
	}
	s.clock = v
	e.version = v
	s.putLocked(e)
	return e, nil
}

// gc drops the tombstones kept longer than the TTL; it returns how many.
func (s *store) gc() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for k, e := range s.entries {
		if e.deleted && now.Sub(e.seen) > s.ttl {
			s.bytes -= e.size()
			delete(s.entries, k)
			n++
		}
	}
	return n
}

// mergeResult says what merge did with a remote entry.
type mergeResult int

const (
	mergeApplied mergeResult = iota
	mergeStale
	mergeFull
)

// merge applies a remote entry if it is newer. The entry's slices must not
// be shared with the caller (decode copies).
func (s *store) merge(e entry) mergeResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.version > s.clock {
		s.clock = e.version
	}
	old, ok := s.entries[e.key]
	if ok && !e.newer(old) {
		return mergeStale
	}
	if !ok && e.deleted {
		// Nothing to delete here, but keep the tombstone: an older write
		// may still be on its way to this member.
		if len(s.entries) >= maxStateEntries || s.bytes+e.size() > maxStateHardBytes {
			return mergeFull
		}
	} else if !s.roomLocked(e) {
		return mergeFull
	}
	e.seen = time.Time{}
	s.putLocked(e)
	return mergeApplied
}

func (s *store) get(key string) ([]byte, bool) {
	v, _, ok := s.getWriter(key)
	return v, ok
}

// getWriter returns a copy of the value of key and the member that wrote it.
func (s *store) getWriter(key string) ([]byte, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || e.deleted {
		return nil, "", false
	}
	return bytes.Clone(e.value), e.node, true
}

// infos describes the live entries (tombstones are not state).
func (s *store) infos() []StateInfo {
	s.mu.Lock()
	out := make([]StateInfo, 0, s.live)
	for _, e := range s.entries {
		if !e.deleted {
			out = append(out, StateInfo{Key: e.key, Version: e.version, Writer: e.node, Size: len(e.value)})
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// len is the number of live entries.
func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// usage returns the tombstones kept and the bytes of all entries.
func (s *store) usage() (tombstones, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries) - s.live, s.bytes
}

// digest encodes every entry for push/pull: the live entries, then the
// tombstones in a trailing section (key, version, writer each). Members
// that predate tombstones read the live entries and ignore the rest.
func (s *store) digest() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := make([]byte, 0, s.bytes+16)
	b = append(b, msgStateDigest)
	b = binary.AppendUvarint(b, uint64(s.live))
	for _, e := range s.entries {
		if !e.deleted {
			b = appendEntry(b, e)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.entries)-s.live))
	for _, e := range s.entries {
		if e.deleted {
			b = appendTombstone(b, e)
		}
	}
	return b
}

func appendTombstone(b []byte, e entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.key)))
	b = append(b, e.key...)
	b = binary.AppendUvarint(b, e.version)
	b = binary.AppendUvarint(b, uint64(len(e.node)))
	return append(b, e.node...)
}

func appendEntry(b []byte, e entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.key)))
	b = append(b, e.key...)
	b = binary.AppendUvarint(b, e.version)
	b = binary.AppendUvarint(b, uint64(len(e.node)))
	b = append(b, e.node...)
	b = binary.AppendUvarint(b, uint64(len(e.value)))
	return append(b, e.value...)
}

func encodeEntryMsg(e entry) []byte {
	if e.deleted {
		return appendTombstone([]byte{msgStateDelete}, e)
	}
	return appendEntry([]byte{msgStateEntry}, e)
}

var errShortState = errors.New("state message is truncated")

// readBytes reads a uvarint length and that many bytes, copied.
func readBytes(b []byte, limit int) ([]byte, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, errShortState
	}
	if n > uint64(limit) {
		return nil, nil, fmt.Errorf("field of %d bytes exceeds limit %d", n, limit)
	}
	return bytes.Clone(b[k : k+int(n)]), b[k+int(n):], nil
}

// readHead reads what entries and tombstones share: key, version, writer.
func readHead(b []byte) (entry, []byte, error) {
	var e entry
	key, b, err := readBytes(b, maxStateKey)
	if err != nil {
		return e, nil, fmt.Errorf("read key: %w", err)
	}
	v, k := binary.Uvarint(b)
	if k <= 0 {
		return e, nil, fmt.Errorf("read version: %w", errShortState)
	}
	b = b[k:]
	node, b, err := readBytes(b, maxStateWriter)
	if err != nil {
		return e, nil, fmt.Errorf("read writer: %w", err)
	}
	if len(key) == 0 {
		return e, nil, errors.New("read key: key is empty")
	}
	return entry{key: string(key), version: v, node: string(node)}, b, nil
}

func readEntry(b []byte) (entry, []byte, error) {
	e, b, err := readHead(b)
	if err != nil {
		return e, nil, err
	}
	value, b, err := readBytes(b, maxStateValue)
	if err != nil {
		return e, nil, fmt.Errorf("read value: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	e.value = value
	return e, b, nil
}

func readTombstone(b []byte) (entry, []byte, error) {
	e, b, err := readHead(b)
	e.deleted = true
	return e, b, err
}

// readEntries reads a count and that many entries (or tombstones).
func readEntries(b []byte, out []entry, read func([]byte) (entry, []byte, error)) ([]entry, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, errShortState
	}
	if n > maxStateEntries || int(n)+len(out) > maxStateEntries {
		return nil, nil, fmt.Errorf("%d entries, limit is %d", int(n)+len(out), maxStateEntries)
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		e, rest, err := read(b)
		if err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, e)
		b = rest
	}
	return out, b, nil
}

// decodeState parses a gossip message or push/pull digest from another
// member into entries. It copies everything it returns.
func decodeState(b []byte) ([]entry, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("decode state: %w", errShortState)
	}
	switch b[0] {
	case msgStateEntry:
		e, _, err := readEntry(b[1:])
		if err != nil {
			return nil, fmt.Errorf("decode state entry: %w", err)
		}
		return []entry{e}, nil
	case msgStateDelete:
		e, _, err := readTombstone(b[1:])
		if err != nil {
			return nil, fmt.Errorf("decode state tombstone: %w", err)
		}
		return []entry{e}, nil
	case msgStateDigest:
		out, rest, err := readEntries(b[1:], nil, readEntry)
		if err != nil {
			return nil, fmt.Errorf("decode state digest: %w", err)
		}
		if len(rest) == 0 {
			return out, nil // from a member that predates tombstones
		}
		out, _, err = readEntries(rest, out, readTombstone)
		if err != nil {
			return nil, fmt.Errorf("decode state digest tombstones: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("decode state: unknown message type %d", b[0])
}

// stateBroadcast is one entry queued for gossip; a newer write of the same
// key replaces it in the queue.
type stateBroadcast struct {
	key string
	msg []byte
}

var _ memberlist.NamedBroadcast = (*stateBroadcast)(nil)

func (b *stateBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*stateBroadcast)
	return ok && ob.key == b.key
}
func (b *stateBroadcast) Name() string    { return b.key }
func (b *stateBroadcast) Message() []byte { return b.msg }
func (b *stateBroadcast) Finished()       {}

// encodeLeaving announces that the member (name, start time) stops.
func encodeLeaving(name string, start time.Time) []byte {
	b := []byte{msgLeaving}
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	return binary.AppendVarint(b, start.UnixNano())
}

func decodeLeaving(b []byte) (string, time.Time, error) {
	if len(b) == 0 || b[0] != msgLeaving {
		return "", time.Time{}, errors.New("decode leaving: not a leaving message")
	}
	name, rest, err := readBytes(b[1:], maxStateWriter)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("decode leaving: %w", err)
	}
	start, k := binary.Varint(rest)
	if k <= 0 {
		return "", time.Time{}, fmt.Errorf("decode leaving: %w", errShortState)
	}
	return string(name), time.Unix(0, start).UTC(), nil
}
