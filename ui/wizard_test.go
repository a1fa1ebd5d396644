package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/export"
)

// wizardSteps returns the app's wizard steps, typed.
func wizardSteps(g *App) (*hostnameStep, *upstreamStep, *certificateStep, *reviewStep) {
	s := g.wizard.steps
	return s[0].(*hostnameStep), s[1].(*upstreamStep), s[2].(*certificateStep), s[3].(*reviewStep)
}

// expectError checks that a field error shows text and Next is disabled,
// or, with text empty, that none shows and Next is enabled.
func expectError(t *testing.T, g *App, f *fieldError, text string) {
	t.Helper()
	if text == "" {
		if f.Visible() {
			t.Errorf("%s error still shown: %q", f.field, f.Text)
		}
		if g.wizard.next.Disabled() {
			t.Errorf("Next disabled after %s was fixed (errors: %v)", f.field, g.wizard.errs)
		}
		return
	}
	if !f.Visible() || !strings.Contains(f.Text, text) {
		t.Errorf("%s error = %q (shown %v), want it to say %q", f.field, f.Text, f.Visible(), text)
	}
	if !g.wizard.next.Disabled() {
		t.Errorf("Next enabled with a bad %s", f.field)
	}
}

func TestWizardValidatesEveryStepAndKeepsValuesGoingBack(t *testing.T) {
	a := test.NewTempApp(t)
	g := newTestApp(t, a, testOptions(t.TempDir()))
	host, up, cert, review := wizardSteps(g)

	onUI(func() {
		if !shows(g, g.wizard.content()) {
			t.Fatal("first run does not show the wizard")
		}
		// Step 1: prefilled so a newcomer can go on, then checked as typed.
		if host.entry.Text != defaultHostname || g.wizard.next.Disabled() {
			t.Errorf("hostname prefilled %q, Next disabled %v; want %q and enabled", host.entry.Text, g.wizard.next.Disabled(), defaultHostname)
		}
		retype(host.entry, "https://sso.example.com")
		expectError(t, g, host.err, "includes a scheme")
		retype(host.entry, "sso.example.com:443")
		expectError(t, g, host.err, "includes a port")
		retype(host.entry, "sso.example.com")
		expectError(t, g, host.err, "")
		test.Tap(g.wizard.back) // disabled on the first step: nothing happens
		if g.wizard.d.Step != 0 {
			t.Fatalf("Back on the first step moved to step %d", g.wizard.d.Step)
		}
		test.Tap(g.wizard.next)

		// Step 2: the demo is the default; "my app" needs a valid URL.
		if g.wizard.d.Step != 1 || up.choice.Selected != upstreamChoiceDemo {
			t.Fatalf("step %d, upstream choice %q; want step 1 with the demo chosen", g.wizard.d.Step, up.choice.Selected)
		}
		up.choice.SetSelected(upstreamChoiceApp)
		if up.url.Text != defaultAppURL || !up.appBox.Visible() {
			t.Errorf("app URL %q (shown %v), want %q shown", up.url.Text, up.appBox.Visible(), defaultAppURL)
		}
		retype(up.url, "authentik.lan:9443")
		expectError(t, g, up.urlErr, "has no scheme")
		retype(up.url, "https://authentik.lan:9443/if/flow/")
		expectError(t, g, up.urlErr, "remove the path")
		retype(up.url, "https://authentik.lan:9443")
		expectError(t, g, up.urlErr, "")
		test.Tap(g.wizard.next)

		// Step 3: each certificate source's fields, and the ports.
		if g.wizard.d.Step != 2 || cert.choice.Selected != certChoices[0].label {
			t.Fatalf("step %d, certificate %q; want step 2 with the local CA chosen", g.wizard.d.Step, cert.choice.Selected)
		}
		cert.choice.SetSelected(certChoices[1].label) // Let's Encrypt
		if !cert.staging.Checked || !cert.forms[certLetsEncrypt].Visible() {
			t.Error("Let's Encrypt: staging first should be ticked and its form shown")
		}
		test.Type(cert.email, "not-an-email")
		expectError(t, g, cert.emailErr, "is not an email address")
		retype(cert.email, "me@example.com")
		expectError(t, g, cert.emailErr, "")
		screenshot(t, g.win, "wizard-3-letsencrypt")

		cert.choice.SetSelected(certChoices[2].label) // another ACME CA
		expectError(t, g, cert.acmeURLErr, "enter the directory URL")
		test.Type(cert.acmeURL, "https://ca.example.com/acme/directory")
		expectError(t, g, cert.acmeURLErr, "")
		test.Type(cert.eabKID, "kid-1")
		expectError(t, g, cert.eabKIDErr, "needs both the key ID and the HMAC key")
		test.Type(cert.eabHMAC, "c2VjcmV0")
		expectError(t, g, cert.eabKIDErr, "")

		cert.choice.SetSelected(certChoices[3].label) // files
		test.Type(cert.certFile, "/nonexistent/fullchain.pem")
		test.Type(cert.keyFile, "/nonexistent/privkey.pem")
		if !cert.certErr.Visible() || !g.wizard.next.Disabled() {
			t.Errorf("missing certificate files: error %q shown %v, Next disabled %v", cert.certErr.Text, cert.certErr.Visible(), g.wizard.next.Disabled())
		}

		cert.choice.SetSelected(certChoices[0].label) // local CA: the files no longer matter
		expectError(t, g, cert.certErr, "")
		retype(cert.httpsAddr, "127.0.0.1:https-port")
		expectError(t, g, cert.httpsAddrErr, "is not a number")
		retype(cert.httpsAddr, "127.0.0.1:0")
		expectError(t, g, cert.httpsAddrErr, "")
		retype(cert.publicPort, "four-four-three")
		if !cert.portTextErr.Visible() || !g.wizard.next.Disabled() {
			t.Errorf("public port not a number: error shown %v, Next disabled %v", cert.portTextErr.Visible(), g.wizard.next.Disabled())
		}
		retype(cert.publicPort, "70000")
		expectError(t, g, cert.publicPortErr, "is not a port")
		retype(cert.publicPort, "443")
		expectError(t, g, cert.publicPortErr, "")
		retype(cert.proxies, "10.0.0.0/33")
		expectError(t, g, cert.proxiesErr, "10.0.0.0/33")
		retype(cert.proxies, "10.0.0.0/8, 192.168.1.1")
		expectError(t, g, cert.proxiesErr, "")
		retype(cert.statusAddr, config.Off)

		// Back to the start and forward again: everything is still there.
		test.Tap(g.wizard.back)
		test.Tap(g.wizard.back)
		if g.wizard.d.Step != 0 || host.entry.Text != "sso.example.com" {
			t.Errorf("after Back twice: step %d, hostname %q", g.wizard.d.Step, host.entry.Text)
		}
		test.Tap(g.wizard.next)
		if up.url.Text != "https://authentik.lan:9443" || up.choice.Selected != upstreamChoiceApp {
			t.Errorf("upstream after Back and Next: %q, %q", up.url.Text, up.choice.Selected)
		}
		test.Tap(g.wizard.next)
		if cert.acmeURL.Text != "https://ca.example.com/acme/directory" || cert.email.Text != "me@example.com" || cert.certFile.Text != "/nonexistent/fullchain.pem" {
			t.Errorf("certificate fields lost going Back: %q %q %q", cert.acmeURL.Text, cert.email.Text, cert.certFile.Text)
		}
		test.Tap(g.wizard.next)

		// Step 4: the summary, and Start.
		if g.wizard.d.Step != 3 || g.wizard.next.Text != "Start" || g.wizard.next.Disabled() {
			t.Fatalf("step %d, button %q (disabled %v); want the review with Start enabled", g.wizard.d.Step, g.wizard.next.Text, g.wizard.next.Disabled())
		}
		summary := formText(review)
		for _, want := range []string{"https://sso.example.com", "https://authentik.lan:9443", "local certificate authority", "10.0.0.0/8, 192.168.1.1", g.opts.ConfigPath} {
			if !strings.Contains(summary, want) {
				t.Errorf("review lacks %q:\n%s", want, summary)
			}
		}
	})
}

// formText is the review's summary as "label: value" lines.
func formText(r *reviewStep) string {
	var b strings.Builder
	for _, it := range r.summary.Items {
		b.WriteString(it.Text + ": " + it.Widget.(*widget.Label).Text + "\n")
	}
	return b.String()
}

func TestDisplayPathShortensHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for in, want := range map[string]string{
		home + "/.config/gatehouse/config.json": "~/.config/gatehouse/config.json",
		"/etc/gatehouse/config.json":            "/etc/gatehouse/config.json",
		home + "-other/x":                       home + "-other/x",
	} {
		if got := displayPath(in); got != want {
			t.Errorf("displayPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReviewExportsTheSetup(t *testing.T) {
	g := newTestApp(t, test.NewTempApp(t), testOptions(t.TempDir()))
	_, _, _, review := wizardSteps(g)
	out := filepath.Join(t.TempDir(), "gatehouse-nginx.conf")
	onUI(func() {
		test.Tap(g.wizard.next)
		test.Tap(g.wizard.next)
		test.Tap(g.wizard.next)
		review.exportTo(out, export.Nginx)
		if !review.exported.Visible() || !strings.Contains(review.exported.Text, out) {
			t.Errorf("export note %q (shown %v)", review.exported.Text, review.exported.Visible())
		}
	})
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "server_name "+defaultHostname+";") || !strings.Contains(string(data), "demo app exists only inside Gatehouse") {
		t.Errorf("exported:\n%s", data)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v, want 0600", fi.Mode().Perm())
	}
}
