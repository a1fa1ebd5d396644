package ui

import (
	"slices"

	"fyne.io/fyne/v2"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// notificationsBetween is what the desktop should be told about the change
// from one status snapshot to the next: a certificate issued or renewed, a
// renewal that started failing, and the upstream going down or coming back.
// The first check of an upstream is not a change; neither is a new engine
// checking a different upstream.
func notificationsBetween(prev, cur proxyengine.Status) []*fyne.Notification {
	var out []*fyne.Notification
	name := cur.Hostname
	pc, cc := prev.Certificate, cur.Certificate
	if cc.Fingerprint != "" && cc.Fingerprint != pc.Fingerprint {
		title := "Certificate renewed"
		if pc.Fingerprint == "" || !slices.Equal(pc.Names, cc.Names) {
			title = "Certificate issued"
		}
		body := "Gatehouse now serves a certificate for " + name
		if cc.Issuer != "" {
			body += " from " + cc.Issuer
		}
		body += ", valid until " + formatDate(cc.NotAfter) + "."
		out = append(out, fyne.NewNotification(title, body))
	}
	if cc.LastError != "" && pc.LastError == "" {
		title := "Certificate renewal failed"
		if cc.Source == config.TLSFiles {
			title = "Certificate files could not be loaded"
		}
		body := cc.LastError
		if !cc.NotAfter.IsZero() {
			body += " The current certificate for " + name + " stays in use until " + formatDate(cc.NotAfter) + "."
		}
		out = append(out, fyne.NewNotification(title, body))
	}
	pu, cu := prev.Upstream, cur.Upstream
	if pu.Checked && cu.Checked && pu.URL == cu.URL && pu.Healthy != cu.Healthy {
		if cu.Healthy {
			out = append(out, fyne.NewNotification("Upstream is back",
				cu.URL+" answers again; "+name+" is serving visitors."))
		} else {
			body := cu.URL + " is not answering"
			if cu.LastError != "" {
				body += " (" + cu.LastError + ")"
			}
			out = append(out, fyne.NewNotification("Upstream is down",
				body+"; visitors to "+name+" get an error page until it is back."))
		}
	}
	return out
}
