package obsproc

import (
	"testing"
	"time"
)

// pollEvery is how often WaitFor evaluates its condition.
const pollEvery = 50 * time.Millisecond

// WaitFor polls cond every 50ms until it holds, and returns how long that
// took; if it still does not hold after within, the test fails with what
// and the reason cond gave last. Every wait on a process is bounded so.
func WaitFor(tb testing.TB, within time.Duration, what string, cond func() (ok bool, why string)) time.Duration {
	tb.Helper()
	start := time.Now()
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			tb.Fatalf("%s: not within %s: %s", what, within, why)
		}
		time.Sleep(pollEvery)
	}
}
