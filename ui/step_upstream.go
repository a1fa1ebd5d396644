package ui

import (
	"context"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
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
	test     *widget.Button
	testing  *widget.ProgressBarInfinite
	results  *fyne.Container
	lastRun  []preflight.Result // the results in results
	trust    *widget.Label      // how the upstream's certificate is checked now
	untrust  *widget.Button     // back to the system's CAs
	trustErr *fieldError        // Validate reports trust conflicts and CA files as upstream_ca
	pinErr   *fieldError        // and a bad fingerprint as upstream_fingerprint
	offer    *fyne.Container    // the untrusted certificate and what to do about it
	pin      *widget.Button     // in offer: trust exactly this certificate
	skip     *widget.Button     // in offer: do not verify
	root     fyne.CanvasObject
	// runs numbers the connection tests: only the newest one's results are
	// shown, so a slow test of an earlier address or trust never overwrites
	// what the user has changed since.
	runs int
}

func newUpstreamStep(w *wizard) *upstreamStep {
	s := &upstreamStep{w: w, urlErr: newFieldError(config.FieldUpstream), trustErr: newFieldError(config.FieldUpstreamCA), pinErr: newFieldError(config.FieldUpstreamFingerprint)}
	s.url = widget.NewEntry()
	s.url.SetPlaceHolder(defaultAppURL)
	s.url.SetText(w.d.Config.Upstream)
	s.url.OnChanged = s.onURLChanged
	s.url.OnSubmitted = func(string) { s.onTest() }
	s.test = widget.NewButtonWithIcon("Test connection", theme.SearchIcon(), s.onTest)
	s.testing = widget.NewProgressBarInfinite()
	s.testing.Hide()
	s.results = container.NewVBox()
	s.trust = note("")
	s.untrust = widget.NewButtonWithIcon("Use the system's CAs instead", theme.ContentUndoIcon(), func() { s.setTrust("", "", false) })
	s.offer = container.NewVBox()
	s.appBox = container.NewVBox(
		labelled("Address of your app", s.url, s.urlErr),
		note("Scheme, host and port, such as "+defaultAppURL+" (authentik's HTTPS port) or http://authentik.lan:9000."),
		container.NewHBox(s.test), s.testing,
		s.trust, container.NewHBox(s.untrust), s.trustErr, s.pinErr, s.offer, s.results,
	)
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
	s.showTrust()
	return s
}

func (s *upstreamStep) title() string              { return "Upstream" }
func (s *upstreamStep) content() fyne.CanvasObject { return s.root }
func (s *upstreamStep) shown()                     {}

// left forgets a connection test still running; Test connection is ready
// again when the step comes back.
func (s *upstreamStep) left() {
	s.runs++
	s.test.Enable()
	s.testing.Hide()
}

// blockers are the connection test's failures, while "my app" is chosen:
// a test that failed keeps Next disabled until the app answers or the
// address changes.
func (s *upstreamStep) blockers() []string {
	if s.w.d.Demo {
		return nil
	}
	return failures(s.lastRun...)
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
	s.runs++ // a test still running was of the old address
	s.test.Enable()
	s.testing.Hide()
	s.results.RemoveAll()
	s.lastRun = nil
	s.offer.RemoveAll()
	s.w.changed()
}

// onTest runs the upstream checks: connect, TLS, health, WebSocket.
func (s *upstreamStep) onTest() {
	cfg := s.w.d.config()
	s.test.Disable()
	s.testing.Show()
	s.results.RemoveAll()
	s.lastRun = nil
	s.offer.RemoveAll()
	s.w.revalidate()
	checker := s.w.checker
	s.runs++
	run := s.runs
	inBackground(func() []preflight.Result {
		ctx, cancel := context.WithTimeout(context.Background(), 4*preflight.DefaultTimeout)
		defer cancel()
		return checker.CheckUpstream(ctx, cfg)
	}, func(results []preflight.Result) {
		if run == s.runs {
			s.showResults(results)
		}
	})
}

func (s *upstreamStep) showResults(results []preflight.Result) {
	s.test.Enable()
	s.testing.Hide()
	s.lastRun = results
	s.results.Objects = checkList(results)
	s.results.Refresh()
	defer s.w.revalidate()
	s.offer.RemoveAll()
	if c := untrustedCertificate(results); c != nil {
		var card fyne.CanvasObject
		card, s.pin, s.skip = trustOffer(s.w.win, c,
			func(fingerprint string) { s.setTrust(fingerprint, "", false) },
			func(caFile string) { s.setTrust("", caFile, false) },
			func() { s.setTrust("", "", true) })
		s.offer.Objects = []fyne.CanvasObject{card}
		s.offer.Refresh()
	}
}

// setTrust sets one way of trusting the upstream (or none) and tests again.
func (s *upstreamStep) setTrust(fingerprint, caFile string, insecure bool) {
	c := &s.w.d.Config
	c.UpstreamFingerprint, c.UpstreamCA, c.UpstreamInsecure = fingerprint, caFile, insecure
	s.showTrust()
	s.w.changed()
	s.onTest()
}

// showTrust says how the upstream's certificate is checked now, with a way
// back to the system's CAs.
func (s *upstreamStep) showTrust() {
	text, warn := describeTrust(s.w.d.Config.UpstreamTrust())
	if text == "" {
		s.trust.Hide()
		s.untrust.Hide()
		return
	}
	s.trust.Text, s.trust.Importance = text, widget.MediumImportance
	if warn {
		s.trust.Importance = widget.WarningImportance
	}
	s.trust.Show()
	s.untrust.Show()
	s.trust.Refresh()
}
