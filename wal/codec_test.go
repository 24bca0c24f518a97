package wal

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The inline value format: what a dead letter holds (inlineValue) and
// what a replayed dead letter is stored as.

// encodeEntry builds an inline stored value: header followed by the
// payload, s2-compressed if compress is set and that makes it smaller.
func encodeEntry(payload []byte, records int, appended time.Time, compress bool) []byte {
	var buf []byte
	codec, body := storeBody(&buf, payload, compress)
	v := make([]byte, 0, headerLen+len(body))
	v = appendHeader(v, codec, records, crc32.Checksum(body, castagnoli), appended.UnixNano())
	return append(v, body...)
}

// decodeEntry checks the CRC of an inline value and returns the header and
// the uncompressed payload (a new slice; v is not retained).
func decodeEntry(v []byte) (entryHeader, []byte, error) {
	h, err := decodeHeader(v)
	if err != nil {
		return h, nil, err
	}
	if h.ext {
		return h, nil, errors.New("decode entry: payload is in a segment")
	}
	out, err := decodeBody(h, v[headerLen:], true)
	return h, out, err
}

func TestEntryRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for name, payload := range map[string][]byte{
		"empty":        {},
		"compressible": bytes.Repeat([]byte("log line "), 500),
		"random":       []byte("\x8f\x01\xa0\xff\x00\x13\x77"),
	} {
		for _, compress := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/compress=%v", name, compress), func(t *testing.T) {
				v := encodeEntry(payload, 7, at, compress)
				h, got, err := decodeEntry(v)
				require.NoError(t, err)
				require.Equal(t, payload, got)
				require.Equal(t, 7, h.records)
				require.True(t, at.Equal(h.appended))
				switch {
				case !compress:
					require.Equal(t, codecRaw, h.codec)
					require.Len(t, v, headerLen+len(payload))
				case len(payload) > 100:
					require.Equal(t, codecS2, h.codec)
					require.Less(t, len(v), len(payload)/4)
				}
				// The same body through a dirty s2 buffer and a segment
				// location: the value points at the same bytes.
				dirty := bytes.Repeat([]byte{0xee}, len(v)*4)
				codec, body := storeBody(&dirty, payload, compress)
				require.Equal(t, h.codec, codec)
				require.Equal(t, v[headerLen:], body)
				l := loc{seg: 3, off: 1 << 33, n: uint32(len(body))}
				ext := encodeExt(codec, 7, h.crc, at.UnixNano(), l)
				require.Equal(t, int64(headerLen+len(body)), storedSize(ext))
				eh, err := decodeHeader(ext)
				require.NoError(t, err)
				require.True(t, eh.ext)
				require.Equal(t, h.codec, eh.codec)
				gl, err := decodeLoc(ext[headerLen:])
				require.NoError(t, err)
				require.Equal(t, l, gl)
				_, _, err = decodeEntry(ext)
				require.Error(t, err, "a segment value has no inline payload")
				p, err := decodeBody(eh, body, true)
				require.NoError(t, err)
				require.Equal(t, payload, p)
			})
		}
	}
}

func TestAccountedSizeMatchesBadger(t *testing.T) {
	// badger's Item.ValueSize for a value-log value: vp.Len - (key+8) - 6 - 4,
	// where vp.Len = header + key+8 + value + 4 and the header is
	// meta, user meta, uvarint(key+8), uvarint(value), uvarint(0).
	uv := func(n int) int {
		l := 1
		for n >= 0x80 {
			n >>= 7
			l++
		}
		return l
	}
	for _, n := range []int{0, 1, 1023, 1024, 16383, 16384, 70000, 2097151, 2097152, 9 << 20} {
		want := int64(n)
		if n >= valueThreshold {
			header := 2 + uv(seqKeyLen+8) + uv(n) + 1
			vpLen := header + seqKeyLen + 8 + n + 4
			want = int64(vpLen - (seqKeyLen + 8) - 6 - 4)
		}
		require.Equal(t, want, accountedSize(n), "n=%d", n)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry([]byte("hello hello hello hello"), 3, time.Unix(1, 0), true))
	f.Add(encodeEntry([]byte("hello hello hello hello"), 3, time.Unix(1, 0), false))
	f.Add(encodeEntry([]byte{1, 2, 3}, 1, time.Unix(2, 0), true))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		h, payload, err := decodeEntry(v)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		v2 := encodeEntry(payload, h.records, h.appended, h.codec == codecS2)
		h2, p2, err := decodeEntry(v2)
		require.NoError(t, err)
		require.Equal(t, payload, p2)
		require.Equal(t, h.records, h2.records)
	})
}

func FuzzDecodeDead(f *testing.F) {
	f.Add(encodeDead([]byte("value"), "permanent: 400", time.Unix(5, 0)))
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, v []byte) {
		reason, at, value, err := decodeDead(v)
		if err != nil {
			return
		}
		require.Equal(t, v, encodeDead(value, reason, at))
	})
}

func TestAppendSeqKeyMatchesSeqKey(t *testing.T) {
	for _, tc := range []struct {
		prefix byte
		qid    uint32
		seq    uint64
	}{{prefixEntry, 1, 1}, {prefixDead, 0xfffffffe, 1 << 63}, {prefixEntry, 7, 0}} {
		t.Run(fmt.Sprintf("%c/%d/%d", tc.prefix, tc.qid, tc.seq), func(t *testing.T) {
			got := appendSeqKey([]byte("x"), tc.prefix, tc.qid, tc.seq)
			require.Equal(t, append([]byte("x"), seqKey(tc.prefix, tc.qid, tc.seq)...), got)
			require.Equal(t, tc.seq, seqOf(got[1:]))
		})
	}
}
