package ui

import (
	"net/url"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// desktopApp is the test app with a system tray, as desktop drivers have,
// recording what was put there and which addresses it was asked to open.
type desktopApp struct {
	fyne.App
	menus  []*fyne.Menu // each SetSystemTrayMenu, in order
	icon   fyne.Resource
	window fyne.Window
	opened []string
}

func (a *desktopApp) OpenURL(u *url.URL) error {
	a.opened = append(a.opened, u.String())
	return nil
}

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
	if rec.starts.Load() != 1 {
		t.Errorf("tray Start called onStart %d times", rec.starts.Load())
	}

	e := startTestEngine(t, proxyengine.Config{})
	onUI(func() { d.follow(e) })
	waitFor(t, d, 10*time.Second, "the tray offers Stop", func() (bool, string) {
		return a.item("Stop proxy") != nil, a.labels()[1]
	})
	menus := len(a.menus)
	onUI(func() { a.item("Stop proxy").Action() })
	if rec.stops.Load() != 1 {
		t.Errorf("tray Stop called onStop %d times", rec.stops.Load())
	}
	onUI(func() { d.stopped(nil) })
	if a.item("Start proxy") == nil {
		t.Errorf("after stopping the tray shows %q", a.labels())
	}
	if len(a.menus) != menus+1 {
		t.Errorf("the menu was set %d times for one change of state, want once", len(a.menus)-menus)
	}
	a.item("Quit").Action()
	if rec.quits.Load() != 1 {
		t.Errorf("tray Quit called onQuit %d times", rec.quits.Load())
	}
}
