package ui

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// uiMu stands in for the Fyne goroutine in tests: the test driver runs
// fyne.Do on the caller's goroutine, so the bridge's callbacks and the
// test's own widget work take turns through it.
var uiMu sync.Mutex

func init() {
	onFyne = func(f func()) {
		uiMu.Lock()
		defer uiMu.Unlock()
		f()
	}
}

// onUI runs f as if on the Fyne goroutine.
func onUI(f func()) {
	uiMu.Lock()
	defer uiMu.Unlock()
	f()
}

// holdUI makes the rest of the test run as if on the Fyne goroutine, for
// tests that drive widgets and wait for nothing in the background: a
// callback still on its way from an earlier test then waits its turn.
func holdUI(t *testing.T) {
	uiMu.Lock()
	t.Cleanup(uiMu.Unlock)
}

// eventually polls cond on the UI until it holds, failing after 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		onUI(func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitStepChecks waits until the wizard's current step shows the checks
// that answer in the background (step 1's DNS lookup, step 3's port
// check), so its markup or picture shows their findings.
func awaitStepChecks(t *testing.T, g *App) {
	t.Helper()
	var step int
	onUI(func() { step = g.wizard.d.Step })
	switch step {
	case 0:
		eventually(t, "the DNS check", func() bool {
			h := g.wizard.steps[0].(*hostnameStep)
			return len(h.checks.Objects) == 2 && !strings.Contains(rowText(h.checks.Objects[1]), "Looking up")
		})
	case 2:
		eventually(t, "the port check", func() bool {
			c := g.wizard.steps[2].(*certificateStep)
			return len(c.portChecks.Objects) > 0 && !c.ports.pending()
		})
	}
}

// testOptions keeps everything of an app in dir and on loopback.
func testOptions(dir string) Options {
	return Options{
		ConfigPath:       filepath.Join(dir, "config.json"),
		ListenCandidates: [][2]string{{"127.0.0.1:0", "127.0.0.1:0"}},
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		// No service answers here: a Gatehouse service running on this
		// machine must not be what the tests attach to.
		ServiceSockets: []string{filepath.Join(dir, "no-service.sock")},
		RunPrivileged: func(context.Context, []string) (string, error) {
			return "", errors.New("the tests install no service unless they say so")
		},
		TrayAvailable: func() bool { return true },
	}
}

// engineBackend is a bare engine as a backend, for the dashboard's tests
// that reach into the engine (its address, its config). It cannot pause.
type engineBackend struct{ e *proxyengine.Engine }

func (b engineBackend) describe() string { return "Running inside this window" }
func (b engineBackend) Status(_ context.Context, v proxyengine.View) (proxyengine.Status, error) {
	return b.e.Snapshot(v), nil
}
func (b engineBackend) Updates(ctx context.Context) (<-chan proxyengine.Status, error) {
	return updatesFrom(ctx, b.e.Subscribe, func() proxyengine.Status { return proxyengine.Status{} }), nil
}
func (b engineBackend) Config(context.Context) (config.Config, error) { return b.e.Config(), nil }
func (b engineBackend) Apply(ctx context.Context, cfg config.Config) error {
	return b.e.Apply(ctx, cfg)
}
func (b engineBackend) Pause(context.Context) error  { return errors.ErrUnsupported }
func (b engineBackend) Resume(context.Context) error { return errors.ErrUnsupported }

// newTestApp builds the desktop app on the test driver and stops its proxy
// when the test ends.
func newTestApp(t *testing.T, a fyne.App, opts Options) *App {
	t.Helper()
	var g *App
	var err error
	onUI(func() { g, err = New(a, opts) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		onUI(func() {
			g.Close()
			g.win.Close()
		})
	})
	return g
}

// retype replaces an entry's text by typing, as a user would after
// selecting all.
func retype(e *widget.Entry, text string) {
	e.SetText("")
	test.Type(e, text)
}

// shows reports whether the window shows obj.
func shows(g *App, obj fyne.CanvasObject) bool { return g.win.Content() == obj }

var screenshotSize = fyne.NewSize(960, 700)

// rowText is the text of the labels in a check row, joined.
func rowText(o fyne.CanvasObject) string {
	var parts []string
	var walk func(fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch v := o.(type) {
		case *widget.Label:
			parts = append(parts, v.Text)
		case *widget.Card:
			parts = append(parts, v.Title, v.Subtitle)
			walk(v.Content)
		case *fyne.Container:
			for _, c := range v.Objects {
				walk(c)
			}
		}
	}
	walk(o)
	return strings.Join(parts, " ")
}

// screenshot saves the window after letting its layout settle: the test
// canvas, unlike the desktop driver, does not lay out again when a wrapped
// label's height changes with the width it was just given.
func screenshot(t *testing.T, w fyne.Window, name string) {
	t.Helper()
	if *screenshotDir == "" {
		return
	}
	w.Resize(screenshotSize)
	for range 3 {
		w.Content().Refresh()
	}
	saveScreenshot(t, w, screenshotSize, name)
}

// boundAs is the port check's report of the port the system picked for a
// :0 test address, different on every run.
var boundAs = regexp.MustCompile(`\(bound as [^)]*\)`)

// assertScreen checks the window's markup as assertMarkup does, and saves
// its picture for the docs.
func assertScreen(t *testing.T, w fyne.Window, name string) {
	t.Helper()
	assertMarkup(t, w, name)
	screenshot(t, w, name)
}

// assertMarkup compares the window's markup with testdata/name.xml (a
// mismatch is written to testdata/failed/ to compare, and to copy over the
// master when the change is meant). Ports the system picked are left out of
// the comparison.
func assertMarkup(t *testing.T, w fyne.Window, name string) {
	t.Helper()
	w.Resize(screenshotSize)
	for range 3 {
		w.Content().Refresh()
	}
	got := boundAs.ReplaceAllString(test.RenderToMarkup(w.Canvas()), "(bound as 127.0.0.1:PORT)")
	master, err := os.ReadFile(filepath.Join("testdata", name+".xml"))
	if err != nil || strings.ReplaceAll(string(master), "\r", "") != got {
		failed := filepath.Join("testdata", "failed", name+".xml")
		if err := os.MkdirAll(filepath.Dir(failed), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(failed, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Errorf("the window does not render as testdata/%s.xml (%v): compare with %s, and copy it over the master if the change is meant", name, err, failed)
	}
}
