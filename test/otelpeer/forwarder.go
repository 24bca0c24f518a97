package otelpeer

import (
	"fmt"
	"strings"
	"testing"
)

// ForwarderOptions changes the exporter of a forwarder away from the
// Collector's defaults (sending queue on, retry on, gzip compression).
type ForwarderOptions struct {
	// NoQueue disables the exporter's sending queue, so the forwarder's
	// client sees the target's answer (or error) on each request.
	NoQueue bool
	// NoRetry disables retry_on_failure.
	NoRetry bool
	// Compression is the exporter's compression ("none", "gzip", "zstd",
	// "snappy"); empty keeps the default (gzip).
	Compression string
	// Batch adds a batch processor in front of the exporter.
	Batch bool
}

// ForwarderOption sets a ForwarderOptions field.
type ForwarderOption func(*ForwarderOptions)

// WithoutQueue disables the exporter's sending queue.
func WithoutQueue() ForwarderOption { return func(o *ForwarderOptions) { o.NoQueue = true } }

// WithoutRetry disables the exporter's retries.
func WithoutRetry() ForwarderOption { return func(o *ForwarderOptions) { o.NoRetry = true } }

// WithCompression sets the exporter's compression.
func WithCompression(c string) ForwarderOption {
	return func(o *ForwarderOptions) { o.Compression = c }
}

// WithBatch adds a batch processor to every pipeline.
func WithBatch() ForwarderOption { return func(o *ForwarderOptions) { o.Batch = true } }

// ForwarderConfig returns the collector config of a forwarder: the OTLP
// receiver on grpcAddr and httpAddr, and for every signal one exporter
// sending to target over protocol "grpc" (target is host:port) or "http"
// (target is host:port or a base URL; /v1/<signal> is appended).
func ForwarderConfig(target, protocol, grpcAddr, httpAddr string, o ForwarderOptions) (string, error) {
	var exporter, endpoint string
	switch protocol {
	case "grpc":
		exporter = "otlp_grpc"
		endpoint = strings.TrimPrefix(target, "http://")
	case "http":
		exporter = "otlp_http"
		endpoint = target
		if !strings.Contains(endpoint, "://") {
			endpoint = "http://" + endpoint
		}
	default:
		return "", fmt.Errorf("build forwarder config: protocol %q is not grpc or http", protocol)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
exporters:
  %s:
    endpoint: %q
    tls:
      insecure: true
    sending_queue:
      enabled: %t
    retry_on_failure:
      enabled: %t
`, grpcAddr, httpAddr, exporter, endpoint, !o.NoQueue, !o.NoRetry)
	if o.Compression != "" {
		fmt.Fprintf(&b, "    compression: %q\n", o.Compression)
	}
	processors := ""
	if o.Batch {
		b.WriteString("processors:\n  batch:\n    timeout: 100ms\n")
		processors = "      processors: [batch]\n"
	}
	b.WriteString(`service:
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
`)
	for _, signal := range []string{"logs", "metrics", "traces"} {
		fmt.Fprintf(&b, "    %s:\n      receivers: [otlp]\n%s      exporters: [%s]\n", signal, processors, exporter)
	}
	return b.String(), nil
}

// StartForwarder starts an otelcol that receives OTLP on free loopback ports
// (its GRPCAddr and HTTPAddr) and exports everything to target over protocol
// "grpc" or "http", so a test can push data through a real Collector.
func StartForwarder(t testing.TB, target, protocol string, opts ...ForwarderOption) *Collector {
	t.Helper()
	var o ForwarderOptions
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := ForwarderConfig(target, protocol, "", "", o); err != nil {
		t.Fatalf("otelpeer: %v", err)
	}
	bin := Binary(t)
	var lastErr error
	for range startAttempts {
		grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
		cfg, err := ForwarderConfig(target, protocol, grpcAddr, httpAddr, o)
		if err != nil {
			t.Fatalf("otelpeer: %v", err)
		}
		c, err := start(t, bin, cfg, []string{grpcAddr, httpAddr})
		if err != nil {
			lastErr = err
			if isAddrInUse(err) {
				continue
			}
			break
		}
		c.GRPCAddr, c.HTTPAddr = grpcAddr, httpAddr
		return c
	}
	t.Fatalf("otelpeer: start forwarder to %s over %s: %v", target, protocol, lastErr)
	return nil
}
