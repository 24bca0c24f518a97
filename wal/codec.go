package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/klauspost/compress/s2"
)

// Key spaces. Every key starts with one of these bytes.
const (
	prefixEntry   = 'q' // [q][queue id u32][seq u64] -> entry value
	prefixDead    = 'd' // [d][queue id u32][seq u64] -> dead value
	prefixName    = 'n' // [n][queue name]            -> queue id u32
	prefixHigh    = 'h' // [h][queue id u32]          -> highest seq ever assigned u64
	prefixKV      = 'k' // [k][user key]              -> user value (checkpoints)
	prefixScratch = 'z' // [z]                      -> written and dropped to force a memtable flush
)

const (
	seqKeyLen = 1 + 4 + 8
	// valueThreshold is badger's ValueThreshold: values at least this long
	// live in the value log, shorter ones inline in the LSM tree.
	valueThreshold = 1 << 10
)

// Codecs of a stored payload (first header byte).
const (
	codecRaw byte = 0
	codecS2  byte = 1
	// extBit in the codec byte marks a value whose body is a loc: the
	// stored payload lives in a segment file (segments.go).
	extBit byte = 0x80
)

// headerLen is the size of the entry header:
// codec u8 | records u32 | crc32c(stored payload) u32 | appended unix ns i64.
const headerLen = 1 + 4 + 4 + 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func seqKey(prefix byte, qid uint32, seq uint64) []byte {
	k := make([]byte, seqKeyLen)
	k[0] = prefix
	binary.BigEndian.PutUint32(k[1:5], qid)
	binary.BigEndian.PutUint64(k[5:], seq)
	return k
}

// appendSeqKey appends the key seqKey returns to b.
func appendSeqKey(b []byte, prefix byte, qid uint32, seq uint64) []byte {
	b = append(b, prefix)
	b = binary.BigEndian.AppendUint32(b, qid)
	return binary.BigEndian.AppendUint64(b, seq)
}

func queuePrefix(prefix byte, qid uint32) []byte {
	k := make([]byte, 5)
	k[0] = prefix
	binary.BigEndian.PutUint32(k[1:5], qid)
	return k
}

func seqOf(key []byte) uint64 { return binary.BigEndian.Uint64(key[5:]) }

func highKey(qid uint32) []byte { return queuePrefix(prefixHigh, qid) }

func nameKey(name string) []byte { return append([]byte{prefixName}, name...) }

func kvKey(k []byte) []byte { return append([]byte{prefixKV}, k...) }

// storeBody returns the body to store for payload and its codec: the
// payload s2-compressed into buf when compress is set and that makes it
// smaller, else the payload itself (not copied).
func storeBody(buf *[]byte, payload []byte, compress bool) (byte, []byte) {
	if !compress {
		return codecRaw, payload
	}
	need := s2.MaxEncodedLen(len(payload))
	if need < 0 {
		return codecRaw, payload
	}
	if cap(*buf) < need {
		*buf = make([]byte, need)
	}
	body := s2.Encode((*buf)[:need], payload)
	if len(body) >= len(payload) {
		return codecRaw, payload
	}
	return codecS2, body
}

// appendHeader appends the fixed header of a stored value.
func appendHeader(b []byte, codec byte, records int, crc uint32, appended int64) []byte {
	b = append(b, codec)
	b = binary.BigEndian.AppendUint32(b, uint32(records))
	b = binary.BigEndian.AppendUint32(b, crc)
	return binary.BigEndian.AppendUint64(b, uint64(appended))
}

// encodeExt builds a stored value that points at a body in a segment.
func encodeExt(codec byte, records int, crc uint32, appended int64, l loc) []byte {
	v := make([]byte, 0, headerLen+locLen)
	return l.append(appendHeader(v, codec|extBit, records, crc, appended))
}

// storedSize is the accounted size of a stored value: for one that points
// into a segment, the header plus the body it points at.
func storedSize(v []byte) int64 {
	if len(v) == headerLen+locLen && v[0]&extBit != 0 {
		if l, err := decodeLoc(v[headerLen:]); err == nil {
			return int64(headerLen) + int64(l.n)
		}
	}
	return accountedSize(len(v))
}

// entryHeader is the decoded fixed part of a stored value.
type entryHeader struct {
	codec    byte // codecRaw or codecS2
	ext      bool // the body is a loc into a segment
	records  int
	crc      uint32
	appended time.Time
}

func decodeHeader(v []byte) (entryHeader, error) {
	if len(v) < headerLen {
		return entryHeader{}, fmt.Errorf("decode entry header: %d bytes, want at least %d", len(v), headerLen)
	}
	h := entryHeader{
		codec:    v[0] &^ extBit,
		ext:      v[0]&extBit != 0,
		records:  int(binary.BigEndian.Uint32(v[1:5])),
		crc:      binary.BigEndian.Uint32(v[5:9]),
		appended: time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))),
	}
	if h.codec != codecRaw && h.codec != codecS2 {
		return h, fmt.Errorf("decode entry header: unknown codec %d", h.codec)
	}
	if h.ext && len(v) != headerLen+locLen {
		return h, fmt.Errorf("decode entry header: %d bytes after a segment header, want %d", len(v)-headerLen, locLen)
	}
	return h, nil
}

// decodeBody checks body's CRC and returns the payload; a raw body is
// copied when copyRaw is set (it belongs to badger).
func decodeBody(h entryHeader, body []byte, copyRaw bool) ([]byte, error) {
	if got := crc32.Checksum(body, castagnoli); got != h.crc {
		return nil, fmt.Errorf("check entry crc: got %08x, header says %08x", got, h.crc)
	}
	if h.codec != codecS2 {
		if copyRaw {
			return append(make([]byte, 0, len(body)), body...), nil
		}
		return body, nil
	}
	n, err := s2.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("decode s2 payload: %w", err)
	}
	out, err := s2.Decode(make([]byte, n), body)
	if err != nil {
		return nil, fmt.Errorf("decode s2 payload: %w", err)
	}
	return out, nil
}

// Dead value: reason length u16 | reason | dead-lettered unix ns i64 | original entry value.
func encodeDead(value []byte, reason string, at time.Time) []byte {
	if len(reason) > 1<<15 {
		reason = reason[:1<<15]
	}
	buf := make([]byte, 0, 2+len(reason)+8+len(value))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(reason)))
	buf = append(buf, reason...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(at.UnixNano()))
	return append(buf, value...)
}

func decodeDead(v []byte) (reason string, at time.Time, value []byte, err error) {
	if len(v) < 2 {
		return "", time.Time{}, nil, fmt.Errorf("decode dead entry: %d bytes", len(v))
	}
	n := int(binary.BigEndian.Uint16(v))
	if len(v) < 2+n+8 {
		return "", time.Time{}, nil, fmt.Errorf("decode dead entry: %d bytes, reason needs %d", len(v), n)
	}
	reason = string(v[2 : 2+n])
	at = time.Unix(0, int64(binary.BigEndian.Uint64(v[2+n:])))
	return reason, at, v[2+n+8:], nil
}

// accountedSize is the size a stored value of n bytes is accounted with. It
// equals badger's Item.ValueSize for our 13-byte keys, so byte counts
// recomputed from keys at Open match the ones counted while appending.
// Values in the value log report n + len(varint header) - 6; the header is
// meta, user meta, key length (1 byte for 21), value length, expiry (1 byte).
func accountedSize(n int) int64 {
	if n < valueThreshold {
		return int64(n)
	}
	var tmp [binary.MaxVarintLen64]byte
	return int64(n + binary.PutUvarint(tmp[:], uint64(n)) - 2)
}

// estimate mirrors badger's transaction size accounting so the committer can
// split a group before badger answers ErrTxnTooBig.
type estimate struct {
	count int64
	size  int64
}

func (e *estimate) add(keyLen, valueLen int) {
	e.count++
	if valueLen < valueThreshold {
		e.size += int64(keyLen+valueLen) + 2 + 10
	} else {
		e.size += int64(keyLen) + 12 + 2 + 10
	}
}

func (e estimate) plus(o estimate) estimate {
	return estimate{count: e.count + o.count, size: e.size + o.size}
}
