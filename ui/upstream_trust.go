package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// The wizard's Upstream step and the site editor offer the same ways to
// trust an app's certificate that the system does not.

// trustOffer shows c, a certificate the configured trust rejects, with the
// three ways to accept it, safest first: pin exactly it, a CA file, or no
// verification. It returns the card and its pin and skip buttons.
func trustOffer(win fyne.Window, c *preflight.UpstreamCertificate, pin func(fingerprint string), useCA func(path string), skip func()) (card fyne.CanvasObject, pinButton, skipButton *widget.Button) {
	what := "The app's certificate is not trusted"
	if c.SelfSigned {
		what = "The app uses a self-signed certificate (authentik's default)"
	}
	fp := widget.NewLabelWithStyle(c.Fingerprint, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	fp.Wrapping = fyne.TextWrapBreak
	pinButton = widget.NewButtonWithIcon("Trust this certificate", theme.ConfirmIcon(), func() { pin(c.Fingerprint) })
	pinButton.Importance = widget.HighImportance
	caFile := widget.NewButtonWithIcon("Use a CA file…", theme.FolderOpenIcon(), func() {
		dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
			if err != nil || r == nil {
				return
			}
			r.Close()
			useCA(r.URI().Path())
		}, win)
	})
	skipButton = widget.NewButtonWithIcon("Skip verification", theme.WarningIcon(), skip)
	card = widget.NewCard("", what, container.NewVBox(
		note("Subject: "+c.Subject+"\nIssuer: "+c.Issuer+"\nSHA-256 fingerprint (compare it with the one your app shows):"),
		fp,
		container.NewHBox(pinButton, caFile, skipButton),
	))
	return card, pinButton, skipButton
}

// untrustedCertificate is the certificate a connection test found that
// the configured trust rejects (not one skipped on purpose), or nil.
func untrustedCertificate(results []preflight.Result) *preflight.UpstreamCertificate {
	for _, r := range results {
		if c := r.Certificate; c != nil && !c.Verified && c.Trust != preflight.TrustInsecure {
			return c
		}
	}
	return nil
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
