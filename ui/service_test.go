package ui

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/control"
	"github.com/gatehouse-proxy/gatehouse/internal/supervisor"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// testService is what `gatehouse serve` runs: a supervisor with a real
// engine on loopback, its config in a temporary directory, and the control
// API on a socket there.
type testService struct {
	sup    *supervisor.Supervisor
	path   string // the config file
	socket string
}

// startService runs a service for cfg (completed for loopback) with its
// control socket at socket.
func startService(t *testing.T, socket string, cfg config.Config) *testService {
	t.Helper()
	dir := t.TempDir()
	cfg.Hostname, cfg.TLS = "gatehouse.test", config.TLSSelfSigned
	cfg.HTTPAddr, cfg.HTTPSAddr, cfg.StatusAddr = config.Off, "127.0.0.1:0", config.Off
	cfg.StateDir = filepath.Join(dir, "state")
	s := &testService{path: filepath.Join(dir, "config.json"), socket: socket}
	if err := config.Save(s.path, cfg); err != nil {
		t.Fatal(err)
	}
	s.sup = supervisor.New(cfg, s.path, supervisor.Options{Logger: testutil.Logger(t)})
	if err := s.sup.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.sup.Shutdown(context.Background()) })
	srv := &control.Server{Controller: s.sup, Logger: testutil.Logger(t)}
	ln, err := srv.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// get fetches / through the service's proxy: the body its upstream sent.
func (s *testService) get(t *testing.T) string {
	t.Helper()
	body, err := testutil.GetVia(s.sup.Snapshot(proxyengine.View{}).HTTPSAddr, "https://gatehouse.test/")
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestAttachesToTheRunningService: with a service answering, the app shows
// its status (not a second proxy), Stop pauses it and Start resumes it,
// Edit setup applies a new upstream live, a refused setup shows its field
// error and Cancel changes nothing; closing the window quits the app and
// leaves the service serving.
func TestAttachesToTheRunningService(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "control.sock")
	first, second := testutil.NamedUpstream(t, "first", false), testutil.NamedUpstream(t, "second", false)
	svc := startService(t, socket, config.Config{Upstream: first.URL})

	a := &desktopApp{App: test.NewTempApp(t)}
	opts := testOptions(dir)
	opts.ServiceSockets = []string{filepath.Join(dir, "none.sock"), socket}
	g := newTestApp(t, a, opts)
	onUI(func() {
		if g.service == nil || g.sup != nil || g.wizard != nil || !shows(g, g.dashView) {
			t.Fatalf("launch with a service: service %v, own proxy %v, wizard %v", g.service, g.sup, g.wizard)
		}
		if want := "Watching the Gatehouse service (" + socket + ")"; g.dash.where.Text != want {
			t.Errorf("the dashboard says %q, want %q", g.dash.where.Text, want)
		}
	})
	waitFor(t, g.dash, 10*time.Second, "the service's status", func() (bool, string) {
		return g.dash.state.Text == "Running" && g.dash.link.Text == svc.sup.Snapshot(proxyengine.View{}).PublicURL && !g.dash.stop.Disabled(), g.dash.state.Text
	})

	// Stop pauses the service: its process (and socket) stay.
	onUI(func() { test.Tap(g.dash.stop) })
	eventually(t, "the service to pause", func() bool { return svc.sup.Snapshot(proxyengine.View{}).State == proxyengine.StatePaused })
	waitFor(t, g.dash, 10*time.Second, "the dashboard to show it stopped", func() (bool, string) {
		return g.dash.state.Text == "Stopped" && !g.dash.start.Disabled() && g.dash.stop.Disabled(), g.dash.state.Text
	})
	onUI(func() { test.Tap(g.dash.start) })
	eventually(t, "the service to resume", func() bool { return svc.sup.Snapshot(proxyengine.View{}).State == proxyengine.StateRunning })
	waitFor(t, g.dash, 10*time.Second, "the dashboard to show it running", func() (bool, string) {
		return g.dash.state.Text == "Running", g.dash.state.Text
	})
	if got := svc.get(t); got != "first" {
		t.Fatalf("before the edit the proxy answers %q", got)
	}

	// Edit setup, Apply: the new upstream serves at once, without a restart.
	openEditor(t, g)
	var up *upstreamStep
	onUI(func() {
		if svc.sup.Snapshot(proxyengine.View{}).State != proxyengine.StateRunning {
			t.Error("Edit setup stopped the service")
		}
		_, up, _, _ = wizardSteps(g)
		if up.url.Text != first.URL || g.wizard.cancel.Hidden {
			t.Errorf("the editor shows upstream %q, Cancel shown %v", up.url.Text, !g.wizard.cancel.Hidden)
		}
		retype(up.url, second.URL)
		for g.wizard.d.Step < 3 {
			test.Tap(g.wizard.next)
		}
		if g.wizard.next.Text != "Apply" || g.wizard.steps[3].(*reviewStep).runBox.Visible() {
			t.Errorf("the editor's last step offers %q (the run choice shown: %v)", g.wizard.next.Text, g.wizard.steps[3].(*reviewStep).runBox.Visible())
		}
	})
	awaitStepChecks(t, g)
	onUI(func() { test.Tap(g.wizard.next) })
	eventually(t, "the dashboard after Apply", func() bool { return g.wizard == nil && shows(g, g.dashView) })
	if got := svc.get(t); got != "second" {
		t.Errorf("after Apply the proxy answers %q, want the new upstream", got)
	}
	if got := svc.sup.Config().Upstream; got != second.URL {
		t.Errorf("the service serves upstream %q", got)
	}
	if saved, err := config.Load(svc.path); err != nil || saved.Upstream != second.URL {
		t.Errorf("the service's saved upstream %q (%v)", saved.Upstream, err)
	}

	// A setup the service refuses (as a newer service might refuse what this
	// app let through): the field's error shows beside it, nothing changes.
	openEditor(t, g)
	var host *hostnameStep
	onUI(func() {
		host = g.wizard.steps[0].(*hostnameStep)
		g.wizard.d.Config.Hostname = "not a hostname"
		g.wizard.onStart(g.wizard.d)
	})
	eventually(t, "the refusal", func() bool { return host.err.Visible() })
	onUI(func() {
		if g.wizard.d.Step != 0 || !shows(g, g.wizard.content()) || !strings.Contains(g.wizard.notice.Text, "Not applied") {
			t.Errorf("refused: on step %d, notice %q", g.wizard.d.Step+1, g.wizard.notice.Text)
		}
		if host.err.Text == "" {
			t.Error("the hostname's error is empty")
		}
		test.Tap(g.wizard.cancel)
		if !shows(g, g.dashView) {
			t.Error("Cancel did not go back to the dashboard")
		}
	})
	if got := svc.sup.Config().Hostname; got != "gatehouse.test" {
		t.Errorf("after the refusal and Cancel the service serves %q", got)
	}

	// Cancel after an edit changes nothing either.
	openEditor(t, g)
	onUI(func() {
		_, up, _, _ = wizardSteps(g)
		retype(up.url, first.URL)
		test.Tap(g.wizard.cancel)
	})
	if got := svc.get(t); got != "second" {
		t.Errorf("after Cancel the proxy answers %q", got)
	}

	// Closing the window: the app quits, the service keeps serving.
	w := g.win.(*trayWindow)
	onUI(w.closeButton)
	eventually(t, "the app to quit", func() bool { return a.quits == 1 })
	onUI(func() {
		if w.hidden != 0 {
			t.Error("attached to the service, closing hid the window instead of quitting")
		}
	})
	if svc.sup.Snapshot(proxyengine.View{}).State != proxyengine.StateRunning {
		t.Error("quitting the app stopped the service")
	}
}

// openEditor taps Edit setup and waits for the wizard editing the setup.
func openEditor(t *testing.T, g *App) {
	t.Helper()
	onUI(func() { test.Tap(g.dash.edit) })
	eventually(t, "the editor", func() bool { return g.wizard != nil && g.wizard.serving != nil && shows(g, g.wizard.content()) })
}

// TestEditSetupInTryOutKeepsServing: the same dashboard code in try-out
// mode: Edit setup, Apply changes the upstream of the proxy in this window
// live; a busy new port is refused in plain words and nothing changes.
func TestEditSetupInTryOutKeepsServing(t *testing.T) {
	dir := t.TempDir()
	first, second := testutil.NamedUpstream(t, "first", false), testutil.NamedUpstream(t, "second", false)
	opts := testOptions(dir)
	cfg := config.Config{Hostname: "gatehouse.test", Upstream: first.URL, TLS: config.TLSSelfSigned,
		HTTPAddr: config.Off, HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off, StateDir: filepath.Join(dir, "state")}
	if err := config.Save(opts.ConfigPath, cfg); err != nil {
		t.Fatal(err)
	}
	g := newTestApp(t, test.NewTempApp(t), opts)
	eventually(t, "the dashboard", func() bool { return g.sup != nil && shows(g, g.dashView) })
	var svc *testService
	onUI(func() { svc = &testService{sup: g.sup, path: opts.ConfigPath} })
	if got := svc.get(t); got != "first" {
		t.Fatalf("the proxy answers %q", got)
	}

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	openEditor(t, g)
	onUI(func() {
		_, up, cert, _ := wizardSteps(g)
		retype(up.url, second.URL)
		retype(cert.httpsAddr, held.Addr().String())
		g.wizard.show(3)
		// The port check would block Apply; the engine is what refuses here.
		g.wizard.onStart(g.wizard.d)
	})
	eventually(t, "the refusal", func() bool { return g.wizard.notice.Visible() })
	onUI(func() {
		if n := g.wizard.notice.Text; !strings.Contains(n, "Not applied") || !strings.Contains(n, held.Addr().String()) {
			t.Errorf("refusal shown as %q", n)
		}
		_, _, cert, _ := wizardSteps(g)
		retype(cert.httpsAddr, "127.0.0.1:0")
	})
	if got := svc.get(t); got != "first" {
		t.Errorf("after the refusal the proxy answers %q", got)
	}
	onUI(func() { g.wizard.onStart(g.wizard.d) })
	eventually(t, "the dashboard after Apply", func() bool { return g.wizard == nil && shows(g, g.dashView) })
	if got := svc.get(t); got != "second" {
		t.Errorf("after Apply the proxy answers %q", got)
	}
}

// TestClosingWithoutATrayStopsAndQuits: in try-out mode without a tray
// that really shows (no session D-Bus), the close button never hides the
// window: it asks first while visitors are connected, then stops the proxy
// and quits.
func TestClosingWithoutATrayStopsAndQuits(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir)
	opts.TrayAvailable = func() bool { return false }
	cfg := config.Config{Hostname: "gatehouse.test", Upstream: testutil.NamedUpstream(t, "up", false).URL, TLS: config.TLSSelfSigned,
		HTTPAddr: config.Off, HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off, StateDir: filepath.Join(dir, "state")}
	if err := config.Save(opts.ConfigPath, cfg); err != nil {
		t.Fatal(err)
	}
	a := &desktopApp{App: test.NewTempApp(t)}
	g := newTestApp(t, a, opts)
	eventually(t, "the dashboard", func() bool { return g.sup != nil && shows(g, g.dashView) })
	var sup *supervisor.Supervisor
	onUI(func() {
		sup = g.sup
		if len(a.menus) != 0 || g.dash.tray != nil {
			t.Errorf("a tray was installed although none would show (%d menus)", len(a.menus))
		}
	})

	// A visitor keeps a connection open.
	addr := sup.Snapshot(proxyengine.View{}).HTTPSAddr
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://gatehouse.test/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	waitFor(t, g.dash, 10*time.Second, "the visitor on the dashboard", func() (bool, string) {
		return g.dash.last.ActiveConnections == 1, g.dash.connections.value.Text
	})

	w := g.win.(*trayWindow)
	var confirm *widget.Button
	onUI(func() {
		w.closeButton()
		if w.hidden != 0 || a.quits != 0 || g.sup == nil {
			t.Fatalf("close with a visitor: hidden %d, quits %d, proxy %v", w.hidden, a.quits, g.sup)
		}
		top := g.win.Canvas().Overlays().Top()
		if top == nil || !strings.Contains(allText(top), "1 visitor is connected") {
			t.Fatalf("no question before stopping for a visitor: %v", top)
		}
		confirm = findButton(top, "Yes")
		if confirm == nil {
			t.Fatalf("no Yes in %q", allText(top))
		}
		test.Tap(confirm)
	})
	eventually(t, "the app to stop the proxy and quit", func() bool { return a.quits == 1 && g.sup == nil })
	if st := sup.Snapshot(proxyengine.View{}).State; st != proxyengine.StateStopped {
		t.Errorf("after quitting the proxy is %q", st)
	}
	onUI(func() {
		if w.hidden != 0 {
			t.Error("the window was hidden without a tray to bring it back")
		}
	})
}

// TestWizardInstallsTheService: the wizard's service choice says the system
// will ask for a password, runs `<exe> service install --config <path>`
// through the privileged runner (here one that starts a service as the
// real command would), waits for its socket and attaches to it.
func TestWizardInstallsTheService(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "control.sock")
	opts := testOptions(dir)
	opts.ServiceSockets = []string{socket}
	opts.Executable = "/opt/gatehouse/bin/gatehouse"
	var mu sync.Mutex
	var ran [][]string
	opts.RunPrivileged = func(ctx context.Context, args []string) (string, error) {
		mu.Lock()
		ran = append(ran, args)
		mu.Unlock()
		cfg, err := config.Load(args[len(args)-1])
		if err != nil {
			return "", err
		}
		// The service comes up a moment after the command returns.
		go func() {
			time.Sleep(500 * time.Millisecond)
			startService(t, socket, config.Config{Upstream: cfg.Upstream})
		}()
		return "installed /etc/systemd/system/gatehouse.service\nstarted gatehouse.service\n", nil
	}
	g := newTestApp(t, test.NewTempApp(t), opts)
	walkToStart(t, g)
	onUI(func() {
		if got := g.wizard.steps[3].(*reviewStep).runAs.Selected; got != runAsServiceLabel {
			t.Errorf("the run choice defaults to %q, want the service", got)
		}
		test.Tap(g.wizard.next) // Start
		top := g.win.Canvas().Overlays().Top()
		if top == nil || !strings.Contains(allText(top), "ask for your password") {
			t.Fatalf("no word about the password before installing: %v", top)
		}
		mu.Lock()
		if len(ran) != 0 {
			t.Error("the install ran before the user was told about the password")
		}
		mu.Unlock()
		test.Tap(findButton(top, "Continue"))
	})
	eventually(t, "the dashboard watching the service", func() bool {
		return g.service != nil && shows(g, g.dashView) && strings.HasPrefix(g.dash.where.Text, "Watching the Gatehouse service")
	})
	mu.Lock()
	defer mu.Unlock()
	want := []string{opts.Executable, "service", "install", "--config", opts.ConfigPath}
	if len(ran) != 1 || strings.Join(ran[0], " ") != strings.Join(want, " ") {
		t.Errorf("ran %q, want %q", ran, want)
	}
	onUI(func() {
		if g.sup != nil {
			t.Error("the app runs a proxy of its own beside the service")
		}
	})
}

// TestWithoutPkexecTheWizardShowsTheCommand: where elevation is not
// possible, the install screen shows the exact command for a terminal, and
// Check again attaches once the service answers.
func TestWithoutPkexecTheWizardShowsTheCommand(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "control.sock")
	opts := testOptions(dir)
	opts.ServiceSockets = []string{socket}
	opts.Executable = "/usr/bin/gatehouse"
	opts.ConfigPath = filepath.Join(dir, "my setup", "config.json")
	opts.RunPrivileged = func(context.Context, []string) (string, error) {
		return "", errors.Join(errors.New("pkexec is not installed"), exec.ErrNotFound)
	}
	g := newTestApp(t, test.NewTempApp(t), opts)
	walkToStart(t, g)
	onUI(func() {
		test.Tap(g.wizard.next)
		test.Tap(findButton(g.win.Canvas().Overlays().Top(), "Continue"))
	})
	eventually(t, "the command to type", func() bool { return g.install != nil && g.install.cmdBox.Visible() })
	onUI(func() {
		want := "sudo /usr/bin/gatehouse service install --config '" + opts.ConfigPath + "'"
		if got := g.install.command.Text; got != want {
			t.Errorf("command shown %q, want %q", got, want)
		}
		screenshot(t, g.win, "service-install-terminal") // its path changes with each run: no markup
	})
	startService(t, socket, config.Config{Upstream: testutil.NamedUpstream(t, "up", false).URL})
	onUI(func() { test.Tap(findButton(g.install.root, "Check again")) })
	eventually(t, "the dashboard watching the service", func() bool { return g.service != nil && shows(g, g.dashView) })
}

// walkToStart goes through the wizard to the review with the defaults.
func walkToStart(t *testing.T, g *App) {
	t.Helper()
	onUI(func() {
		for g.wizard.d.Step < 3 {
			if g.wizard.d.Step == 2 {
				retype(g.wizard.steps[2].(*certificateStep).statusAddr, config.Off)
			}
			test.Tap(g.wizard.next)
		}
	})
	awaitStepChecks(t, g)
}

// TestSecondLaunchBringsTheFirstForward: a second launch finds the first
// on the per-user socket, which shows its window, and is told to exit; a
// socket left by a crash is taken over.
func TestSecondLaunchBringsTheFirstForward(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse", "app.sock")
	first, err := ClaimInstance(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	if fi, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("the app socket has mode %v, want 0600", fi.Mode().Perm())
	}
	a := &desktopApp{App: test.NewTempApp(t)}
	opts := testOptions(t.TempDir())
	opts.Instance = first
	g := newTestApp(t, a, opts)
	w := g.win.(*trayWindow)
	onUI(w.Hide)

	if _, err := ClaimInstance(path); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second launch: %v, want ErrAlreadyRunning", err)
	}
	onUI(func() {
		if w.shown != 1 {
			t.Errorf("the first window was shown %d times, want once", w.shown)
		}
	})

	// The first goes away without cleaning up: its socket file stays.
	first.ln.(*net.UnixListener).SetUnlinkOnClose(false)
	first.ln.Close()
	again, err := ClaimInstance(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	again.Close()
}

// TestInstanceRefusesASharedDirectory: in a directory others may write
// to, a socket answering as Gatehouse is not believed (another user could
// have put it there to keep this user's window from opening).
func TestInstanceRefusesASharedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gatehouse-shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	path := filepath.Join(dir, "app.sock")
	impostor, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	go func() {
		for {
			c, err := impostor.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(instanceAck))
			c.Close()
		}
	}()
	in, err := ClaimInstance(path)
	if err == nil {
		in.Close()
	}
	if err == nil || errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), "other users") {
		t.Fatalf("ClaimInstance in a shared directory: %v, want a refusal naming other users", err)
	}
}

// TestSessionBusCheck: the tray's D-Bus counts only when it answers; an
// address nothing listens on (the panic of fyne-io/fyne#6403 on quit) does
// not.
func TestSessionBusCheck(t *testing.T) {
	dir := t.TempDir()
	bus := filepath.Join(dir, "bus")
	if busAnswers("unix:path=" + bus) {
		t.Error("a bus socket that does not exist answers")
	}
	ln, err := net.Listen("unix", bus)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !busAnswers("unix:path=" + bus) {
		t.Error("a listening bus socket does not answer")
	}
	if busAnswers("nonsense") || !busAnswers("tcp:host=localhost,port=1") {
		t.Error("malformed addresses answer, or other transports are not taken on trust")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(dir, "none")+";unix:path="+bus)
	if !sessionBusAvailable() {
		t.Error("the second address of the list was not tried")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(dir, "none"))
	if sessionBusAvailable() {
		t.Error("a session bus that does not answer counts")
	}
}

// TestAServiceThatCannotBeWatchedIsSaid: a service answers but refuses
// this user; the app says so and starts no proxy of its own, which would
// fight the service for its ports.
func TestAServiceThatCannotBeWatchedIsSaid(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":"this user may not use the Gatehouse service: add it to the gatehouse group"}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	dir := t.TempDir()
	opts := testOptions(dir)
	opts.ServiceSockets = []string{socket}
	cfg := config.Config{Hostname: defaultHostname, Upstream: config.UpstreamDemo, TLS: config.TLSSelfSigned,
		HTTPAddr: config.Off, HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off, StateDir: filepath.Join(dir, "state")}
	if err := config.Save(opts.ConfigPath, cfg); err != nil {
		t.Fatal(err)
	}
	g := newTestApp(t, test.NewTempApp(t), opts)
	onUI(func() {
		if !shows(g, g.dashView) || g.sup != nil || !strings.Contains(g.dash.problem.Text, "may not use the Gatehouse service") {
			t.Errorf("dashboard shown %v, a proxy of its own %v, problem %q; want the dashboard saying why, and no proxy",
				shows(g, g.dashView), g.sup != nil, g.dash.problem.Text)
		}
	})
}
