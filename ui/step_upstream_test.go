package ui

import (
	"crypto/sha256"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gorilla/websocket"
)

// results returns the upstream step's check results by title, as shown.
func shownResults(s *upstreamStep) string {
	var b strings.Builder
	for _, o := range s.check.results.Objects {
		b.WriteString(rowText(o) + "\n")
	}
	return b.String()
}

// TestUpstreamSelfSignedCertificateCanBeTrusted tests a connection to a
// real self-signed HTTPS upstream, pins the certificate it shows, and
// then tries skipping verification instead.
func TestUpstreamSelfSignedCertificateCanBeTrusted(t *testing.T) {
	// An app that answers its health path and WebSockets, as authentik
	// does: the test is about its certificate.
	var upgrader websocket.Upgrader
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			if c, err := upgrader.Upgrade(w, r, nil); err == nil {
				c.Close()
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	up.Config.ErrorLog = log.New(io.Discard, "", 0) // the checks' rejected handshakes
	up.StartTLS()
	defer up.Close()
	sum := sha256.Sum256(up.Certificate().Raw)
	fingerprint := upstream.FormatFingerprint(sum[:])

	g := newTestApp(t, test.NewTempApp(t), testOptions(t.TempDir()))
	_, s, _, _ := wizardSteps(g)
	onUI(func() {
		test.Tap(g.wizard.next)
		s.choice.SetSelected(upstreamChoiceApp)
		retype(s.url, up.URL)
		test.Tap(s.check.test)
	})
	eventually(t, "the upstream checks", func() bool { return len(s.check.results.Objects) == 4 })
	onUI(func() {
		got := shownResults(s)
		if !strings.Contains(got, "Upstream connection") || !strings.Contains(got, "Upstream TLS handshake") {
			t.Errorf("results:\n%s", got)
		}
		if s.check.pin == nil || !strings.Contains(rowText(s.check.offer), fingerprint) {
			t.Fatalf("no offer to trust the certificate %s; offer shows %q", fingerprint, rowText(s.check.offer))
		}
		screenshot(t, g.win, "wizard-2-upstream-trust")
		test.Tap(s.check.pin)
		if g.wizard.d.Config.UpstreamFingerprint != fingerprint || !strings.Contains(s.check.trust.Text, fingerprint) {
			t.Errorf("after Trust: fingerprint %q, trust %q", g.wizard.d.Config.UpstreamFingerprint, s.check.trust.Text)
		}
	})
	// Trusting tests again: now the handshake passes and nothing is offered.
	eventually(t, "the checks with the pin", func() bool { return len(s.check.results.Objects) == 4 && len(s.check.offer.Objects) == 0 })
	onUI(func() {
		if got := shownResults(s); strings.Contains(got, "not trusted") {
			t.Errorf("with the pin the results still distrust the certificate:\n%s", got)
		}
		if g.wizard.next.Disabled() {
			t.Errorf("Next disabled with a pinned upstream: %v %q", g.wizard.errs, s.blockers())
		}
		// The other way: skip verification, with a warning.
		s.check.chooseTrust("", "", true)
		if !g.wizard.d.Config.UpstreamInsecure || g.wizard.d.Config.UpstreamFingerprint != "" || !strings.Contains(s.check.trust.Text, "NOT verified") {
			t.Errorf("skip: insecure %v, fingerprint %q, warning %q", g.wizard.d.Config.UpstreamInsecure, g.wizard.d.Config.UpstreamFingerprint, s.check.trust.Text)
		}
		// A trust option on a plain-HTTP upstream is the engine's error.
		retype(s.url, "http://127.0.0.1:9000")
		expectError(t, g, s.trustErr, "apply to an https:// upstream only")
		// Back to the system's CAs clears it.
		test.Tap(s.check.untrust)
		expectError(t, g, s.trustErr, "")
		if c := g.wizard.d.Config; c.UpstreamInsecure || c.UpstreamFingerprint != "" || c.UpstreamCA != "" || s.check.untrust.Visible() {
			t.Errorf("after Use the system's CAs: %+v, button shown %v", c, s.check.untrust.Visible())
		}
	})
	// Changing trust tested again: let that test finish before the next
	// test's widgets are built, since both measure text with Fyne's caches.
	eventually(t, "the last connection test", func() bool { return s.check.testing.Hidden })
}
