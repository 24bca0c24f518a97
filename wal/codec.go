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

// encodeEntry builds the stored value: header followed by the payload,
// s2-compressed if compress is set and that makes it smaller.
// buf is reused if it is large enough.
func encodeEntry(buf, payload []byte, records int, appended time.Time, compress bool) []byte {
	need := headerLen + len(payload)
	if compress {
		need = headerLen + max(s2.MaxEncodedLen(len(payload)), len(payload))
	}
	if cap(buf) < need {
		buf = make([]byte, need)
	} else {
		buf = buf[:need]
	}
	codec := codecRaw
	var body []byte
	if compress {
		codec = codecS2
		body = s2.Encode(buf[headerLen:headerLen], payload)
	}
	if !compress || len(body) >= len(payload) {
		codec = codecRaw
		body = buf[headerLen : headerLen+copy(buf[headerLen:], payload)]
	}
	buf[0] = codec
	binary.BigEndian.PutUint32(buf[1:5], uint32(records))
	binary.BigEndian.PutUint32(buf[5:9], crc32.Checksum(body, castagnoli))
	binary.BigEndian.PutUint64(buf[9:17], uint64(appended.UnixNano()))
	return buf[:headerLen+len(body)]
}

// entryHeader is the decoded fixed part of a stored value.
type entryHeader struct {
	codec    byte
	records  int
	crc      uint32
	appended time.Time
}

func decodeHeader(v []byte) (entryHeader, error) {
	if len(v) < headerLen {
		return entryHeader{}, fmt.Errorf("decode entry header: %d bytes, want at least %d", len(v), headerLen)
	}
	h := entryHeader{
		codec:    v[0],
		records:  int(binary.BigEndian.Uint32(v[1:5])),
		crc:      binary.BigEndian.Uint32(v[5:9]),
		appended: time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))),
	}
	if h.codec != codecRaw && h.codec != codecS2 {
		return h, fmt.Errorf("decode entry header: unknown codec %d", h.codec)
	}
	return h, nil
}

// decodeEntry checks the CRC and returns the header and the uncompressed
// payload (a new slice; v is not retained).
func decodeEntry(v []byte) (entryHeader, []byte, error) {
	h, err := decodeHeader(v)
	if err != nil {
		return h, nil, err
	}
	body := v[headerLen:]
	if got := crc32.Checksum(body, castagnoli); got != h.crc {
		return h, nil, fmt.Errorf("check entry crc: got %08x, header says %08x", got, h.crc)
	}
	switch h.codec {
	case codecS2:
		n, err := s2.DecodedLen(body)
		if err != nil {
			return h, nil, fmt.Errorf("decode s2 payload: %w", err)
		}
		out, err := s2.Decode(make([]byte, n), body)
		if err != nil {
			return h, nil, fmt.Errorf("decode s2 payload: %w", err)
		}
		return h, out, nil
	default:
		return h, append(make([]byte, 0, len(body)), body...), nil
	}
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
