package ui

import (
	"context"
	"net/url"
	"slices"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
)

// authentikForwardAuthDocs is authentik's guide to forward auth, linked
// beside the steps still to take in authentik.
const authentikForwardAuthDocs = "https://docs.goauthentik.io/add-secure-apps/providers/proxy/forward_auth/"

// outpostElsewhere is the sign-in choice of an outpost that is not one of
// the sites: a standalone proxy outpost, or authentik served elsewhere.
const outpostElsewhere = "An outpost at another address…"

// siteEditor adds a site to the running proxy, or edits one it lists: its
// public name, its app (Test connection, with the Upstream step's ways to
// trust a certificate) and whether visitors must sign in with authentik
// first. Check site runs the site's pre-flight checks and shows, for
// forward auth, what is still to do in authentik; Add site (Save) applies
// it live. The first site is the wizard's (Edit setup), not this screen's.
type siteEditor struct {
	win     fyne.Window
	checker *preflight.Checker
	serving config.Config // the setup served, which the edit changes
	adding  bool
	index   int         // the site's place in serving.Sites (len when adding)
	site    config.Site // as edited
	onApply func(cfg config.Config)
	onClose func()

	hostname   *widget.Entry
	upstream   *widget.Entry
	conn       *connectionCheck // Test connection, and the app's trust
	signIn     *widget.Check
	outpost    *widget.Select // the site serving authentik, or outpostElsewhere
	outpostURL *widget.Entry
	authBox    *fyne.Container // the sign-in choices, shown when ticked
	todo       *fyne.Container // the steps still to take in authentik
	check      *widget.Button
	checking   *widget.ProgressBarInfinite
	results    *fyne.Container // the site's checks
	apply      *widget.Button
	cancel     *widget.Button
	notice     *widget.Label
	hostErr    *fieldError
	fieldErrs  []*fieldError // every field's, hostErr among them
	scroll     *container.Scroll
	root       fyne.CanvasObject

	// checked holds the site's check results while they are of the site
	// as it is now: any edit drops them, and Add site waits for new ones.
	checked []preflight.Result
	// runs numbers the site's checks: only the newest one's results are
	// shown.
	runs int
}

// newSiteEditor edits the listed site of serving named hostname, or adds
// one when hostname is "".
func newSiteEditor(win fyne.Window, checker *preflight.Checker, serving config.Config, hostname string, onApply func(config.Config), onClose func()) *siteEditor {
	e := &siteEditor{win: win, checker: checker, serving: serving, onApply: onApply, onClose: onClose}
	e.index = slices.IndexFunc(serving.Sites, func(s config.Site) bool { return hostname != "" && s.Key() == config.SiteKey(hostname) })
	if e.index < 0 {
		e.adding, e.index = true, len(serving.Sites)
	} else {
		e.site = serving.Sites[e.index]
	}
	e.build()
	return e
}

func (e *siteEditor) build() {
	field := func(key config.Field) *fieldError {
		f := newFieldError(config.SiteField(e.index, key))
		e.fieldErrs = append(e.fieldErrs, f)
		return f
	}
	e.hostErr = field(config.FieldHostname)
	e.conn = newConnectionCheck(e.win, e.checker, func() config.Config { return e.serving.ForSite(e.site) }, e.setTrust, e.revalidate)
	e.hostname = widget.NewEntry()
	e.hostname.SetPlaceHolder("grafana.example.com")
	e.hostname.SetText(e.site.Hostname)
	e.hostname.OnChanged = func(h string) { e.site.Hostname = h; e.conn.forget(); e.edited() }
	e.upstream = widget.NewEntry()
	e.upstream.SetPlaceHolder("http://grafana.lan:3000")
	e.upstream.SetText(e.site.Upstream)
	e.upstream.OnChanged = func(u string) { e.site.Upstream = u; e.conn.forget(); e.edited() }
	e.upstream.OnSubmitted = func(string) { e.conn.run() }

	e.signIn = widget.NewCheck("Require sign-in with authentik", func(on bool) { e.showSignIn(); e.edited() })
	e.outpost = widget.NewSelect(e.outpostChoices(), func(string) { e.showSignIn(); e.edited() })
	e.outpostURL = widget.NewEntry()
	e.outpostURL.SetPlaceHolder("http://outpost.lan:9000")
	e.outpostURL.OnChanged = func(string) { e.edited() }
	e.outpostFromSite()
	e.authBox = container.NewVBox(
		labelled("authentik runs at", e.outpost),
		e.outpostURL,
		note("Gatehouse asks authentik's outpost about every request to this site, as authentik's own Caddy and Traefik "+
			"setups do: only visitors signed in to authentik (and allowed by its policies) reach the app, "+
			"with their name, email and groups in X-Authentik-* headers."),
		field(config.FieldForwardAuth),
	)
	e.todo = container.NewVBox()

	e.check = widget.NewButtonWithIcon("Check site", theme.SearchIcon(), e.onCheck)
	e.checking = widget.NewProgressBarInfinite()
	e.checking.Hide()
	e.results = container.NewVBox()
	verb := "Add site"
	if !e.adding {
		verb = "Save site"
	}
	e.apply = widget.NewButtonWithIcon(verb, theme.ConfirmIcon(), e.onApplyTapped)
	e.apply.Importance = widget.HighImportance
	e.cancel = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), func() { e.close() })
	e.notice = note("")
	e.notice.Importance = widget.DangerImportance
	e.notice.Hide()

	title := "Add a site"
	if !e.adding {
		title = "Edit " + e.site.Hostname
	}
	first := e.serving.AllSites()[0].Hostname
	objs := []fyne.CanvasObject{
		heading(title),
		note("Gatehouse serves this name beside " + first + ", on the same ports, " + siteCertificateNote(e.serving.TLS) +
			". Point the name's DNS at this server as you did for " + first + "."),
		labelled("Public hostname", e.hostname, e.hostErr),
		labelled("Address of the app", e.upstream, field(config.FieldUpstream)),
	}
	objs = append(objs, e.conn.objects(field(config.FieldUpstreamCA), field(config.FieldUpstreamFingerprint))...)
	objs = append(objs,
		widget.NewSeparator(),
		e.signIn, e.authBox, e.todo,
		widget.NewSeparator(),
		e.results,
	)
	form := container.NewVBox(objs...)
	footer := container.NewVBox(widget.NewSeparator(), e.notice, e.checking,
		container.NewBorder(nil, nil, e.cancel, container.NewHBox(e.check, e.apply)))
	e.scroll = container.NewVScroll(container.NewPadded(form))
	e.root = container.NewBorder(nil, footer, nil, nil, e.scroll)
	e.showSignIn()
	e.revalidate()
}

func (e *siteEditor) content() fyne.CanvasObject { return e.root }

// close leaves the editor; a check or apply still running is dropped.
func (e *siteEditor) close() {
	e.drop()
	e.onClose()
}

// drop forgets the checks and tests still running, whose results nobody
// would see: the editor or the app is going away.
func (e *siteEditor) drop() {
	e.runs++
	e.conn.stop()
}

// outpostChoices are the sites that may serve authentik for this one:
// every other site but the demo app's, and an outpost elsewhere.
func (e *siteEditor) outpostChoices() []string {
	var out []string
	for _, s := range e.serving.AllSites() {
		if s.Upstream != config.UpstreamDemo && (e.adding || s.Key() != e.serving.Sites[e.index].Key()) {
			out = append(out, s.Hostname)
		}
	}
	return append(out, outpostElsewhere)
}

// outpostFromSite shows the site's forward auth, or preselects the
// likeliest authentik for a site without: the one other sites use, or
// else the first site (authentik itself, as the wizard set it up).
func (e *siteEditor) outpostFromSite() {
	if fa := e.site.ForwardAuth; fa != nil {
		e.signIn.SetChecked(true)
		if fa.Site != "" {
			e.outpost.SetSelected(fa.Site)
		} else {
			e.outpost.SetSelected(outpostElsewhere)
			e.outpostURL.SetText(fa.URL)
		}
		return
	}
	choices := e.outpost.Options
	pick := choices[0]
	for _, s := range e.serving.AllSites() {
		if fa := s.ForwardAuth; fa != nil && fa.Site != "" && slices.Contains(choices, fa.Site) {
			pick = fa.Site
			break
		}
	}
	e.outpost.SetSelected(pick)
}

// forwardAuth is the sign-in the editor's choices describe, or nil.
func (e *siteEditor) forwardAuth() *config.ForwardAuth {
	if !e.signIn.Checked {
		return nil
	}
	if e.outpost.Selected == outpostElsewhere {
		// The outpost's trust (set in the config file) stays as it was.
		fa := config.ForwardAuth{URL: e.outpostURL.Text}
		if !e.adding {
			if was := e.serving.Sites[e.index].ForwardAuth; was != nil {
				fa.Insecure, fa.Fingerprint, fa.CA = was.Insecure, was.Fingerprint, was.CA
			}
		}
		return &fa
	}
	return &config.ForwardAuth{Site: e.outpost.Selected}
}

// config is the setup served with the site as edited.
func (e *siteEditor) config() config.Config {
	cfg := e.serving
	cfg.Sites = slices.Clone(cfg.Sites)
	if e.adding {
		cfg.Sites = append(cfg.Sites, e.site)
	} else {
		cfg.Sites[e.index] = e.site
	}
	return cfg
}

// showSignIn shows the sign-in choices while sign-in is ticked, with the
// steps still to take in authentik.
func (e *siteEditor) showSignIn() {
	if e.authBox == nil {
		return // still being built
	}
	e.authBox.Hidden = !e.signIn.Checked
	e.outpostURL.Hidden = e.outpost.Selected != outpostElsewhere
	e.authBox.Refresh()
	e.todo.Objects = nil
	if e.signIn.Checked {
		e.todo.Objects = authentikSteps(e.site.Hostname, e.outpost.Selected)
	}
	e.todo.Refresh()
}

// authentikSteps are what must be set up in authentik itself for forward
// auth to let anyone in to hostname, with a link to authentik's guide.
func authentikSteps(hostname, outpost string) []fyne.CanvasObject {
	if hostname == "" {
		hostname = "this site's hostname"
	} else {
		hostname = "https://" + hostname
	}
	where := "the authentik Embedded Outpost"
	if outpost == outpostElsewhere {
		where = "the outpost at that address"
	}
	docs, _ := url.Parse(authentikForwardAuthDocs)
	return []fyne.CanvasObject{
		widget.NewLabelWithStyle("Still to do in authentik", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		note("1. Applications > Applications > New Application: name it, then choose Proxy Provider.\n" +
			"2. In the provider, choose \u201cForward auth (single application)\u201d and set External host to " + hostname + ".\n" +
			"3. Applications > Outposts: edit " + where + " and add the application to it.\n" +
			"Until then authentik answers Gatehouse's check with 404 Not Found and visitors see that, never the app."),
		widget.NewHyperlink("authentik's guide to forward auth", docs),
	}
}

// edited runs after every change of the site: earlier results no longer
// describe it.
func (e *siteEditor) edited() {
	if e.apply == nil {
		return // still being built
	}
	e.site.ForwardAuth = e.forwardAuth()
	e.runs++
	e.checked = nil
	e.results.RemoveAll()
	e.checking.Hide()
	e.check.Enable()
	e.showSignIn()
	e.revalidate()
}

// revalidate shows the engine's errors beside the fields, and the ones
// no field here owns (such as a shared certificate file that does not
// cover the new name) below; Add site waits for a check without failures.
func (e *siteEditor) revalidate() {
	errs := config.FieldErrors(e.config().Validate())
	shown := anyShown(errs, e.fieldErrs...)
	var others []string
	for _, fe := range errs {
		if !slices.ContainsFunc(e.fieldErrs, func(f *fieldError) bool { return f.field == fe.Field }) {
			others = append(others, inAppWords(fe.Error()))
		}
	}
	e.showNotice(others...)
	setEnabled(e.check, !shown && len(others) == 0)
	setEnabled(e.apply, !shown && len(others) == 0 && e.checked != nil && len(e.blockers()) == 0)
}

// blockers are the failed checks that keep the site from being added. A
// failed forward auth check is not one: authentik may be set up after the
// site, as its steps say, and until then visitors are refused, never let
// through.
func (e *siteEditor) blockers() []string {
	var out []string
	for _, r := range e.checked {
		if r.Name != preflight.NameForwardAuth {
			out = append(out, failures(r)...)
		}
	}
	return out
}

func (e *siteEditor) showNotice(lines ...string) {
	text := ""
	for i, l := range lines {
		if i > 0 {
			text += "\n"
		}
		text += l
	}
	e.notice.SetText(text)
	e.notice.Hidden = text == ""
	e.notice.Refresh()
}

// setTrust sets one way of trusting the app's certificate (or none); the
// connection check tests again.
func (e *siteEditor) setTrust(fingerprint, caFile string, insecure bool) {
	e.site.UpstreamFingerprint, e.site.UpstreamCA, e.site.UpstreamInsecure = fingerprint, caFile, insecure
	e.edited()
}

// onCheck runs the site's pre-flight checks as the proxy would serve it.
func (e *siteEditor) onCheck() {
	cfg, host := e.config(), e.site.Hostname
	e.runs++
	run := e.runs
	e.check.Disable()
	e.apply.Disable()
	e.checking.Show()
	e.results.RemoveAll()
	checker := e.checker
	inBackground(func() []preflight.Result {
		ctx, cancel := context.WithTimeout(context.Background(), 4*preflight.DefaultTimeout)
		defer cancel()
		return checker.CheckSite(ctx, cfg, host)
	}, func(results []preflight.Result) {
		if run != e.runs {
			return
		}
		e.checking.Hide()
		e.checked = results
		e.results.Objects = append([]fyne.CanvasObject{
			widget.NewLabelWithStyle("Checks of "+host, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		}, checkList(results)...)
		e.results.Refresh()
		e.conn.offerTrust(results)
		e.revalidate()
		scrollToEnd(e.scroll) // the results are at the end of the form
		if b := e.blockers(); len(b) > 0 {
			e.showNotice("Correct what the checks marked in red, then Check site again.")
		}
	})
}

func (e *siteEditor) onApplyTapped() {
	if e.apply.Disabled() {
		return
	}
	e.apply.Disable()
	e.check.Disable()
	e.onApply(e.config())
}

// applied shows the answer to Apply: nil closes the editor; a refusal is
// shown beside the refused fields, or in plain words.
func (e *siteEditor) applied(err error) {
	if err == nil {
		e.close()
		return
	}
	e.revalidate()
	errs := config.FieldErrors(err)
	if len(errs) > 0 && anyShown(errs, e.fieldErrs...) {
		e.showNotice("Not applied: correct the settings marked in red. Gatehouse still serves the previous setup.")
		return
	}
	e.showNotice("Not applied: " + plainError(err) + " Gatehouse still serves the previous setup.")
}

// siteCertificateNote says where a new site's certificate comes from.
func siteCertificateNote(source config.TLSSource) string {
	switch source {
	case config.TLSACME:
		return "with a certificate of its own from the same certificate authority, obtained when you add it"
	case config.TLSFiles:
		return "with the certificate files of the setup, which must cover this name too"
	}
	return "with a certificate of its own from Gatehouse's local certificate authority, which browsers that trust it already accept"
}
