package proxyengine

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gorilla/websocket"
)

// The session cookies the stand-in outpost knows.
const (
	validSession = "authentik_proxy_5f3a=valid"
	slowSession  = "authentik_proxy_5f3a=slow"   // the check never answers in time
	hugeSession  = "authentik_proxy_5f3a=huge"   // a refusal with a 1 MiB body
	badProvider  = "authentik_proxy_5f3a=nomode" // 404: the provider is not in forward auth mode
	basicSession = "authentik_proxy_5f3a=basic"  // a pass with HTTP Basic credentials and a renewed cookie
)

// fakeOutpost stands in for an authentik outpost as its documentation and
// code describe it. /outpost.goauthentik.io/auth/caddy rebuilds the
// visitor's URL from X-Forwarded-Proto, -Host and -Uri (500 "configuration
// error" without them), answers 200 with the X-Authentik-* headers for a
// valid session cookie, 200 without them for a path allowed without
// signing in (/public), and otherwise redirects to
// /outpost.goauthentik.io/start?rd=<that URL> with a cookie of its own.
// Its other pages (start, callback, sign_out) answer with their path.
type fakeOutpost struct {
	*httptest.Server
	checks  atomic.Int32
	mu      sync.Mutex
	seen    []*http.Request // every request, headers as received
	revoked atomic.Bool     // the valid session has ended
	release chan struct{}   // closed at cleanup: slow checks end
}

func newFakeOutpost(t testing.TB, tls bool) *fakeOutpost {
	o := &fakeOutpost{release: make(chan struct{})}
	h := http.HandlerFunc(o.serve)
	if tls {
		o.Server = httptest.NewTLSServer(h)
	} else {
		o.Server = httptest.NewServer(h)
	}
	t.Cleanup(func() { close(o.release); o.Close() })
	return o
}

func (o *fakeOutpost) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.seen = append(o.seen, r.Clone(r.Context()))
	o.mu.Unlock()
	if r.URL.Path != forwardAuthCheckPath {
		http.SetCookie(w, &http.Cookie{Name: "authentik_proxy_5f3a", Value: "from-" + strings.TrimPrefix(r.URL.Path, forwardAuthPrefix)})
		fmt.Fprintf(w, "outpost page %s?%s", r.URL.Path, r.URL.RawQuery)
		return
	}
	o.checks.Add(1)
	proto, host, uri := r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Uri")
	if proto == "" || host == "" || uri == "" {
		http.Error(w, "configuration error", http.StatusInternalServerError)
		return
	}
	cookie := r.Header.Get("Cookie")
	switch {
	case strings.Contains(cookie, basicSession) && !o.revoked.Load():
		// A provider that sends HTTP Basic credentials, renewing its cookie.
		w.Header().Set("X-Authentik-Username", "bob")
		w.Header().Set("Authorization", "Basic Ym9iOnNlY3JldA==")
		http.SetCookie(w, &http.Cookie{Name: "authentik_proxy_5f3a", Value: "renewed"})
		return
	case strings.Contains(cookie, validSession) && !o.revoked.Load():
		for _, k := range authentikHeaders {
			w.Header().Set(k, "value of "+k)
		}
		w.Header().Set("X-Authentik-Username", "akadmin")
		w.Header().Set("X-Authentik-Groups", "admins|users")
		w.Header().Set("X-Authentik-Extra", "not on the list")
		w.Header().Set("User-Agent", r.Header.Get("User-Agent"))
		return
	case strings.Contains(cookie, slowSession):
		select {
		case <-r.Context().Done():
		case <-o.release:
		}
		return
	case strings.Contains(cookie, hugeSession):
		w.WriteHeader(http.StatusUnauthorized)
		w.Write(make([]byte, 1<<20))
		return
	case strings.Contains(cookie, badProvider):
		http.NotFound(w, r)
		return
	case strings.HasPrefix(uri, "/public"):
		return // allowed without signing in: a pass without a user
	}
	http.SetCookie(w, &http.Cookie{Name: "authentik_proxy_5f3a", Value: "pending"})
	rd := url.Values{"rd": {proto + "://" + host + uri}}
	http.Redirect(w, r, proto+"://"+host+"/outpost.goauthentik.io/start?"+rd.Encode(), http.StatusFound)
}

func (o *fakeOutpost) requests() []*http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*http.Request(nil), o.seen...)
}

func (o *fakeOutpost) lastCheck(t *testing.T) *http.Request {
	t.Helper()
	rs := o.requests()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].URL.Path == forwardAuthCheckPath {
			return rs[i]
		}
	}
	t.Fatal("the outpost was never asked")
	return nil
}

// protectedApp is the app behind forward auth: it records what reaches it
// from visitors.
type protectedApp struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newProtectedApp(t testing.TB) *protectedApp {
	a := &protectedApp{}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == config.DefaultHealthPath {
			return // the engine's own health checks, which need no sign-in
		}
		body, _ := io.ReadAll(r.Body)
		c := r.Clone(r.Context())
		a.mu.Lock()
		a.seen = append(a.seen, c)
		a.mu.Unlock()
		fmt.Fprintf(w, "app %s %s body=%s", r.Method, r.URL.RequestURI(), body)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *protectedApp) requests() []*http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*http.Request(nil), a.seen...)
}

// protectedConfig is testConfig for app, protected by outpost.
func protectedConfig(t testing.TB, app, outpost *httptest.Server) config.Config {
	cfg := testConfig(t, app)
	cfg.ForwardAuth = &config.ForwardAuth{URL: outpost.URL}
	if outpost.TLS != nil {
		sum := sha256.Sum256(outpost.Certificate().Raw)
		cfg.ForwardAuth.Fingerprint = upstream.FormatFingerprint(sum[:])
	}
	return cfg
}

func startProtected(t *testing.T, tlsOutpost bool, setup ...func(*Engine)) (*Engine, *protectedApp, *fakeOutpost) {
	app, outpost := newProtectedApp(t), newFakeOutpost(t, tlsOutpost)
	return startEngine(t, protectedConfig(t, app.Server, outpost.Server), setup...), app, outpost
}

func do(t *testing.T, c *http.Client, method, path, cookie string, hdr http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, engineURL(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestForwardAuthSendsVisitorsWithoutSessionToSignIn: the outpost's
// redirect and cookie reach the visitor as they were; the app is never
// asked. The check carries what authentik reads, for the public name.
func TestForwardAuthSendsVisitorsWithoutSessionToSignIn(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			e, app, outpost := startProtected(t, false)
			c := httpClient(t, e, h2)
			resp, _ := do(t, c, http.MethodPost, "/app/page?x=1&y=%2F", "other=1", http.Header{"User-Agent": {"test-browser"}, "X-Original-Url": {"https://evil.example/"}}, "form=data")
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d, want the outpost's 302", resp.StatusCode)
			}
			wantLoc := "https://gatehouse.test/outpost.goauthentik.io/start?rd=" + url.QueryEscape("https://gatehouse.test/app/page?x=1&y=%2F")
			if got := resp.Header.Get("Location"); got != wantLoc {
				t.Errorf("Location %q, want %q", got, wantLoc)
			}
			if got := resp.Header.Get("Set-Cookie"); !strings.Contains(got, "authentik_proxy_5f3a=pending") {
				t.Errorf("Set-Cookie %q, want the outpost's cookie", got)
			}
			if n := len(app.requests()); n != 0 {
				t.Errorf("the app got %d requests, want none", n)
			}
			chk := outpost.lastCheck(t)
			want := map[string]string{
				"X-Forwarded-Method": "POST", "X-Forwarded-Proto": "https", "X-Forwarded-Host": testHostname,
				"X-Forwarded-Uri": "/app/page?x=1&y=%2F", "X-Forwarded-For": "127.0.0.1", "Cookie": "other=1",
				"User-Agent": "test-browser", "X-Original-Url": "", "Content-Length": "", "Content-Type": "",
			}
			for k, v := range want {
				if got := chk.Header.Get(k); got != v {
					t.Errorf("the check's %s = %q, want %q", k, got, v)
				}
			}
			if chk.Method != http.MethodGet || chk.Host != testHostname || chk.ContentLength > 0 {
				t.Errorf("the check was %s Host %q with %d body bytes, want a GET for %s without a body", chk.Method, chk.Host, chk.ContentLength, testHostname)
			}
		})
	}
}

// TestForwardAuthRefusesDotSegments: a path whose dot segments would make
// the outpost judge one page (a public one) and the app serve another is
// refused before either is asked, in every spelling and both protocols.
func TestForwardAuthRefusesDotSegments(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			e, app, outpost := startProtected(t, false)
			c := httpClient(t, e, h2)
			for _, path := range []string{
				"/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2e%2fadmin", "/public/..%5cadmin",
				"/public/./../admin", "/outpost.goauthentik.io/../admin", "/public/.",
			} {
				if resp, body := do(t, c, http.MethodGet, path, "", nil, ""); resp.StatusCode != http.StatusBadRequest {
					t.Errorf("GET %s: %d %q, want 400", path, resp.StatusCode, firstLine([]byte(body)))
				}
			}
			if n, m := len(app.requests()), len(outpost.requests()); n != 0 || m != 0 {
				t.Errorf("the app got %d requests and the outpost %d, want none", n, m)
			}
			// Dots inside a segment are a name, not a step up.
			if resp, _ := do(t, c, http.MethodGet, "/public/..a/.b/c..", "", nil, ""); resp.StatusCode != http.StatusOK {
				t.Errorf("GET /public/..a/.b/c..: %d, want the app's 200", resp.StatusCode)
			}
		})
	}
}

// TestForwardAuthLetsSignedInVisitorsThrough: the app gets the request,
// its body and cookies, and the outpost's identity headers on the list
// (no others).
func TestForwardAuthLetsSignedInVisitorsThrough(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			e, app, _ := startProtected(t, true)
			resp, body := do(t, httpClient(t, e, h2), http.MethodPut, "/api/v1/item?id=7", validSession+"; app=1", nil, "payload")
			if resp.StatusCode != http.StatusOK || body != "app PUT /api/v1/item?id=7 body=payload" {
				t.Fatalf("got %d %q, want the app's answer", resp.StatusCode, body)
			}
			got := app.requests()[0]
			for _, k := range authentikHeaders {
				want := "value of " + k
				switch k {
				case "X-Authentik-Username":
					want = "akadmin"
				case "X-Authentik-Groups":
					want = "admins|users"
				}
				if v := got.Header.Values(k); len(v) != 1 || v[0] != want {
					t.Errorf("the app got %s = %q, want %q", k, v, want)
				}
			}
			if v := got.Header.Get("X-Authentik-Extra"); v != "" {
				t.Errorf("the app got X-Authentik-Extra %q, which is not on the list", v)
			}
			if v := got.Header.Get("Cookie"); v != validSession+"; app=1" {
				t.Errorf("the app got Cookie %q", v)
			}
		})
	}
}

// TestForwardAuthPassesTheOutpostsCredentialsAndCookie: a pass's
// Authorization replaces the visitor's for the app, and its Set-Cookie
// reaches the visitor with the app's answer, but only from a fresh check:
// a cached pass renews nothing. Without one the visitor's own
// Authorization reaches the app.
func TestForwardAuthPassesTheOutpostsCredentialsAndCookie(t *testing.T) {
	e, app, _ := startProtected(t, false)
	c := httpClient(t, e, false)
	resp, body := do(t, c, http.MethodGet, "/a", basicSession, http.Header{"Authorization": {"Bearer visitor"}}, "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "app GET /a") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := app.requests()[0].Header.Values("Authorization"); len(got) != 1 || got[0] != "Basic Ym9iOnNlY3JldA==" {
		t.Errorf("the app got Authorization %q, want the outpost's", got)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "authentik_proxy_5f3a=renewed") {
		t.Errorf("the visitor got Set-Cookie %q, want the outpost's renewal", got)
	}
	resp, _ = do(t, c, http.MethodGet, "/b", basicSession, http.Header{"Authorization": {"Bearer visitor"}}, "")
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("a cached pass gave Set-Cookie %q", got)
	}
	if got := app.requests()[1].Header.Get("Authorization"); got != "Basic Ym9iOnNlY3JldA==" {
		t.Errorf("with a cached pass the app got Authorization %q", got)
	}
	do(t, c, http.MethodGet, "/c", validSession, http.Header{"Authorization": {"Bearer visitor"}}, "")
	if got := app.requests()[2].Header.Get("Authorization"); got != "Bearer visitor" {
		t.Errorf("without the outpost's credentials the app got Authorization %q, want the visitor's", got)
	}
}

// spoofedHeaders are X-Authentik-* headers in spellings a visitor might
// try, raw as written on the wire.
var spoofedHeaders = []string{
	"X-Authentik-Username: evil", "x-authentik-groups: admins", "X-AUTHENTIK-META-APP: evil",
	"X_Authentik_Username: evil", "x-authentik_uid: evil", "X-Authentik-Custom: evil",
	"X-Authentik-Email: evil@example.com",
}

// TestForwardAuthSpoofedHeadersNeverReachTheApp: whatever X-Authentik-*
// headers a visitor sends, over HTTP/1.1 (raw, so no client canonicalizes
// them) or HTTP/2, neither the check nor the app sees them; the app sees
// the outpost's alone, even when the visitor's Connection header names
// them, and none at all on a path the outpost lets through without
// signing in.
func TestForwardAuthSpoofedHeadersNeverReachTheApp(t *testing.T) {
	e, app, outpost := startProtected(t, false)
	for _, tc := range []struct {
		name, path, cookie, wantUser string
	}{
		{"signed in", "/a", validSession, "akadmin"},
		{"public path", "/public/x", "", ""},
		{"not signed in", "/b", "", "-"}, // "-": the app must not be reached
	} {
		before := len(app.requests())
		// HTTP/1.1, raw.
		conn, err := tlsDial(&net.Dialer{}, e.HTTPSAddr().String(), clientTLS(t, e, "http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		req := "GET " + tc.path + " HTTP/1.1\r\nHost: " + testHostname + "\r\nConnection: close, X-Authentik-Username\r\n"
		if tc.cookie != "" {
			req += "Cookie: " + tc.cookie + "\r\n"
		}
		req += strings.Join(spoofedHeaders, "\r\n") + "\r\n\r\n"
		io.WriteString(conn, req)
		raw, _ := io.ReadAll(conn)
		conn.Close()
		// HTTP/2.
		hdr := http.Header{}
		for _, h := range spoofedHeaders {
			k, v, _ := strings.Cut(h, ": ")
			hdr[k] = []string{v}
		}
		resp, _ := do(t, httpClient(t, e, true), http.MethodGet, tc.path, tc.cookie, hdr, "")

		reached := app.requests()[before:]
		if tc.wantUser == "-" {
			if len(reached) != 0 || resp.StatusCode != http.StatusFound || !strings.HasPrefix(string(raw), "HTTP/1.1 302") {
				t.Errorf("%s: the app got %d requests (HTTP/2 answer %d, HTTP/1.1 %q), want none and redirects", tc.name, len(reached), resp.StatusCode, firstLine(raw))
			}
		} else if len(reached) != 2 {
			t.Fatalf("%s: the app got %d requests, want 2 (HTTP/1.1 %q, HTTP/2 %d)", tc.name, len(reached), firstLine(raw), resp.StatusCode)
		}
		for _, r := range reached {
			for k, v := range r.Header {
				if strings.HasPrefix(strings.ReplaceAll(strings.ToLower(k), "_", "-"), "x-authentik-") && k != "X-Authentik-Username" && !strings.HasPrefix(v[0], "value of ") && v[0] != "admins|users" {
					t.Errorf("%s: the app got %s: %q", tc.name, k, v)
				}
			}
			if got := strings.Join(r.Header.Values("X-Authentik-Username"), ","); got != tc.wantUser {
				t.Errorf("%s: the app got X-Authentik-Username %q, want %q", tc.name, got, tc.wantUser)
			}
		}
		for _, r := range outpost.requests() {
			for k, v := range r.Header {
				if strings.Contains(strings.ToLower(k), "authentik") {
					t.Errorf("%s: the outpost got %s: %q from the visitor", tc.name, k, v)
				}
			}
		}
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// TestForwardAuthOutpostPathsGoToTheOutpost: start, callback and sign_out
// on the site's name reach the outpost with their query and the public
// Host, never the app, and the outpost's cookies come back.
func TestForwardAuthOutpostPathsGoToTheOutpost(t *testing.T) {
	e, app, outpost := startProtected(t, true)
	c := httpClient(t, e, true)
	for _, path := range []string{"/outpost.goauthentik.io/callback?X-authentik-auth-callback=true&code=abc&state=xyz", "/outpost.goauthentik.io/start?rd=https%3A%2F%2Fgatehouse.test%2F", "/outpost.goauthentik.io/sign_out"} {
		resp, body := do(t, c, http.MethodGet, path, "", http.Header{"X-Authentik-Username": {"evil"}}, "")
		p, q, _ := strings.Cut(path, "?")
		if resp.StatusCode != http.StatusOK || body != "outpost page "+p+"?"+q {
			t.Errorf("%s: %d %q, want the outpost's page", path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(got, "authentik_proxy_5f3a=from-") {
			t.Errorf("%s: Set-Cookie %q, want the outpost's", path, got)
		}
		rs := outpost.requests()
		last := rs[len(rs)-1]
		if last.Host != testHostname || last.Header.Get("X-Forwarded-Proto") != "https" || last.Header.Get("X-Forwarded-Host") != testHostname || last.Header.Get("X-Authentik-Username") != "" {
			t.Errorf("%s: the outpost got Host %q, X-Forwarded-Proto %q, X-Forwarded-Host %q, X-Authentik-Username %q", path, last.Host,
				last.Header.Get("X-Forwarded-Proto"), last.Header.Get("X-Forwarded-Host"), last.Header.Get("X-Authentik-Username"))
		}
	}
	if n := len(app.requests()); n != 0 {
		t.Errorf("the app got %d requests, want none", n)
	}
	if n := outpost.checks.Load(); n != 0 {
		t.Errorf("%d checks for the outpost's own pages, want none", n)
	}
}

// TestForwardAuthChecksWebSockets: an upgrade without a session gets the
// outpost's redirect and never reaches the app; with one it opens, and the
// app's handshake carries the outpost's identity, not the visitor's.
func TestForwardAuthChecksWebSockets(t *testing.T) {
	up, outpost := newWSUpstream(t), newFakeOutpost(t, false)
	e := startEngine(t, protectedConfig(t, up.Server, outpost.Server))
	hdr := http.Header{"Origin": {"https://" + testHostname}, "X-Authentik-Username": {"evil"}, "X_Authentik_Groups": {"admins"}}
	_, resp, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), hdr)
	if err == nil || resp == nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("without a session: err %v, resp %v; want the outpost's 302", err, resp)
	}
	up.mu.Lock()
	n := len(up.requests)
	up.mu.Unlock()
	if n != 0 {
		t.Fatalf("the app saw %d WebSocket handshakes without a session, want none", n)
	}
	if got := outpost.lastCheck(t).Header; got.Get("X-Forwarded-Uri") != "/ws/client/" || got.Get("Upgrade") != "" || got.Get("Connection") != "" {
		t.Errorf("the check carried Uri %q, Upgrade %q, Connection %q", got.Get("X-Forwarded-Uri"), got.Get("Upgrade"), got.Get("Connection"))
	}

	hdr.Set("Cookie", validSession)
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), hdr)
	if err != nil {
		t.Fatalf("with a session: %v", err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("hello"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hello" {
		t.Fatalf("echo: %q, %v", msg, err)
	}
	h := up.lastRequest().Header
	if h.Get("X-Authentik-Username") != "akadmin" || h.Get("X-Authentik-Groups") != "admins|users" || h.Get("X_Authentik_Groups") != "" {
		t.Errorf("the app's handshake had X-Authentik-Username %q, -Groups %q, X_Authentik_Groups %q", h.Get("X-Authentik-Username"), h.Get("X-Authentik-Groups"), h.Get("X_Authentik_Groups"))
	}
}

// TestForwardAuthOutpostDownOrSlow: no answer from the outpost is a 502
// or 504 page naming the sign-in service, never a pass.
func TestForwardAuthOutpostDownOrSlow(t *testing.T) {
	app := newProtectedApp(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	cfg := testConfig(t, app.Server)
	cfg.ForwardAuth = &config.ForwardAuth{URL: down}
	e := startEngine(t, cfg)
	for _, h2 := range []bool{false, true} {
		resp, body := do(t, httpClient(t, e, h2), http.MethodGet, "/", validSession, nil, "")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "sign-in service is not reachable") {
			t.Errorf("outpost down (h2 %v): %d %q, want 502 naming the sign-in service", h2, resp.StatusCode, body)
		}
		// The outpost's own pages too.
		if resp, _ := do(t, httpClient(t, e, h2), http.MethodGet, "/outpost.goauthentik.io/start", "", nil, ""); resp.StatusCode != http.StatusBadGateway {
			t.Errorf("outpost page with the outpost down: %d, want 502", resp.StatusCode)
		}
	}

	e2, app2, _ := startProtected(t, false, func(e *Engine) { e.current().sites[0].auth.timeout = 300 * time.Millisecond })
	for _, h2 := range []bool{false, true} {
		start := time.Now()
		resp, body := do(t, httpClient(t, e2, h2), http.MethodGet, "/", slowSession, nil, "")
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "sign-in service took too long") {
			t.Errorf("slow outpost (h2 %v): %d %q, want 504 naming the sign-in service", h2, resp.StatusCode, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the 504 took %s", d)
		}
	}
	if n := len(app.requests()) + len(app2.requests()); n != 0 {
		t.Errorf("the app got %d requests while the outpost failed, want none", n)
	}
}

// TestForwardAuthRelaysRefusalsWithinLimits: a refusal other than a
// redirect passes as it is (404: the provider is not in forward auth
// mode); one too large to relay is a 502, not a pass.
func TestForwardAuthRelaysRefusalsWithinLimits(t *testing.T) {
	e, app, _ := startProtected(t, false)
	c := httpClient(t, e, false)
	if resp, body := do(t, c, http.MethodGet, "/", badProvider, nil, ""); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "404 page not found") {
		t.Errorf("404 from the outpost: %d %q, want it relayed", resp.StatusCode, body)
	}
	if resp, body := do(t, c, http.MethodGet, "/", hugeSession, nil, ""); resp.StatusCode != http.StatusBadGateway || len(body) > forwardAuthMaxBody {
		t.Errorf("a 1 MiB refusal: %d with %d bytes, want a 502 page", resp.StatusCode, len(body))
	}
	if n := len(app.requests()); n != 0 {
		t.Errorf("the app got %d requests, want none", n)
	}
}

// TestForwardAuthCache: a signed-in visitor's pass is reused for a few
// seconds, and only that: not across cookies, not for a pass without a
// user, not after sign_out, not for authentik's query signatures, and not
// once it expires.
func TestForwardAuthCache(t *testing.T) {
	e, _, outpost := startProtected(t, false)
	c := httpClient(t, e, false)
	get := func(path, cookie string) int {
		t.Helper()
		resp, _ := do(t, c, http.MethodGet, path, cookie, nil, "")
		return resp.StatusCode
	}
	checks := func() int32 { return outpost.checks.Load() }

	get("/a", validSession)
	get("/b", validSession)
	if n := checks(); n != 1 {
		t.Errorf("two requests of one session asked the outpost %d times, want 1", n)
	}
	get("/a", validSession+"; other=2")
	if n := checks(); n != 2 {
		t.Errorf("other cookies: %d checks, want 2", n)
	}
	get("/public/1", "nosession=1")
	get("/public/2", "nosession=1")
	if n := checks(); n != 4 {
		t.Errorf("passes without a user: %d checks, want 4 (none cached)", n)
	}
	get("/a?X-authentik-logout=true", validSession)
	get("/a?x%2Dauthentik-logout=true", validSession)
	if n := checks(); n != 6 {
		t.Errorf("authentik's query signatures: %d checks, want 6 (never from the cache)", n)
	}
	get("/outpost.goauthentik.io/sign_out", validSession)
	outpost.revoked.Store(true)
	if s := get("/a", validSession); s != http.StatusFound {
		t.Errorf("after sign_out: %d, want the redirect to sign in", s)
	}

	// Expiry.
	outpost.revoked.Store(false)
	e.current().sites[0].auth.cache.forget(authCacheKey(&http.Request{Header: http.Header{"Cookie": {validSession}}, URL: &url.URL{}}))
	get("/a", validSession)
	outpost.revoked.Store(true)
	if s := get("/a", validSession); s != http.StatusOK {
		t.Errorf("within the TTL: %d, want the cached pass", s)
	}
	time.Sleep(forwardAuthCacheTTL + 200*time.Millisecond)
	if s := get("/a", validSession); s != http.StatusFound {
		t.Errorf("after the TTL: %d, want the outpost asked again and the redirect", s)
	}
}

// TestForwardAuthChecksVisitorsBehindATrustedProxy: a visitor counted by
// the per-visitor limit (not on loopback) is checked too, and the check
// names it as the app's request does.
func TestForwardAuthChecksVisitorsBehindATrustedProxy(t *testing.T) {
	app, outpost := newProtectedApp(t), newFakeOutpost(t, false)
	cfg := protectedConfig(t, app.Server, outpost.Server)
	cfg.TrustedProxies = []string{"127.0.0.1"}
	e := startEngine(t, cfg)
	c := httpClient(t, e, true)
	fwd := http.Header{"X-Forwarded-For": {"203.0.113.5"}}
	if resp, _ := do(t, c, http.MethodGet, "/x", "", fwd, ""); resp.StatusCode != http.StatusFound {
		t.Errorf("without a session: %d, want the redirect to sign in", resp.StatusCode)
	}
	if got := outpost.lastCheck(t).Header.Get("X-Forwarded-For"); got != "203.0.113.5, 127.0.0.1" {
		t.Errorf("the check's X-Forwarded-For = %q, want the visitor and the proxy", got)
	}
	if resp, _ := do(t, c, http.MethodGet, "/x", validSession, fwd, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("with a session: %d, want the app", resp.StatusCode)
	}
	if rs := app.requests(); len(rs) != 1 || rs[0].Header.Get("X-Authentik-Username") != "akadmin" {
		t.Errorf("the app got %d requests, want one from akadmin", len(rs))
	}
}

// FuzzForwardAuthPath sends any request target to a protected site whose
// outpost lets /public and what is below it through without signing in
// and sends everyone else to sign in. The app must receive a request only
// when the outpost judged the very target it receives (X-Forwarded-Uri
// byte for byte, so no difference in parsing or cleaning between the two
// lets a visitor past) and let it through; the outpost's own paths never
// reach the app.
func FuzzForwardAuthPath(f *testing.F) {
	for _, s := range []string{"/public", "/public/x?y=1", "/admin", "/public/../admin", "/public/%2e%2e/admin",
		"/public%2F..%2Fadmin", "/public/..%5cadmin", "//public/../admin", "/PUBLIC", "/public;/../admin",
		"/outpost.goauthentik.io/callback?x=1", "/public?next=/admin", "*", "https://" + testHostname + "/public/../admin",
		"/public/%00", "/public\\..\\admin", "/./public", "/public/.", "/%70ublic/x"} {
		f.Add(s)
	}
	var mu sync.Mutex
	judged := map[string]string{} // by X-Fuzz-Id: the target the outpost judged
	reached := map[string]string{}
	allowed := func(uri string) bool {
		return uri == "/public" || strings.HasPrefix(uri, "/public/") || strings.HasPrefix(uri, "/public?")
	}
	outpost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != forwardAuthCheckPath {
			io.WriteString(w, "outpost page")
			return
		}
		uri := r.Header.Get("X-Forwarded-Uri")
		mu.Lock()
		judged[r.Header.Get("X-Fuzz-Id")] = uri
		mu.Unlock()
		if !allowed(uri) {
			http.Redirect(w, r, "/outpost.goauthentik.io/start", http.StatusFound)
		}
	}))
	defer outpost.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Fuzz-Id"); id != "" {
			mu.Lock()
			reached[id] = r.RequestURI
			mu.Unlock()
		}
	}))
	defer app.Close()
	cfg := testConfig(f, app)
	cfg.ForwardAuth = &config.ForwardAuth{URL: outpost.URL}
	e := startEngine(f, cfg)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, target string) {
		if target == "" || strings.ContainsAny(target, " \t\r\n") {
			return // not one request target
		}
		id := strconv.FormatInt(n.Add(1), 10)
		rawExchange(t, e, "GET "+target+" HTTP/1.1\r\nHost: "+testHostname+"\r\nX-Fuzz-Id: "+id+"\r\nConnection: close\r\n\r\n")
		mu.Lock()
		got, ok := reached[id]
		uri, asked := judged[id]
		mu.Unlock()
		if !ok {
			return
		}
		if !asked || got != uri || !allowed(uri) {
			t.Fatalf("target %q reached the app as %q; the outpost judged %q (asked: %v)", target, got, uri, asked)
		}
		if strings.HasPrefix(got, forwardAuthPrefix) {
			t.Fatalf("target %q: the outpost's path %q reached the app", target, got)
		}
	})
}

// A pass whose check was under way when a sign-out forgot the cache is
// not kept: the session it vouched for may have just ended.
func TestForwardAuthCacheDropsAPassThatRacedASignOut(t *testing.T) {
	c := &authCache{ttl: time.Minute, max: 10}
	key := authCacheKey(&http.Request{Header: http.Header{"Cookie": {validSession}}, URL: &url.URL{}})
	id := http.Header{"X-Authentik-Username": {"akadmin"}}

	began := c.begin() // the check is sent
	c.forget(key)      // sign_out arrives meanwhile
	c.put(key, id, began)
	if _, ok := c.get(key); ok {
		t.Error("a pass checked before the sign-out was kept")
	}
	c.put(key, id, c.begin()) // a check after it
	if got, ok := c.get(key); !ok || got.Get("X-Authentik-Username") != "akadmin" {
		t.Error("a pass checked after the sign-out was not kept")
	}
}

// TestForwardAuthOutlivesAnEdit: settings applied without a change to the
// site's outpost keep its checks' keepalive connection and its cached
// passes; pointing the site at another outpost starts afresh, so no pass
// the old one gave is served for the new one.
func TestForwardAuthOutlivesAnEdit(t *testing.T) {
	app := newProtectedApp(t)
	outpost := newFakeOutpost(t, true)
	cfg := protectedConfig(t, app.Server, outpost.Server)
	e := startEngine(t, cfg)
	c := httpClient(t, e, false)
	get := func(cookie string) {
		t.Helper()
		if resp, body := do(t, c, http.MethodGet, "/a", cookie, nil, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("with cookie %q: %d %s", cookie, resp.StatusCode, body)
		}
	}
	get(validSession)
	first := outpost.lastCheck(t).RemoteAddr

	cfg.HSTS = "300" // any edit that leaves the outpost as it is
	if err := e.Apply(t.Context(), cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	get(validSession)
	if n := outpost.checks.Load(); n != 1 {
		t.Errorf("after an edit: %d checks, want 1 (the pass from before, cached)", n)
	}
	get(validSession + "; other=2") // a visitor not in the cache
	if n := outpost.checks.Load(); n != 2 {
		t.Fatalf("%d checks, want 2", n)
	}
	if got := outpost.lastCheck(t).RemoteAddr; got != first {
		t.Errorf("the check after the edit came from %s, the one before from %s: the pool to the outpost was dropped", got, first)
	}

	other := newFakeOutpost(t, true)
	cfg = protectedConfig(t, app.Server, other.Server)
	if err := e.Apply(t.Context(), cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	get(validSession)
	if n := other.checks.Load(); n != 1 {
		t.Errorf("a new outpost was asked %d times, want 1: a pass the old one gave was served", n)
	}
}
