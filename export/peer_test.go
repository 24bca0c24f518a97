package export

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/actors"
)

// The client's address reaches the pipeline (k8sattributes associates
// pods by it).
func TestReceiverPassesPeerAddress(t *testing.T) {
	var mu sync.Mutex
	var peers []string
	consume := map[actors.Signal]ConsumeFunc{actors.SignalLogs: func(ctx context.Context, _ actors.Batch) error {
		mu.Lock()
		peers = append(peers, actors.PeerFrom(ctx))
		mu.Unlock()
		return nil
	}}
	r := startReceiver(t, consume, nil)
	payload := mustProto(t, testBatch(actors.SignalLogs, 2))
	cc := grpcConn(t, r.grpcAddr)
	require.NoError(t, grpcSend(context.Background(), cc, actors.SignalLogs, payload, ""))
	rsp := httpSend(t, r.httpURL+httpPath(actors.SignalLogs), "application/x-protobuf", "", payload)
	require.Equal(t, http.StatusOK, rsp.StatusCode)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, peers, 2)
	for _, p := range peers {
		host, _, err := net.SplitHostPort(p)
		require.NoError(t, err, "peer %q", p)
		require.Equal(t, "127.0.0.1", host)
	}
}
