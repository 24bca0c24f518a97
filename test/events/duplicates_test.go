package events

import (
	"testing"

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
