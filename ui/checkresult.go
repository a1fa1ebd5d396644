package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
)

// A fieldError is the engine's message about one field, shown under it in
// red and hidden while the field is fine.
type fieldError struct {
	*widget.Label
	field config.Field
}

func newFieldError(field config.Field) *fieldError {
	l := widget.NewLabel("")
	l.Importance = widget.DangerImportance
	l.Wrapping = fyne.TextWrapWord
	l.Hide()
	return &fieldError{Label: l, field: field}
}

// show displays errs' message for the field, and reports whether there was one.
func (f *fieldError) show(errs config.ValidationErrors) bool {
	fe := errs.For(f.field)
	if fe == nil {
		f.SetText("")
		f.Hide()
		return false
	}
	f.SetText(fe.Message)
	f.Show()
	return true
}

// statusIcon is the icon of a check's outcome.
func statusIcon(s preflight.Status) fyne.Resource {
	switch s {
	case preflight.Pass:
		return theme.NewSuccessThemedResource(theme.ConfirmIcon())
	case preflight.Warn:
		return theme.NewWarningThemedResource(theme.WarningIcon())
	case preflight.Fail:
		return theme.NewErrorThemedResource(theme.ErrorIcon())
	default:
		return theme.NewDisabledResource(theme.MediaSkipNextIcon())
	}
}

// checkRow shows one pre-flight result: its outcome, what was found, and
// the fix when there is one.
func checkRow(r preflight.Result) fyne.CanvasObject {
	title := widget.NewLabelWithStyle(r.Title, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	finding := widget.NewLabel(inAppWords(r.Finding))
	finding.Wrapping = fyne.TextWrapWord
	lines := container.NewVBox(title, finding)
	if r.Fix != "" {
		fix := widget.NewLabel("Fix: " + inAppWords(r.Fix))
		fix.Wrapping = fyne.TextWrapWord
		fix.Importance = widget.MediumImportance
		fix.TextStyle.Italic = true
		lines.Add(fix)
	}
	icon := widget.NewIcon(statusIcon(r.Status))
	return container.NewBorder(nil, nil, container.NewVBox(icon), nil, lines)
}

// checkList shows results one under another.
func checkList(results []preflight.Result) []fyne.CanvasObject {
	rows := make([]fyne.CanvasObject, len(results))
	for i, r := range results {
		rows[i] = checkRow(r)
	}
	return rows
}

// failures are the findings of the failed results, in the app's words: a
// step's blockers.
func failures(results ...preflight.Result) []string {
	var out []string
	for _, r := range results {
		if r.Status == preflight.Fail {
			out = append(out, r.Title+": "+inAppWords(r.Finding))
		}
	}
	return out
}
