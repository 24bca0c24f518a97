package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"
)

// rwSink is the Prometheus remote-write receiver vmagent writes to: it
// decompresses each request (snappy, the Prometheus protocol, or zstd, the
// VictoriaMetrics one), counts the samples of the WriteRequest in wire
// format and answers 204.
type rwSink struct {
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	zdec     *zstd.Decoder
	samples  atomic.Int64
	requests atomic.Int64
	bad      atomic.Int64
}

// newRWSink listens on a free loopback port; serve starts answering.
func newRWSink(log *slog.Logger) (*rwSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for remote-write sink: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zdec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("create zstd decoder: %w", err)
	}
	s := &rwSink{log: log, ln: ln, zdec: zdec}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/write", s.write)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// url is the remote-write URL of the sink.
func (s *rwSink) url() string { return "http://" + s.ln.Addr().String() + "/api/v1/write" }

// serve answers until stop; it returns when the server has stopped.
func (s *rwSink) serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve remote-write sink: %w", err)
	}
	return nil
}

func (s *rwSink) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.zdec.Close()
}

func (s *rwSink) reset() {
	s.samples.Store(0)
	s.requests.Store(0)
	s.bad.Store(0)
}

func (s *rwSink) write(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	var raw []byte
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "zstd":
		raw, err = s.zdec.DecodeAll(body, nil)
	case "snappy", "":
		raw, err = snappy.Decode(nil, body)
	default:
		err = fmt.Errorf("unknown content encoding %q", enc)
	}
	var n int
	if err == nil {
		n, err = countRemoteWriteSamples(raw)
	}
	if err != nil {
		s.bad.Add(1)
		s.log.Warn("remote-write sink got an unparsable request", "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.samples.Add(int64(n))
	w.WriteHeader(http.StatusNoContent)
}

// countRemoteWriteSamples walks a prometheus.WriteRequest in wire format:
// timeseries (1) → samples (2).
func countRemoteWriteSamples(b []byte) (int, error) {
	n := 0
	err := eachField(b, func(num protowire.Number, typ protowire.Type, ts []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return eachField(ts, func(num protowire.Number, typ protowire.Type, _ []byte) error {
			if num == 2 && typ == protowire.BytesType {
				n++
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
