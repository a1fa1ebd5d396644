package ui

import (
	"fmt"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"github.com/gatehouse-proxy/gatehouse/internal/acme"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
)

// TestProgressShowsTheRehearsalAsAStep feeds the screen the events of a
// Let's Encrypt start with staging first, as the engine reports them: the
// rehearsal is a step of its own, before the real certificate.
func TestProgressShowsTheRehearsalAsAStep(t *testing.T) {
	holdUI(t)
	a := test.NewTempApp(t)
	w := a.NewWindow("Gatehouse")
	var retried, backed bool
	p := newProgressScreen(func() { retried = true }, func() { backed = true })
	w.SetContent(p.content())
	p.begin("Let's Encrypt")
	rehearsal, certificate := p.rows[1], p.rows[2]
	if rehearsal.box.Visible() {
		t.Error("the rehearsal step shows before the engine rehearses")
	}
	acmeSteps := []progress.Event{
		{Stage: progress.ACMEAccount, Message: "Registering the ACME account"},
		{Stage: progress.ACMEOrder, Message: "Ordering a certificate for sso.example.com"},
		{Stage: progress.ACMEChallenge, Message: "Answering the tls-alpn-01 challenge"},
		{Stage: progress.ACMEValidating, Message: "Waiting for the CA to check the answer"},
	}
	events := append([]progress.Event{
		{Stage: progress.Listen, Message: "Opening ports"},
		{Stage: progress.Certificate, Message: "Preparing the acme certificate for sso.example.com"},
		{Stage: progress.ACMERehearsal, Message: "First a test certificate from the staging service, to check that validation works"},
	}, acmeSteps...)
	for _, ev := range events {
		p.event(ev)
	}
	if !rehearsal.box.Visible() || rehearsal.message.Text != "Waiting for the CA to check the answer" || certificate.message.Visible() {
		t.Errorf("rehearsing: rehearsal %q (shown %v), certificate %q (shown %v)",
			rehearsal.message.Text, rehearsal.box.Visible(), certificate.message.Text, certificate.message.Visible())
	}
	p.event(progress.Event{Stage: progress.ACMEIssued, Message: "The CA issued the certificate"})
	p.event(progress.Event{Stage: progress.ACMERehearsal, Message: "The staging certificate was issued: validation works; now the real certificate"})
	for _, ev := range acmeSteps {
		p.event(ev)
	}
	if !strings.HasPrefix(rehearsal.message.Text, "The staging certificate was issued") || certificate.message.Text != "Waiting for the CA to check the answer" {
		t.Errorf("production: rehearsal %q, certificate %q", rehearsal.message.Text, certificate.message.Text)
	}
	if p.bar.Value != acmeProgress[progress.ACMEValidating] || !p.bar.Visible() {
		t.Errorf("progress bar %v (shown %v), want %v", p.bar.Value, p.bar.Visible(), acmeProgress[progress.ACMEValidating])
	}
	if p.rows[3].message.Visible() {
		t.Errorf("the upstream step shows %q before the certificate", p.rows[3].message.Text)
	}
	if p.failure.Visible() {
		t.Error("failure shown while starting")
	}
	assertScreen(t, w, "progress")

	p.failed(fmt.Errorf("certificate: %w", &acme.Error{Kind: acme.Connection,
		Summary: "Let's Encrypt could not connect to this machine on port 443.",
		Fix:     "forward port 443 on your router to this machine, then retry."}))
	if !p.failure.Visible() || p.summary.Text != "No certificate: Let's Encrypt could not connect to this machine on port 443." ||
		p.fix.Text != "What to do: forward port 443 on your router to this machine, then retry." {
		t.Errorf("ACME failure shown as %q / %q", p.summary.Text, p.fix.Text)
	}
	test.Tap(p.retry)
	test.Tap(p.back)
	if !retried || !backed {
		t.Errorf("Retry called %v, Back called %v", retried, backed)
	}
}

func TestExplainValidationErrors(t *testing.T) {
	err := config.Config{Hostname: "sso.example.com", Upstream: "authentik.lan", TLS: config.TLSSelfSigned, StateDir: t.TempDir()}.Validate()
	summary, fix := explain(err)
	if !strings.Contains(summary, "• 2. Upstream: ") || !strings.Contains(summary, "has no scheme") || !strings.Contains(fix, "go back to the setup") {
		t.Errorf("explain(validation) = %q / %q", summary, fix)
	}
}

// TestProgressRowsSayWhatHappened: a finished row does not keep saying
// what it was doing, and certificates are named as the wizard names them.
func TestProgressRowsSayWhatHappened(t *testing.T) {
	test.NewTempApp(t)
	holdUI(t)
	p := newProgressScreen(func() {}, func() {})
	p.begin("local")
	p.event(progress.Event{Stage: progress.Listen, Message: "Opening ports"})
	p.event(progress.Event{Stage: progress.Certificate, Message: "Preparing the " + string(config.TLSSelfSigned) + " certificate for gatehouse.localhost"})
	if p.rows[0].message.Visible() {
		t.Errorf("the ports' row, done, still says %q", p.rows[0].message.Text)
	}
	if got := p.rows[2].message.Text; got != "Preparing the local certificate for gatehouse.localhost" {
		t.Errorf("certificate row says %q", got)
	}
	p.begin(certName(config.Config{TLS: config.TLSACME}))
	p.event(progress.Event{Stage: progress.Certificate, Message: "Preparing the " + string(config.TLSACME) + " certificate for sso.example.com"})
	p.event(progress.Event{Stage: progress.Upstream, Message: "Checking the upstream at http://127.0.0.1:9000/"})
	p.event(progress.Event{Stage: progress.Upstream, Message: "The upstream answered in 1ms"})
	p.event(progress.Event{Stage: progress.Ready, Message: "Serving"})
	if got := p.rows[2].message.Text; got != "Preparing the Let's Encrypt certificate for sso.example.com" {
		t.Errorf("ACME certificate row says %q", got)
	}
	if !p.rows[3].message.Visible() {
		t.Error("the upstream's result was hidden")
	}
}
