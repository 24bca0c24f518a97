package events

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// TestDuplicatesTellsResendFromReread: copies with one observed timestamp
// are one record sent twice; copies with different ones are reads.
func TestDuplicatesTellsResendFromReread(t *testing.T) {
	observed := map[string][]pcommon.Timestamp{
		"ev-0000": {5},
		"ev-0001": {7, 7},       // the exporter sent the record twice
		"ev-0002": {8, 9},       // read twice
		"ev-0003": {10, 10, 11}, // sent twice and read again
	}
	resent, readAgain := duplicates(observed, 4)
	require.Equal(t, []string{"ev-0001 x2"}, resent)
	require.Equal(t, []string{"ev-0002 x2", "ev-0003 x3"}, readAgain)
}

// TestRetryCounterAddsLives: a counter that drops is a new process life;
// the counts of the lives before it are kept.
func TestRetryCounterAddsLives(t *testing.T) {
	c := &retryCounter{name: "x", last: map[string]float64{}, sum: map[string]float64{}}
	for _, v := range []float64{0, 2, 3, 0, 1, 4} { // killed after 3
		c.observe("gw3", v)
	}
	c.observe("gw1", 2)
	require.Equal(t, 3+4+2.0, c.total())
}

// TestInFlightAtKill: only the events of a request that reached the relay
// before the process was gone and was answered no earlier than
// answerSlack before the signal are explained by the kill.
func TestInFlightAtKill(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	k := kill{name: "gw3", before: at(1000), after: at(1005)}
	reqs := []relayed{
		{arrived: at(700), answered: at(702), events: []string{"ev-0001"}},   // answered 298 ms before: confirmed
		{arrived: at(940), answered: at(950), events: []string{"ev-0002"}},   // answered 50 ms before: within the slack
		{arrived: at(990), answered: at(1003), events: []string{"ev-0003"}},  // answered during the kill
		{arrived: at(1004), answered: at(1010), events: []string{"ev-0004"}}, // sent just before the exit
		{arrived: at(1006), answered: at(1009), events: []string{"ev-0005"}}, // sent after the exit: another process
	}
	got := inFlight(reqs, []kill{k})
	require.Len(t, got, 3)
	require.Equal(t, caught{kill: k, req: 1}, got["ev-0002"])
	require.Equal(t, 2, got["ev-0003"].req)
	require.Equal(t, 3, got["ev-0004"].req)

	explained, other := explain([]string{"ev-0001 x2", "ev-0002 x2", "ev-0003 x3", "ev-0004 x2"}, got)
	require.Equal(t, []string{"ev-0002 x2", "ev-0004 x2"}, explained)
	require.Equal(t, []string{"ev-0001 x2", "ev-0003 x3"}, other, "a confirmed batch re-sent, and a third copy, are not the kill's")
}
