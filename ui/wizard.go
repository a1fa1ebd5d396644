package ui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
	"github.com/gatehouse-proxy/gatehouse/internal/trust"
)

// A wizardStep is one screen of the setup wizard. Steps write what is typed
// straight into the wizard's draft and call wizard.changed.
type wizardStep interface {
	title() string
	content() fyne.CanvasObject
	// showErrors shows errs beside this step's fields and reports whether
	// any of them is this step's, which keeps Next disabled.
	showErrors(errs config.ValidationErrors) bool
	// shown runs each time the step appears, to refresh what depends on
	// other steps' choices.
	shown()
	// left runs when another step replaces this one or the wizard goes
	// away: it drops the checks still running or waiting in the
	// background, whose results nobody would see.
	left()
	// blockers are the findings of the failed checks this step shows now
	// (a red mark: Gatehouse would not work so). Like a field error, each
	// keeps Next disabled; warnings do not.
	blockers() []string
}

// wizard is the frame around the steps: a step indicator, the current
// step, and Back and Next (Start on the last step).
type wizard struct {
	win     fyne.Window
	checker *preflight.Checker
	trust   *trust.Store // trusts the local CA on this computer
	d       *draft
	// configPath is where Start saves the setup (shown on the review step).
	configPath string
	onChange   func(draft) error // the draft changed: save it
	onStart    func(d *draft)    // the user pressed Start (Apply) with a valid draft

	// serving, when the wizard edits the setup of a running proxy, is the
	// setup it serves: the last step applies the draft live (Apply) and
	// Cancel leaves it unchanged.
	serving  *config.Config
	onCancel func()
	cancel   *widget.Button

	steps     []wizardStep
	current   wizardStep // the step on screen; nil once the wizard is closed
	indicator []*widget.Label
	body      *fyne.Container
	scroll    *container.Scroll // around body: every step starts at its top
	back      *widget.Button
	next      *widget.Button
	notice    *widget.Label
	errs      config.ValidationErrors
	root      fyne.CanvasObject
}

func newWizard(win fyne.Window, checker *preflight.Checker, store *trust.Store, d *draft, configPath string, onChange func(draft) error, onStart func(*draft)) *wizard {
	w := &wizard{win: win, checker: checker, trust: store, d: d, configPath: configPath, onChange: onChange, onStart: onStart}
	w.steps = []wizardStep{newHostnameStep(w), newUpstreamStep(w), newCertificateStep(w), newReviewStep(w)}
	w.buildUI()
	if w.d.Step < 0 || w.d.Step >= len(w.steps) {
		w.d.Step = 0
	}
	w.show(w.d.Step)
	return w
}

func (w *wizard) buildUI() {
	marks := make([]fyne.CanvasObject, 0, 2*len(w.steps))
	for i, s := range w.steps {
		l := widget.NewLabel(fmt.Sprintf("%d. %s", i+1, s.title()))
		w.indicator = append(w.indicator, l)
		if i > 0 {
			marks = append(marks, widget.NewIcon(theme.NavigateNextIcon()))
		}
		marks = append(marks, l)
	}
	w.body = container.NewStack()
	w.back = widget.NewButtonWithIcon("Back", theme.NavigateBackIcon(), w.onBack)
	w.next = widget.NewButtonWithIcon("Next", theme.NavigateNextIcon(), w.onNext)
	w.next.IconPlacement = widget.ButtonIconTrailingText
	w.cancel = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), func() {
		if w.onCancel != nil {
			w.onCancel()
		}
	})
	w.cancel.Hide()
	w.notice = widget.NewLabel("")
	w.notice.Importance = widget.DangerImportance
	w.notice.Wrapping = fyne.TextWrapWord
	w.notice.Hide()
	header := container.NewVBox(container.NewCenter(container.NewHBox(marks...)), widget.NewSeparator())
	footer := container.NewVBox(widget.NewSeparator(), w.notice,
		container.NewBorder(nil, nil, container.NewHBox(w.back, w.cancel), w.next))
	w.scroll = container.NewVScroll(container.NewPadded(w.body))
	w.root = container.NewBorder(header, footer, nil, nil, w.scroll)
}

func (w *wizard) content() fyne.CanvasObject { return w.root }

// show makes step i current.
func (w *wizard) show(i int) {
	w.d.Step = i
	for j, l := range w.indicator {
		l.TextStyle.Bold = j == i
		l.Importance = widget.LowImportance
		if j == i {
			l.Importance = widget.HighImportance
		}
		l.Refresh()
	}
	step := w.steps[i]
	if w.current != nil && w.current != step {
		w.current.left()
	}
	w.current = step
	step.shown()
	w.body.Objects = []fyne.CanvasObject{step.content()}
	w.body.Refresh()
	w.scroll.ScrollToTop() // the steps share the scroll: a new one starts at its top
	if i == 0 {
		w.back.Disable()
	} else {
		w.back.Enable()
	}
	switch {
	case i == len(w.steps)-1 && w.serving != nil:
		w.next.Importance = widget.HighImportance
		w.next.SetText("Apply")
		w.next.SetIcon(theme.ConfirmIcon())
	case i == len(w.steps)-1:
		w.next.Importance = widget.HighImportance
		w.next.SetText("Start")
		w.next.SetIcon(theme.MediaPlayIcon())
	default:
		w.next.Importance = widget.MediumImportance
		w.next.SetText("Next")
		w.next.SetIcon(theme.NavigateNextIcon())
	}
	w.revalidate()
	w.showNotice(w.onChange(*w.d))
}

// edit turns the wizard into the editor of the setup served, which the
// draft was made from: Apply on the last step, and Cancel.
func (w *wizard) edit(serving config.Config, onCancel func()) {
	w.serving, w.onCancel = &serving, onCancel
	w.cancel.Show()
	w.show(w.d.Step)
}

// applying shows that Apply runs (on) or has answered.
func (w *wizard) applying(on bool) {
	if on {
		w.next.SetText("Applying…")
		w.next.Disable()
		w.cancel.Disable()
		return
	}
	w.cancel.Enable()
	w.show(w.d.Step)
}

// refused shows why the proxy refused the edited setup: each refused
// field's message beside it, on the step of the first, or the error in
// plain words. The proxy still serves the previous setup.
func (w *wizard) refused(err error) {
	errs := config.FieldErrors(err)
	if len(errs) == 0 {
		w.showNotice(errors.New("Not applied: " + plainError(err) + " Gatehouse still serves the previous setup."))
		return
	}
	w.show(stepIndexOfField(errs[0].Field))
	for _, s := range w.steps {
		s.showErrors(errs)
	}
	w.showNotice(errors.New("Not applied: correct the settings marked in red. Gatehouse still serves the previous setup."))
}

// close drops the current step's pending checks: call it when the wizard
// leaves the window. Showing a step again reopens it.
func (w *wizard) close() {
	if w.current != nil {
		w.current.left()
		w.current = nil
	}
}

// changed is called by the steps after each edit of the draft.
func (w *wizard) changed() {
	w.revalidate()
	w.showNotice(w.onChange(*w.d))
}

// revalidate shows the engine's errors beside the fields and enables Next
// only when the current step has none, neither a field error nor a failed
// check (Start only when no step has any).
func (w *wizard) revalidate() {
	w.errs = w.d.validate()
	blocked := false
	last := w.d.Step == len(w.steps)-1
	for i, s := range w.steps {
		if s.showErrors(w.errs) && i == w.d.Step {
			blocked = true
		}
		if (i == w.d.Step || last) && len(s.blockers()) > 0 {
			blocked = true
		}
	}
	if last && len(w.errs) > 0 {
		blocked = true
	}
	if blocked {
		w.next.Disable()
	} else {
		w.next.Enable()
	}
}

// showNotice shows a problem outside the steps, such as a draft that
// could not be saved (nil clears it).
func (w *wizard) showNotice(err error) {
	if err == nil {
		w.notice.Hide()
		return
	}
	w.notice.SetText(err.Error())
	w.notice.Show()
}

func (w *wizard) onBack() {
	if w.d.Step > 0 {
		w.show(w.d.Step - 1)
	}
}

func (w *wizard) onNext() {
	if w.next.Disabled() {
		return
	}
	if w.d.Step < len(w.steps)-1 {
		w.show(w.d.Step + 1)
		return
	}
	w.onStart(w.d)
}

// scrollToBottom shows the end of the current step, such as a section
// just opened there. The scroll's content is laid out at its new size
// first, so the offset reaches what was added.
func (w *wizard) scrollToBottom() { scrollToEnd(w.scroll) }

// scrollToEnd shows the end of what s scrolls, laid out at its new size
// first so that the offset reaches what was just added.
func scrollToEnd(s *container.Scroll) {
	c := s.Content
	c.Resize(c.MinSize().Max(s.Size()))
	s.ScrollToBottom()
}

// labelled puts a bold caption above a field and its error.
func labelled(caption string, field fyne.CanvasObject, more ...fyne.CanvasObject) fyne.CanvasObject {
	objs := append([]fyne.CanvasObject{widget.NewLabelWithStyle(caption, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), field}, more...)
	return container.NewVBox(objs...)
}

// note is a wrapping paragraph of explanation.
func note(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	return l
}

// heading is a step's title line.
func heading(text string) fyne.CanvasObject {
	return widget.NewRichTextFromMarkdown("## " + text)
}

// displayPath shortens a path in the home directory to ~/…, as people
// read and type it.
func displayPath(p string) string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" || home == "/" {
		return p
	}
	if rel, err := filepath.Rel(home, p); err == nil && filepath.IsLocal(rel) {
		return "~" + string(filepath.Separator) + rel
	}
	return p
}

// anyShown shows errs on each field error and reports whether one applied.
func anyShown(errs config.ValidationErrors, fields ...*fieldError) bool {
	found := false
	for _, f := range fields {
		if f.show(errs) {
			found = true
		}
	}
	return found
}
