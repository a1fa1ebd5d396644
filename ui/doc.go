// Package ui is Gatehouse's desktop app: the setup wizard, the start-up
// progress screen and the live dashboard. It builds everything from a
// fyne.App it is given and never imports fyne.io/fyne/v2/app, so its tests
// run headless with fyne.io/fyne/v2/test and CGO_ENABLED=0.
package ui
