package ui

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// selfSigned makes a self-signed certificate for 127.0.0.1, as authentik
// makes its own.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "authentik default"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serveTLS serves ok on ln with cert until the returned server is closed.
func serveTLS(ln net.Listener, cert tls.Certificate) *httptest.Server {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	s.Listener.Close()
	s.Listener = ln
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	return s
}

// findButton finds a button by its text in o.
func findButton(o fyne.CanvasObject, text string) *widget.Button {
	switch v := o.(type) {
	case *widget.Button:
		if v.Text == text {
			return v
		}
	case *fyne.Container:
		for _, c := range v.Objects {
			if b := findButton(c, text); b != nil {
				return b
			}
		}
	case fyne.Widget:
		for _, c := range test.WidgetRenderer(v).Objects() {
			if b := findButton(c, text); b != nil {
				return b
			}
		}
	}
	return nil
}

// TestDashboardExplainsANewUpstreamCertificate: authentik, pinned, is
// reinstalled with a new self-signed certificate. The dashboard says so in
// the wizard's words (not Go's), the header warns, and Review shows both
// fingerprints and trusts the new one.
func TestDashboardExplainsANewUpstreamCertificate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	oldCert, newCert := selfSigned(t), selfSigned(t)
	fp := func(c tls.Certificate) string {
		s := sha256.Sum256(c.Certificate[0])
		return upstream.FormatFingerprint(s[:])
	}
	up := serveTLS(ln, oldCert)
	t.Cleanup(func() { up.Close() })
	e := startTestEngine(t, config.Config{Upstream: "https://" + addr, UpstreamFingerprint: fp(oldCert), HealthPath: "/"})

	a := test.NewTempApp(t)
	d, _, w := newTestDashboard(t, a)
	trusted := make(chan string, 1)
	onUI(func() {
		d.actions.onTrustUpstream = func(f string) { trusted <- f }
		d.follow(engineBackend{e})
	})
	waitFor(t, d, 15*time.Second, "the upstream healthy", func() (bool, string) { return d.upstream.value.Text == "Healthy", d.upstream.value.Text })

	// Reinstalled: the same address, another certificate.
	up.Close()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	up = serveTLS(ln2, newCert)
	// The engine checks every 10 s; then the connection test runs.
	waitFor(t, d, 40*time.Second, "the review offered", func() (bool, string) {
		return d.upstream.actions.Visible() && len(d.upstream.actions.Objects) == 1, d.upstream.fullAlert
	})
	onUI(func() {
		alert := d.upstream.fullAlert
		for _, want := range []string{"does not match the pinned", "Trust this certificate"} {
			if !strings.Contains(alert, want) {
				t.Errorf("upstream alert %q lacks %q", alert, want)
			}
		}
		for _, goWords := range []string{"tls:", "x509", "--upstream"} {
			if strings.Contains(alert, goWords) {
				t.Errorf("upstream alert speaks Go or flags (%q): %q", goWords, alert)
			}
		}
		if d.state.Text != "Running, app unreachable" || d.state.Importance != widget.WarningImportance {
			t.Errorf("header %q (%v) while the app is unreachable", d.state.Text, d.state.Importance)
		}
		d.onReviewCert()
		top := w.Canvas().Overlays().Top()
		if top == nil {
			t.Fatal("Review showed no dialog")
		}
		shown := allText(top)
		if !strings.Contains(shown, fp(oldCert)) || !strings.Contains(shown, fp(newCert)) {
			t.Errorf("the review does not show both fingerprints %s and %s:\n%s", fp(oldCert), fp(newCert), shown)
		}
		b := findButton(top, "Trust the new certificate")
		if b == nil {
			t.Fatal("no Trust the new certificate button")
		}
		test.Tap(b)
	})
	select {
	case got := <-trusted:
		if got != fp(newCert) {
			t.Errorf("trusted %s, want the new %s", got, fp(newCert))
		}
	case <-time.After(5 * time.Second):
		t.Error("Trust the new certificate did not ask the app to pin it")
	}
	t.Cleanup(func() { up.Close() })
}

// allText is every label's text in o, walking into widgets' renderers (a
// dialog's content).
func allText(o fyne.CanvasObject) string {
	switch v := o.(type) {
	case *widget.Label:
		return v.Text + "\n"
	case *fyne.Container:
		var b strings.Builder
		for _, c := range v.Objects {
			b.WriteString(allText(c))
		}
		return b.String()
	case fyne.Widget:
		var b strings.Builder
		for _, c := range test.WidgetRenderer(v).Objects() {
			b.WriteString(allText(c))
		}
		return b.String()
	}
	return ""
}

// TestDashboardKeepsHistoryAcrossRestart: Stop then Start keeps the chart
// and the events (each engine starts its own afresh), a start shows
// "Starting" with Start disabled from its first frame, and the first
// frame of the new engine is its own, not the stopped one.
func TestDashboardKeepsHistoryAcrossRestart(t *testing.T) {
	a := test.NewTempApp(t)
	d, _, _ := newTestDashboard(t, a)
	e1 := startTestEngine(t, config.Config{})
	onUI(func() { d.follow(engineBackend{e1}) })
	waitFor(t, d, 15*time.Second, "the first run's chart and events", func() (bool, string) {
		return len(d.chart.times) > 0 && len(d.eventRows) > 0, d.state.Text
	})
	var before proxyengine.Status
	onUI(func() {
		before = d.last
		d.stopped(nil)
		d.starting()
		if d.state.Text != "Starting…" || !d.start.Disabled() || !d.stop.Disabled() {
			t.Errorf("while starting: %q, Start disabled %v, Stop disabled %v", d.state.Text, d.start.Disabled(), d.stop.Disabled())
		}
	})
	e2 := startTestEngine(t, config.Config{})
	onUI(func() {
		d.follow(engineBackend{e2})
		if d.state.Text != "Connecting…" || !d.start.Disabled() || !d.stop.Disabled() {
			t.Errorf("before the first snapshot: %q, Start disabled %v, Stop disabled %v", d.state.Text, d.start.Disabled(), d.stop.Disabled())
		}
	})
	waitFor(t, d, 15*time.Second, "the second run", func() (bool, string) {
		return d.state.Text == "Running" && d.start.Disabled(), d.state.Text
	})
	onUI(func() {
		if len(d.chart.times) < len(before.History) || !d.chart.times[0].Equal(before.History[0].Time) {
			t.Errorf("chart after Stop and Start has %d points from %v; the first run had %d from %v",
				len(d.chart.times), d.chart.times, len(before.History), before.History[0].Time)
		}
		oldest := before.Events[len(before.Events)-1]
		if last := d.eventRows[len(d.eventRows)-1]; !last.Time.Equal(oldest.Time) || last.Message != oldest.Message {
			t.Errorf("events after Stop and Start end with %+v, want the first run's oldest %+v", last, oldest)
		}
	})
}

func TestCountsArePlural(t *testing.T) {
	a := test.NewTempApp(t)
	d, _, _ := newTestDashboard(t, a)
	onUI(func() {
		d.render(proxyengine.Status{RequestsTotal: 1, UpstreamErrors: 1})
		if d.connections.detail.Text != "1 request since start" || d.errorRate.detail.Text != "1 upstream error since start" {
			t.Errorf("one: %q, %q", d.connections.detail.Text, d.errorRate.detail.Text)
		}
		d.render(proxyengine.Status{RequestsTotal: 2})
		if d.connections.detail.Text != "2 requests since start" {
			t.Errorf("two: %q", d.connections.detail.Text)
		}
	})
}
