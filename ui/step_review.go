package ui

import (
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/export"
	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
)

// reviewStep shows every choice in one place before Start, and exports the
// equivalent nginx or Caddy configuration.
type reviewStep struct {
	w        *wizard
	summary  *widget.Form
	problems *widget.Label
	exported *widget.Label
	intro    *widget.Label
	runAs    *widget.RadioGroup // how the proxy runs: as the service, or in this window
	runBox   fyne.CanvasObject
	root     fyne.CanvasObject
}

// The choice at the end of the wizard.
const (
	runAsServiceLabel = "Keep Gatehouse running as a service (recommended on a server)"
	runInWindowLabel  = "Run only while this window is open (to try it out)"
)

func newReviewStep(w *wizard) *reviewStep {
	s := &reviewStep{w: w, summary: widget.NewForm()}
	s.problems = note("")
	s.problems.Importance = widget.DangerImportance
	s.problems.Hide()
	s.exported = note("")
	s.exported.Hide()
	nginx := widget.NewButtonWithIcon("Export nginx config…", theme.DocumentSaveIcon(), func() {
		s.export("gatehouse-nginx.conf", export.Nginx)
	})
	caddy := widget.NewButtonWithIcon("Export Caddyfile…", theme.DocumentSaveIcon(), func() {
		s.export("Caddyfile", export.Caddyfile)
	})
	s.intro = note("")
	s.runAs = widget.NewRadioGroup([]string{runAsServiceLabel, runInWindowLabel}, func(label string) {
		choice := runAsService
		if label == runInWindowLabel {
			choice = runInWindow
		}
		if w.d.RunAs != choice {
			w.d.RunAs = choice
			w.changed()
		}
	})
	s.runAs.Required = true
	s.runBox = container.NewVBox(
		widget.NewLabelWithStyle("When you press Start", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		s.runAs,
		note("As a service, Gatehouse keeps serving when this window closes, when you log out and after a restart; "+
			"the system asks for your password to install it. This window then watches the service."),
	)
	s.root = container.NewVBox(
		heading("Review"),
		s.intro,
		s.summary, s.problems, s.runBox,
		widget.NewSeparator(),
		note("Moving to a bigger setup? Export the equivalent configuration for another server:"),
		container.NewHBox(nginx, caddy), s.exported,
	)
	return s
}

func (s *reviewStep) title() string              { return "Review" }
func (s *reviewStep) content() fyne.CanvasObject { return s.root }

// left has nothing to drop: the review runs nothing in the background.
func (s *reviewStep) left() {}

// blockers: the review checks nothing itself; it lists the other steps'.
func (s *reviewStep) blockers() []string { return nil }

func (s *reviewStep) shown() {
	d := s.w.d
	if s.w.serving != nil {
		s.intro.SetText("Apply serves this setup at once, without dropping anyone connected, and saves it. Cancel keeps the setup served now.")
		s.runBox.Hide()
	} else {
		s.intro.SetText("Start saves this setup and starts the proxy; the command \u201cgatehouse serve\u201d runs the same setup without a window.")
		s.runBox.Show()
		if d.RunAs == runInWindow {
			s.runAs.SetSelected(runInWindowLabel)
		} else {
			s.runAs.SetSelected(runAsServiceLabel)
		}
	}
	cfg := d.config().WithDefaults()
	s.summary.Items = nil
	add := func(label, value string) {
		v := widget.NewLabel(value)
		v.Wrapping = fyne.TextWrapWord
		s.summary.Append(label, v)
	}
	add("Public address", fmt.Sprintf("https://%s%s", cfg.Hostname, portSuffixFor(cfg.PublicHTTPSPort)))
	if d.Demo {
		add("Upstream", "the built-in demo app")
	} else {
		add("Upstream", cfg.Upstream+trustSummary(cfg))
	}
	add("Certificate", certSummary(d, cfg))
	httpAddr := cfg.HTTPAddr
	if httpAddr == config.Off {
		httpAddr = "off"
	}
	add("Listening on", "HTTPS "+cfg.HTTPSAddr+", HTTP "+httpAddr+" (redirects to HTTPS)")
	if len(cfg.TrustedProxies) > 0 {
		add("Trusted proxies", strings.Join(cfg.TrustedProxies, ", "))
	}
	add("Status endpoint", cfg.StatusAddr)
	add("State directory", displayPath(cfg.StateDir))
	add("Config file", displayPath(s.w.configPath))
	s.summary.Refresh()
	s.exported.Hide()
}

// showErrors lists every problem left anywhere, the fields' errors and
// the failed checks, by the step to go back to: Start needs a setup that
// works.
func (s *reviewStep) showErrors(errs config.ValidationErrors) bool {
	var lines []string
	for _, e := range errs {
		lines = append(lines, "• "+stepOfField(e.Field)+": "+inAppWords(e.Message))
	}
	for i, st := range s.w.steps {
		if st == wizardStep(s) {
			continue
		}
		for _, b := range st.blockers() {
			lines = append(lines, fmt.Sprintf("• %d. %s: %s", i+1, st.title(), b))
		}
	}
	if len(lines) == 0 {
		s.problems.Hide()
		return false
	}
	s.problems.SetText("Go back and correct:\n" + strings.Join(lines, "\n"))
	s.problems.Show()
	return true
}

// stepOfField names the wizard step that asks for a config key, as the
// step indicator shows it.
func stepOfField(field config.Field) string {
	if _, _, inSite := field.InSite(); inSite {
		return "Another site (the dashboard's Sites tab)"
	}
	return [...]string{"1. Hostname", "2. Upstream", "3. Certificate", "4. Review"}[stepIndexOfField(field)]
}

// stepIndexOfField is the index of the wizard step that asks for a
// config key: the review for another site's, which lists it.
func stepIndexOfField(field config.Field) int {
	if _, _, inSite := field.InSite(); inSite {
		return 3
	}
	switch field {
	case config.FieldHostname:
		return 0
	case config.FieldUpstream, config.FieldUpstreamCA, config.FieldUpstreamFingerprint, config.FieldUpstreamInsecure, config.FieldHealthPath:
		return 1
	}
	return 2
}

// export asks where to write the configuration another server needs.
func (s *reviewStep) export(name string, render func(config.Config) string) {
	save := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil || wc == nil {
			return
		}
		wc.Close()
		s.exportTo(wc.URI().Path(), render)
	}, s.w.win)
	save.SetFileName(name)
	save.Resize(fyne.NewSize(820, 560)) // the default is too cramped to read the folders
	save.Show()
}

// exportTo writes the rendered setup to path. The file may hold EAB
// credentials, so it is private.
func (s *reviewStep) exportTo(path string, render func(config.Config) string) {
	if err := privatefile.Write(path, []byte(render(s.w.d.config()))); err != nil {
		dialog.ShowError(fmt.Errorf("exporting to %s: %w", path, err), s.w.win)
		return
	}
	s.exported.SetText("Written to " + displayPath(path))
	s.exported.Show()
}

func trustSummary(cfg config.Config) string {
	switch {
	case cfg.UpstreamInsecure:
		return " (certificate NOT verified)"
	case cfg.UpstreamFingerprint != "":
		return " (certificate pinned: " + cfg.UpstreamFingerprint + ")"
	case cfg.UpstreamCA != "":
		return " (certificate checked against " + cfg.UpstreamCA + ")"
	}
	return ""
}

func certSummary(d *draft, cfg config.Config) string {
	switch d.Certificate {
	case certLetsEncrypt:
		s := "Let's Encrypt"
		if d.StagingFirst {
			s += ", staging first, then production"
		}
		if cfg.ACMEEmail != "" {
			s += " (" + cfg.ACMEEmail + ")"
		}
		return s
	case certACME:
		return "ACME from " + d.ACMEURL
	case certFiles:
		return cfg.CertFile + " and " + cfg.KeyFile
	default:
		return "local certificate authority (" + certs.LocalCACertFile + " in the state directory)"
	}
}

func portSuffixFor(port int) string {
	if port == 443 {
		return ""
	}
	return ":" + strconv.Itoa(port)
}
