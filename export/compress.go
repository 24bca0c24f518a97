package export

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip grpc-encoding
)

// zstdName is the grpc-encoding and HTTP Content-Encoding name of zstd.
const zstdName = "zstd"

// The gRPC compressor registry is grpc's own and is meant to be filled
// during initialisation; obs adds zstd to it once, as grpc's gzip package
// does for gzip.
func init() {
	if encoding.GetCompressor(zstdName) == nil {
		encoding.RegisterCompressor(newZstdGRPC())
	}
}

// zstdGRPC is a grpc encoding.Compressor with pooled encoders and decoders.
type zstdGRPC struct {
	enc sync.Pool // *zstdWriter
	dec sync.Pool // *zstd.Decoder
}

func newZstdGRPC() *zstdGRPC { return &zstdGRPC{} }

func (z *zstdGRPC) Name() string { return zstdName }

type zstdWriter struct {
	*zstd.Encoder
	pool *sync.Pool
}

func (w *zstdWriter) Close() error {
	err := w.Encoder.Close()
	w.pool.Put(w)
	return err
}

func (z *zstdGRPC) Compress(w io.Writer) (io.WriteCloser, error) {
	if zw, ok := z.enc.Get().(*zstdWriter); ok {
		zw.Reset(w)
		return zw, nil
	}
	enc, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(512<<10))
	if err != nil {
		return nil, fmt.Errorf("create zstd encoder: %w", err)
	}
	return &zstdWriter{Encoder: enc, pool: &z.enc}, nil
}

// zstdReader hands its decoder back to the pool at EOF; grpc reads every
// message to EOF (or to its size limit, after which the decoder is simply
// dropped). Reads after EOF keep returning EOF.
type zstdReader struct {
	dec  *zstd.Decoder
	pool *sync.Pool
}

func (r *zstdReader) Read(p []byte) (int, error) {
	if r.dec == nil {
		return 0, io.EOF
	}
	n, err := r.dec.Read(p)
	if errors.Is(err, io.EOF) {
		_ = r.dec.Reset(nil)
		r.pool.Put(r.dec)
		r.dec = nil
	}
	return n, err
}

func (z *zstdGRPC) Decompress(r io.Reader) (io.Reader, error) {
	dec, _ := z.dec.Get().(*zstd.Decoder)
	if dec == nil {
		var err error
		dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(32<<20), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("create zstd decoder: %w", err)
		}
	}
	if err := dec.Reset(r); err != nil {
		return nil, fmt.Errorf("reset zstd decoder: %w", err)
	}
	return &zstdReader{dec: dec, pool: &z.dec}, nil
}

// errBodyTooLarge is returned by readBody when the (decompressed) body
// exceeds the limit.
var errBodyTooLarge = errors.New("request body too large")

// codecs holds pooled HTTP body compressors; one per receiver or sender.
type codecs struct {
	gzipW sync.Pool
	zstdW sync.Pool
	zstdR sync.Pool
}

// readBody reads r, decoded per the Content-Encoding value enc, into a new
// slice after one spare byte (framed[1:] is the body; see
// actors.Batch.Framed), failing with errBodyTooLarge once more than limit
// decoded bytes arrive (zip bombs stop at the limit). limit <= 0 means no
// limit. sizeHint, the Content-Length when known and the body is not
// encoded, sizes the buffer once instead of growing it by doubling.
func (c *codecs) readBody(r io.Reader, enc string, limit, sizeHint int64) (framed []byte, _ error) {
	var src io.Reader
	switch enc {
	case "", "identity", "none":
		src = r
	case "gzip", "x-gzip":
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("decode gzip body: %w", err)
		}
		defer gr.Close()
		src = gr
	case "deflate":
		zr, err := zlib.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("decode deflate body: %w", err)
		}
		defer zr.Close()
		src = zr
	case zstdName:
		d, _ := c.zstdR.Get().(*zstd.Decoder)
		if d == nil {
			var err error
			d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(32<<20), zstd.WithDecoderLowmem(true))
			if err != nil {
				return nil, fmt.Errorf("create zstd decoder: %w", err)
			}
		}
		if err := d.Reset(r); err != nil {
			return nil, fmt.Errorf("decode zstd body: %w", err)
		}
		defer func() { _ = d.Reset(nil); c.zstdR.Put(d) }()
		src = d
	default:
		return nil, fmt.Errorf("unsupported content encoding %q", enc)
	}
	if limit > 0 {
		src = io.LimitReader(src, limit+1)
	}
	var buf bytes.Buffer
	if src == r && sizeHint > 0 && (limit <= 0 || sizeHint <= limit) {
		// +1: the spare byte; +1 more: ReadFrom needs room to see EOF
		// without growing.
		buf.Grow(int(sizeHint) + 2)
	}
	buf.WriteByte(0)
	if _, err := buf.ReadFrom(src); err != nil {
		return nil, fmt.Errorf("read %s body: %w", orIdentity(enc), err)
	}
	if limit > 0 && int64(buf.Len()-1) > limit {
		return nil, errBodyTooLarge
	}
	return buf.Bytes(), nil
}

func orIdentity(enc string) string {
	if enc == "" {
		return "identity"
	}
	return enc
}

// compress encodes p per the Content-Encoding value enc ("" or "none":
// as is) and appends it to dst.
func (c *codecs) compress(dst *bytes.Buffer, enc string, p []byte) error {
	switch enc {
	case "", "none", "identity":
		dst.Write(p)
		return nil
	case "gzip":
		w, _ := c.gzipW.Get().(*gzip.Writer)
		if w == nil {
			var err error
			if w, err = gzip.NewWriterLevel(dst, gzip.BestSpeed); err != nil {
				return fmt.Errorf("create gzip writer: %w", err)
			}
		} else {
			w.Reset(dst)
		}
		defer c.gzipW.Put(w)
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("gzip body: %w", err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("gzip body: %w", err)
		}
		return nil
	case "deflate":
		w := zlib.NewWriter(dst)
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("deflate body: %w", err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("deflate body: %w", err)
		}
		return nil
	case zstdName:
		w, _ := c.zstdW.Get().(*zstd.Encoder)
		if w == nil {
			var err error
			if w, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(512<<10)); err != nil {
				return fmt.Errorf("create zstd writer: %w", err)
			}
		}
		defer c.zstdW.Put(w)
		dst.Write(w.EncodeAll(p, dst.AvailableBuffer()[:0]))
		return nil
	}
	return fmt.Errorf("unsupported compression %q", enc)
}
