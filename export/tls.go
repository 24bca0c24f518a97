package export

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSServerConfig is the Collector's server-side tls block.
type TLSServerConfig struct {
	// CertFile and KeyFile are the server's PEM certificate and key. Both
	// are required when the block is present.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile is accepted for symmetry with the Collector; unused by servers.
	CAFile string `yaml:"ca_file"`
	// ClientCAFile, when set, requires and verifies client certificates
	// against this PEM bundle (mutual TLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is "1.2" (default) or "1.3"; MaxVersion empty = newest.
	MinVersion string `yaml:"min_version"`
	MaxVersion string `yaml:"max_version"`
}

// Validate checks that the files are named.
func (c *TLSServerConfig) Validate() error {
	if c == nil {
		return nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return fmt.Errorf("tls: cert_file and key_file are both required")
	}
	if _, err := tlsVersion(c.MinVersion); err != nil {
		return fmt.Errorf("tls: min_version: %w", err)
	}
	if _, err := tlsVersion(c.MaxVersion); err != nil {
		return fmt.Errorf("tls: max_version: %w", err)
	}
	return nil
}

func tlsVersion(v string) (uint16, error) {
	switch v {
	case "":
		return 0, nil
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unknown tls version %q (want 1.2 or 1.3)", v)
}

// load reads the files into a *tls.Config; nil config → nil.
func (c *TLSServerConfig) load() (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls key pair %q: %w", c.CertFile, err)
	}
	out := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if v, _ := tlsVersion(c.MinVersion); v != 0 {
		out.MinVersion = v
	}
	if v, _ := tlsVersion(c.MaxVersion); v != 0 {
		out.MaxVersion = v
	}
	if c.ClientCAFile != "" {
		pool, err := loadCAs(c.ClientCAFile)
		if err != nil {
			return nil, err
		}
		out.ClientCAs = pool
		out.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return out, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read ca file %q: no PEM certificates", path)
	}
	return pool, nil
}

// TLSClientConfig is the Collector's client-side tls block.
type TLSClientConfig struct {
	// Insecure turns TLS off (plain text). Default false (TLS on) for the
	// gRPC exporter, as in the Collector; the otlphttp exporter follows
	// the endpoint's scheme.
	Insecure bool `yaml:"insecure"`
	// InsecureSkipVerify keeps TLS but skips server certificate checks.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// CAFile is a PEM bundle of CAs trusted for the server; empty = system.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerNameOverride replaces the host name used for verification.
	ServerNameOverride string `yaml:"server_name_override"`
	MinVersion         string `yaml:"min_version"`
	MaxVersion         string `yaml:"max_version"`
}

// Validate checks key pairs and versions.
func (c TLSClientConfig) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("tls: cert_file and key_file must be set together")
	}
	if _, err := tlsVersion(c.MinVersion); err != nil {
		return fmt.Errorf("tls: min_version: %w", err)
	}
	if _, err := tlsVersion(c.MaxVersion); err != nil {
		return fmt.Errorf("tls: max_version: %w", err)
	}
	return nil
}

// load builds the client *tls.Config (never nil; the caller decides
// whether TLS is used at all).
func (c TLSClientConfig) load() (*tls.Config, error) {
	out := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // explicit user choice
		ServerName:         c.ServerNameOverride,
	}
	if v, _ := tlsVersion(c.MinVersion); v != 0 {
		out.MinVersion = v
	}
	if v, _ := tlsVersion(c.MaxVersion); v != 0 {
		out.MaxVersion = v
	}
	if c.CAFile != "" {
		pool, err := loadCAs(c.CAFile)
		if err != nil {
			return nil, err
		}
		out.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls key pair %q: %w", c.CertFile, err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}
