// Package testutil holds what the tests of several packages share: a
// quiet logger, polling with a deadline, a fake DNS server, certificates
// made on the spot and a WebSocket echo upstream. Only tests import it.
package testutil

import (
	"io"
	"log/slog"
	"os"
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
