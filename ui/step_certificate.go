package ui

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
)

// Choices of the certificate step, in the order shown.
var certChoices = []struct{ key, label string }{
	{certLocal, "Local certificate authority (works at once, on your own devices)"},
	{certLetsEncrypt, "Let's Encrypt (free, trusted everywhere; needs a public name)"},
	{certACME, "Another ACME certificate authority"},
	{certFiles, "Certificate files I already have"},
}

// portCheckDelay lets an address be typed before its port is tried.
const portCheckDelay = 400 * time.Millisecond

// certificateStep chooses where the certificate comes from, and the ports.
type certificateStep struct {
	w      *wizard
	choice *widget.RadioGroup
	forms  map[string]fyne.CanvasObject
	name   *fyne.Container // the hostname check again, as it depends on the choice

	email      *widget.Entry
	emailErr   *fieldError
	staging    *widget.Check
	acmeURL    *widget.Entry
	acmeURLErr *fieldError
	eabKID     *widget.Entry
	eabKIDErr  *fieldError
	eabHMAC    *widget.Entry
	eabHMACErr *fieldError
	caRoots    *widget.Entry
	caRootsErr *fieldError
	certFile   *widget.Entry
	keyFile    *widget.Entry
	certErr    *fieldError
	localNote  *widget.Label
	trustCA    *trustPanel // with the local CA: trust it on this computer

	httpAddr      *widget.Entry
	httpAddrErr   *fieldError
	httpsAddr     *widget.Entry
	httpsAddrErr  *fieldError
	publicPort    *widget.Entry
	publicPortErr *fieldError
	portChecks    *fyne.Container
	portResults   []preflight.Result // shown in portChecks
	nameResult    []preflight.Result // the failed hostname check shown in name, if any
	ports         laterCheck[[]preflight.Result]

	proxies     *widget.Entry
	proxiesErr  *fieldError
	statusAddr  *widget.Entry
	statusErr   *fieldError
	portTextErr *widget.Label // the public port is not a number at all

	advanced    *widget.Button  // opens and closes advancedBox
	advancedBox *fyne.Container // the settings few need, at the end of the step

	root fyne.CanvasObject
}

func newCertificateStep(w *wizard) *certificateStep {
	s := &certificateStep{w: w,
		emailErr: newFieldError(config.FieldACMEEmail), acmeURLErr: newFieldError(config.FieldACMEDirectory),
		eabKIDErr: newFieldError(config.FieldACMEEABKeyID), eabHMACErr: newFieldError(config.FieldACMEEABHMAC),
		caRootsErr: newFieldError(config.FieldACMECARoots), certErr: newFieldError(config.FieldCertFile),
		httpAddrErr: newFieldError(config.FieldHTTPAddr), httpsAddrErr: newFieldError(config.FieldHTTPSAddr),
		publicPortErr: newFieldError(config.FieldPublicHTTPSPort), proxiesErr: newFieldError(config.FieldTrustedProxies),
		statusErr: newFieldError(config.FieldStatusAddr),
	}
	c := &w.d.Config
	s.ports = laterCheck[[]preflight.Result]{delay: portCheckDelay, show: s.showPorts}
	s.name = container.NewVBox()

	s.email = s.entry(c.ACMEEmail, "you@example.com", func(v string) { c.ACMEEmail = v })
	s.staging = widget.NewCheck("Try Let's Encrypt's staging service first (recommended: mistakes there do not count against the real service's limits)", nil)
	s.staging.SetChecked(w.d.StagingFirst)
	s.staging.OnChanged = func(on bool) {
		w.d.StagingFirst = on
		w.changed()
	}
	s.acmeURL = s.entry(w.d.ACMEURL, "https://ca.example.com/acme/directory", func(v string) { w.d.ACMEURL = v })
	s.eabKID = s.entry(c.ACMEEABKeyID, "optional", func(v string) { c.ACMEEABKeyID = v })
	s.eabHMAC = s.entry(c.ACMEEABHMAC, "optional", func(v string) { c.ACMEEABHMAC = v })
	s.caRoots = s.entry(c.ACMECARoots, "optional: PEM file of the CA's roots", func(v string) { c.ACMECARoots = v })
	s.certFile = s.entry(c.CertFile, "/etc/ssl/sso.example.com/fullchain.pem", func(v string) { c.CertFile = v })
	s.keyFile = s.entry(c.KeyFile, "/etc/ssl/sso.example.com/privkey.pem", func(v string) { c.KeyFile = v })
	s.localNote = note("")
	s.trustCA = newTrustPanel(w.win, w.trust)

	s.forms = map[string]fyne.CanvasObject{
		certLocal: container.NewVBox(s.localNote, s.trustCA.root),
		certLetsEncrypt: container.NewVBox(
			labelled("Email for expiry notices (optional)", s.email, s.emailErr),
			s.staging,
			note("Let's Encrypt checks from the internet that the name points here: ports 80 or 443 must reach this machine."),
		),
		certACME: container.NewVBox(
			labelled("ACME directory URL", s.acmeURL, s.acmeURLErr),
			labelled("External Account Binding key ID (if your CA asks for one)", s.eabKID, s.eabKIDErr),
			labelled("External Account Binding HMAC key", s.eabHMAC, s.eabHMACErr),
			labelled("CA roots for the ACME server", s.withBrowse(s.caRoots), s.caRootsErr),
		),
		certFiles: container.NewVBox(
			labelled("Certificate chain (PEM)", s.withBrowse(s.certFile)),
			labelled("Private key (PEM)", s.withBrowse(s.keyFile), s.certErr),
		),
	}
	labels := make([]string, len(certChoices))
	for i, ch := range certChoices {
		labels[i] = ch.label
	}
	s.choice = widget.NewRadioGroup(labels, s.onChoice)
	s.choice.Required = true
	for _, ch := range certChoices {
		if ch.key == w.d.Certificate {
			s.choice.SetSelected(ch.label)
		}
	}
	formStack := container.NewStack()
	for _, ch := range certChoices {
		formStack.Add(s.forms[ch.key])
	}

	s.httpAddr = s.entry(c.HTTPAddr, config.DefaultHTTPAddr, func(v string) { c.HTTPAddr = v; s.checkPorts() })
	s.httpsAddr = s.entry(c.HTTPSAddr, config.DefaultHTTPSAddr, func(v string) { c.HTTPSAddr = v; s.checkPorts() })
	s.portTextErr = widget.NewLabel("")
	s.portTextErr.Importance = widget.DangerImportance
	s.portTextErr.Hide()
	port := ""
	if c.PublicHTTPSPort != 0 {
		port = strconv.Itoa(c.PublicHTTPSPort)
	}
	s.publicPort = s.entry(port, "same as the HTTPS port", s.onPublicPort)
	s.portChecks = container.NewVBox()
	s.proxies = s.entry(strings.Join(c.TrustedProxies, ", "), "none: every visitor's forwarding headers are replaced", func(v string) {
		c.TrustedProxies = splitList(v)
	})
	s.statusAddr = s.entry(c.StatusAddr, config.DefaultStatusAddr, func(v string) { c.StatusAddr = v; s.checkPorts() })

	s.advancedBox = container.NewVBox(
		labelled("Trusted proxies in front of Gatehouse (CIDRs, comma-separated)", s.proxies, s.proxiesErr),
		labelled("Status endpoint (JSON and Prometheus metrics, or off)", s.statusAddr, s.statusErr),
	)
	s.advancedBox.Hide()
	s.advanced = widget.NewButtonWithIcon("Advanced", theme.MenuDropDownIcon(), s.toggleAdvanced)
	s.advanced.Alignment = widget.ButtonAlignLeading
	s.advanced.Importance = widget.LowImportance
	advanced := container.NewVBox(s.advanced, s.advancedBox)
	s.root = container.NewVBox(
		heading("Certificate"),
		s.choice, s.name, formStack,
		widget.NewSeparator(),
		heading("Ports"),
		container.NewGridWithColumns(3,
			labelled("HTTP listen address", s.httpAddr, s.httpAddrErr),
			labelled("HTTPS listen address", s.httpsAddr, s.httpsAddrErr),
			labelled("Public HTTPS port", s.publicPort, s.publicPortErr, s.portTextErr),
		),
		note("Visitors reach the public HTTPS port; if your router forwards 443 to this machine's 8443, enter 8443 above and 443 here."),
		s.portChecks,
		advanced,
	)
	s.showChoice()
	return s
}

// entry is a text field prefilled with value that calls set and
// revalidates on each edit.
func (s *certificateStep) entry(value, placeholder string, set func(string)) *widget.Entry {
	e := widget.NewEntry()
	e.SetPlaceHolder(placeholder)
	e.SetText(value)
	e.OnChanged = func(v string) {
		set(v)
		s.w.changed()
	}
	return e
}

// withBrowse puts a file picker button beside a path field.
func (s *certificateStep) withBrowse(e *widget.Entry) fyne.CanvasObject {
	browse := widget.NewButtonWithIcon("Browse…", theme.FolderOpenIcon(), func() {
		dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
			if err != nil || r == nil {
				return
			}
			r.Close()
			e.SetText(r.URI().Path())
		}, s.w.win)
	})
	return container.NewBorder(nil, nil, nil, browse, e)
}

func (s *certificateStep) title() string              { return "Certificate" }
func (s *certificateStep) content() fyne.CanvasObject { return s.root }

func (s *certificateStep) shown() {
	s.showChoice()
	s.checkPorts()
}

func (s *certificateStep) left() { s.ports.cancel() }

func (s *certificateStep) showErrors(errs config.ValidationErrors) bool {
	// Only the chosen source's fields count: the others are left out of
	// the config (draft.config), so they cannot have errors anyway.
	found := anyShown(errs, s.emailErr, s.acmeURLErr, s.eabKIDErr, s.eabHMACErr, s.caRootsErr, s.certErr,
		s.httpAddrErr, s.httpsAddrErr, s.publicPortErr, s.proxiesErr, s.statusErr)
	return found || s.portTextErr.Visible()
}

func (s *certificateStep) blockers() []string {
	return failures(append(append([]preflight.Result{}, s.nameResult...), s.portResults...)...)
}

func (s *certificateStep) onChoice(label string) {
	for _, ch := range certChoices {
		if ch.label == label && s.w.d.Certificate != ch.key {
			s.w.d.Certificate = ch.key
			s.showChoice()
			s.w.changed()
		}
	}
}

// toggleAdvanced opens the advanced settings and scrolls them into view
// (they open at the end of the step, below the fold), or closes them.
func (s *certificateStep) toggleAdvanced() {
	if s.advancedBox.Visible() {
		s.advancedBox.Hide()
		s.advanced.SetIcon(theme.MenuDropDownIcon())
		return
	}
	s.advancedBox.Show()
	s.advanced.SetIcon(theme.MenuDropUpIcon())
	s.w.scrollToBottom()
}

func (s *certificateStep) onPublicPort(v string) {
	v = strings.TrimSpace(v)
	n, err := strconv.Atoi(v)
	switch {
	case v == "":
		s.w.d.Config.PublicHTTPSPort = 0
		s.portTextErr.Hide()
	case err != nil:
		s.portTextErr.SetText(strconv.Quote(v) + " is not a number; enter a port such as 443, or leave it empty")
		s.portTextErr.Show()
	default:
		s.w.d.Config.PublicHTTPSPort = n
		s.portTextErr.Hide()
	}
}

// showChoice shows the form of the chosen certificate source.
func (s *certificateStep) showChoice() {
	for key, form := range s.forms {
		if key == s.w.d.Certificate {
			form.Show()
		} else {
			form.Hide()
		}
	}
	cfg := s.w.d.config()
	caFile := filepath.Join(cfg.WithDefaults().StateDir, certs.LocalCACertFile)
	s.localNote.SetText("Gatehouse creates its own certificate authority and issues the certificate at once. " +
		"Browsers warn until this computer trusts the authority: Trust on this computer adds it to the system and to Chrome's and Firefox's lists.")
	s.trustCA.show(caFile)
	// A private name such as gatehouse.localhost is fine with a local CA but
	// no public CA issues for it: say so here, where the choice is made.
	s.name.RemoveAll()
	s.nameResult = nil
	if config.ValidateHostname(cfg.Hostname) == nil {
		if r := s.w.checker.CheckHostname(cfg); r.Status == preflight.Fail {
			s.name.Add(checkRow(r))
			s.nameResult = []preflight.Result{r}
		}
	}
}

// checkPorts tries the listen addresses once they stop changing.
// While editing the setup of a running proxy, the addresses it serves on
// are its own, not taken: only changed ones are tried.
func (s *certificateStep) checkPorts() {
	cfg := s.w.d.config()
	checker := s.w.checker
	serving := s.w.serving
	s.ports.run(func() []preflight.Result {
		ctx, cancel := context.WithTimeout(context.Background(), preflight.DefaultTimeout)
		defer cancel()
		results := checker.CheckPorts(ctx, cfg)
		if serving == nil {
			return results
		}
		now := map[config.Field][2]string{
			config.FieldHTTPAddr:   {serving.HTTPAddr, cfg.HTTPAddr},
			config.FieldHTTPSAddr:  {serving.HTTPSAddr, cfg.HTTPSAddr},
			config.FieldStatusAddr: {serving.WithDefaults().StatusAddr, cfg.WithDefaults().StatusAddr},
		}
		for i, r := range results {
			if a, ok := now[r.Field]; ok && a[0] == a[1] && r.Status == preflight.Fail {
				results[i].Status, results[i].Fix = preflight.Pass, ""
				results[i].Finding = a[1] + " is where Gatehouse serves now"
			}
		}
		return results
	})
}

func (s *certificateStep) showPorts(results []preflight.Result) {
	s.portResults = results
	s.portChecks.Objects = checkList(results)
	s.portChecks.Refresh()
	s.w.revalidate()
}

// splitList splits a comma- or space-separated list, dropping empty items.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
}
