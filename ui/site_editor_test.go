package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// sessionCookie is the stand-in authentik's session cookie.
const sessionCookie = "authentik_proxy_test"

// standInAuthentik is authentik as forward auth sees it: its outpost's
// Caddy endpoint answers 200 with X-Authentik-Username for a session
// cookie and a redirect to sign in without one; anything else is its
// own pages.
func standInAuthentik(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/outpost.goauthentik.io/auth/caddy":
			if _, err := r.Cookie(sessionCookie); err == nil {
				w.Header().Set("X-Authentik-Username", "alice")
				return
			}
			http.Redirect(w, r, "https://"+r.Header.Get("X-Forwarded-Host")+"/outpost.goauthentik.io/start?rd=x", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/outpost.goauthentik.io/"):
			io.WriteString(w, "outpost "+r.URL.Path)
		default:
			io.WriteString(w, "authentik")
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// siteClient reaches the proxy at addr for any of its names, as clientFor
// does, and never follows redirects.
func siteClient(t *testing.T, stateDir, addr string) *http.Client {
	t.Helper()
	c, _ := clientFor(t, stateDir, addr)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// TestAddSiteWithSignIn adds a second site from the dashboard, protected by
// the first (authentik): the editor preselects it, its checks run with the
// outpost's, the steps left in authentik show, Add site serves it live and
// saves it; visitors without a session are sent to sign in, and the Sites
// tab and the connection filter show both sites. Then Edit and Remove.
func TestAddSiteWithSignIn(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir)
	authentik, app := standInAuthentik(t), echoUpstream(t, nil)
	cfg := config.Config{Hostname: "sso.localhost", Upstream: authentik.URL, TLS: config.TLSSelfSigned,
		HTTPAddr: config.Off, HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off, StateDir: filepath.Join(dir, "state")}
	if err := config.Save(opts.ConfigPath, cfg); err != nil {
		t.Fatal(err)
	}
	g := newTestApp(t, test.NewTempApp(t), opts)
	eventually(t, "the dashboard following the proxy", func() bool {
		return g.sup != nil && shows(g, g.dashView) && g.dash.cfg != nil && !g.dash.addSite.Disabled()
	})

	var ed *siteEditor
	onUI(func() {
		test.Tap(g.dash.addSite)
		ed = g.sites
		if ed == nil || !shows(g, ed.content()) {
			t.Fatal("Add site did not open the site editor")
		}
		if ed.outpost.Selected != "sso.localhost" || ed.signIn.Checked || ed.authBox.Visible() {
			t.Errorf("sign-in: %q preselected, ticked %v; want sso.localhost, not ticked, choices hidden", ed.outpost.Selected, ed.signIn.Checked)
		}
		if !ed.apply.Disabled() {
			t.Error("Add site is enabled before anything is entered")
		}
		retype(ed.hostname, "sso.localhost")
		if !ed.hostErr.Visible() || !strings.Contains(ed.hostErr.Text, "already served") || !ed.check.Disabled() {
			t.Errorf("a name already served: %q, Check site enabled %v", ed.hostErr.Text, !ed.check.Disabled())
		}
		retype(ed.hostname, "wiki.localhost")
		retype(ed.upstream, app.URL)
		ed.signIn.SetChecked(true)
		if !ed.authBox.Visible() || !strings.Contains(rowText(ed.todo), "Forward auth (single application)") ||
			!strings.Contains(rowText(ed.todo), "https://wiki.localhost") {
			t.Errorf("the steps in authentik: %q", rowText(ed.todo))
		}
		if !ed.apply.Disabled() || ed.check.Disabled() {
			t.Error("want Check site enabled and Add site waiting for the checks")
		}
		test.Tap(ed.check)
	})
	eventually(t, "the site's checks", func() bool { return ed.checked != nil })
	onUI(func() {
		i := slices.IndexFunc(ed.checked, func(r preflight.Result) bool { return r.Name == preflight.NameForwardAuth })
		if i < 0 || ed.checked[i].Status != preflight.Pass || ed.checked[i].Site != "wiki.localhost" {
			t.Fatalf("the checks: %v, want the outpost's check passed for wiki.localhost", ed.checked)
		}
		if ed.apply.Disabled() {
			t.Fatalf("Add site disabled after the checks: %v", ed.blockers())
		}
		screenshot(t, g.win, "site-editor")
		// An edit drops the results: Add site waits for new ones.
		retype(ed.upstream, app.URL+"/")
		if !ed.apply.Disabled() || len(ed.results.Objects) != 0 {
			t.Error("results kept after an edit")
		}
		retype(ed.upstream, app.URL)
		test.Tap(ed.check)
	})
	eventually(t, "the site's checks again", func() bool { return ed.checked != nil && !ed.apply.Disabled() })
	onUI(func() { test.Tap(ed.apply) })
	eventually(t, "the dashboard again", func() bool { return g.sites == nil && shows(g, g.dashView) })

	saved, err := config.Load(opts.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved.Sites) != 1 || saved.Sites[0].Hostname != "wiki.localhost" || saved.Sites[0].Upstream != app.URL ||
		saved.Sites[0].ForwardAuth == nil || saved.Sites[0].ForwardAuth.Site != "sso.localhost" {
		t.Fatalf("saved sites: %+v", saved.Sites)
	}
	addr := g.sup.Snapshot(proxyengine.View{}).HTTPSAddr
	c := siteClient(t, cfg.StateDir, addr)
	res, err := c.Get("https://wiki.localhost/page")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "https://wiki.localhost/outpost.goauthentik.io/start") {
		t.Errorf("a visitor without a session: %d %s, want the redirect to sign in", res.StatusCode, res.Header.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodGet, "https://wiki.localhost/page", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "s"})
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("a signed-in visitor: %d %q, want the app's page", res.StatusCode, body)
	}

	// The Sites tab has a card per site; the connection filter offers them.
	eventually(t, "two site cards", func() bool { return len(g.dash.sitesGrid.Objects) == 2 })
	onUI(func() {
		if g.dash.sitesTab.Text != "Sites (2)" || !g.dash.siteFilter.Visible() ||
			!slices.Equal(g.dash.siteFilter.Options, []string{allSites, "sso.localhost", "wiki.localhost"}) {
			t.Errorf("tab %q, filter %v (shown %v)", g.dash.sitesTab.Text, g.dash.siteFilter.Options, g.dash.siteFilter.Visible())
		}
		card := g.dash.siteCards["wiki.localhost"]
		if got := card.signIn.Text; got != "Sign-in: authentik at sso.localhost first" {
			t.Errorf("wiki's card says %q", got)
		}
		if first := g.dash.siteCards["sso.localhost"]; buttonTexts(first.buttons) != "Connections,Edit setup" ||
			buttonTexts(card.buttons) != "Connections,Edit…,Remove…" {
			t.Errorf("card buttons: sso %s, wiki %s", buttonTexts(first.buttons), buttonTexts(card.buttons))
		}
	})

	onUI(func() {
		g.dash.activity.Select(g.dash.sitesTab)
		screenshot(t, g.win, "dashboard-sites")
		g.dash.activity.Select(g.dash.connTab)
	})

	// Edit: the editor shows the site as saved; Cancel changes nothing.
	onUI(func() {
		g.dash.openSiteEditor("wiki.localhost")
		ed = g.sites
		if ed == nil || ed.adding || ed.hostname.Text != "wiki.localhost" || !ed.signIn.Checked || ed.outpost.Selected != "sso.localhost" {
			t.Fatalf("Edit opened %+v", ed)
		}
		if slices.Contains(ed.outpost.Options, "wiki.localhost") {
			t.Error("a site is offered as its own authentik")
		}
		test.Tap(ed.cancel)
		if g.sites != nil || !shows(g, g.dashView) {
			t.Error("Cancel did not go back to the dashboard")
		}
	})

	// Remove (what the dialog's Remove does): wiki is no longer served.
	done := make(chan error, 1)
	onUI(func() {
		next := *g.dash.cfg
		next.Sites = nil
		g.actions.onApply(next, func(err error) { done <- err })
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	res, err = c.Get("https://wiki.localhost/page")
	if err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("a removed site answers %d, want 421", res.StatusCode)
		}
	}
	if saved, _ := config.Load(opts.ConfigPath); len(saved.Sites) != 0 {
		t.Errorf("the removal was not saved: %+v", saved.Sites)
	}
}

// buttonTexts joins the texts of the buttons in c, for comparing.
func buttonTexts(c *fyne.Container) string {
	var texts []string
	for _, o := range c.Objects {
		if b, ok := o.(*widget.Button); ok {
			texts = append(texts, b.Text)
		}
	}
	return strings.Join(texts, ",")
}

// The editor keeps what it does not show: an outpost's trust from the
// config file survives an edit of the site; and with the demo app as the
// only other site, an outpost's address is asked for instead.
func TestSiteEditorOutpostChoices(t *testing.T) {
	a := test.NewTempApp(t)
	w := a.NewWindow("Gatehouse")
	t.Cleanup(w.Close)
	holdUI(t)
	serving := config.Config{Hostname: "demo.localhost", Upstream: config.UpstreamDemo, TLS: config.TLSSelfSigned,
		Sites: []config.Site{{Hostname: "wiki.localhost", Upstream: "http://127.0.0.1:1",
			ForwardAuth: &config.ForwardAuth{URL: "https://authentik.lan:9443", Fingerprint: "ab:cd"}}}}
	var applied []config.Config
	ed := newSiteEditor(w, &preflight.Checker{}, serving, "WIKI.localhost", func(c config.Config) { applied = append(applied, c) }, func() {})
	if ed.adding || ed.outpost.Selected != outpostElsewhere || ed.outpostURL.Text != "https://authentik.lan:9443" || !ed.outpostURL.Visible() {
		t.Fatalf("editing wiki: adding %v, outpost %q at %q", ed.adding, ed.outpost.Selected, ed.outpostURL.Text)
	}
	if !slices.Equal(ed.outpost.Options, []string{outpostElsewhere}) {
		t.Errorf("outpost choices %v: the demo app and the site itself are not authentik", ed.outpost.Options)
	}
	retype(ed.upstream, "http://127.0.0.1:2")
	fa := ed.config().Sites[0].ForwardAuth
	if fa == nil || fa.URL != "https://authentik.lan:9443" || fa.Fingerprint != "ab:cd" || ed.config().Sites[0].Upstream != "http://127.0.0.1:2" {
		t.Errorf("after an edit: %+v", ed.config().Sites[0])
	}

	// A refusal is shown beside its field, and nothing else is.
	ed.applied(config.ValidationErrors{{Field: config.SiteField(0, config.FieldUpstream), Message: "no answer"}})
	if ed.fieldErrs[2].field != config.SiteField(0, config.FieldUpstream) || ed.fieldErrs[2].Text != "no answer" || !strings.Contains(ed.notice.Text, "Not applied") {
		t.Errorf("refusal shown as %q beside %s, notice %q", ed.fieldErrs[2].Text, ed.fieldErrs[2].field, ed.notice.Text)
	}
	if len(applied) != 0 {
		t.Error("applied without Add site")
	}

	// Adding with only the demo app: sign-in asks for the outpost's address.
	ed = newSiteEditor(w, &preflight.Checker{}, config.Config{Hostname: "demo.localhost", Upstream: config.UpstreamDemo, TLS: config.TLSSelfSigned}, "", func(config.Config) {}, func() {})
	ed.signIn.SetChecked(true)
	retype(ed.hostname, "app.localhost")
	retype(ed.upstream, "http://127.0.0.1:3")
	if ed.outpost.Selected != outpostElsewhere || !ed.outpostURL.Visible() {
		t.Fatalf("outpost %q, address field shown %v", ed.outpost.Selected, ed.outpostURL.Visible())
	}
	if !ed.check.Disabled() {
		t.Error("Check site enabled without the outpost's address")
	}
	retype(ed.outpostURL, "http://outpost.lan:9000")
	if got := ed.config().Sites[0].ForwardAuth; got == nil || *got != (config.ForwardAuth{URL: "http://outpost.lan:9000"}) || ed.check.Disabled() {
		t.Errorf("forward auth %+v, Check site disabled %v", got, ed.check.Disabled())
	}
}

// Remove… asks before a site stops being served; a site that others sign
// visitors in through is not removed: the dashboard says which sites use
// it, and nothing is applied.
func TestRemoveSite(t *testing.T) {
	a := test.NewTempApp(t)
	d, _, w := newTestDashboard(t, a)
	applied := 0
	d.actions.onApply = func(config.Config, func(error)) { applied++ }
	cfg := config.Config{Hostname: "demo.localhost", Upstream: config.UpstreamDemo, Sites: []config.Site{
		{Hostname: "sso.localhost", Upstream: "http://127.0.0.1:1"},
		{Hostname: "wiki.localhost", Upstream: "http://127.0.0.1:2", ForwardAuth: &config.ForwardAuth{Site: "SSO.localhost"}},
	}}
	onUI(func() {
		d.setup(cfg)
		d.confirmRemoveSite("sso.localhost")
		text := allText(w.Canvas().Overlays().Top())
		if !strings.Contains(text, "wiki.localhost signs visitors in with authentik at sso.localhost") {
			t.Errorf("the dialog says %q", text)
		}
	})
	if applied != 0 {
		t.Error("applied a setup without the site others sign in through")
	}

	// Removing wiki asks first, then applies the setup without it.
	var got config.Config
	d.actions.onApply = func(c config.Config, done func(error)) { applied++; got = c; done(nil) }
	onUI(func() {
		w.Canvas().Overlays().Top().Hide()
		w.Canvas().Overlays().Remove(w.Canvas().Overlays().Top())
		d.confirmRemoveSite("wiki.localhost")
		top := w.Canvas().Overlays().Top()
		if !strings.Contains(allText(top), "Gatehouse stops serving wiki.localhost") {
			t.Fatalf("the confirmation says %q", allText(top))
		}
		if applied != 0 {
			t.Fatal("applied before the confirmation")
		}
		test.Tap(findButton(top, "Yes"))
	})
	if applied != 1 || len(got.Sites) != 1 || got.Sites[0].Hostname != "sso.localhost" {
		t.Errorf("applied %d times, sites %+v; want once, without wiki", applied, got.Sites)
	}
}
