package main

import (
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestAppIDMatchesFyneAppToml: `go build` cannot read FyneApp.toml, so the
// ID is repeated in appID; this keeps the two from drifting apart.
func TestAppIDMatchesFyneAppToml(t *testing.T) {
	data, err := os.ReadFile("../../FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*ID\s*=\s*"([^"]+)"`).FindSubmatch(data)
	if m == nil || string(m[1]) != appID {
		t.Errorf("FyneApp.toml ID = %q, appID = %q", m, appID)
	}
}

func TestDesktopWithoutDisplaySaysSoInOneLine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only X11 and Wayland sessions can lack a display")
	}
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	var stderr strings.Builder
	code := runDesktop(&stderr)
	out := stderr.String()
	if code == 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "gatehouse serve") {
		t.Errorf("exit %d, stderr %q; want non-zero and one line pointing to gatehouse serve", code, out)
	}
}
