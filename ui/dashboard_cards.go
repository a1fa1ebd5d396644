package ui

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// certWarnDays is when an expiry date turns from fine to worrying: ACME
// renews a month ahead, so fewer days left means renewal is failing.
const certWarnDays = 14

// statCard is one tile of the dashboard: a caption, a big value, lines of
// detail and, when something is wrong, an alert in the danger colour.
type statCard struct {
	widget.BaseWidget
	title   *widget.Label
	value   *widget.Label
	detail  *widget.Label // one line per fact
	alert   *tappableLabel
	actions *fyne.Container // buttons for what to do, hidden when none

	fullAlert string // the alert's whole text, shown on tap when cut short
	win       fyne.Window
}

// alertRunes is as much of an alert as a card shows (about two lines at
// the designed width), so a long error does not grow the card and squeeze
// the connection table; a tap shows the rest.
const alertRunes = 150

// tappableLabel is a label that calls onTap when tapped.
type tappableLabel struct {
	widget.Label
	onTap func()
}

func newTappableLabel() *tappableLabel {
	l := &tappableLabel{}
	l.ExtendBaseWidget(l)
	return l
}

func (l *tappableLabel) Tapped(*fyne.PointEvent) {
	if l.onTap != nil {
		l.onTap()
	}
}

func newStatCard(title string) *statCard {
	c := &statCard{
		title:   &widget.Label{Text: title, SizeName: theme.SizeNameCaptionText, TextStyle: fyne.TextStyle{Bold: true}, Truncation: fyne.TextTruncateEllipsis},
		value:   &widget.Label{Text: "–", SizeName: theme.SizeNameSubHeadingText, TextStyle: fyne.TextStyle{Bold: true}, Truncation: fyne.TextTruncateEllipsis},
		detail:  &widget.Label{SizeName: theme.SizeNameCaptionText, Truncation: fyne.TextTruncateEllipsis},
		alert:   newTappableLabel(),
		actions: container.NewHBox(),
	}
	c.alert.SizeName, c.alert.Wrapping, c.alert.Importance = theme.SizeNameCaptionText, fyne.TextWrapWord, widget.DangerImportance
	c.alert.onTap = c.showFullAlert
	c.alert.Hide()
	c.actions.Hide()
	c.ExtendBaseWidget(c)
	return c
}

func (c *statCard) CreateRenderer() fyne.WidgetRenderer {
	th := c.Theme()
	v := fyne.CurrentApp().Settings().ThemeVariant()
	bg := canvas.NewRectangle(th.Color(theme.ColorNameInputBackground, v))
	bg.CornerRadius = th.Size(theme.SizeNameInputRadius)
	// Tight rows: the tiles are many, the window is not tall.
	rows := container.New(&tightRows{}, c.title, c.value, c.detail, c.alert, c.actions)
	return widget.NewSimpleRenderer(container.NewStack(bg, container.NewPadded(rows)))
}

// set shows a value, coloured by importance, with its details (one per
// line; empty ones are left out) and an alert (hidden when empty).
func (c *statCard) set(value string, importance widget.Importance, alert string, details ...string) {
	setLabel(c.value, value, importance)
	var lines []string
	for _, l := range details {
		if l != "" {
			lines = append(lines, l)
		}
	}
	setLabel(c.detail, strings.Join(lines, "\n"), c.detail.Importance)
	c.fullAlert = alert
	if r := []rune(alert); len(r) > alertRunes {
		alert = strings.TrimSpace(string(r[:alertRunes])) + "… (tap for all)"
	}
	if hide := alert == ""; hide != c.alert.Hidden || alert != c.alert.Text {
		c.alert.Text, c.alert.Hidden = alert, hide
		c.alert.Refresh()
	}
}

// setLabel shows text in l, coloured by importance, refreshing l only when
// either changed: the dashboard sets every label each second, and shaping
// text again is most of what a refresh costs.
func setLabel(l *widget.Label, text string, importance widget.Importance) {
	if l.Text == text && l.Importance == importance {
		return
	}
	l.Text, l.Importance = text, importance
	l.Refresh()
}

// setActions shows buttons under the card's facts (none hides the row).
func (c *statCard) setActions(buttons ...fyne.CanvasObject) {
	if slices.Equal(buttons, c.actions.Objects) {
		return // as each second: the card is not laid out again
	}
	c.actions.Objects = buttons
	c.actions.Hidden = len(buttons) == 0
	c.actions.Refresh()
	c.Refresh()
}

// showFullAlert shows an alert that was cut short, whole.
func (c *statCard) showFullAlert() {
	if c.win == nil || c.fullAlert == c.alert.Text {
		return
	}
	text := note(c.fullAlert)
	d := dialog.NewCustom(c.title.Text, "Close", container.NewVScroll(text), c.win)
	d.Resize(fyne.NewSize(600, 320))
	d.Show()
}

// tightRows stacks visible objects at their minimum height with no space
// between them, each as wide as the container.
type tightRows struct{}

func (*tightRows) MinSize(objects []fyne.CanvasObject) fyne.Size {
	var s fyne.Size
	for _, o := range objects {
		if o.Visible() {
			m := o.MinSize()
			s.Width = max(s.Width, m.Width)
			s.Height += m.Height
		}
	}
	return s
}

func (*tightRows) Layout(objects []fyne.CanvasObject, size fyne.Size) {
	var y float32
	for _, o := range objects {
		if o.Visible() {
			h := o.MinSize().Height
			o.Move(fyne.NewPos(0, y))
			o.Resize(fyne.NewSize(size.Width, h))
			y += h
		}
	}
}

func (d *dashboard) renderCounters(st proxyengine.Status) {
	refused := ""
	if st.ConnectionsRefused > 0 {
		// Someone held more connections than one visitor may: worth a
		// line of its own; the events say who.
		refused = pluralUint(st.ConnectionsRefused, "connection") + " refused"
	}
	d.connections.set(strconv.Itoa(st.ActiveConnections), widget.MediumImportance, "",
		pluralUint(st.RequestsTotal, "request")+" since start", refused)
	d.websockets.set(strconv.Itoa(st.ActiveWebSockets), widget.MediumImportance, "",
		"of "+plural(st.ActiveConnections, "connection"))
	d.rate.set(formatRate(st.RequestsPerSecond), widget.MediumImportance, "",
		formatRate(st.RequestsLastMinute)+" average over the last minute")
	errRate := st.ErrorRate()
	importance := widget.MediumImportance
	if errRate > 0 {
		importance = widget.DangerImportance
	}
	d.errorRate.set(formatPercent(errRate), importance, "",
		pluralUint(st.UpstreamErrors, "upstream error")+" since start")
}

func (d *dashboard) renderUpstream(st proxyengine.Status, now time.Time) {
	h := st.Upstream
	latency := "no requests in the last minute"
	if st.UpstreamLatency.Count > 0 {
		latency = "latency p50 " + formatLatency(st.UpstreamLatency.P50) +
			" · p95 " + formatLatency(st.UpstreamLatency.P95) +
			" · p99 " + formatLatency(st.UpstreamLatency.P99)
	}
	switch {
	case !h.Checked:
		d.upstream.set("Not checked", widget.MediumImportance, "", h.URL, latency)
	case h.Healthy:
		d.upstream.set("Healthy", widget.SuccessImportance, "",
			h.URL+" answered in "+formatLatency(h.Latency)+" at "+formatClock(h.CheckedAt, now),
			"healthy since "+formatClock(h.ChangedAt, now)+" ("+formatAge(now.Sub(h.ChangedAt))+")",
			latency)
	default:
		d.upstream.set("Down", widget.DangerImportance, d.upstreamProblem(h),
			h.URL+" checked at "+formatClock(h.CheckedAt, now),
			"down since "+formatClock(h.ChangedAt, now)+" ("+formatAge(now.Sub(h.ChangedAt))+")",
			latency)
	}
	d.upstream.setActions(d.upstreamActions(h)...)
}

func (d *dashboard) renderCertificate(c certs.Status, now time.Time) {
	if c.Source == config.TLSSelfSigned && d.caFile != "" {
		d.certificate.setActions(d.trustCA)
	} else {
		d.certificate.setActions()
	}
	if c.NotAfter.IsZero() {
		d.certificate.set("None yet", widget.MediumImportance, inAppWords(c.LastError), certSource(c.Source))
		return
	}
	days := daysUntil(c.NotAfter, now)
	value, importance := "Expires in "+plural(days, "day"), widget.SuccessImportance
	switch {
	case days < 0:
		value, importance = "Expired "+plural(-days, "day")+" ago", widget.DangerImportance
	case days < certWarnDays:
		importance = widget.WarningImportance
	}
	issuer := "issued by " + c.Issuer
	if c.Issuer == "" {
		issuer = "issuer unknown"
	}
	renewal := "valid until " + formatDate(c.NotAfter)
	if !c.NextRenewal.IsZero() {
		renewal += " · next renewal " + formatDate(c.NextRenewal)
	}
	d.certificate.set(value, importance, inAppWords(c.LastError), certSource(c.Source)+", "+issuer, renewal)
}

// certSource names where the certificate comes from, as the wizard offered it.
func certSource(source config.TLSSource) string {
	switch source {
	case config.TLSACME:
		return "ACME (automatic)"
	case config.TLSFiles:
		return "Certificate files"
	case config.TLSSelfSigned:
		return "Local certificate authority"
	}
	return string(source)
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

func formatUint(n uint64) string { return strconv.FormatUint(n, 10) }

func pluralUint(n uint64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return formatUint(n) + " " + unit + "s"
}
