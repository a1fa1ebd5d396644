package ui

import (
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"fyne.io/fyne/v2"
)

// screenshotDir, when set (make screenshots), is where tests that build a
// screen save a PNG of it for the README and docs.
var screenshotDir = flag.String("screenshots", "", "directory to save screenshots of the screens into")

// saveScreenshot renders w at the given size into screenshotDir/name.png.
// It does nothing unless -screenshots was given.
func saveScreenshot(t *testing.T, w fyne.Window, size fyne.Size, name string) {
	t.Helper()
	if *screenshotDir == "" {
		return
	}
	w.Resize(size)
	img := w.Canvas().Capture()
	path := filepath.Join(*screenshotDir, name+".png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("saving screenshot: %v", err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatalf("saving screenshot %s: %v", path, err)
	}
	t.Logf("wrote %s", path)
}
