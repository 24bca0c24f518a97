package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Meta is what a member advertises about itself. It travels in memberlist's
// node metadata, which is limited to 512 bytes encoded.
type Meta struct {
	Cluster       string    `json:"cluster"`
	Role          Role      `json:"role"`
	Version       string    `json:"version,omitempty"`
	OTLPEndpoint  string    `json:"otlp_endpoint,omitempty"`
	AdminEndpoint string    `json:"admin_endpoint,omitempty"`
	Zone          string    `json:"zone,omitempty"`
	NodeName      string    `json:"node_name,omitempty"` // the Kubernetes node the member runs on
	Start         time.Time `json:"start"`
	// Leaving is set by a member that stops gracefully, just before it
	// leaves: others hand its keys over at once and later report it "left".
	Leaving bool `json:"leaving,omitempty"`
}

const (
	metaFormat   = 1
	metaMaxBytes = 512 // memberlist.MetaMaxSize
	flagLeaving  = 1
)

// encode writes m compactly: format byte, flags byte, seven length-prefixed
// strings, start time as varint Unix nanoseconds.
func (m Meta) encode() ([]byte, error) {
	b := make([]byte, 0, 64)
	b = append(b, metaFormat)
	var flags byte
	if m.Leaving {
		flags |= flagLeaving
	}
	b = append(b, flags)
	for _, s := range []string{m.Cluster, string(m.Role), m.Version, m.OTLPEndpoint, m.AdminEndpoint, m.Zone, m.NodeName} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	var start int64
	if !m.Start.IsZero() {
		start = m.Start.UnixNano()
	}
	b = binary.AppendVarint(b, start)
	if len(b) > metaMaxBytes {
		return nil, fmt.Errorf("encode metadata: %d bytes, limit is %d", len(b), metaMaxBytes)
	}
	return b, nil
}

var errShortMeta = errors.New("metadata is truncated")

// decodeMeta parses metadata from another member. Bytes after the known
// fields are ignored so that later versions can append fields.
func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) < 2 {
		return m, fmt.Errorf("decode metadata: %w", errShortMeta)
	}
	if b[0] != metaFormat {
		return m, fmt.Errorf("decode metadata: unknown format %d", b[0])
	}
	m.Leaving = b[1]&flagLeaving != 0
	b = b[2:]
	var fields [7]string
	for i := range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return Meta{}, fmt.Errorf("decode metadata field %d: %w", i, errShortMeta)
		}
		fields[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	start, k := binary.Varint(b)
	if k <= 0 {
		return Meta{}, fmt.Errorf("decode metadata start: %w", errShortMeta)
	}
	m.Cluster, m.Role, m.Version = fields[0], Role(fields[1]), fields[2]
	m.OTLPEndpoint, m.AdminEndpoint, m.Zone, m.NodeName = fields[3], fields[4], fields[5], fields[6]
	if start != 0 {
		m.Start = time.Unix(0, start).UTC()
	}
	return m, nil
}
