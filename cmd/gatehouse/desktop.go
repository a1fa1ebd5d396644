package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"fyne.io/fyne/v2/app"

	"github.com/gatehouse-proxy/gatehouse/ui"
)

// appID is FyneApp.toml's [Details] ID: it names the app's preferences and
// lets desktop environments match the window to its launcher.
const appID = "io.github.gatehouse"

// runDesktop opens the desktop app: the setup wizard, then the dashboard.
// Problems before the window opens go to stderr.
func runDesktop(stderr io.Writer) int {
	if !hasDisplay() {
		fmt.Fprintln(stderr, "gatehouse: no display found (DISPLAY and WAYLAND_DISPLAY are unset); run `gatehouse serve` to run the proxy headless")
		return 1
	}
	// One window per user: a second launch brings the first forward (which
	// may be watching the service) and ends here.
	instance, err := ui.ClaimInstance(ui.InstanceSocket())
	if errors.Is(err, ui.ErrAlreadyRunning) {
		fmt.Fprintln(stderr, "gatehouse: already open; brought its window forward")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse: %v (going on without the one-window check)\n", err)
	} else {
		defer instance.Close()
	}
	g, err := ui.New(app.NewWithID(appID), ui.Options{Instance: instance})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse: %v\n", err)
		return 1
	}
	g.Window().ShowAndRun()
	g.Close()
	return 0
}

// hasDisplay reports whether a window can be opened. Only X11 and Wayland
// sessions can lack one; macOS and Windows always have a desktop.
func hasDisplay() bool {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "openbsd" && runtime.GOOS != "netbsd" {
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}
