package ui

// PLACEHOLDER owned by the dashboard helper: the lead replaces this file with
// the real dashboard at merge. It keeps the contract's declarations so the
// app shell compiles and its tests run.

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

type dashboardActions struct {
	onStop      func() // stop the proxy (the dashboard stays, showing "stopped")
	onStart     func() // start it again with the saved config (progress, then dashboard)
	onEditSetup func() // stop the proxy and go back to the wizard, prefilled
	onQuit      func() // stop the proxy and quit the app (the tray's Quit)
}

type dashboard struct {
	state     *widget.Label
	url       *widget.Label
	stop      *widget.Button
	start     *widget.Button
	edit      *widget.Button
	stopWatch func()
}

func newDashboard(a fyne.App, w fyne.Window, actions dashboardActions) *dashboard {
	d := &dashboard{state: widget.NewLabel(""), url: widget.NewLabel("")}
	d.stop = widget.NewButton("Stop", actions.onStop)
	d.start = widget.NewButton("Start", actions.onStart)
	d.edit = widget.NewButton("Edit setup", actions.onEditSetup)
	return d
}

func (d *dashboard) content() fyne.CanvasObject {
	return container.NewVBox(d.state, d.url, container.NewHBox(d.stop, d.start, d.edit))
}

// follow shows e's live status until stopped is called; call on the Fyne
// goroutine after each successful start.
func (d *dashboard) follow(e *proxyengine.Engine) {
	if d.stopWatch != nil {
		d.stopWatch()
	}
	d.stopWatch = watchStatus(e, func(st proxyengine.Status) {
		d.state.SetText(st.State)
		d.url.SetText(st.PublicURL)
	})
}

// stopped shows the proxy as stopped (err == nil) or failed (err != nil,
// shown in plain words).
func (d *dashboard) stopped(err error) {
	if d.stopWatch != nil {
		d.stopWatch()
		d.stopWatch = nil
	}
	d.state.SetText(proxyengine.StateStopped)
	if err != nil {
		d.state.SetText("error: " + err.Error())
	}
}
