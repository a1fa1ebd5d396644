package ui

import (
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
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

// TestWizardPictures saves each wizard step as a newcomer on a desktop sees
// it (make screenshots): the ports an unprivileged user gets, the status
// endpoint on, the setup under ~/.config. It only takes pictures, never
// starts the proxy, and is skipped unless -screenshots is given; the
// newcomer test checks the same screens' markup on test ports.
func TestWizardPictures(t *testing.T) {
	if *screenshotDir == "" {
		t.Skip("pictures only: run with -screenshots DIR (make screenshots)")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	opts := testOptions(filepath.Join(home, ".config", "gatehouse"))
	opts.ListenCandidates = [][2]string{{":8080", ":8443"}}
	g := newTestApp(t, test.NewTempApp(t), opts)
	for i, name := range []string{"wizard-1-hostname", "wizard-2-upstream", "wizard-3-certificate", "wizard-4-review"} {
		awaitStepChecks(t, g)
		onUI(func() {
			screenshot(t, g.win, name)
			if i < 3 {
				test.Tap(g.wizard.next)
			}
		})
	}
}
