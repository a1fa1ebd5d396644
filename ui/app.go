package ui

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"

	"github.com/gatehouse-proxy/gatehouse/assets"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/control"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/internal/supervisor"
	"github.com/gatehouse-proxy/gatehouse/internal/trust"
)

const (
	// startTimeout bounds one start of the engine; an ACME CA gets most
	// of it (the engine gives up on a stuck validation before).
	startTimeout = 5 * time.Minute
	// stopTimeout bounds Shutdown: in-flight requests get that long.
	stopTimeout = 10 * time.Second
	// findTimeout bounds the look for a running service at launch.
	findTimeout = 2 * time.Second
)

// windowSize fits a 1280x800 screen with room for panels.
var windowSize = fyne.NewSize(960, 700)

// Options configure the desktop app. The zero value is the real thing.
type Options struct {
	// ConfigPath is the config file the wizard writes and the app starts
	// from. Default: config.DefaultPath(). The unfinished setup
	// is kept beside it, and so is the state directory unless set.
	ConfigPath string

	// Checker runs the pre-flight checks. Default: the zero Checker.
	Checker *preflight.Checker

	// ListenCandidates are the HTTP and HTTPS listen addresses the wizard
	// tries on first run: it prefills the first pair this user can bind.
	// Default: :80 and :443, then :8080 and :8443.
	ListenCandidates [][2]string

	// Logger receives the engine's logs. Default: slog.Default().
	Logger *slog.Logger

	// Trust installs the local CA on this computer (Trust on this
	// computer). Default: the real system, through pkexec when not root.
	Trust *trust.Store

	// ServiceSockets are the control sockets where the app looks for a
	// running Gatehouse service at launch, and attaches to the first that
	// answers rather than running a second proxy on the same ports.
	// Default: control.Candidates().
	ServiceSockets []string

	// RunPrivileged runs args as root, the system asking for a password
	// first, and returns what the command printed. The wizard's "Keep
	// Gatehouse running as a service" runs `<Executable> service install
	// --config <ConfigPath>` through it. An error wrapping exec.ErrNotFound
	// means it cannot elevate here: the wizard then shows the command to
	// type in a terminal. Default: pkexec.
	RunPrivileged func(ctx context.Context, args []string) (output string, err error)

	// Executable is the gatehouse program the service runs. Default:
	// os.Executable().
	Executable string

	// TrayAvailable reports whether a system tray will really show the
	// app's icon, so the window may hide to it. Default: on Linux and the
	// BSDs, whether the session has a D-Bus (DBUS_SESSION_BUS_ADDRESS or
	// /run/user/<uid>/bus), which the tray needs; elsewhere true.
	TrayAvailable func() bool

	// Instance, if set, is this user's one Gatehouse window (see
	// ClaimInstance): a second launch asks it to show its window.
	Instance *Instance
}

var defaultListenCandidates = [][2]string{{":80", ":443"}, {":8080", ":8443"}}

// App is Gatehouse's desktop app: one window showing the setup wizard, the
// start-up progress or the dashboard, and the proxy it runs. Its fields are
// used on the Fyne goroutine only.
type App struct {
	fyneApp   fyne.App
	win       fyne.Window
	opts      Options
	draftPath string

	wizard   *wizard
	sites    *siteEditor // the site being added or edited, or nil
	progress *progressScreen
	dash     *dashboard
	dashView fyne.CanvasObject // dash.content(), built once
	actions  dashboardActions  // what the dashboard's buttons and tray do

	sup      *supervisor.Supervisor // try-out: the proxy running in this window, or nil
	service  *control.Client        // the Gatehouse service the app watches, or nil
	install  *serviceInstall        // the service being installed, or nil
	stopWait func()                 // ends the watch on sup.Err
	retry    func()                 // starts again as last time
	starting bool                   // a start runs in the background
	toldTray bool                   // the user was told the window hid to the tray
	closed   bool                   // Close ran: whatever finishes in the background is dropped
}

// New builds the window: the wizard on first run, or the dashboard with the
// proxy starting when a setup was saved. Show it with Window().ShowAndRun().
func New(a fyne.App, opts Options) (*App, error) {
	if opts.ConfigPath == "" {
		p, err := config.DefaultPath()
		if err != nil {
			return nil, err
		}
		opts.ConfigPath = p
	}
	if opts.Checker == nil {
		opts.Checker = &preflight.Checker{}
	}
	if opts.ListenCandidates == nil {
		opts.ListenCandidates = defaultListenCandidates
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Trust == nil {
		opts.Trust = &trust.Store{}
	}
	if opts.ServiceSockets == nil {
		opts.ServiceSockets = control.Candidates()
	}
	if opts.RunPrivileged == nil {
		opts.RunPrivileged = runPkexec
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			exe = "gatehouse"
		}
		opts.Executable = exe
	}
	if opts.TrayAvailable == nil {
		opts.TrayAvailable = sessionBusAvailable
	}
	g := &App{fyneApp: a, opts: opts, draftPath: draftPath(opts.ConfigPath)}
	icon := fyne.NewStaticResource("gatehouse.png", assets.Icon)
	a.SetIcon(icon)
	g.win = a.NewWindow("Gatehouse")
	g.win.SetIcon(icon)
	g.win.Resize(windowSize)
	g.progress = newProgressScreen(func() { g.retry() }, g.onProgressBack)
	g.actions = dashboardActions{
		onStop:          g.onStop,
		onStart:         g.onStartSaved,
		onEditSetup:     g.onEditSetup,
		onQuit:          g.onQuit,
		onTrustUpstream: g.onTrustUpstream,
		onEditSite:      g.onEditSite,
		onApply:         g.applyLive,
	}
	g.dash = newDashboard(a, g.win, g.actions, opts.TrayAvailable())
	g.dash.trustStore = opts.Trust
	g.dashView = g.dash.content()
	g.win.SetCloseIntercept(g.onCloseWindow)
	if opts.Instance != nil {
		opts.Instance.onShow(g.showWindow)
	}

	c, err := g.findService()
	switch {
	case c != nil:
		g.attach(c)
		return g, nil
	case err != nil:
		// A service answers but not to this user (or not properly):
		// starting a second proxy here would fight it for the ports.
		g.win.SetContent(g.dashView)
		g.dash.stopped(fmt.Errorf("a Gatehouse service is running, but this window cannot watch it: %w", err))
		return g, nil
	}
	cfg, err := config.Load(opts.ConfigPath)
	switch {
	case err == nil:
		g.start(cfg)
	case errors.Is(err, fs.ErrNotExist):
		g.showWizard(nil)
	default:
		g.showWizard(fmt.Errorf("the saved setup could not be read, so the wizard starts again: %w", err))
	}
	return g, nil
}

// Window is the app's one window.
func (g *App) Window() fyne.Window { return g.win }

// Close stops the proxy running in this window, if one does, and waits for
// it, and drops the checks and updates still on their way to the window:
// call it on the Fyne goroutine once the app's run loop has ended. A start
// still under way is shut down as soon as it finishes. The service, if the
// app watched one, keeps serving.
func (g *App) Close() {
	g.closed = true
	if g.wizard != nil {
		g.wizard.close()
	}
	if g.sites != nil {
		g.sites.drop()
	}
	if g.install != nil {
		g.install.cancel()
	}
	g.dash.unfollow()
	if g.stopWait != nil {
		g.stopWait()
		g.stopWait = nil
	}
	if g.sup != nil {
		shutdown(g.sup)
		g.sup = nil
	}
	if g.opts.Instance != nil {
		g.opts.Instance.onShow(nil)
	}
}

// showWindow brings the window forward (another launch asked for it).
func (g *App) showWindow() {
	if g.closed {
		return
	}
	g.win.Show()
	g.win.RequestFocus()
}

// findService is the running service's client; nil and no error when
// none runs, nil and the reason when one answers but cannot be used (it
// refuses this user, say).
func (g *App) findService() (*control.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), findTimeout)
	defer cancel()
	c, err := control.Find(ctx, g.opts.ServiceSockets...)
	if errors.Is(err, control.ErrNoService) {
		return nil, nil
	}
	if err != nil {
		g.opts.Logger.Warn("a Gatehouse service is running, but it cannot be watched from here", "err", err)
	}
	return c, err
}

// attach shows the dashboard watching the service at c: the app runs no
// proxy of its own.
func (g *App) attach(c *control.Client) {
	g.service = c
	g.win.SetContent(g.dashView)
	g.dash.follow(serviceBackend{c})
}

// showWizard shows the wizard with the unfinished setup, else the saved
// one, else a fresh one; note, if set, says why it starts over.
func (g *App) showWizard(note error) {
	if g.wizard == nil {
		d := g.loadDraft()
		g.wizard = newWizard(g.win, g.opts.Checker, g.opts.Trust, &d, g.opts.ConfigPath, g.saveDraft, g.onWizardStart)
	}
	g.wizard.showNotice(note)
	g.win.SetContent(g.wizard.content())
}

func (g *App) loadDraft() draft {
	d, err := loadDraft(g.draftPath)
	if err == nil {
		return d
	}
	if !errors.Is(err, fs.ErrNotExist) {
		g.opts.Logger.Warn("the unfinished setup could not be read; starting from the saved one", "err", err)
	}
	if cfg, err := config.Load(g.opts.ConfigPath); err == nil {
		return draftFromConfig(cfg)
	}
	httpAddr, httpsAddr := g.bindableAddrs()
	return newDraft(filepath.Join(filepath.Dir(g.opts.ConfigPath), "state"), httpAddr, httpsAddr)
}

// bindableAddrs is the first candidate pair of listen addresses this user
// can bind now, or the last pair if none.
func (g *App) bindableAddrs() (httpAddr, httpsAddr string) {
	ctx, cancel := context.WithTimeout(context.Background(), preflight.DefaultTimeout)
	defer cancel()
	for _, c := range g.opts.ListenCandidates {
		httpAddr, httpsAddr = c[0], c[1]
		ok := true
		for _, r := range g.opts.Checker.CheckPorts(ctx, config.Config{HTTPAddr: httpAddr, HTTPSAddr: httpsAddr, StatusAddr: config.Off}) {
			if r.Status != preflight.Pass {
				ok = false
			}
		}
		if ok {
			break
		}
	}
	return httpAddr, httpsAddr
}

func (g *App) saveDraft(d draft) error { return saveDraft(g.draftPath, d) }

// onWizardStart saves the setup, forgets the draft, and starts the proxy
// as chosen: installed as the system service, or inside this window.
func (g *App) onWizardStart(d *draft) {
	cfg := d.config()
	if err := config.Save(g.opts.ConfigPath, cfg); err != nil {
		g.wizard.showNotice(err)
		return
	}
	if err := removeDraft(g.draftPath); err != nil {
		g.opts.Logger.Warn("could not remove the unfinished setup", "path", g.draftPath, "err", err)
	}
	if d.RunAs == runAsService {
		g.installService()
		return
	}
	g.start(cfg)
}

func (g *App) onProgressBack() {
	g.showWizard(nil)
}

// start shows the progress screen and starts the saved setup inside this
// window (try-out mode) in the background. The engine rehearses with Let's
// Encrypt's staging service first when the setup asks for it
// (ACMEStagingFirst), which the progress screen shows as a step.
func (g *App) start(cfg config.Config) {
	if g.starting {
		return // a double click on Start or Retry
	}
	g.starting = true
	g.retry = func() { g.start(cfg) }
	if g.wizard != nil {
		g.wizard.close()
	}
	g.dash.starting()
	g.progress.begin(certName(cfg))
	g.win.SetContent(g.progress.content())
	sup := supervisor.New(cfg, g.opts.ConfigPath, supervisor.Options{
		Logger: g.opts.Logger,
		Progress: progressTo(func(ev progress.Event) {
			if !g.closed && g.starting {
				g.progress.event(ev)
			}
		}),
	})
	inBackground(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		return sup.Start(ctx)
	}, func(err error) { g.started(sup, err) })
}

// shutdown stops sup for good.
func shutdown(sup *supervisor.Supervisor) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	return sup.Shutdown(ctx)
}

// started shows the dashboard following the proxy just started, or the
// failure.
func (g *App) started(sup *supervisor.Supervisor, err error) {
	g.starting = false
	if g.closed {
		if err == nil {
			go shutdown(sup) // nobody is left to show it to
		}
		return
	}
	if err != nil {
		g.progress.failed(err)
		g.dash.stopped(err) // Start is offered again (the tray's too)
		return
	}
	g.sup = sup
	g.win.SetContent(g.dashView)
	g.dash.follow(localBackend{sup})
	g.watchFailure(sup)
}

// watchFailure stops the proxy and tells the dashboard if a listener of
// sup fails while it runs.
func (g *App) watchFailure(sup *supervisor.Supervisor) {
	done := make(chan struct{})
	g.stopWait = func() { close(done) }
	inBackground(func() error {
		select {
		case err := <-sup.Err():
			return err
		case <-done:
			return nil
		}
	}, func(err error) {
		if err != nil && g.sup == sup {
			g.stop(func(error) { g.dash.stopped(err) })
		}
	})
}

// stop shuts the proxy running in this window down in the background,
// then calls then with the shutdown's error (nil when nothing ran).
func (g *App) stop(then func(error)) {
	sup := g.sup
	g.sup = nil
	if g.stopWait != nil {
		g.stopWait()
		g.stopWait = nil
	}
	if sup == nil {
		then(nil)
		return
	}
	inBackground(func() error { return shutdown(sup) }, then)
}

// backend is the proxy the dashboard watches: the service, or the one
// running in this window; nil when neither.
func (g *App) backend() backend {
	switch {
	case g.service != nil:
		return serviceBackend{g.service}
	case g.sup != nil:
		return localBackend{g.sup}
	}
	return nil
}

// control runs one call to the service in the background and shows its
// error on the dashboard.
func (g *App) control(call func(context.Context) error) {
	inBackground(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		return call(ctx)
	}, func(err error) {
		if err != nil && !g.closed {
			g.dash.showProblem(err)
			g.dash.render(g.dash.last)
		}
	})
}

// onStop stops the proxy: the service pauses (its process stays, and
// with it the dashboard's view); the one in this window shuts down.
func (g *App) onStop() {
	if g.service != nil {
		g.control(g.service.Pause)
		return
	}
	g.stop(func(err error) {
		if err != nil {
			g.opts.Logger.Warn("the proxy did not stop cleanly", "err", err)
		}
		g.dash.stopped(nil)
	})
}

// onStartSaved starts the saved setup again (the dashboard's and the
// tray's Start), or resumes the service. While the wizard or the progress
// screen shows, the tray's Start brings the window forward instead: the
// setup is not finished, or a start is already under way.
func (g *App) onStartSaved() {
	if g.win.Content() != g.dashView {
		g.win.Show()
		g.win.RequestFocus()
		return
	}
	if g.service != nil {
		if g.dash.watch == nil { // the service had gone: look again
			g.dash.follow(serviceBackend{g.service})
		}
		g.control(g.service.Resume)
		return
	}
	if g.sup != nil {
		return
	}
	cfg, err := config.Load(g.opts.ConfigPath)
	if err != nil {
		g.dash.stopped(err)
		return
	}
	g.start(cfg)
}

// onTrustUpstream pins the upstream's new certificate (the dashboard's
// review) and applies it live; with nothing running it is saved for the
// next start.
func (g *App) onTrustUpstream(fingerprint string) {
	pin := func(cfg *config.Config) {
		cfg.UpstreamFingerprint, cfg.UpstreamCA, cfg.UpstreamInsecure = fingerprint, "", false
	}
	if g.backend() != nil && g.dash.cfg != nil {
		cfg := *g.dash.cfg
		pin(&cfg)
		g.applyLive(cfg, func(err error) {
			if err != nil {
				g.dash.showProblem(err)
			}
		})
		return
	}
	cfg, err := config.Load(g.opts.ConfigPath)
	if err == nil {
		pin(&cfg)
		err = config.Save(g.opts.ConfigPath, cfg)
	}
	if err != nil {
		g.dash.showProblem(err)
	}
}

// onEditSetup opens the wizard prefilled with the setup served, with
// Apply and Cancel: the proxy keeps serving meanwhile, and Apply changes it
// live. With nothing running it is the wizard of the saved setup, with
// Start.
func (g *App) onEditSetup() {
	b := g.backend()
	if b == nil {
		g.wizard = nil // start from the saved setup (or the unfinished one)
		g.showWizard(nil)
		return
	}
	inBackground(func() configResult {
		ctx, cancel := context.WithTimeout(context.Background(), preflight.DefaultTimeout)
		defer cancel()
		cfg, err := b.Config(ctx)
		return configResult{cfg, err}
	}, func(r configResult) {
		if g.closed || g.win.Content() != g.dashView {
			return
		}
		if r.err != nil {
			g.dash.showProblem(r.err)
			return
		}
		d := draftFromConfig(r.cfg)
		g.wizard = newWizard(g.win, g.opts.Checker, g.opts.Trust, &d, g.opts.ConfigPath, func(draft) error { return nil }, g.onApplyEdit)
		g.wizard.edit(r.cfg, g.onCancelEdit)
		g.win.SetContent(g.wizard.content())
	})
}

type configResult struct {
	cfg config.Config
	err error
}

// onApplyEdit applies the edited setup to the running proxy: back to the
// dashboard when it serves it, or the refusal beside the refused fields
// (or in plain words) with the wizard still open.
func (g *App) onApplyEdit(d *draft) {
	w := g.wizard
	if g.backend() == nil {
		w.showNotice(errProxyGone)
		return
	}
	w.applying(true)
	g.applyLive(d.config(), func(err error) {
		if g.wizard != w {
			return
		}
		w.applying(false)
		if err != nil {
			w.refused(err)
			return
		}
		g.closeEditor()
	})
}

// errProxyGone is why an edit cannot be applied: nothing serves any more.
var errProxyGone = errors.New("the proxy stopped meanwhile: Cancel, then Start it again")

// applyLive has the proxy the dashboard watches serve cfg live, and save
// it; then done runs with the outcome on the Fyne goroutine (not once the
// app is closed), the dashboard following the new setup first.
func (g *App) applyLive(cfg config.Config, done func(error)) {
	b := g.backend()
	if b == nil {
		done(errProxyGone)
		return
	}
	inBackground(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		return b.Apply(ctx, cfg)
	}, func(err error) {
		if g.closed {
			return
		}
		if err == nil {
			g.dash.setup(cfg)
		}
		done(err)
	})
}

// onEditSite opens the editor of the site hostname of cfg, the setup
// served (a new site for ""), in place of the dashboard; the proxy keeps
// serving meanwhile.
func (g *App) onEditSite(cfg config.Config, hostname string) {
	if g.win.Content() != g.dashView {
		return
	}
	var ed *siteEditor
	ed = newSiteEditor(g.win, g.opts.Checker, cfg, hostname, func(next config.Config) {
		g.applyLive(next, func(err error) {
			if g.sites == ed {
				ed.applied(err)
			}
		})
	}, func() {
		if g.sites == ed {
			g.sites = nil
			g.win.SetContent(g.dashView)
		}
	})
	g.sites = ed
	g.win.SetContent(ed.content())
}

// onCancelEdit leaves the edited setup unapplied.
func (g *App) onCancelEdit() { g.closeEditor() }

func (g *App) closeEditor() {
	g.wizard.close()
	g.wizard = nil
	g.win.SetContent(g.dashView)
}

// onCloseWindow is the window's close button. Watching the service, the
// app just quits: the service keeps serving. A proxy running inside this
// window keeps serving with the window hidden only where a tray really
// shows the app's icon to bring it back (the first time the user is told
// where it went); otherwise closing stops it and quits, asking first when
// visitors are connected. Never an invisible process holding the ports.
func (g *App) onCloseWindow() {
	running := g.sup != nil || g.starting
	switch {
	case g.service != nil || !running:
		g.onQuit()
	case g.dash.tray != nil:
		g.win.Hide()
		if !g.toldTray {
			g.toldTray = true
			g.fyneApp.SendNotification(fyne.NewNotification("Gatehouse keeps running",
				"The proxy still serves visitors. Open Gatehouse, stop the proxy or quit from its icon in the system tray."))
		}
	case g.dash.last.ActiveConnections > 0:
		n := g.dash.last.ActiveConnections
		dialog.ShowConfirm("Stop Gatehouse?",
			fmt.Sprintf("%s connected; closing this window stops the proxy. Stop and quit?", plural(n, "visitor")+isAre(n)),
			func(ok bool) {
				if ok {
					g.onQuit()
				}
			}, g.win)
	default:
		g.onQuit()
	}
}

func isAre(n int) string {
	if n == 1 {
		return " is"
	}
	return " are"
}

// onQuit quits the app, stopping the proxy running in this window first.
// The service keeps serving.
func (g *App) onQuit() {
	g.stop(func(error) { g.fyneApp.Quit() })
}
