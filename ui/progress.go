package ui

import (
	"errors"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/acme"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
)

// progressSteps are the rows of the progress screen; the engine's stages
// map onto them (the ACME stages all belong to the certificate).
var progressSteps = []struct {
	stage progress.Stage
	title string
}{
	{progress.Listen, "Opening the ports"},
	{progress.ACMERehearsal, "Rehearsing with Let's Encrypt staging"},
	{progress.Certificate, "Getting the certificate"},
	{progress.Upstream, "Checking the app"},
	{progress.Ready, "Serving visitors"},
}

// acmeProgress is how far along the progress bar each ACME stage is.
var acmeProgress = map[progress.Stage]float64{
	progress.Certificate:    0.05,
	progress.ACMEAccount:    0.2,
	progress.ACMEOrder:      0.4,
	progress.ACMEChallenge:  0.6,
	progress.ACMEValidating: 0.8,
	progress.ACMEIssued:     1,
}

// progressRow is one step: its state icon, title and latest message.
type progressRow struct {
	box     fyne.CanvasObject // the row, hidden while its step is not taken (the rehearsal)
	icon    *widget.Icon
	title   *widget.Label
	message *widget.Label
}

// progressScreen shows the engine starting, stage by stage, and explains a
// failure with Retry and Back.
type progressScreen struct {
	onRetry func()
	onBack  func()

	heading *widget.Label
	rows    []progressRow
	bar     *widget.ProgressBar
	failure *fyne.Container
	summary *widget.Label
	fix     *widget.Label
	retry   *widget.Button
	back    *widget.Button
	root    fyne.CanvasObject

	current   int    // index into rows of the stage in progress
	rehearsal bool   // the staging rehearsal is under way: ACME stages are its
	certName  string // "Let's Encrypt", "local", …: how the messages name the certificate
	// doing is, per row, whether its message still says what is being
	// done (the stage's first message) rather than how it ended.
	doing []bool
}

func newProgressScreen(onRetry, onBack func()) *progressScreen {
	p := &progressScreen{onRetry: onRetry, onBack: onBack}
	p.heading = widget.NewLabelWithStyle("Starting Gatehouse", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.heading.SizeName = theme.SizeNameSubHeadingText
	rows := container.NewVBox()
	for _, s := range progressSteps {
		r := progressRow{icon: widget.NewIcon(nil), title: widget.NewLabelWithStyle(s.title, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), message: note("")}
		r.box = container.NewBorder(nil, nil, container.NewVBox(r.icon), nil, container.NewVBox(r.title, r.message))
		p.rows = append(p.rows, r)
		rows.Add(r.box)
	}
	p.bar = widget.NewProgressBar()
	p.summary = note("")
	p.summary.Importance = widget.DangerImportance
	p.summary.TextStyle.Bold = true
	p.fix = note("")
	p.retry = widget.NewButtonWithIcon("Retry", theme.ViewRefreshIcon(), func() { p.onRetry() })
	p.retry.Importance = widget.HighImportance
	p.back = widget.NewButtonWithIcon("Back to the setup", theme.NavigateBackIcon(), func() { p.onBack() })
	p.failure = container.NewVBox(widget.NewSeparator(), p.summary, p.fix, container.NewHBox(p.back, p.retry))
	p.root = container.NewBorder(container.NewPadded(p.heading), nil, nil, nil,
		container.NewVScroll(container.NewPadded(container.NewVBox(rows, p.bar, p.failure))))
	return p
}

func (p *progressScreen) content() fyne.CanvasObject { return p.root }

// begin resets the screen for a start.
func (p *progressScreen) begin(certName string) {
	p.certName = certName
	p.current = 0
	p.rehearsal = false
	p.heading.SetText("Starting Gatehouse")
	p.resetRows(0)
	p.bar.SetValue(0)
	p.bar.Hide()
	p.failure.Hide()
}

// resetRows clears the rows from the from'th on; the rehearsal's shows
// only once the engine rehearses.
func (p *progressScreen) resetRows(from int) {
	if p.doing == nil || from == 0 {
		p.doing = make([]bool, len(p.rows))
	}
	for i, r := range p.rows[from:] {
		r.icon.SetResource(theme.NewDisabledResource(theme.RadioButtonIcon()))
		r.message.SetText("")
		r.message.Hide()
		p.doing[from+i] = false
		if progressSteps[from+i].stage == progress.ACMERehearsal && from == 0 {
			r.box.Hide()
		}
	}
}

// event shows one progress event of the engine starting.
func (p *progressScreen) event(ev progress.Event) {
	if ev.Stage == progress.ACMERehearsal {
		// Its first message starts the rehearsal, its second ends it.
		p.rehearsal = !p.rehearsal
	}
	row := p.rowFor(ev.Stage)
	if row < p.current {
		// The rehearsal comes after the certificate's first message:
		// what follows it starts over.
		p.resetRows(row + 1)
	}
	p.rows[row].box.Show()
	msg := p.words(ev.Message)
	for i, r := range p.rows {
		switch {
		case i < row:
			r.icon.SetResource(theme.NewSuccessThemedResource(theme.ConfirmIcon()))
			if p.doing[i] { // "Opening ports" under a done mark reads as still under way
				r.message.Hide()
				p.doing[i] = false
			}
		case i == row:
			r.icon.SetResource(theme.NewPrimaryThemedResource(theme.MoreHorizontalIcon()))
			p.doing[i] = !r.message.Visible() // its first message
			r.message.SetText(msg)
			r.message.Show()
		}
	}
	if ev.Stage == progress.Ready || (ev.Stage == progress.ACMERehearsal && !p.rehearsal) {
		p.rows[row].icon.SetResource(theme.NewSuccessThemedResource(theme.ConfirmIcon()))
		p.doing[row] = false
	}
	p.current = row
	if v, ok := acmeProgress[ev.Stage]; ok {
		p.bar.SetValue(v)
		if ev.Stage != progress.Certificate {
			p.bar.Show() // only ACME takes long enough to need it
		}
	}
}

// words names the certificate in an engine message as the wizard does:
// "the acme certificate" is the Let's Encrypt (or ACME) certificate, "the
// self-signed certificate" the local one.
func (p *progressScreen) words(msg string) string {
	name := p.certName
	if name == "" {
		name = "ACME"
	}
	msg = strings.ReplaceAll(msg, "the "+string(config.TLSACME)+" certificate", "the "+name+" certificate")
	return strings.ReplaceAll(msg, "the "+string(config.TLSSelfSigned)+" certificate", "the local certificate")
}

// certName is how the progress screen names cfg's certificate.
func certName(cfg config.Config) string {
	switch {
	case cfg.TLS == config.TLSSelfSigned:
		return "local"
	case cfg.TLS == config.TLSFiles:
		return "file"
	case strings.Contains(cfg.ACMEDirectoryURL(), "letsencrypt.org"):
		return "Let's Encrypt"
	}
	return "ACME"
}

func (p *progressScreen) rowFor(s progress.Stage) int {
	if _, ok := acmeProgress[s]; ok && s != progress.Certificate {
		if p.rehearsal {
			s = progress.ACMERehearsal
		} else {
			s = progress.Certificate
		}
	}
	for i, step := range progressSteps {
		if step.stage == s {
			return i
		}
	}
	return p.current
}

// failed marks the stage in progress as failed and explains err.
func (p *progressScreen) failed(err error) {
	p.heading.SetText("Gatehouse could not start")
	p.rows[p.current].icon.SetResource(theme.NewErrorThemedResource(theme.ErrorIcon()))
	summary, fix := explain(err)
	p.summary.SetText(summary)
	p.fix.SetText(fix)
	p.fix.Hidden = fix == ""
	p.failure.Show()
	p.failure.Refresh()
}

// explain words a start failure for the person at the screen: what went
// wrong, and what to do.
func explain(err error) (summary, fix string) {
	var acmeErr *acme.Error
	var listenErr *ports.ListenError
	switch {
	case errors.As(err, &acmeErr):
		return "No certificate: " + inAppWords(acmeErr.Summary), "What to do: " + inAppWords(acmeErr.Fix)
	case errors.As(err, &listenErr):
		return fmt.Sprintf("Cannot open the %s port %s: %s.", listenErr.Purpose, listenErr.Addr, listenErr.Reason()),
			"What to do: " + listenErr.Fix() + "."
	}
	if errs := config.FieldErrors(err); len(errs) > 0 {
		lines := make([]string, len(errs))
		for i, e := range errs {
			lines[i] = "• " + stepOfField(e.Field) + ": " + inAppWords(e.Message)
		}
		return "The setup has mistakes:\n" + strings.Join(lines, "\n"), "What to do: go back to the setup and correct them."
	}
	return capitalize(inAppWords(err.Error())), ""
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
