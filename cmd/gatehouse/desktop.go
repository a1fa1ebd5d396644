package main

import (
	"fmt"
	"os"
	"runtime"

	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// runDesktop opens the desktop app.
func runDesktop() int {
	if !hasDisplay() {
		fmt.Fprintln(os.Stderr, "gatehouse: no display found (DISPLAY and WAYLAND_DISPLAY are unset); run `gatehouse serve` to run the proxy headless")
		return 1
	}
	a := app.NewWithID("io.github.gatehouse")
	w := a.NewWindow("Gatehouse")
	w.SetContent(container.NewCenter(widget.NewLabel("Gatehouse: the setup wizard is coming. Use `gatehouse serve` meanwhile.")))
	w.ShowAndRun()
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
