package ui

import (
	"net/url"
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

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// allSites is the connection filter's choice of every site's connections.
const allSites = "All sites"

// siteCard is one site on the dashboard's Sites tab: its name and address
// with what can be done with it, its app's health, whether visitors sign
// in with authentik first, and its traffic and certificate.
type siteCard struct {
	widget.BaseWidget
	link    *widget.Hyperlink
	buttons *fyne.Container
	health  *widget.Label
	signIn  *widget.Label
	traffic *widget.Label // and the certificate
	actions siteActions   // what buttons shows
}

func newSiteCard() *siteCard {
	c := &siteCard{link: widget.NewHyperlink("", nil), buttons: container.NewHBox()}
	c.link.TextStyle.Bold = true
	c.link.Truncation = fyne.TextTruncateEllipsis
	small := func() *widget.Label {
		return &widget.Label{SizeName: theme.SizeNameCaptionText, Truncation: fyne.TextTruncateEllipsis}
	}
	c.health, c.signIn, c.traffic = small(), small(), small()
	c.ExtendBaseWidget(c)
	return c
}

// CreateRenderer draws the card as the statCards are drawn, its rows
// tight: the tab shares the window with the chart.
func (c *siteCard) CreateRenderer() fyne.WidgetRenderer {
	th := c.Theme()
	bg := canvas.NewRectangle(th.Color(theme.ColorNameInputBackground, fyne.CurrentApp().Settings().ThemeVariant()))
	bg.CornerRadius = th.Size(theme.SizeNameInputRadius)
	rows := container.New(&tightRows{}, container.NewBorder(nil, nil, nil, c.buttons, c.link), c.health, c.signIn, c.traffic)
	return widget.NewSimpleRenderer(container.NewStack(bg, container.NewPadded(rows)))
}

// newSitesTab builds the Sites tab: a card per site, and Add site.
func (d *dashboard) newSitesTab() fyne.CanvasObject {
	d.siteCards = map[string]*siteCard{}
	d.sitesGrid = container.NewGridWithColumns(2)
	d.sitesNote = note("")
	d.addSite = widget.NewButtonWithIcon("Add site…", theme.ContentAddIcon(), d.tapAddSite)
	d.addSite.Importance = widget.HighImportance
	return container.NewBorder(container.NewBorder(nil, nil, nil, d.addSite, d.sitesNote), nil, nil, nil,
		container.NewVScroll(d.sitesGrid))
}

// newSiteFilter builds the connection table's choice of site.
func (d *dashboard) newSiteFilter() *widget.Select {
	s := widget.NewSelect([]string{allSites}, func(choice string) {
		site := choice
		if choice == allSites {
			site = ""
		}
		if site == d.connSite {
			return
		}
		d.connSite = site
		if d.watch != nil {
			d.watch.showSite(site) // its snapshot follows at once
		}
	})
	s.SetSelected(allSites)
	s.Hide()
	return s
}

// showSiteConnections lists the connections of site on the Connections tab.
func (d *dashboard) showSiteConnections(site string) {
	d.siteFilter.SetSelected(site)
	d.activity.Select(d.connTab)
}

// renderSites shows a card per site and offers the connection filter when
// there is more than one.
func (d *dashboard) renderSites(sites []proxyengine.SiteStatus, now time.Time) {
	names := make([]string, 0, len(sites)+1)
	names = append(names, allSites)
	objs := make([]fyne.CanvasObject, 0, len(sites))
	for i, s := range sites {
		names = append(names, s.Hostname)
		card := d.siteCards[s.Hostname]
		if card == nil {
			card = newSiteCard()
			d.siteCards[s.Hostname] = card
		}
		d.renderSiteCard(card, s, i == 0, now)
		objs = append(objs, card)
	}
	for name := range d.siteCards {
		if !slices.Contains(names, name) {
			delete(d.siteCards, name)
		}
	}
	if !slices.Equal(objs, d.sitesGrid.Objects) {
		d.sitesGrid.Objects = objs
		d.sitesGrid.Refresh()
	}
	if !slices.Equal(names, d.siteFilter.Options) {
		d.siteFilter.Options = names
		if d.connSite != "" && !slices.Contains(names, d.connSite) {
			d.siteFilter.SetSelected(allSites) // the site went away
		}
		d.siteFilter.Refresh()
	}
	// The filter and its row are shown and hidden together, and redrawn
	// only when that changes, not every second.
	if hide := len(sites) < 2 && d.connSite == ""; hide != d.siteFilterRow.Hidden {
		d.siteFilter.Hidden = hide
		d.siteFilterRow.Hidden = hide
		d.siteFilterRow.Refresh()
	}

	text := "Each site is a public name Gatehouse serves, with the app behind it."
	switch {
	case d.cfg == nil:
		text = "Sites can be added while Gatehouse runs."
	case len(sites) == 1:
		text += " Add site puts another app behind Gatehouse, with authentik's sign-in in front of it if you like."
	}
	setLabel(d.sitesNote, text, widget.MediumImportance)
	setEnabled(d.addSite, d.cfg != nil && d.actions.onApply != nil)
	if title := "Sites (" + strconv.Itoa(len(sites)) + ")"; title != d.sitesTab.Text {
		d.sitesTab.Text = title
		d.activity.Refresh()
	}
}

// unreachableSites are the hostnames of the sites whose app failed its
// last health check (the first site's from st.Upstream when the snapshot
// lists no sites).
func unreachableSites(st proxyengine.Status) []string {
	sites := st.Sites
	if len(sites) == 0 {
		sites = []proxyengine.SiteStatus{{Hostname: st.Hostname, Upstream: st.Upstream}}
	}
	var down []string
	for _, s := range sites {
		if s.Upstream.Checked && !s.Upstream.Healthy {
			down = append(down, s.Hostname)
		}
	}
	return down
}

// unreachableText says which apps are unreachable, for the header: "app
// unreachable" with one site, else which.
func unreachableText(st proxyengine.Status) string {
	down := unreachableSites(st)
	switch {
	case len(st.Sites) <= 1:
		return "app unreachable"
	case len(down) == 1:
		return "app of " + down[0] + " unreachable"
	}
	return strconv.Itoa(len(down)) + " apps unreachable"
}

// renderSiteTitles names the first site on the upstream and certificate
// cards, which are its own, once there are others.
func (d *dashboard) renderSiteTitles(sites []proxyengine.SiteStatus) {
	upstream, cert := "Upstream", "Certificate"
	if len(sites) > 1 {
		upstream, cert = "Upstream of "+sites[0].Hostname, "Certificate of "+sites[0].Hostname
	}
	setLabel(d.upstream.title, upstream, d.upstream.title.Importance)
	setLabel(d.certificate.title, cert, d.certificate.title.Importance)
}

// renderSiteCard shows one site's snapshot; first is the wizard's site,
// which Edit setup changes.
func (d *dashboard) renderSiteCard(c *siteCard, s proxyengine.SiteStatus, first bool, now time.Time) {
	if c.link.Text != s.Hostname {
		c.link.SetText(s.Hostname)
	}
	if u, err := url.Parse(s.PublicURL); err == nil && s.PublicURL != "" && (c.link.URL == nil || *c.link.URL != *u) {
		c.link.SetURL(u)
	}
	h := s.Upstream
	switch {
	case !h.Checked:
		setLabel(c.health, "App "+h.URL+": not checked yet", widget.MediumImportance)
	case h.Healthy:
		setLabel(c.health, "App "+h.URL+": healthy, answered in "+formatLatency(h.Latency), widget.SuccessImportance)
	default:
		setLabel(c.health, "App "+h.URL+": down since "+formatClock(h.ChangedAt, now), widget.DangerImportance)
	}
	setLabel(c.signIn, d.signInOf(s.Hostname), widget.MediumImportance)
	traffic := plural(s.ActiveConnections, "connection") + " · " + plural(s.ActiveWebSockets, "WebSocket") +
		" · " + pluralUint(s.RequestsTotal, "request") + " since start · "
	cert := s.Certificate
	switch days := daysUntil(cert.NotAfter, now); {
	case cert.NotAfter.IsZero() && cert.LastError != "":
		setLabel(c.traffic, traffic+"no certificate yet: "+inAppWords(cert.LastError), widget.DangerImportance)
	case cert.NotAfter.IsZero():
		setLabel(c.traffic, traffic+"no certificate yet", widget.MediumImportance)
	case days < certWarnDays:
		setLabel(c.traffic, traffic+"certificate expires in "+plural(days, "day"), widget.WarningImportance)
	default:
		setLabel(c.traffic, traffic+"certificate expires in "+plural(days, "day"), widget.MediumImportance)
	}

	actions := siteNoEdit
	switch {
	case first:
		actions = siteFirst
	case d.cfg != nil && d.actions.onApply != nil:
		actions = siteEditable
	}
	if actions != c.actions {
		c.actions = actions
		c.buttons.Objects = d.siteButtons(s.Hostname, actions)
		c.buttons.Refresh()
	}
}

// siteActions are the buttons a site card offers.
type siteActions int

const (
	siteNone     siteActions = iota // none yet: a new card
	siteNoEdit                      // Connections only (nothing is followed)
	siteFirst                       // and Edit setup: the wizard's site
	siteEditable                    // and Edit…, Remove…
)

// siteButtons are the card buttons of the site host for actions.
func (d *dashboard) siteButtons(host string, actions siteActions) []fyne.CanvasObject {
	button := func(text string, icon fyne.Resource, tapped func()) fyne.CanvasObject {
		b := widget.NewButtonWithIcon(text, icon, tapped)
		b.Importance = widget.LowImportance
		return b
	}
	buttons := []fyne.CanvasObject{button("Connections", theme.ComputerIcon(), func() { d.showSiteConnections(host) })}
	switch actions {
	case siteFirst:
		buttons = append(buttons, button("Edit setup", theme.SettingsIcon(), d.actions.onEditSetup))
	case siteEditable:
		buttons = append(buttons,
			button("Edit…", theme.DocumentCreateIcon(), func() { d.openSiteEditor(host) }),
			button("Remove…", theme.DeleteIcon(), func() { d.confirmRemoveSite(host) }))
	}
	return buttons
}

// signInOf says how visitors of the site hostname sign in.
func (d *dashboard) signInOf(hostname string) string {
	if d.cfg == nil {
		return ""
	}
	for _, s := range d.cfg.AllSites() {
		if s.Key() != config.SiteKey(hostname) {
			continue
		}
		switch fa := s.ForwardAuth; {
		case fa == nil:
			return "Sign-in: the app's own (every visitor reaches it)"
		case fa.Site != "":
			return "Sign-in: authentik at " + fa.Site + " first"
		default:
			return "Sign-in: authentik's outpost at " + fa.URL + " first"
		}
	}
	return ""
}

// tapAddSite opens the editor of a new site.
func (d *dashboard) tapAddSite() { d.openSiteEditor("") }

// openSiteEditor opens the editor of the listed site hostname, or of a
// new one for "", in place of the dashboard.
func (d *dashboard) openSiteEditor(hostname string) {
	if d.cfg == nil || d.actions.onApply == nil {
		return
	}
	d.actions.onEditSite(*d.cfg, hostname)
}

// confirmRemoveSite asks before the site hostname stops being served.
func (d *dashboard) confirmRemoveSite(hostname string) {
	if d.cfg == nil {
		return
	}
	cfg := *d.cfg
	cfg.Sites = slices.DeleteFunc(slices.Clone(cfg.Sites), func(s config.Site) bool { return s.Key() == config.SiteKey(hostname) })
	var users []string
	for _, s := range cfg.AllSites() {
		if s.ForwardAuth != nil && config.SiteKey(s.ForwardAuth.Site) == config.SiteKey(hostname) {
			users = append(users, s.Hostname)
		}
	}
	if len(users) > 0 {
		verb := "signs"
		if len(users) > 1 {
			verb = "sign"
		}
		dialog.ShowInformation("Remove "+hostname+"?",
			strings.Join(users, " and ")+" "+verb+" visitors in with authentik at "+hostname+
				", so it stays for now. Choose Edit… there to turn sign-in off or pick another authentik first.", d.win)
		return
	}
	dialog.ShowConfirm("Remove "+hostname+"?",
		"Gatehouse stops serving "+hostname+" at once: its visitors' next requests get an error (WebSockets already open "+
			"stay until they close). The app itself is not changed, and you can add the site again later.",
		func(ok bool) {
			if ok {
				d.actions.onApply(cfg, func(err error) {
					if err != nil {
						d.showProblem(err)
					}
				})
			}
		}, d.win)
}
