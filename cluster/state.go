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

// Limits of the cluster-wide state: entries are meant to be small (a
// resume point, a resourceVersion) so that one fits in a gossip packet.
const (
	maxStateKey     = 128
	maxStateValue   = 1024
	maxStateEntries = 1024
)

// Gossip message types (first byte of a user message or push/pull state).
const (
	msgStateEntry  byte = 1 // one entry, broadcast
	msgStateDigest byte = 2 // all entries, push/pull
	msgLeaving     byte = 3 // a member announces its graceful stop
)

// entry is one versioned value. Between two entries for the same key the
// higher (version, node, value) wins, so every member converges on the
// same value whatever the order it hears them in.
type entry struct {
	key     string
	value   []byte
	version uint64
	node    string
}

func (e entry) newer(o entry) bool {
	if e.version != o.version {
		return e.version > o.version
	}
	if e.node != o.node {
		return e.node > o.node
	}
	return bytes.Compare(e.value, o.value) > 0
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
}

func newStore() *store { return &store{entries: make(map[string]entry)} }

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
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[key]; !ok && len(s.entries) >= maxStateEntries {
		return entry{}, fmt.Errorf("state holds %d entries, the limit", maxStateEntries)
	}
	v := s.clock + 1
	if nowNanos > v {
		v = nowNanos
	}
	if old, ok := s.entries[key]; ok && old.version >= v {
		v = old.version + 1
	}
	s.clock = v
	e := entry{key: key, value: bytes.Clone(value), version: v, node: node}
	s.entries[key] = e
	return e, nil
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
	if !ok && len(s.entries) >= maxStateEntries {
		return mergeFull
	}
	s.entries[e.key] = e
	return mergeApplied
}

func (s *store) get(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return nil, false
	}
	return bytes.Clone(e.value), true
}

func (s *store) infos() []StateInfo {
	s.mu.Lock()
	out := make([]StateInfo, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, StateInfo{Key: e.key, Version: e.version, Writer: e.node, Size: len(e.value)})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// digest encodes every entry for push/pull.
func (s *store) digest() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := []byte{msgStateDigest}
	b = binary.AppendUvarint(b, uint64(len(s.entries)))
	for _, e := range s.entries {
		b = appendEntry(b, e)
	}
	return b
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

func readEntry(b []byte) (entry, []byte, error) {
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
	node, b, err := readBytes(b, 256)
	if err != nil {
		return e, nil, fmt.Errorf("read writer: %w", err)
	}
	value, b, err := readBytes(b, maxStateValue)
	if err != nil {
		return e, nil, fmt.Errorf("read value: %w", err)
	}
	if len(key) == 0 {
		return e, nil, errors.New("read key: key is empty")
	}
	if value == nil {
		value = []byte{}
	}
	return entry{key: string(key), value: value, version: v, node: string(node)}, b, nil
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
	case msgStateDigest:
		n, k := binary.Uvarint(b[1:])
		if k <= 0 {
			return nil, fmt.Errorf("decode state digest: %w", errShortState)
		}
		if n > maxStateEntries {
			return nil, fmt.Errorf("decode state digest: %d entries, limit is %d", n, maxStateEntries)
		}
		b = b[1+k:]
		out := make([]entry, 0, n)
		for i := uint64(0); i < n; i++ {
			e, rest, err := readEntry(b)
			if err != nil {
				return nil, fmt.Errorf("decode state digest entry %d: %w", i, err)
			}
			out = append(out, e)
			b = rest
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
	name, rest, err := readBytes(b[1:], 256)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("decode leaving: %w", err)
	}
	start, k := binary.Varint(rest)
	if k <= 0 {
		return "", time.Time{}, fmt.Errorf("decode leaving: %w", errShortState)
	}
	return string(name), time.Unix(0, start).UTC(), nil
}
