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

// TestProgressShowsStagingThenProduction feeds the screen the events of a
// Let's Encrypt start with staging first, as the engine reports them.
func TestProgressShowsStagingThenProduction(t *testing.T) {
	holdUI(t)
	a := test.NewTempApp(t)
	w := a.NewWindow("Gatehouse")
	var retried, backed bool
	p := newProgressScreen(func() { retried = true }, func() { backed = true })
	w.SetContent(p.content())
	p.begin([]startPhase{{title: "Let's Encrypt staging", acmeDirectory: "staging"}, {title: "Let's Encrypt production", acmeDirectory: "production"}}, "Let's Encrypt")

	events := []progress.Event{
		{Stage: progress.Listen, Message: "Opening ports"},
		{Stage: progress.Certificate, Message: "Preparing the acme certificate for sso.example.com"},
		{Stage: progress.ACMEAccount, Message: "Registering the ACME account"},
		{Stage: progress.ACMEOrder, Message: "Ordering a certificate for sso.example.com"},
		{Stage: progress.ACMEChallenge, Message: "Answering the tls-alpn-01 challenge"},
		{Stage: progress.ACMEValidating, Message: "Waiting for the CA to check the answer"},
		{Stage: progress.ACMEIssued, Message: "The CA issued the certificate"},
		{Stage: progress.Upstream, Message: "Checking the upstream"},
		{Stage: progress.Ready, Message: "Serving https://sso.example.com/"},
	}
	for _, ev := range events {
		p.event(0, ev)
	}
	if p.phase.Text != "Certificate 1 of 2: Let's Encrypt staging" || p.rows[3].message.Text != "Serving https://sso.example.com/" {
		t.Errorf("after staging: phase %q, last row %q", p.phase.Text, p.rows[3].message.Text)
	}
	for _, ev := range events[:6] { // production: up to validating
		p.event(1, ev)
	}
	if !strings.HasPrefix(p.phase.Text, "Certificate 2 of 2") {
		t.Errorf("phase = %q, want the second", p.phase.Text)
	}
	if p.bar.Value != acmeProgress[progress.ACMEValidating] || !p.bar.Visible() {
		t.Errorf("progress bar %v (shown %v), want %v", p.bar.Value, p.bar.Visible(), acmeProgress[progress.ACMEValidating])
	}
	if p.rows[2].message.Visible() || p.rows[1].message.Text != "Waiting for the CA to check the answer" {
		t.Errorf("rows after production validating: certificate %q, upstream shown %v", p.rows[1].message.Text, p.rows[2].message.Visible())
	}
	if !strings.Contains(p.log.Text, "[1/2] The CA issued the certificate") || !strings.Contains(p.log.Text, "[2/2] Waiting for the CA") {
		t.Errorf("log lacks a phase:\n%s", p.log.Text)
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
	p.begin([]startPhase{{}}, "local")
	p.event(0, progress.Event{Stage: progress.Listen, Message: "Opening ports"})
	p.event(0, progress.Event{Stage: progress.Certificate, Message: "Preparing the " + string(config.TLSSelfSigned) + " certificate for gatehouse.localhost"})
	if p.rows[0].message.Visible() {
		t.Errorf("the ports' row, done, still says %q", p.rows[0].message.Text)
	}
	if got := p.rows[1].message.Text; got != "Preparing the local certificate for gatehouse.localhost" {
		t.Errorf("certificate row says %q", got)
	}
	p.begin([]startPhase{{}}, certName(config.Config{TLS: config.TLSACME}))
	p.event(0, progress.Event{Stage: progress.Certificate, Message: "Preparing the " + string(config.TLSACME) + " certificate for sso.example.com"})
	p.event(0, progress.Event{Stage: progress.Upstream, Message: "Checking the upstream at http://127.0.0.1:9000/"})
	p.event(0, progress.Event{Stage: progress.Upstream, Message: "The upstream answered in 1ms"})
	p.event(0, progress.Event{Stage: progress.Ready, Message: "Serving"})
	if got := p.rows[1].message.Text; got != "Preparing the Let's Encrypt certificate for sso.example.com" {
		t.Errorf("ACME certificate row says %q", got)
	}
	if !p.rows[2].message.Visible() {
		t.Error("the upstream's result was hidden")
	}
}
