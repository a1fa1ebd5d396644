package ui

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"github.com/gorilla/websocket"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/supervisor"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// clientFor trusts the local CA in dir's state and dials e whatever the URL
// names, as a browser sent to that name (such as gatehouse.localhost) would.
func clientFor(t *testing.T, stateDir string, addr string) (*http.Client, *websocket.Dialer) {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(stateDir, certs.LocalCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: roots} // the name is the URL's
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DialContext: dial}}
	t.Cleanup(client.CloseIdleConnections)
	return client, &websocket.Dialer{TLSClientConfig: tc, NetDialContext: dial, HandshakeTimeout: 10 * time.Second}
}

// TestNewcomerReachesTheDashboardWithNextAndStart is the embedded default:
// the demo app behind the local CA, started by pressing only Next and Start
// (the test also turns the status endpoint off, to run beside other tests),
// each step's markup as testdata keeps it, then a page and a WebSocket
// through the proxy, the dashboard showing the WebSocket and then its end,
// Stop, Start and Edit setup.
func TestNewcomerReachesTheDashboardWithNextAndStart(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home) // the pictures show ~/.config/gatehouse as on a real machine
	dir := filepath.Join(home, ".config", "gatehouse")
	a := test.NewTempApp(t)
	g := newTestApp(t, a, testOptions(dir))
	_, _, cert, _ := wizardSteps(g)

	names := []string{"wizard-1-hostname", "wizard-2-upstream", "wizard-3-certificate", "wizard-4-review"}
	for i, name := range names {
		onUI(func() {
			if g.wizard.d.Step != i {
				t.Fatalf("on step %d, want %d", g.wizard.d.Step, i)
			}
			if i == 2 {
				retype(cert.statusAddr, config.Off)
			}
		})
		awaitStepChecks(t, g)
		onUI(func() {
			assertMarkup(t, g.win, name) // the pictures come from TestWizardPictures
			if i == 3 {
				chooseTryOut(t, g)
			}
			test.Tap(g.wizard.next)
		})
	}

	eventually(t, "the dashboard", func() bool { return g.sup != nil && shows(g, g.dashView) })
	var sup *supervisor.Supervisor
	onUI(func() {
		sup = g.sup
		if got := g.dash.where.Text; got != "Running inside this window" {
			t.Errorf("the dashboard says %q, want that the proxy runs inside this window", got)
		}
	})

	saved, err := config.Load(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if saved.Upstream != config.UpstreamDemo || saved.TLS != config.TLSSelfSigned || saved.Hostname != defaultHostname {
		t.Errorf("saved config: upstream %q, tls %q, hostname %q", saved.Upstream, saved.TLS, saved.Hostname)
	}
	if _, err := os.Stat(filepath.Join(dir, draftFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the draft is left after Start: %v", err)
	}

	client, dialer := clientFor(t, saved.StateDir, sup.Snapshot(proxyengine.View{}).HTTPSAddr)
	res, err := client.Get("https://" + defaultHostname + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "this page came through Gatehouse") {
		t.Fatalf("GET / through the proxy = %d %.200q", res.StatusCode, body)
	}
	ws, _, err := dialer.Dial("wss://"+defaultHostname+"/ws/client/", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("hello"))
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, got, err := ws.ReadMessage(); err != nil || string(got) != "hello" {
		t.Errorf("WebSocket echo through the proxy = %q, %v", got, err)
	}
	// The dashboard the wizard led to shows the WebSocket, then shows it gone.
	waitFor(t, g.dash, 10*time.Second, "the dashboard shows the WebSocket", func() (bool, string) {
		rows, marked := g.dash.cells()
		for i, row := range rows {
			if marked[i] && row[1] == "WebSocket" && row[2] == "GET /ws/client/" {
				return g.dash.websockets.value.Text == "1", g.dash.websockets.value.Text + " WebSockets"
			}
		}
		return false, fmt.Sprint(rows)
	})
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	ws.Close()
	waitFor(t, g.dash, 10*time.Second, "the dashboard shows the WebSocket gone", func() (bool, string) {
		rows, _ := g.dash.cells()
		for _, row := range rows {
			if row[1] == "WebSocket" {
				return false, fmt.Sprint(rows)
			}
		}
		return g.dash.websockets.value.Text == "0", g.dash.websockets.value.Text + " WebSockets"
	})

	// Stop, then Start again from the saved setup: a new engine each time.
	// (The dashboard's own tests tap its buttons; these are what they call.)
	onUI(g.actions.onStop)
	eventually(t, "the proxy to stop", func() bool { return g.sup == nil })
	client.CloseIdleConnections()
	refused := false
	for deadline := time.Now().Add(10 * time.Second); !refused && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, err := client.Get("https://" + defaultHostname + "/")
		refused = err != nil
	}
	if !refused {
		t.Error("the proxy still answers after Stop")
	}
	onUI(g.actions.onStart)
	eventually(t, "the proxy to run again", func() bool { return g.sup != nil && g.sup != sup && shows(g, g.dashView) })

	// Edit setup: the proxy keeps serving and the wizard shows its
	// choices, with Cancel; Cancel goes back to the dashboard.
	onUI(func() { sup = g.sup })
	onUI(g.actions.onEditSetup)
	eventually(t, "the wizard", func() bool { return g.wizard != nil && shows(g, g.wizard.content()) })
	onUI(func() {
		if g.sup != sup || sup.Snapshot(proxyengine.View{}).State != proxyengine.StateRunning {
			t.Error("Edit setup stopped the proxy")
		}
		if !g.wizard.d.Demo || g.wizard.d.Certificate != certLocal || g.wizard.d.Config.Hostname != defaultHostname {
			t.Errorf("Edit setup prefilled %+v", g.wizard.d)
		}
		if !g.wizard.cancel.Visible() {
			t.Error("no Cancel while editing the running setup")
		}
		test.Tap(g.wizard.cancel)
		if !shows(g, g.dashView) || g.wizard != nil {
			t.Error("Cancel did not go back to the dashboard")
		}
	})
}

// chooseTryOut picks "Run only while this window is open" on the review
// step, as a person trying Gatehouse would.
func chooseTryOut(t *testing.T, g *App) {
	t.Helper()
	if g.wizard.d.Step != 3 {
		t.Fatalf("on step %d, want the review", g.wizard.d.Step+1)
	}
	g.wizard.steps[3].(*reviewStep).runAs.SetSelected(runInWindowLabel)
}

// TestSavedSetupStartsOnLaunch: with a config file, the app opens on the
// dashboard with the proxy running.
func TestSavedSetupStartsOnLaunch(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir)
	cfg := config.Config{Hostname: defaultHostname, Upstream: config.UpstreamDemo, TLS: config.TLSSelfSigned,
		HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off, StateDir: filepath.Join(dir, "state")}
	if err := config.Save(opts.ConfigPath, cfg); err != nil {
		t.Fatal(err)
	}
	g := newTestApp(t, test.NewTempApp(t), opts)
	eventually(t, "the dashboard", func() bool { return g.sup != nil && shows(g, g.dashView) })
	onUI(func() {
		if g.wizard != nil {
			t.Error("the wizard was built for a saved setup")
		}
	})
}

// TestBusyPortShowsReasonAndFixWithRetryAndBack holds the HTTPS port the
// setup names, so the start fails as it would with another server there.
func TestBusyPortShowsReasonAndFixWithRetryAndBack(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().String()

	g := newTestApp(t, test.NewTempApp(t), testOptions(t.TempDir()))
	_, _, cert, _ := wizardSteps(g)
	onUI(func() {
		test.Tap(g.wizard.next)
		test.Tap(g.wizard.next)
		retype(cert.httpsAddr, busy)
		retype(cert.statusAddr, config.Off)
		test.Tap(g.wizard.next)
		chooseTryOut(t, g)
		test.Tap(g.wizard.next) // Start
	})
	eventually(t, "the failure", func() bool { return g.progress.failure.Visible() })
	onUI(func() {
		p := g.progress
		if !shows(g, p.content()) || !strings.Contains(p.summary.Text, "Cannot open the HTTPS port "+busy) ||
			!strings.Contains(p.summary.Text, "already in use") || !strings.HasPrefix(p.fix.Text, "What to do: ") ||
			!p.retry.Visible() || !p.back.Visible() {
			t.Errorf("failure shown as %q / %q", p.summary.Text, p.fix.Text)
		}
		screenshot(t, g.win, "progress-failed")

		// Back: the wizard, on the review, with the busy address kept.
		test.Tap(p.back)
		if !shows(g, g.wizard.content()) || g.wizard.d.Step != 3 || cert.httpsAddr.Text != busy {
			t.Errorf("Back shows step %d with HTTPS address %q", g.wizard.d.Step, cert.httpsAddr.Text)
		}
		test.Tap(g.wizard.next) // Start again: still busy
	})
	eventually(t, "the failure again", func() bool { return g.progress.failure.Visible() })

	held.Close() // the other server goes away: Retry now works
	onUI(func() { test.Tap(g.progress.retry) })
	eventually(t, "the dashboard after Retry", func() bool { return g.sup != nil && shows(g, g.dashView) })
	onUI(func() {
		if got := g.sup.Snapshot(proxyengine.View{}).HTTPSAddr; got != busy {
			t.Errorf("after Retry the proxy listens on %s, want %s", got, busy)
		}
	})
}

// TestDraftSurvivesRestart: what was typed comes back in a new app on the
// same config directory, on the same step, from a private file.
func TestDraftSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	g := newTestApp(t, test.NewTempApp(t), testOptions(dir))
	host, up, _, _ := wizardSteps(g)
	onUI(func() {
		retype(host.entry, "sso.example.com")
		test.Tap(g.wizard.next)
		up.choice.SetSelected(upstreamChoiceApp)
		retype(up.url, "http://authentik.lan:9000")
	})
	fi, err := os.Stat(filepath.Join(dir, draftFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("draft mode %v, want 0600", fi.Mode().Perm())
	}

	again := newTestApp(t, test.NewTempApp(t), testOptions(dir))
	host2, up2, _, _ := wizardSteps(again)
	onUI(func() {
		if again.wizard.d.Step != 1 || host2.entry.Text != "sso.example.com" || up2.url.Text != "http://authentik.lan:9000" || up2.choice.Selected != upstreamChoiceApp {
			t.Errorf("restored: step %d, hostname %q, upstream %q (%q)", again.wizard.d.Step, host2.entry.Text, up2.url.Text, up2.choice.Selected)
		}
	})
}

// TestStagingFirstIsTheSetups: "try staging first" is saved in the setup
// (acme_staging_first), where the engine finds it at every start, until
// production issued once; Edit setup reads it back.
func TestStagingFirstIsTheSetups(t *testing.T) {
	d := newDraft(t.TempDir(), ":80", ":443")
	d.Certificate = certLetsEncrypt
	d.Config.Hostname = "sso.example.com"
	cfg := d.config()
	if !cfg.ACMEStagingFirst || cfg.ACMEDirectory != "production" {
		t.Errorf("staging first ticked: acme_staging_first %v, directory %q", cfg.ACMEStagingFirst, cfg.ACMEDirectory)
	}
	if back := draftFromConfig(cfg); !back.StagingFirst || back.Certificate != certLetsEncrypt {
		t.Errorf("read back: staging first %v, certificate %q", back.StagingFirst, back.Certificate)
	}
	d.StagingFirst = false
	if cfg := d.config(); cfg.ACMEStagingFirst {
		t.Error("unticked, the setup still rehearses")
	} else if back := draftFromConfig(cfg); back.StagingFirst {
		t.Error("unticked, Edit setup shows it ticked")
	}
	d.StagingFirst, d.Certificate = true, certLocal
	if cfg := d.config(); cfg.ACMEStagingFirst {
		t.Error("a local certificate rehearses with Let's Encrypt")
	}
}

// TestFirstRunPrefillsPortsThisUserCanBind: when the preferred ports are
// taken (or privileged), the wizard offers the next pair, as 8080/8443
// after 80/443.
func TestFirstRunPrefillsPortsThisUserCanBind(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	opts := testOptions(t.TempDir())
	opts.ListenCandidates = [][2]string{{"127.0.0.1:0", held.Addr().String()}, {"127.0.0.1:0", "127.0.0.2:0"}}
	g := newTestApp(t, test.NewTempApp(t), opts)
	_, _, cert, _ := wizardSteps(g)
	onUI(func() {
		if cert.httpsAddr.Text != "127.0.0.2:0" {
			t.Errorf("HTTPS address prefilled %q, want the second candidate 127.0.0.2:0", cert.httpsAddr.Text)
		}
	})
}

// TestBrokenConfigOpensTheWizardAndSaysWhy: a config file that cannot be
// read is not run, nor silently replaced: the wizard opens and says why.
func TestBrokenConfigOpensTheWizardAndSaysWhy(t *testing.T) {
	opts := testOptions(t.TempDir())
	if err := os.WriteFile(opts.ConfigPath, []byte(`{"hostname": "sso.example.com", "upstrem": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	g := newTestApp(t, test.NewTempApp(t), opts)
	onUI(func() {
		if g.wizard == nil || !shows(g, g.wizard.content()) {
			t.Fatal("the wizard is not shown")
		}
		if note := g.wizard.notice; !note.Visible() || !strings.Contains(note.Text, "could not be read") || !strings.Contains(note.Text, "upstrem") {
			t.Errorf("note %q (shown %v), want why the saved setup was not used", note.Text, note.Visible())
		}
	})
}

// TestClosingDropsPendingChecks: the wizard's delayed checks (step 1's DNS
// lookup, step 3's port check) never reach the window once their step is
// left or the app is closed; before, a closed app's timer fired into
// whatever ran next and raced with it on Fyne's caches.
func TestClosingDropsPendingChecks(t *testing.T) {
	g := newTestApp(t, test.NewTempApp(t), testOptions(t.TempDir()))
	var host *hostnameStep
	var cert *certificateStep
	onUI(func() {
		host = g.wizard.steps[0].(*hostnameStep)
		cert = g.wizard.steps[2].(*certificateStep)
		// In one turn of the UI, so no check can have answered yet: a new
		// name schedules the DNS check, leaving step 1 must drop it, and
		// step 3's port check is scheduled and then dropped by Close.
		retype(host.entry, "pending.localhost")
		test.Tap(g.wizard.next)
		test.Tap(g.wizard.next)
		if g.wizard.d.Step != 2 {
			t.Fatalf("on step %d, want the certificate step", g.wizard.d.Step+1)
		}
		g.Close()
	})
	// Both checks answer at once for a .localhost name and loopback ports,
	// so this is ample time for a check that was not dropped to show.
	time.Sleep(3*max(dnsCheckDelay, portCheckDelay) + time.Second)
	onUI(func() {
		if n := len(host.checks.Objects); n != 2 || !strings.Contains(rowText(host.checks.Objects[1]), "Looking up") {
			t.Errorf("the DNS check of a step that was left still showed: %q", rowText(host.checks))
		}
		if n := len(cert.portChecks.Objects); n != 0 {
			t.Errorf("the port check of a closed app still showed %d results", n)
		}
	})
}
