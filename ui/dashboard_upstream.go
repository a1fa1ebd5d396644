package ui

import (
	"context"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// When the upstream goes down, the dashboard runs the wizard's connection
// test against the running setup, so it explains the outage in the same
// words and with the same fix as the wizard did, instead of the health
// check's Go error; a pinned certificate that no longer matches comes with
// a way to review and trust the new one.

// diagnosis is what the connection test found for one outage.
type diagnosis struct {
	since   time.Time         // the outage it explains (UpstreamHealth.ChangedAt)
	failed  *preflight.Result // the first failed step, if one failed
	newCert *preflight.UpstreamCertificate
}

// upstreamProblem is the upstream card's alert for an outage: the
// connection test's finding and fix once it has run.
func (d *dashboard) upstreamProblem(h upstream.Health) string {
	d.diagnose(h)
	dg := d.diagnosis
	switch {
	case d.cfg == nil: // a snapshot without a setup to test
		return "The app does not answer."
	case dg == nil || !dg.since.Equal(h.ChangedAt):
		return "The app does not answer; finding out why…"
	case dg.failed == nil:
		return "The app answered the connection test but not the health check: " + inAppWords(h.LastError)
	}
	text := capitalize(inAppWords(dg.failed.Finding)) + "."
	if dg.failed.Fix != "" {
		text += " Fix: " + inAppWords(dg.failed.Fix) + "."
	}
	return text
}

// diagnose runs the connection test once per outage, in the background.
func (d *dashboard) diagnose(h upstream.Health) {
	if d.cfg == nil || d.diagnosing.Equal(h.ChangedAt) {
		return
	}
	d.diagnosing = h.ChangedAt
	cfg, since := *d.cfg, h.ChangedAt
	inBackground(func() []preflight.Result {
		ctx, cancel := context.WithTimeout(context.Background(), 4*preflight.DefaultTimeout)
		defer cancel()
		return (&preflight.Checker{}).CheckUpstream(ctx, cfg)
	}, func(results []preflight.Result) {
		if !d.diagnosing.Equal(since) || d.watch == nil {
			return // another outage, or stopped, since
		}
		dg := &diagnosis{since: since}
		for i, r := range results {
			if r.Status == preflight.Fail && dg.failed == nil {
				dg.failed = &results[i]
			}
			if c := r.Certificate; c != nil && !c.Verified && c.Trust == preflight.TrustPinned {
				dg.newCert = c
			}
		}
		d.diagnosis = dg
		d.render(d.last)
	})
}

// upstreamActions are the buttons for an outage: review a new certificate.
func (d *dashboard) upstreamActions(h upstream.Health) []fyne.CanvasObject {
	dg := d.diagnosis
	if !h.Checked || h.Healthy || dg == nil || !dg.since.Equal(h.ChangedAt) || dg.newCert == nil || d.actions.onTrustUpstream == nil {
		return nil
	}
	return []fyne.CanvasObject{d.reviewCert}
}

// onReviewCert shows the pinned and the new certificate side by side, as
// the wizard does, and trusts the new one on request.
func (d *dashboard) onReviewCert() {
	dg := d.diagnosis
	if dg == nil || dg.newCert == nil || d.cfg == nil {
		return
	}
	c := dg.newCert
	mono := func(s string) *widget.Label {
		l := widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		l.Wrapping = fyne.TextWrapBreak
		return l
	}
	what := "The app now presents another certificate than the one you trusted"
	if c.SelfSigned {
		what += " (authentik makes a new self-signed one when it is reinstalled)"
	}
	content := container.NewVBox(
		note(what+". Trust the new one only if you know why it changed: compare its fingerprint with the one your app shows."),
		widget.NewLabelWithStyle("Trusted until now", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		mono(d.cfg.UpstreamFingerprint),
		widget.NewLabelWithStyle("Presented now", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		note("Subject: "+c.Subject+"\nIssuer: "+c.Issuer),
		mono(c.Fingerprint),
	)
	fp := c.Fingerprint
	dlg := dialog.NewCustomConfirm("Review the app's new certificate", "Trust the new certificate", "Cancel", content, func(ok bool) {
		if ok {
			d.actions.onTrustUpstream(fp)
		}
	}, d.win)
	dlg.Resize(fyne.NewSize(720, 420))
	dlg.Show()
}

// newReviewButton is the upstream card's "Review and trust the new certificate".
func (d *dashboard) newReviewButton() *widget.Button {
	b := widget.NewButtonWithIcon("Review and trust the new certificate", theme.VisibilityIcon(), d.onReviewCert)
	b.Importance = widget.HighImportance
	return b
}
