package ui

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"fyne.io/fyne/v2"

	"github.com/gatehouse-proxy/gatehouse/assets"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/internal/trust"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

const (
	// startTimeout bounds one start of the engine; an ACME CA gets most
	// of it (the engine gives up on a stuck validation before).
	startTimeout = 5 * time.Minute
	// stopTimeout bounds Shutdown: in-flight requests get that long.
	stopTimeout = 10 * time.Second
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
	progress *progressScreen
	dash     *dashboard
	dashView fyne.CanvasObject // dash.content(), built once
	actions  dashboardActions  // what the dashboard's buttons and tray do

	engine   *proxyengine.Engine // the running proxy, or nil
	stopWait func()              // ends the watch on engine.Err
	retry    func()              // starts again as last time
	starting bool                // a start runs in the background
	toldTray bool                // the user was told the window hid to the tray
	closed   bool                // Close ran: whatever finishes in the background is dropped
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
	}
	g.dash = newDashboard(a, g.win, g.actions)
	g.dash.trustStore = opts.Trust
	g.dashView = g.dash.content()
	if g.dash.tray != nil {
		g.win.SetCloseIntercept(g.onCloseWindow)
	}

	cfg, err := config.Load(opts.ConfigPath)
	switch {
	case err == nil:
		g.start(cfg, false)
	case errors.Is(err, fs.ErrNotExist):
		g.showWizard(nil)
	default:
		g.showWizard(fmt.Errorf("the saved setup could not be read, so the wizard starts again: %w", err))
	}
	return g, nil
}

// Window is the app's one window.
func (g *App) Window() fyne.Window { return g.win }

// Close stops the proxy, if it runs, and waits for it, and drops the checks
// and updates still on their way to the window: call it on the Fyne
// goroutine once the app's run loop has ended. A start still under way is
// shut down as soon as it finishes.
func (g *App) Close() {
	g.closed = true
	if g.wizard != nil {
		g.wizard.close()
	}
	g.dash.unfollow()
	if g.stopWait != nil {
		g.stopWait()
		g.stopWait = nil
	}
	if g.engine != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		g.engine.Shutdown(ctx)
		g.engine = nil
	}
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

// onWizardStart saves the setup, forgets the draft, and starts the proxy:
// through Let's Encrypt's staging service first if that was ticked.
func (g *App) onWizardStart(d *draft) {
	cfg := d.config()
	if err := config.Save(g.opts.ConfigPath, cfg); err != nil {
		g.wizard.showNotice(err)
		return
	}
	if err := removeDraft(g.draftPath); err != nil {
		g.opts.Logger.Warn("could not remove the unfinished setup", "path", g.draftPath, "err", err)
	}
	g.start(cfg, d.Certificate == certLetsEncrypt && d.StagingFirst && cfg.ACMEDirectory != "staging")
}

func (g *App) onProgressBack() {
	g.showWizard(nil)
}

// startResult is what starting in the background gives back.
type startResult struct {
	engine *proxyengine.Engine
	err    error
}

// start shows the progress screen and starts the engine in the
// background: once, or first with Let's Encrypt's staging directory and
// then with production, each a new engine as engines are one-shot.
func (g *App) start(cfg config.Config, stagingFirst bool) {
	if g.starting {
		return // a double click on Start or Retry
	}
	g.starting = true
	g.retry = func() { g.start(cfg, stagingFirst) }
	phases := []startPhase{{}}
	if stagingFirst {
		phases = []startPhase{
			{title: "Let's Encrypt staging (a test certificate, to check everything first)", acmeDirectory: "staging"},
			{title: "Let's Encrypt production (the real certificate)", acmeDirectory: "production"},
		}
	}
	if g.wizard != nil {
		g.wizard.close()
	}
	g.dash.starting()
	g.progress.begin(phases, certName(cfg))
	g.win.SetContent(g.progress.content())
	logger := g.opts.Logger
	inBackground(func() startResult {
		var r startResult
		for i, ph := range phases {
			r = runPhase(cfg, ph, logger, progressTo(func(ev progress.Event) {
				if !g.closed {
					g.progress.event(i, ev)
				}
			}))
			if r.err != nil || i == len(phases)-1 {
				break
			}
			stopEngine(r.engine) // the staging certificate was only a rehearsal
		}
		return r
	}, g.started)
}

// runPhase starts one engine for cfg as ph says.
func runPhase(cfg config.Config, ph startPhase, logger *slog.Logger, report func(progress.Event)) startResult {
	if ph.acmeDirectory != "" {
		cfg.ACMEDirectory = ph.acmeDirectory
	}
	e, err := proxyengine.New(cfg, proxyengine.Options{Logger: logger, Progress: report})
	if err != nil {
		return startResult{err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		return startResult{err: err}
	}
	return startResult{engine: e}
}

// stopEngine shuts e down.
func stopEngine(e *proxyengine.Engine) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	return e.Shutdown(ctx)
}

// started shows the dashboard following the new engine, or the failure.
func (g *App) started(r startResult) {
	g.starting = false
	if g.closed {
		if r.err == nil {
			go stopEngine(r.engine) // nobody is left to show it to
		}
		return
	}
	if r.err != nil {
		g.progress.failed(r.err)
		g.dash.stopped(r.err) // Start is offered again (the tray's too)
		return
	}
	g.engine = r.engine
	g.win.SetContent(g.dashView)
	g.dash.follow(r.engine)
	g.watchFailure(r.engine)
}

// watchFailure stops the proxy and tells the dashboard if a listener of e
// fails while it runs.
func (g *App) watchFailure(e *proxyengine.Engine) {
	done := make(chan struct{})
	g.stopWait = func() { close(done) }
	inBackground(func() error {
		select {
		case err := <-e.Err():
			return err
		case <-done:
			return nil
		}
	}, func(err error) {
		if err != nil && g.engine == e {
			g.stop(func(error) { g.dash.stopped(err) })
		}
	})
}

// stop shuts the running proxy down in the background, then calls then
// with the shutdown's error (nil when nothing ran).
func (g *App) stop(then func(error)) {
	e := g.engine
	g.engine = nil
	if g.stopWait != nil {
		g.stopWait()
		g.stopWait = nil
	}
	if e == nil {
		then(nil)
		return
	}
	inBackground(func() error { return stopEngine(e) }, then)
}

func (g *App) onStop() {
	g.stop(func(err error) {
		if err != nil {
			g.opts.Logger.Warn("the proxy did not stop cleanly", "err", err)
		}
		g.dash.stopped(nil)
	})
}

// onStartSaved starts the saved setup again (the dashboard's and the
// tray's Start). While the wizard or the progress screen shows, the tray's
// Start brings the window forward instead: the setup is not finished, or a
// start is already under way.
func (g *App) onStartSaved() {
	if g.engine != nil {
		return
	}
	if g.win.Content() != g.dashView {
		g.win.Show()
		g.win.RequestFocus()
		return
	}
	cfg, err := config.Load(g.opts.ConfigPath)
	if err != nil {
		g.dash.stopped(err)
		return
	}
	g.start(cfg, false)
}

// onTrustUpstream pins the upstream's new certificate in the saved setup
// (the dashboard's review) and starts the proxy again with it.
func (g *App) onTrustUpstream(fingerprint string) {
	cfg, err := config.Load(g.opts.ConfigPath)
	if err == nil {
		cfg.UpstreamFingerprint, cfg.UpstreamCA, cfg.UpstreamInsecure = fingerprint, "", false
		err = config.Save(g.opts.ConfigPath, cfg)
	}
	if err != nil {
		g.dash.problem.SetText(plainError(err))
		g.dash.problem.Show()
		return
	}
	g.stop(func(error) {
		g.dash.stopped(nil)
		g.start(cfg, false)
	})
}

func (g *App) onEditSetup() {
	g.stop(func(error) {
		g.wizard = nil // start from the saved setup (or the unfinished one)
		g.showWizard(nil)
	})
}

// onCloseWindow is the window's close button on desktops with a tray. A
// running (or starting) proxy keeps serving with the window hidden, as a
// server should, and the first time the user is told where it went; with
// nothing running there is nothing to keep, and closing quits.
func (g *App) onCloseWindow() {
	if g.engine == nil && !g.starting {
		g.onQuit()
		return
	}
	g.win.Hide()
	if !g.toldTray {
		g.toldTray = true
		g.fyneApp.SendNotification(fyne.NewNotification("Gatehouse keeps running",
			"The proxy still serves visitors. Open Gatehouse, stop the proxy or quit from its icon in the system tray."))
	}
}

func (g *App) onQuit() {
	g.stop(func(error) { g.fyneApp.Quit() })
}
