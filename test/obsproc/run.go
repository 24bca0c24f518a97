package obsproc

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Run runs obs with args to completion (e.g. "validate", "targets") with
// env added to the environment (as in Options.Env), and returns its exit code, stdout and
// stderr. The test fails if it does not exit within timeout or cannot be
// run at all.
func Run(tb testing.TB, timeout time.Duration, env []string, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	bin := Build(tb)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Env = environ(env)
	err := cmd.Run()
	if ctx.Err() != nil {
		tb.Fatalf("obsproc: obs %s did not exit within %s; stderr:\n%s", strings.Join(args, " "), timeout, tail(e.String(), errTail))
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			tb.Fatalf("obsproc: run obs %s: %v", strings.Join(args, " "), err)
		}
		return ee.ExitCode(), o.String(), e.String()
	}
	return 0, o.String(), e.String()
}
