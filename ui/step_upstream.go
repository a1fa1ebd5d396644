package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// Choices of the upstream step.
const (
	upstreamChoiceDemo = "The built-in demo app (try Gatehouse without authentik)"
	upstreamChoiceApp  = "My app at this address (such as authentik)"
)

// upstreamStep asks for the app behind the proxy, tests the way to it, and
// offers ways to trust a certificate the system does not.
type upstreamStep struct {
	w        *wizard
	choice   *widget.RadioGroup
	demoNote *widget.Label
	appBox   *fyne.Container // everything about "my app"
	url      *widget.Entry
	urlErr   *fieldError
	check    *connectionCheck
	trustErr *fieldError // Validate reports trust conflicts and CA files as upstream_ca
	pinErr   *fieldError // and a bad fingerprint as upstream_fingerprint
	root     fyne.CanvasObject
}

func newUpstreamStep(w *wizard) *upstreamStep {
	s := &upstreamStep{w: w, urlErr: newFieldError(config.FieldUpstream), trustErr: newFieldError(config.FieldUpstreamCA), pinErr: newFieldError(config.FieldUpstreamFingerprint)}
	// A closure, not the method value w.d.config, which would copy the
	// draft as it is now.
	s.check = newConnectionCheck(w.win, w.checker, func() config.Config { return w.d.config() }, s.setTrust, w.revalidate)
	s.url = widget.NewEntry()
	s.url.SetPlaceHolder(defaultAppURL)
	s.url.SetText(w.d.Config.Upstream)
	s.url.OnChanged = s.onURLChanged
	s.url.OnSubmitted = func(string) { s.check.run() }
	s.appBox = container.NewVBox(append([]fyne.CanvasObject{
		labelled("Address of your app", s.url, s.urlErr),
		note("Scheme, host and port, such as " + defaultAppURL + " (authentik's HTTPS port) or http://authentik.lan:9000."),
	}, s.check.objects(s.trustErr, s.pinErr)...)...)
	s.demoNote = note("Gatehouse runs a small web page with a live WebSocket echo at /ws/client/ inside itself, " +
		"so you can try the whole setup now. Choose Edit setup later to put your own app in its place.")
	s.choice = widget.NewRadioGroup([]string{upstreamChoiceDemo, upstreamChoiceApp}, s.onChoice)
	s.choice.Required = true
	if w.d.Demo {
		s.choice.SetSelected(upstreamChoiceDemo)
	} else {
		s.choice.SetSelected(upstreamChoiceApp)
	}
	s.root = container.NewVBox(
		heading("The app to protect"),
		note("Gatehouse forwards every visitor to this app, with the headers authentik needs, and passes WebSockets through."),
		s.choice, s.demoNote, s.appBox,
	)
	s.showChoice()
	return s
}

func (s *upstreamStep) title() string              { return "Upstream" }
func (s *upstreamStep) content() fyne.CanvasObject { return s.root }
func (s *upstreamStep) shown()                     {}

// left forgets a connection test still running; Test connection is ready
// again when the step comes back.
func (s *upstreamStep) left() { s.check.stop() }

// blockers are the connection test's failures, while "my app" is chosen:
// a test that failed keeps Next disabled until the app answers or the
// address changes.
func (s *upstreamStep) blockers() []string {
	if s.w.d.Demo {
		return nil
	}
	return failures(s.check.lastRun...)
}

func (s *upstreamStep) showErrors(errs config.ValidationErrors) bool {
	return anyShown(errs, s.urlErr, s.trustErr, s.pinErr)
}

func (s *upstreamStep) onChoice(choice string) {
	demo := choice == upstreamChoiceDemo
	if s.w.d.Demo == demo {
		return
	}
	s.w.d.Demo = demo
	s.showChoice()
	s.w.changed()
}

func (s *upstreamStep) showChoice() {
	if s.w.d.Demo {
		s.appBox.Hide()
		s.demoNote.Show()
	} else {
		s.demoNote.Hide()
		s.appBox.Show()
	}
}

func (s *upstreamStep) onURLChanged(u string) {
	s.w.d.Config.Upstream = u
	s.check.forget() // a test still running was of the old address
	s.w.changed()
}

// setTrust sets one way of trusting the upstream (or none); the check
// tests again.
func (s *upstreamStep) setTrust(fingerprint, caFile string, insecure bool) {
	c := &s.w.d.Config
	c.UpstreamFingerprint, c.UpstreamCA, c.UpstreamInsecure = fingerprint, caFile, insecure
	s.w.changed()
}
