// Package testutil holds what the tests of several packages share: a
// quiet logger, polling with a deadline, a fake DNS server, certificates
// made on the spot and a WebSocket echo upstream. Only tests import it.
package testutil

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Logger discards logs unless -v is given.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Eventually polls cond every 10 ms until it holds, failing the test after
// 5 s.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CopyTestBinary copies the running test binary to name in a directory of
// its own that any user may enter, for a test that runs it as a helper
// process under a name of its choosing or as another user.
func CopyTestBinary(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	OpenToOthers(t, dir)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// OpenToOthers lets every user enter path and its parents up to the
// system's temporary directory, which a test's own directories keep to
// their user (0700).
func OpenToOthers(t testing.TB, path string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	for p := filepath.Clean(path); p != top && p != filepath.Dir(p) && strings.HasPrefix(p, top); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
