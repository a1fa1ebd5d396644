package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"

	"github.com/gatehouse-proxy/gatehouse/assets"
)

// trayIcon is the application icon, shown in the system tray.
var trayIcon = fyne.NewStaticResource("gatehouse.png", assets.Icon)

// tray is the system tray menu: show the window, stop or start the proxy
// (one item, labelled for what it would do now) and quit.
type tray struct {
	desk    desktop.App
	menu    *fyne.Menu
	toggle  *fyne.MenuItem
	running bool
	start   func()
	stop    func()
}

// newTray sets up the tray on desktops that have one, and returns nil
// elsewhere (a nil *tray ignores setRunning).
func newTray(a fyne.App, w fyne.Window, start, stop, quit func()) *tray {
	desk, ok := a.(desktop.App)
	if !ok {
		return nil
	}
	t := &tray{desk: desk, start: start, stop: stop}
	show := fyne.NewMenuItem("Show Gatehouse", func() {
		w.Show()
		w.RequestFocus()
	})
	t.toggle = fyne.NewMenuItem("Start proxy", start)
	// The driver adds its own Quit unless the last item is one: ours also
	// stops the proxy first.
	quitItem := fyne.NewMenuItem("Quit", quit)
	quitItem.IsQuit = true
	t.menu = fyne.NewMenu("Gatehouse", show, t.toggle, fyne.NewMenuItemSeparator(), quitItem)
	desk.SetSystemTrayIcon(trayIcon)
	desk.SetSystemTrayWindow(w)
	desk.SetSystemTrayMenu(t.menu)
	return t
}

// setRunning relabels the stop/start item when the proxy's state changes.
func (t *tray) setRunning(running bool) {
	if t == nil || running == t.running {
		return
	}
	t.running = running
	if running {
		t.toggle.Label, t.toggle.Action = "Stop proxy", t.stop
	} else {
		t.toggle.Label, t.toggle.Action = "Start proxy", t.start
	}
	t.desk.SetSystemTrayMenu(t.menu)
}
