package actors

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Framed counts only while it still frames Raw: a stage that replaces or
// clears Raw (a Processor always does) makes the WAL writer copy again.
func TestFramedRawOnlyWhileItFramesRaw(t *testing.T) {
	framed := []byte{byte(SignalLogs), 0x0a, 0x00}
	b := RawFramedBatch(SignalLogs, framed, 0)
	require.Equal(t, framed[1:], b.Raw)
	require.Equal(t, framed, b.FramedRaw())

	c := b
	c.Raw = append([]byte(nil), b.Raw...) // same bytes, other memory
	require.Nil(t, c.FramedRaw())

	c = b
	c.Raw = b.Raw[:1] // shorter
	require.Nil(t, c.FramedRaw())

	c = b
	c.Raw = nil
	require.Nil(t, c.FramedRaw())

	require.Nil(t, RawBatch(SignalLogs, framed[1:], 0).FramedRaw(), "no frame given")

	env := &Envelope{Batch: RawFramedBatch(SignalLogs, []byte{byte(SignalLogs)}, 0), Ack: NewAck()}
	var got Batch
	p := Processor{Fn: func(context.Context, Batch) error { return nil }}
	p.Consume(context.Background(), env, func(e *Envelope) error { got = e.Batch; return nil })
	require.Nil(t, got.Framed, "a processor may change the payload: the frame is dropped")
	require.Nil(t, got.FramedRaw())
}
