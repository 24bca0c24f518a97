package obsproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// BinaryEnv names an environment variable that, when set, holds the path of
// an already built obs; Build then uses it instead of building.
const BinaryEnv = "OBS_BIN"

// maxBuildTime bounds one go build of obs (2 shared cores, cold cache).
const maxBuildTime = 10 * time.Minute

// build is the one obs build of this test binary. It is package state on
// purpose: a test binary runs one copy of the tests of one package, and
// every test in it must use the same binary, built once.
var build struct {
	once sync.Once
	dir  string // temp dir holding the binary; empty with BinaryEnv
	path string
	err  error
}

// Main is the whole TestMain of a package that runs obs: it builds obs
// (exiting 1 with the build output if that fails), runs the tests under a
// goroutine-leak check, removes the build and exits.
func Main(m *testing.M) {
	if _, err := binary(); err != nil {
		fmt.Fprintln(os.Stderr, "obsproc:", err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if build.dir != "" {
			_ = os.RemoveAll(build.dir)
		}
		os.Exit(code)
	}))
}

// Build returns the path of the obs binary, building it on the first call
// in this test binary; the test fails if it cannot be built. A package
// whose TestMain is Main has it built already. Without Main the build
// stays in the temp dir.
func Build(tb testing.TB) string {
	tb.Helper()
	p, err := binary()
	if err != nil {
		tb.Fatalf("obsproc: %v", err)
	}
	return p
}

func binary() (string, error) {
	build.once.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			if _, err := os.Stat(p); err != nil {
				build.err = fmt.Errorf("stat %s from %s: %w", p, BinaryEnv, err)
				return
			}
			build.path = p
			return
		}
		build.path, build.dir, build.err = goBuild()
	})
	return build.path, build.err
}

// goBuild builds github.com/obs-dev/obs from the module root into a new
// temp dir and returns the binary's path and the dir.
func goBuild() (path, dir string, err error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("run go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", "", fmt.Errorf("find module root: go env GOMOD printed %q", gomod)
	}
	dir, err = os.MkdirTemp("", "obsproc-")
	if err != nil {
		return "", "", fmt.Errorf("create build dir: %w", err)
	}
	path = filepath.Join(dir, "obs")
	ctx, cancel := context.WithTimeout(context.Background(), maxBuildTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/obs-dev/obs")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("build obs: %w\n%s", err, b)
	}
	return path, dir, nil
}
