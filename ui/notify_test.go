package ui

import (
	"testing"
	"time"

	"fyne.io/fyne/v2"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

func TestNotificationsBetween(t *testing.T) {
	notAfter := time.Date(2027, 2, 26, 12, 0, 0, 0, time.Local)
	cert := certs.Status{Source: config.TLSACME, Issuer: "R11", Names: []string{"sso.example.com"}, NotAfter: notAfter, Fingerprint: "AA:01"}
	renewed := cert
	renewed.Fingerprint = "AA:02"
	otherName := renewed
	otherName.Names = []string{"auth.example.com"}
	failing := cert
	failing.LastError = "the CA could not connect to this machine on port 443."
	failingOther := failing
	failingOther.LastError = "the CA is rate-limiting this name."
	files := cert
	files.Source, files.LastError = config.TLSFiles, "key.pem does not match cert.pem."

	const upURL = "https://authentik.lan:9443/-/health/live/"
	healthy := upstream.Health{URL: upURL, Checked: true, Healthy: true}
	down := upstream.Health{URL: upURL, Checked: true, LastError: "connection refused"}
	unchecked := upstream.Health{URL: upURL}
	elsewhere := healthy
	elsewhere.URL = "http://127.0.0.1:8000/-/health/live/"

	status := func(c certs.Status, u upstream.Health) proxyengine.Status {
		return proxyengine.Status{Hostname: "sso.example.com", Certificate: c, Upstream: u}
	}
	until := formatDate(notAfter)
	for _, tc := range []struct {
		name      string
		prev, cur proxyengine.Status
		want      []fyne.Notification
	}{
		{"nothing changed", status(cert, healthy), status(cert, healthy), nil},
		{"first certificate", status(certs.Status{Source: config.TLSACME}, healthy), status(cert, healthy),
			[]fyne.Notification{{Title: "Certificate issued", Content: "Gatehouse now serves a certificate for sso.example.com from R11, valid until " + until + "."}}},
		{"renewed", status(cert, healthy), status(renewed, healthy),
			[]fyne.Notification{{Title: "Certificate renewed", Content: "Gatehouse now serves a certificate for sso.example.com from R11, valid until " + until + "."}}},
		{"new name is an issue, not a renewal", status(cert, healthy), status(otherName, healthy),
			[]fyne.Notification{{Title: "Certificate issued", Content: "Gatehouse now serves a certificate for sso.example.com from R11, valid until " + until + "."}}},
		{"renewal starts failing", status(cert, healthy), status(failing, healthy),
			[]fyne.Notification{{Title: "Certificate renewal failed", Content: "the CA could not connect to this machine on port 443. The current certificate for sso.example.com stays in use until " + until + "."}}},
		{"still failing is not news", status(failing, healthy), status(failing, healthy), nil},
		{"failing differently is not news either", status(failing, healthy), status(failingOther, healthy), nil},
		{"renewal recovers: the new certificate is the news", status(failing, healthy), status(renewed, healthy),
			[]fyne.Notification{{Title: "Certificate renewed", Content: "Gatehouse now serves a certificate for sso.example.com from R11, valid until " + until + "."}}},
		{"certificate files fail to load", status(cert, healthy), status(files, healthy),
			[]fyne.Notification{{Title: "Certificate files could not be loaded", Content: "key.pem does not match cert.pem. The current certificate for sso.example.com stays in use until " + until + "."}}},
		{"upstream goes down", status(cert, healthy), status(cert, down),
			[]fyne.Notification{{Title: "Upstream is down", Content: upURL + " is not answering (connection refused); visitors to sso.example.com get an error page until it is back."}}},
		{"upstream comes back", status(cert, down), status(cert, healthy),
			[]fyne.Notification{{Title: "Upstream is back", Content: upURL + " answers again; sso.example.com is serving visitors."}}},
		{"first check finding it down is not a change", status(cert, unchecked), status(cert, down), nil},
		{"still down", status(cert, down), status(cert, down), nil},
		{"another upstream (a new setup) is not a change", status(cert, down), status(cert, elsewhere), nil},
		{"two things at once, certificate first", status(cert, healthy), status(renewed, down),
			[]fyne.Notification{
				{Title: "Certificate renewed", Content: "Gatehouse now serves a certificate for sso.example.com from R11, valid until " + until + "."},
				{Title: "Upstream is down", Content: upURL + " is not answering (connection refused); visitors to sso.example.com get an error page until it is back."},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := notificationsBetween(tc.prev, tc.cur)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d notifications %v, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if got[i].Title != tc.want[i].Title || got[i].Content != tc.want[i].Content {
					t.Errorf("notification %d:\n got %q: %q\nwant %q: %q", i, got[i].Title, got[i].Content, tc.want[i].Title, tc.want[i].Content)
				}
			}
		})
	}
}
