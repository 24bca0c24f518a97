package export

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/obs-dev/obs/actors"
)

const (
	ctProtobuf = "application/x-protobuf"
	ctJSON     = "application/json"
)

// newHTTPServer builds the OTLP/HTTP server.
func (r *OTLPReceiver) newHTTPServer(h *HTTPServerConfig) (*http.Server, error) {
	tlsCfg, err := h.TLS.load()
	if err != nil {
		return nil, fmt.Errorf("http tls: %w", err)
	}
	mux := http.NewServeMux()
	for s, path := range map[actors.Signal]string{actors.SignalLogs: h.LogsURLPath, actors.SignalMetrics: h.MetricsURLPath, actors.SignalTraces: h.TracesURLPath} {
		f, ok := r.consumers[s]
		if !ok {
			continue // the mux answers 404
		}
		mux.Handle(path, &httpExport{r: r, cfg: h, signal: s, consume: f})
	}
	var handler http.Handler = mux
	if h.CORS != nil && len(h.CORS.AllowedOrigins) > 0 {
		handler = &corsHandler{cfg: h.CORS, next: mux}
	}
	return &http.Server{
		Handler:           handler,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          nil,
	}, nil
}

// httpExport serves one signal's POST path.
type httpExport struct {
	r       *OTLPReceiver
	cfg     *HTTPServerConfig
	signal  actors.Signal
	consume ConsumeFunc
}

// httpError is a failed request: its status code and the message of the
// google.rpc.Status body.
type httpError struct {
	code       int
	msg        string
	retryAfter time.Duration
}

func (h *httpExport) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	json, herr := h.handle(w, req)
	code := http.StatusOK
	if herr != nil {
		code = herr.code
		writeStatus(w, herr, json)
	} else {
		ct := ctProtobuf
		if json {
			ct = ctJSON
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(h.r.emptyRsp[h.signal][b2i(json)])
	}
	h.r.m.observe(h.r.id, "http", h.signal, strconv.Itoa(code), start)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// handle decodes and consumes one request; json tells the answer's format.
func (h *httpExport) handle(w http.ResponseWriter, req *http.Request) (json bool, _ *httpError) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return false, &httpError{code: http.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s not allowed, use POST", req.Method)}
	}
	json, ok := parseContentType(req.Header.Get("Content-Type"))
	if !ok {
		return false, &httpError{code: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("unsupported content type %q, use %s or %s", req.Header.Get("Content-Type"), ctProtobuf, ctJSON)}
	}
	limit := h.cfg.MaxRequestBodySize
	framed, err := h.r.codecs.readBody(http.MaxBytesReader(w, req.Body, limit), strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding"))), limit, req.ContentLength)
	if err != nil {
		return json, bodyError(err, limit)
	}
	ctx := req.Context()
	if h.cfg.IncludeMetadata {
		md := make(metadata.MD, len(req.Header))
		for k, v := range req.Header {
			md[strings.ToLower(k)] = v
		}
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	b, err := decodeBody(h.signal, framed, json)
	if err != nil {
		return json, &httpError{code: http.StatusBadRequest, msg: err.Error()}
	}
	res, after, err := h.r.consume(actors.WithPeer(ctx, req.RemoteAddr), "http", h.consume, b)
	switch res {
	case consumeOK:
		return json, nil
	case consumeRefused:
		return json, &httpError{code: http.StatusTooManyRequests, msg: err.Error(), retryAfter: after}
	case consumeCanceled:
		return json, &httpError{code: http.StatusServiceUnavailable, msg: err.Error(), retryAfter: defaultRetryAfter}
	}
	return json, &httpError{code: http.StatusServiceUnavailable, msg: err.Error(), retryAfter: after}
}

// decodeBody turns a decompressed body, after one spare byte (readBody),
// into a batch: JSON is decoded, protobuf only validated and counted (see
// scanRequest) and framed for the WAL.
func decodeBody(s actors.Signal, framed []byte, json bool) (actors.Batch, error) {
	body := framed[1:]
	if json {
		return decodeJSON(s, body)
	}
	n, err := scanRequest(s, body)
	if err != nil {
		return actors.Batch{}, fmt.Errorf("decode protobuf %s request: %w", s, err)
	}
	framed[0] = byte(s) // the WAL payload's signal byte (encodePayload)
	return actors.RawFramedBatch(s, framed, n), nil
}

func bodyError(err error, limit int64) *httpError {
	var mbe *http.MaxBytesError
	if errors.Is(err, errBodyTooLarge) || errors.As(err, &mbe) {
		return &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes", limit)}
	}
	if strings.HasPrefix(err.Error(), "unsupported content encoding") {
		return &httpError{code: http.StatusUnsupportedMediaType, msg: err.Error()}
	}
	return &httpError{code: http.StatusBadRequest, msg: err.Error()}
}

// parseContentType reports whether ct is OTLP JSON (true) or protobuf
// (false); ok is false for anything else.
func parseContentType(ct string) (json, ok bool) {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	switch ct {
	case ctProtobuf:
		return false, true
	case ctJSON:
		return true, true
	}
	return false, false
}

// httpToCode maps an HTTP status to the google.rpc.Status code.
func httpToCode(c int) codes.Code {
	switch c {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return codes.Unimplemented
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.Unknown
}

// writeStatus answers with a google.rpc.Status body in the request's
// format, plus Retry-After for 429 and 503.
func writeStatus(w http.ResponseWriter, e *httpError, json bool) {
	st := &spb.Status{Code: int32(httpToCode(e.code)), Message: e.msg}
	var body []byte
	if json {
		body, _ = protojson.Marshal(st)
		w.Header().Set("Content-Type", ctJSON)
	} else {
		body, _ = proto.Marshal(st)
		w.Header().Set("Content-Type", ctProtobuf)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.retryAfter.Seconds()))))
	}
	w.WriteHeader(e.code)
	_, _ = w.Write(body)
}

// corsHandler answers CORS preflights and tags allowed origins.
type corsHandler struct {
	cfg  *CORSConfig
	next http.Handler
}

func (c *corsHandler) allowed(origin string) bool {
	for _, o := range c.cfg.AllowedOrigins {
		if o == "*" || o == origin {
			return true
		}
		if i := strings.IndexByte(o, '*'); i >= 0 {
			pre, suf := o[:i], o[i+1:]
			if len(origin) >= len(pre)+len(suf) && strings.HasPrefix(origin, pre) && strings.HasSuffix(origin, suf) {
				return true
			}
		}
	}
	return false
}

func (c *corsHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	origin := req.Header.Get("Origin")
	if origin == "" || !c.allowed(origin) {
		if req.Method == http.MethodOptions && origin != "" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		c.next.ServeHTTP(w, req)
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
	if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", http.MethodPost)
		allowed := append([]string{"Content-Type", "Content-Encoding", "Accept", "X-Requested-With"}, c.cfg.AllowedHeaders...)
		h.Set("Access-Control-Allow-Headers", strings.Join(allowed, ", "))
		if c.cfg.MaxAge > 0 {
			h.Set("Access-Control-Max-Age", strconv.Itoa(c.cfg.MaxAge))
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c.next.ServeHTTP(w, req)
}
