package ui

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// desktopApp is the test app with a system tray, as desktop drivers have,
// recording what was put there and which addresses it was asked to open.
type desktopApp struct {
	fyne.App
	menus  []*fyne.Menu // each SetSystemTrayMenu, in order
	icon   fyne.Resource
	window fyne.Window
	opened []string
	notes  []*fyne.Notification
	quits  int
}

// trayWindow is a test window that records what the desktop driver would
// do with it.
type trayWindow struct {
	fyne.Window
	hidden, shown int
	onClose       func() // the close button, as intercepted
}

func (w *trayWindow) Hide()                      { w.hidden++; w.Window.Hide() }
func (w *trayWindow) Show()                      { w.shown++; w.Window.Show() }
func (w *trayWindow) SetCloseIntercept(f func()) { w.onClose = f; w.Window.SetCloseIntercept(f) }
func (w *trayWindow) closeButton()               { w.onClose() }

func (a *desktopApp) OpenURL(u *url.URL) error {
	a.opened = append(a.opened, u.String())
	return nil
}

// NewWindow gives windows that record being hidden and shown, and keep
// the close intercept so a test can press the close button.
func (a *desktopApp) NewWindow(title string) fyne.Window {
	return &trayWindow{Window: a.App.NewWindow(title)}
}

func (a *desktopApp) SendNotification(n *fyne.Notification) { a.notes = append(a.notes, n) }
func (a *desktopApp) Quit()                                 { a.quits++ }

func (a *desktopApp) SetSystemTrayMenu(m *fyne.Menu)    { a.menus = append(a.menus, m) }
func (a *desktopApp) SetSystemTrayIcon(r fyne.Resource) { a.icon = r }
func (a *desktopApp) SetSystemTrayWindow(w fyne.Window) { a.window = w }

func (a *desktopApp) labels() []string {
	var out []string
	for _, it := range a.menus[len(a.menus)-1].Items {
		if !it.IsSeparator {
			out = append(out, it.Label)
		}
	}
	return out
}

func (a *desktopApp) item(label string) *fyne.MenuItem {
	for _, it := range a.menus[len(a.menus)-1].Items {
		if it.Label == label {
			return it
		}
	}
	return nil
}

func TestTrayMenuFollowsTheProxyState(t *testing.T) {
	a := &desktopApp{App: test.NewTempApp(t)}
	d, rec, w := newTestDashboard(t, a)

	onUI(func() {
		if a.icon == nil || a.window != w || len(a.menus) == 0 {
			t.Fatalf("tray: icon %v, window %v, %d menus", a.icon, a.window, len(a.menus))
		}
		if got := a.labels(); len(got) != 3 || got[0] != "Show Gatehouse" || got[1] != "Start proxy" || got[2] != "Quit" {
			t.Fatalf("tray menu = %q, want Show Gatehouse, Start proxy, Quit", got)
		}
		if quit := a.item("Quit"); !quit.IsQuit {
			t.Error("Quit is not marked as the quit item: the driver would add a second one")
		}
		a.item("Start proxy").Action()
	})
	if rec.starts.Load() != 1 {
		t.Errorf("tray Start called onStart %d times", rec.starts.Load())
	}

	e := startTestEngine(t, config.Config{})
	onUI(func() { d.follow(engineBackend{e}) })
	waitFor(t, d, 10*time.Second, "the tray offers Stop", func() (bool, string) {
		return a.item("Stop proxy") != nil, a.labels()[1]
	})
	var menus int
	onUI(func() {
		menus = len(a.menus)
		a.item("Stop proxy").Action()
	})
	if rec.stops.Load() != 1 {
		t.Errorf("tray Stop called onStop %d times", rec.stops.Load())
	}
	onUI(func() {
		d.stopped(nil)
		if a.item("Start proxy") == nil {
			t.Errorf("after stopping the tray shows %q", a.labels())
		}
		if len(a.menus) != menus+1 {
			t.Errorf("the menu was set %d times for one change of state, want once", len(a.menus)-menus)
		}
		a.item("Quit").Action()
	})
	if rec.quits.Load() != 1 {
		t.Errorf("tray Quit called onQuit %d times", rec.quits.Load())
	}
}

// TestClosingTheWindowKeepsARunningProxyInTheTray: with a tray, the close
// button hides the window while the proxy serves (saying so once), and
// quits when nothing runs. The tray's Start during the wizard brings the
// wizard forward rather than starting an unfinished setup.
func TestClosingTheWindowKeepsARunningProxyInTheTray(t *testing.T) {
	a := &desktopApp{App: test.NewTempApp(t)}
	g := newTestApp(t, a, testOptions(t.TempDir()))
	w := g.win.(*trayWindow)
	onUI(func() {
		if w.onClose == nil {
			t.Fatal("no close intercept although the desktop has a tray")
		}
		a.item("Start proxy").Action()
		if w.shown != 1 || g.starting || !shows(g, g.wizard.content()) {
			t.Errorf("tray Start in the wizard: shown %d times, starting %v, wizard shown %v", w.shown, g.starting, shows(g, g.wizard.content()))
		}
		for g.wizard.d.Step < 3 {
			test.Tap(g.wizard.next)
		}
		retype(g.wizard.steps[2].(*certificateStep).statusAddr, config.Off)
		chooseTryOut(t, g)
		test.Tap(g.wizard.next) // Start
	})
	eventually(t, "the dashboard", func() bool { return g.sup != nil && shows(g, g.dashView) })

	onUI(func() {
		w.closeButton()
		w.closeButton()
		if w.hidden != 2 || a.quits != 0 || g.sup == nil {
			t.Fatalf("closed twice while running: hidden %d, quits %d, engine %v", w.hidden, a.quits, g.sup)
		}
		var told []string
		for _, n := range a.notes {
			if n.Title == "Gatehouse keeps running" {
				told = append(told, n.Content)
			}
		}
		if len(told) != 1 || !strings.Contains(told[0], "system tray") {
			t.Errorf("notifications about the tray = %q, want one pointing to the system tray", told)
		}
		a.item("Show Gatehouse").Action()
		g.actions.onStop()
	})
	eventually(t, "the proxy to stop", func() bool { return g.sup == nil })
	onUI(w.closeButton)
	eventually(t, "closing with nothing running to quit", func() bool { return a.quits == 1 })
	onUI(func() {
		if w.hidden != 2 {
			t.Errorf("closing with nothing running hid the window (%d hides)", w.hidden)
		}
	})
}
