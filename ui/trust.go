package ui

import (
	"context"
	"os"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/trust"
)

// trustTimeout bounds one Trust or Untrust, password dialog included.
const trustTimeout = 5 * time.Minute

// trustPanel is "Trust on this computer" for the local CA, with what it
// did, and how to trust the CA on phones and other computers: its file
// and fingerprint. The wizard's certificate step and the dashboard show
// one each.
type trustPanel struct {
	win      fyne.Window
	store    *trust.Store
	certFile string
	cert     []byte // its PEM as shown: what Trust installs, whatever the file holds by then

	button *widget.Button
	busy   bool          // a Trust is running: show must not enable the button
	result *widget.Label // what the last Trust did, place by place
	others *widget.Label // phones and other computers
	root   *fyne.Container
}

func newTrustPanel(win fyne.Window, store *trust.Store) *trustPanel {
	p := &trustPanel{win: win, store: store}
	p.button = widget.NewButtonWithIcon("Trust on this computer", theme.ConfirmIcon(), p.onTrust)
	p.result = note("")
	p.result.Hide()
	p.others = note("")
	p.others.TextStyle.Italic = true
	p.root = container.NewVBox(container.NewHBox(p.button), p.result, p.others)
	return p
}

// show points the panel at the CA's certificate file, which exists once
// Gatehouse has started with the local CA.
func (p *trustPanel) show(certFile string) {
	p.certFile, p.cert = certFile, nil
	data, err := os.ReadFile(certFile)
	fp := ""
	if err == nil {
		fp, err = trust.Fingerprint(data)
	}
	if err != nil {
		p.button.Disable()
		p.others.SetText("Gatehouse creates its authority (" + displayPath(certFile) + ") when it first starts: " +
			"trust it then from the dashboard's certificate card, or with the command \u201cgatehouse trust\u201d.")
		return
	}
	p.cert = data
	if !p.busy {
		p.button.Enable()
	}
	p.others.SetText("On phones and other computers, import " + displayPath(certFile) +
		" (copy it over by cable, a file share or a message to yourself) and before trusting it, check that its SHA-256 fingerprint reads " + fp + ".")
}

func (p *trustPanel) onTrust() {
	if p.store.NeedsPassword() {
		dialog.ShowConfirm("Trust the local certificate authority",
			"Your system will ask for your password to add Gatehouse's authority to its trusted certificates "+
				"(curl and most programs read these). The browsers' own lists are changed without a password.",
			func(ok bool) {
				if ok {
					p.run()
				}
			}, p.win)
		return
	}
	p.run()
}

func (p *trustPanel) run() {
	p.busy = true
	p.button.Disable()
	p.result.SetText("Trusting…")
	p.result.Importance = widget.MediumImportance
	p.result.Show()
	store, cert := p.store, p.cert
	inBackground(func() []trust.Result {
		ctx, cancel := context.WithTimeout(context.Background(), trustTimeout)
		defer cancel()
		return store.Trust(ctx, cert)
	}, p.showResults)
}

func (p *trustPanel) showResults(results []trust.Result) {
	p.busy = false
	p.button.Enable()
	p.result.Importance = widget.SuccessImportance
	for _, r := range results {
		if r.Outcome == trust.Failed {
			p.result.Importance = widget.WarningImportance
		}
	}
	p.result.SetText(trust.Summary(results))
	p.result.Show()
}
