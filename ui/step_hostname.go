package ui

import (
	"context"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
)

// dnsCheckDelay is how long the name must stay unchanged before the DNS
// check runs, so typing does not send a query per key.
const dnsCheckDelay = 600 * time.Millisecond

// hostnameStep asks for the public name, checks it as it is typed and shows
// what DNS says about it.
type hostnameStep struct {
	w       *wizard
	entry   *widget.Entry
	err     *fieldError
	checks  *fyne.Container // the hostname check, then the DNS check
	nameRow fyne.CanvasObject
	// name and dns are the results shown: dns is nil while it is looked up.
	name, dnsRes *preflight.Result
	dns          laterCheck[preflight.Result]
	root         fyne.CanvasObject
}

func newHostnameStep(w *wizard) *hostnameStep {
	s := &hostnameStep{w: w, err: newFieldError(config.FieldHostname)}
	s.dns = laterCheck[preflight.Result]{delay: dnsCheckDelay, show: s.showDNS}
	s.entry = widget.NewEntry()
	s.entry.SetPlaceHolder("sso.example.com")
	s.entry.SetText(w.d.Config.Hostname)
	s.entry.OnChanged = s.onHostnameChanged
	s.entry.OnSubmitted = func(string) { w.onNext() }
	s.checks = container.NewVBox()
	s.root = container.NewVBox(
		heading("Public hostname"),
		note("The name visitors type to reach your app, such as sso.example.com. For a real certificate "+
			"from Let's Encrypt it must be a public DNS name pointing at this machine (or your router). "+
			"To try Gatehouse on this computer only, keep "+defaultHostname+": browsers send every *.localhost name here."),
		labelled("Hostname", s.entry, s.err),
		s.checks,
	)
	return s
}

func (s *hostnameStep) title() string              { return "Hostname" }
func (s *hostnameStep) content() fyne.CanvasObject { return s.root }
func (s *hostnameStep) shown()                     { s.check() }
func (s *hostnameStep) left()                      { s.dns.cancel() }

func (s *hostnameStep) blockers() []string {
	var rs []preflight.Result
	for _, r := range []*preflight.Result{s.name, s.dnsRes} {
		if r != nil {
			rs = append(rs, *r)
		}
	}
	return failures(rs...)
}

func (s *hostnameStep) showErrors(errs config.ValidationErrors) bool {
	return s.err.show(errs)
}

func (s *hostnameStep) onHostnameChanged(name string) {
	s.w.d.Config.Hostname = name
	s.check()
	s.w.changed()
}

// check shows the hostname check (a private name is a warning with a
// local CA, a failure with ACME) at once, and the DNS check once the name
// has stayed still for a moment.
func (s *hostnameStep) check() {
	cfg := s.w.d.config()
	s.name, s.dnsRes = nil, nil
	if config.ValidateHostname(cfg.Hostname) != nil {
		s.dns.cancel()
		s.checks.RemoveAll()
		return // the field's own error says what is wrong
	}
	name := s.w.checker.CheckHostname(cfg)
	s.name = &name
	s.nameRow = checkRow(name)
	s.checks.Objects = []fyne.CanvasObject{s.nameRow, checkRow(preflight.Result{
		Title: "DNS", Status: preflight.Skip, Finding: "Looking up " + cfg.Hostname + "…",
	})}
	s.checks.Refresh()
	checker := s.w.checker
	s.dns.run(func() preflight.Result {
		ctx, cancel := context.WithTimeout(context.Background(), preflight.DefaultTimeout)
		defer cancel()
		return checker.CheckDNS(ctx, cfg)
	})
}

func (s *hostnameStep) showDNS(r preflight.Result) {
	s.dnsRes = &r
	s.checks.Objects = []fyne.CanvasObject{s.nameRow, checkRow(r)}
	s.checks.Refresh()
	s.w.revalidate()
}
