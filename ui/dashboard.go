package ui

import (
	"net/url"
	"path/filepath"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/trust"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// chartSpan is how far back the dashboard's chart reaches: the engine's
// whole history.
const chartSpan = 10 * time.Minute

// dashboardActions are what the dashboard asks of the app shell, which owns
// the engine.
type dashboardActions struct {
	onStop      func() // stop the proxy, or pause the service (the dashboard stays, showing "stopped")
	onStart     func() // start it again with the saved config, or resume the service
	onEditSetup func() // open the wizard, prefilled, to apply changes live
	onQuit      func() // stop the proxy and quit the app (the tray's Quit)
	// onTrustUpstream pins the upstream's new certificate in the saved
	// setup and starts the proxy again with it; nil offers no review.
	onTrustUpstream func(fingerprint string)
	// onEditSite opens the editor of the site hostname of cfg, the setup
	// served, or of a new site for "".
	onEditSite func(cfg config.Config, hostname string)
	// onApply serves cfg live (a site added, changed or removed) and
	// calls done with the outcome on the Fyne goroutine; nil offers no
	// site editing.
	onApply func(cfg config.Config, done func(error))
}

// siteFilterWidth fits a site's full name in the connection filter.
const siteFilterWidth = 280

// keptEvents is how many events the dashboard keeps across restarts.
const keptEvents = 200

// dashboard is the live view of a running proxy: its state and address,
// counters, upstream and certificate health, a chart of the last minutes,
// the open connections and recent events. It also keeps the system tray's
// menu and sends the desktop notifications.
type dashboard struct {
	app     fyne.App
	win     fyne.Window
	actions dashboardActions
	tray    *tray // nil where the desktop has none
	now     func() time.Time

	watch   *watch             // follows the proxy; nil when not following
	running bool               // following a proxy that serves (or starts to)
	last    proxyengine.Status // the latest snapshot shown
	seen    bool               // last holds a snapshot: later ones are compared to it for notifications

	// Earlier runs' chart and events, shown before the running engine's
	// own (each engine starts its history afresh), as DASHBOARD.md says.
	pastHistory []proxyengine.HistoryPoint
	pastEvents  []proxyengine.Event

	cfg        *config.Config // the running setup; nil when not following
	diagnosing time.Time      // the upstream outage the connection test runs (or ran) for
	diagnosis  *diagnosis     // what it found
	reviewCert *widget.Button // upstream card: review a new pinned certificate
	caFile     string         // the local CA's certificate, when the setup uses one
	trustStore *trust.Store   // trusts it on this computer
	trustCA    *widget.Button // certificate card: Trust on this computer…

	stateIcon *widget.Icon
	state     *widget.Label
	where     *widget.Label // which proxy the dashboard watches
	link      *widget.Hyperlink
	problem   *widget.Label
	stop      *widget.Button
	start     *widget.Button
	edit      *widget.Button

	connections, websockets, rate, errorRate *statCard
	upstream, certificate                    *statCard

	sitesTab      *container.TabItem
	sitesGrid     *fyne.Container
	sitesNote     *widget.Label
	siteCards     map[string]*siteCard // by hostname
	addSite       *widget.Button
	siteFilter    *widget.Select  // which site's connections the table lists
	siteFilterRow *fyne.Container // it at its width, above the table; hidden with one site
	connSite      string          // the site chosen there; "" for every site

	chart     *lineChart
	connTable *widget.Table
	connRows  []proxyengine.ConnectionInfo
	connTab   *container.TabItem
	eventList *widget.List
	eventRows []proxyengine.Event
	activity  *container.AppTabs
	root      fyne.CanvasObject
}

// newDashboard builds the dashboard; withTray puts its menu in the system
// tray too, where the desktop has one.
func newDashboard(a fyne.App, w fyne.Window, actions dashboardActions, withTray bool) *dashboard {
	d := &dashboard{app: a, win: w, actions: actions, now: time.Now, trustStore: &trust.Store{}}
	d.stateIcon = widget.NewIcon(theme.MediaStopIcon())
	d.state = widget.NewLabelWithStyle("Stopped", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	d.where = widget.NewLabel("")
	d.where.Importance = widget.LowImportance
	d.where.Hidden = true
	d.link = widget.NewHyperlink("", nil)
	d.link.OnTapped = d.openPublicURL
	d.link.Hidden = true
	d.problem = widget.NewLabel("")
	d.problem.Wrapping = fyne.TextWrapWord
	d.problem.Importance = widget.DangerImportance
	d.problem.Hidden = true
	d.stop = widget.NewButtonWithIcon("Stop", theme.MediaStopIcon(), d.tapStop)
	d.start = widget.NewButtonWithIcon("Start", theme.MediaPlayIcon(), d.tapStart)
	d.start.Importance = widget.HighImportance
	d.edit = widget.NewButtonWithIcon("Edit setup", theme.SettingsIcon(), d.actions.onEditSetup)

	d.connections = newStatCard("Active connections")
	d.websockets = newStatCard("Active WebSockets")
	d.rate = newStatCard("Requests per second")
	d.errorRate = newStatCard("Error rate (5xx, last minute)")
	d.upstream = newStatCard("Upstream")
	d.certificate = newStatCard("Certificate")
	for _, c := range []*statCard{d.connections, d.websockets, d.rate, d.errorRate, d.upstream, d.certificate} {
		c.win = w
	}
	d.reviewCert = d.newReviewButton()
	d.trustCA = widget.NewButtonWithIcon("Trust on this computer…", theme.ConfirmIcon(), d.onTrustCA)

	d.chart = newLineChart(chartSpan)
	d.connTable = d.newConnectionTable()
	d.eventList = d.newEventList()
	d.siteFilter = d.newSiteFilter()
	d.siteFilterRow = container.NewGridWrap(fyne.NewSize(siteFilterWidth, d.siteFilter.MinSize().Height), d.siteFilter)
	d.siteFilterRow.Hide()
	d.connTab = container.NewTabItemWithIcon("Connections", theme.ComputerIcon(),
		container.NewBorder(container.NewHBox(d.siteFilterRow), nil, nil, nil, d.connTable))
	d.sitesTab = container.NewTabItemWithIcon("Sites", theme.GridIcon(), d.newSitesTab())
	d.activity = container.NewAppTabs(
		d.connTab,
		d.sitesTab,
		container.NewTabItemWithIcon("Recent events", theme.ListIcon(), d.eventList),
	)

	header := container.NewBorder(nil, container.NewVBox(d.where, d.problem),
		container.NewHBox(d.stateIcon, d.state, d.link), container.NewHBox(d.stop, d.start, d.edit))
	counters := container.NewGridWithColumns(4, d.connections, d.websockets, d.rate, d.errorRate)
	health := container.NewGridWithColumns(2, d.upstream, d.certificate)
	charts := container.NewVSplit(d.chart, d.activity)
	charts.Offset = 0.38
	d.root = container.NewBorder(container.NewVBox(header, counters, health), nil, nil, nil, charts)

	if withTray {
		d.tray = newTray(a, w, d.tapStart, d.tapStop, actions.onQuit)
	}
	d.render(proxyengine.Status{State: proxyengine.StateStopped})
	return d
}

// content is the dashboard screen, for the window.
func (d *dashboard) content() fyne.CanvasObject { return d.root }

// follow shows b's live status until stopped is called; called on the
// Fyne goroutine after each successful start, and on attaching to the
// service.
func (d *dashboard) follow(b backend) {
	if d.watch != nil {
		d.watch.stop()
	}
	d.running = true
	d.problem.Hidden = true
	d.where.SetText(b.describe())
	d.where.Show()
	d.cfg, d.caFile = nil, ""
	d.diagnosis, d.diagnosing = nil, time.Time{}
	// Until the first snapshot arrives nothing is known: no button acts on
	// what the window showed before, and no notification compares with it.
	d.seen = false
	d.state.SetText("Connecting…")
	d.state.Importance = widget.WarningImportance
	d.state.Refresh()
	d.stop.Disable()
	d.start.Disable()
	d.watch = watchBackend(b, d.setup, d.show, d.lost)
}

// setup takes the configuration the watched proxy serves: the upstream
// diagnosis tests it, and a local CA's certificate can be trusted.
func (d *dashboard) setup(cfg config.Config) {
	d.cfg = &cfg
	d.caFile = ""
	if cfg.TLS == config.TLSSelfSigned {
		d.caFile = filepath.Join(cfg.WithDefaults().StateDir, certs.LocalCACertFile)
	}
	d.renderSites(d.last.Sites, d.now()) // how each signs visitors in, what can be done
}

// lost shows why the watched proxy cannot be followed any more (the
// service went away).
func (d *dashboard) lost(err error) { d.stopped(err) }

// starting shows the proxy starting, with Start and Stop disabled, from
// the moment a start begins (the app's launch included), so no stopped
// frame with Start enabled appears before it runs.
func (d *dashboard) starting() {
	d.state.SetText("Starting…")
	d.state.Importance = widget.WarningImportance
	d.stateIcon.SetResource(theme.MediaPlayIcon())
	d.state.Refresh()
	d.problem.Hide()
	d.stop.Disable()
	d.start.Disable()
}

// withPast puts the earlier runs' chart and events before st's.
func (d *dashboard) withPast(st proxyengine.Status) proxyengine.Status {
	if len(d.pastHistory) > 0 {
		cut := d.now().Add(-chartSpan)
		var h []proxyengine.HistoryPoint
		for _, p := range d.pastHistory {
			if p.Time.After(cut) {
				h = append(h, p)
			}
		}
		st.History = append(h, st.History...)
	}
	if len(d.pastEvents) > 0 {
		st.Events = append(append([]proxyengine.Event{}, st.Events...), d.pastEvents...) // newest first
		if len(st.Events) > keptEvents {
			st.Events = st.Events[:keptEvents]
		}
	}
	return st
}

// unfollow stops following the engine without showing anything: the
// window is going away.
func (d *dashboard) unfollow() {
	if d.watch != nil {
		d.watch.stop()
		d.watch = nil
	}
}

// showProblem shows err in plain words under the header: a call to the
// proxy that failed.
func (d *dashboard) showProblem(err error) {
	d.problem.SetText(plainError(err))
	d.problem.Show()
}

// stopped shows the proxy as stopped (err == nil) or failed (err != nil,
// shown in plain words).
func (d *dashboard) stopped(err error) {
	d.unfollow()
	d.running = false
	d.cfg, d.diagnosis = nil, nil
	d.pastHistory, d.pastEvents = d.last.History, d.last.Events
	if err != nil {
		d.problem.SetText(plainError(err))
		d.problem.Show()
	} else {
		d.problem.Hide()
	}
	// Keep what is history (chart, events, certificate); clear what was live.
	// Nobody checks the upstream while stopped: its last result would mislead.
	st := d.last
	st.State = proxyengine.StateStopped
	st.Upstream = upstream.Health{URL: st.Upstream.URL}
	st.ActiveConnections, st.ActiveWebSockets = 0, 0
	st.RequestsPerSecond, st.RequestsLastMinute = 0, 0
	st.Connections, st.WebSockets = nil, nil
	d.last = st
	d.render(st)
	if err != nil {
		d.state.SetText("Failed")
		d.state.Importance = widget.DangerImportance
		d.stateIcon.SetResource(theme.ErrorIcon())
		d.state.Refresh()
	}
}

// show takes one snapshot from the engine: it sends the notifications the
// change since the previous one calls for, then displays it.
func (d *dashboard) show(st proxyengine.Status) {
	if d.watch == nil {
		return // a snapshot that was on its way when stopped was called
	}
	st = d.withPast(st)
	d.running = st.State != proxyengine.StateStopped && st.State != proxyengine.StatePaused
	if d.seen {
		for _, n := range notificationsBetween(d.last, st) {
			d.app.SendNotification(n)
		}
	}
	d.last, d.seen = st, true
	d.render(st)
}

// render displays a snapshot. It is pure display: tests feed it made-up
// snapshots.
func (d *dashboard) render(st proxyengine.Status) {
	now := d.now()
	d.renderHeader(st)
	d.renderCounters(st)
	d.renderSiteTitles(st.Sites)
	d.renderUpstream(st, now)
	d.renderCertificate(st.Certificate, now)
	d.renderChart(st.History)
	d.renderConnections(st)
	d.renderSites(st.Sites, now)
	d.renderEvents(st.Events)
}

func (d *dashboard) renderHeader(st proxyengine.Status) {
	running := d.running && st.State != proxyengine.StateStopped && st.State != proxyengine.StatePaused
	switch {
	case running && st.State == proxyengine.StateStarting:
		d.state.SetText("Starting…")
		d.state.Importance = widget.WarningImportance
		d.stateIcon.SetResource(theme.MediaPlayIcon())
	case running && len(unreachableSites(st)) > 0:
		d.state.SetText("Running, " + unreachableText(st))
		d.state.Importance = widget.WarningImportance
		d.stateIcon.SetResource(theme.NewWarningThemedResource(theme.WarningIcon()))
	case running:
		d.state.SetText("Running")
		d.state.Importance = widget.SuccessImportance
		d.stateIcon.SetResource(theme.NewSuccessThemedResource(theme.MediaPlayIcon()))
	default:
		d.state.SetText("Stopped")
		d.state.Importance = widget.MediumImportance
		d.stateIcon.SetResource(theme.MediaStopIcon())
	}
	d.state.Refresh()

	if u, err := url.Parse(st.PublicURL); err == nil && st.PublicURL != "" {
		d.link.SetText(st.PublicURL)
		d.link.SetURL(u)
		d.link.Show()
	}
	setEnabled(d.stop, running)
	setEnabled(d.start, !d.running)
	d.tray.setRunning(running)
}

func (d *dashboard) renderChart(history []proxyengine.HistoryPoint) {
	times := make([]time.Time, len(history))
	requests := make([]float64, len(history))
	conns := make([]float64, len(history))
	for i, p := range history {
		times[i] = p.Time
		requests[i] = float64(p.Requests)
		conns[i] = float64(p.ActiveConnections)
	}
	d.chart.setData(times,
		chartSeries{name: "Requests/s", unit: "req/s", units: "req/s", color: theme.ColorNamePrimary, values: requests},
		chartSeries{name: "Active connections", unit: "connection", units: "connections", color: theme.ColorNameWarning, values: conns},
	)
}

// openPublicURL opens the proxy's address in the browser, through the app
// the dashboard was given.
func (d *dashboard) openPublicURL() {
	if d.link.URL == nil {
		return
	}
	if err := d.app.OpenURL(d.link.URL); err != nil {
		fyne.LogError("opening "+d.link.URL.String(), err)
	}
}

// tapStop asks the shell to stop the proxy; the dashboard shows it stopped
// when the shell calls stopped.
func (d *dashboard) tapStop() {
	if !d.running {
		return
	}
	d.stop.Disable()
	d.actions.onStop()
}

// tapStart asks the shell to start the proxy again; it calls follow once it
// runs, or stopped with the reason it could not.
func (d *dashboard) tapStart() {
	if d.running {
		return
	}
	d.start.Disable()
	d.actions.onStart()
}

// onTrustCA offers to trust the local CA on this computer, and says how to
// trust it elsewhere.
func (d *dashboard) onTrustCA() {
	p := newTrustPanel(d.win, d.trustStore)
	p.show(d.caFile)
	content := container.NewVBox(
		note("Browsers warn about Gatehouse's certificate until they trust the authority that issued it. "+
			"Trust on this computer adds it to the system's trusted certificates and to Chrome's and Firefox's own lists."),
		p.root)
	dlg := dialog.NewCustom("Trust Gatehouse's certificate authority", "Close", container.NewVScroll(content), d.win)
	dlg.Resize(fyne.NewSize(720, 460))
	dlg.Show()
}

func setEnabled(b *widget.Button, enabled bool) {
	if enabled {
		b.Enable()
	} else {
		b.Disable()
	}
}
