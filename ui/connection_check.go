package ui

import (
	"context"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// connectionCheck is Test connection for an app's address: the button, a
// spinner while it runs, the results, how the app's certificate is
// trusted now (with a way back to the system's CAs), and the ways to trust
// one the test found untrusted. The wizard's Upstream step and the site
// editor show it under their address field; they own the address and the
// trust, which it reads through setup and changes through setTrust.
type connectionCheck struct {
	win     fyne.Window
	checker *preflight.Checker
	// setup is the single-site setup to test, as entered now.
	setup func() config.Config
	// setTrust stores a way to trust the app's certificate (or none);
	// the check shows it and tests again.
	setTrust func(fingerprint, caFile string, insecure bool)
	// changed runs when the results change (cleared by a new test, or
	// shown), for the owner to revalidate.
	changed func()

	test    *widget.Button
	testing *widget.ProgressBarInfinite
	results *fyne.Container
	trust   *widget.Label // how the app's certificate is checked now
	untrust *widget.Button
	offer   *fyne.Container // an untrusted certificate and what to do
	pin     *widget.Button  // in offer: trust exactly this certificate
	skip    *widget.Button  // in offer: do not verify
	// lastRun are the results shown, of the address and trust as they
	// are: a change forgets them.
	lastRun []preflight.Result
	// runs numbers the tests: only the newest one's results are shown, so
	// a slow test of an earlier address or trust never overwrites what
	// the user has changed since.
	runs int
}

func newConnectionCheck(win fyne.Window, checker *preflight.Checker, setup func() config.Config, setTrust func(fingerprint, caFile string, insecure bool), changed func()) *connectionCheck {
	c := &connectionCheck{win: win, checker: checker, setup: setup, setTrust: setTrust, changed: changed}
	c.test = widget.NewButtonWithIcon("Test connection", theme.SearchIcon(), c.run)
	c.testing = widget.NewProgressBarInfinite()
	c.testing.Hide()
	c.results = container.NewVBox()
	c.trust = note("")
	c.untrust = widget.NewButtonWithIcon("Use the system's CAs instead", theme.ContentUndoIcon(), func() { c.chooseTrust("", "", false) })
	c.offer = container.NewVBox()
	c.showTrust()
	return c
}

// objects are the check's widgets for the owner's form, with the owner's
// errors about the trust (fieldErrors) shown after the trust chosen.
func (c *connectionCheck) objects(fieldErrors ...fyne.CanvasObject) []fyne.CanvasObject {
	objs := []fyne.CanvasObject{container.NewHBox(c.test), c.testing, c.trust, container.NewHBox(c.untrust)}
	objs = append(objs, fieldErrors...)
	return append(objs, c.offer, c.results)
}

// run tests the connection to the app: connect, TLS, health, WebSocket.
func (c *connectionCheck) run() {
	cfg, checker := c.setup(), c.checker
	c.forget()
	c.test.Disable()
	c.testing.Show()
	c.changed()
	run := c.runs
	inBackground(func() []preflight.Result {
		ctx, cancel := context.WithTimeout(context.Background(), 4*preflight.DefaultTimeout)
		defer cancel()
		return checker.CheckUpstream(ctx, cfg)
	}, func(results []preflight.Result) {
		if run == c.runs {
			c.show(results)
		}
	})
}

// forget drops the results and a test still running: the address or the
// trust changed.
func (c *connectionCheck) forget() {
	c.stop()
	c.lastRun = nil
	c.results.RemoveAll()
	c.offer.RemoveAll()
}

// stop drops a test still running, whose result nobody would see; Test
// connection is ready again.
func (c *connectionCheck) stop() {
	c.runs++
	c.test.Enable()
	c.testing.Hide()
}

func (c *connectionCheck) show(results []preflight.Result) {
	c.test.Enable()
	c.testing.Hide()
	c.lastRun = results
	c.results.Objects = checkList(results)
	c.results.Refresh()
	c.offerTrust(results)
	c.changed()
}

// offerTrust offers ways to trust a certificate the results found
// untrusted (not one skipped on purpose), safest first: pin exactly it, a
// CA file, or no verification.
func (c *connectionCheck) offerTrust(results []preflight.Result) {
	c.offer.RemoveAll()
	var cert *preflight.UpstreamCertificate
	for _, r := range results {
		if rc := r.Certificate; rc != nil && !rc.Verified && rc.Trust != preflight.TrustInsecure {
			cert = rc
		}
	}
	if cert == nil {
		return
	}
	what := "The app's certificate is not trusted"
	if cert.SelfSigned {
		what = "The app uses a self-signed certificate (authentik's default)"
	}
	fp := widget.NewLabelWithStyle(cert.Fingerprint, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	fp.Wrapping = fyne.TextWrapBreak
	c.pin = widget.NewButtonWithIcon("Trust this certificate", theme.ConfirmIcon(), func() { c.chooseTrust(cert.Fingerprint, "", false) })
	c.pin.Importance = widget.HighImportance
	caFile := widget.NewButtonWithIcon("Use a CA file…", theme.FolderOpenIcon(), func() {
		dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
			if err != nil || r == nil {
				return
			}
			r.Close()
			c.chooseTrust("", r.URI().Path(), false)
		}, c.win)
	})
	c.skip = widget.NewButtonWithIcon("Skip verification", theme.WarningIcon(), func() { c.chooseTrust("", "", true) })
	c.offer.Add(widget.NewCard("", what, container.NewVBox(
		note("Subject: "+cert.Subject+"\nIssuer: "+cert.Issuer+"\nSHA-256 fingerprint (compare it with the one your app shows):"),
		fp,
		container.NewHBox(c.pin, caFile, c.skip),
	)))
}

// chooseTrust sets one way of trusting the app's certificate (or none)
// and tests again.
func (c *connectionCheck) chooseTrust(fingerprint, caFile string, insecure bool) {
	c.setTrust(fingerprint, caFile, insecure)
	c.showTrust()
	c.run()
}

// showTrust says how the app's certificate is checked now, with a way
// back to the system's CAs; nothing when it is the system's CAs.
func (c *connectionCheck) showTrust() {
	text, warn := describeTrust(c.setup().UpstreamTrust())
	c.trust.Text, c.trust.Importance = text, widget.MediumImportance
	if warn {
		c.trust.Importance = widget.WarningImportance
	}
	c.trust.Hidden, c.untrust.Hidden = text == "", text == ""
	c.trust.Refresh()
	c.untrust.Refresh()
}

// describeTrust says how an app's certificate is checked under t: "" for
// the system's CAs, and warn when it is not checked at all.
func describeTrust(t upstream.Trust) (text string, warn bool) {
	switch {
	case t.Insecure:
		return "Warning: the app's certificate is NOT verified. Anyone who can intercept the connection " +
			"between Gatehouse and the app can read and change it. Use this only on a network you control.", true
	case t.Fingerprint != "":
		return "Trusted: exactly the certificate with fingerprint " + t.Fingerprint + ".", false
	case t.CAFile != "":
		return "Trusted: certificates issued by the CAs in " + t.CAFile + ".", false
	}
	return "", false
}
