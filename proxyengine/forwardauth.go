package proxyengine

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// Forward auth asks an authentik outpost about each request before the
// app sees it, as authentik's Caddy and Traefik integrations do
// (docs.goauthentik.io, "Forward auth", server_caddy and server_traefik):
//
//   - a GET to <outpost>/outpost.goauthentik.io/auth/caddy with the
//     visitor's headers and cookies, X-Forwarded-Method, -Proto, -Host,
//     -Uri and -For. The outpost's Caddy and Traefik handlers rebuild the
//     visitor's URL from X-Forwarded-Proto, -Host and -Uri alone
//     (getTraefikForwardUrl in authentik's proxyv2/application); only its
//     nginx handler reads X-Original-URL or X-Original-URI, so Gatehouse
//     sends neither and drops a visitor's.
//   - a 2xx answer lets the request through with the outpost's
//     X-Authentik-* headers (authentikHeaders, the list the integrations
//     copy) and its Authorization, if it sends one (a provider that
//     passes HTTP Basic credentials to the app); its Set-Cookie goes to
//     the visitor with the app's answer. Any other answer, the redirect
//     to sign in with its cookies, goes back to the visitor as it is.
//   - /outpost.goauthentik.io/* on the site's name (start, callback,
//     sign_out) goes to the outpost, never to the app.
//
// The X-Authentik-* headers a visitor sends, in any spelling, are removed
// before the check and before the app: only the outpost's answer sets
// them. A check that gets no answer is a 502 or 504, never a pass.

const (
	// forwardAuthPrefix is the outpost's own part of every protected site.
	forwardAuthPrefix = "/outpost.goauthentik.io/"
	// forwardAuthCheckPath is the outpost's endpoint for Caddy, which
	// answers 2xx for a signed-in visitor and the redirect to sign in
	// otherwise (the nginx one answers 401 and leaves the redirect to the
	// proxy).
	forwardAuthCheckPath = "/outpost.goauthentik.io/auth/caddy"

	// forwardAuthTimeout bounds one check, from the dial to the end of the
	// answer. The outpost answers from its session store in milliseconds;
	// a visitor kept waiting longer for a check than for most pages is
	// better told the sign-in service is unreachable. It is well below
	// the 60 s default UpstreamTimeout, which covers the app's own work.
	forwardAuthTimeout = 10 * time.Second
	// forwardAuthKeepalive is the idle connections kept to the outpost.
	// Every request costs one check, so the pool must hold about as many
	// as the requests in flight; past it, connections are dialled anew
	// (see UpstreamKeepalive). 64 covers a busy household or office; the
	// surplus closes after forwardAuthIdleTimeout.
	forwardAuthKeepalive = 64
	// forwardAuthIdleTimeout closes idle connections to the outpost below
	// the 120 s after which authentik closes them itself.
	forwardAuthIdleTimeout = 90 * time.Second
	// forwardAuthMaxBody caps the body of an answer: a refusal is relayed
	// whole or not at all (authentik's redirect has a one-line body, its
	// error pages a few KiB), and a pass's body is read only to reuse the
	// connection. Headers are capped by upstream.MaxHeaderBytes.
	forwardAuthMaxBody = 64 << 10

	// forwardAuthCacheTTL is how long a signed-in visitor's pass is
	// reused without asking the outpost again. A page pulls dozens of
	// assets at once, each a check; a few seconds spare the outpost most
	// of them, while a session ended elsewhere (signed out in another
	// tab, revoked by an admin) is refused within that time.
	forwardAuthCacheTTL = 2 * time.Second
	// forwardAuthCacheMax bounds the cached passes (each a few hundred
	// bytes, the JWT being the largest); when full, no more are added
	// until some expire.
	forwardAuthCacheMax = 4096
)

// authentikHeaders are the outpost's headers the app receives, the list
// authentik's Caddy and Traefik integrations copy (groups and entitlements
// are "|"-separated).
var authentikHeaders = []string{
	"X-Authentik-Username", "X-Authentik-Groups", "X-Authentik-Entitlements",
	"X-Authentik-Email", "X-Authentik-Name", "X-Authentik-Uid", "X-Authentik-Jwt",
	"X-Authentik-Meta-Jwks", "X-Authentik-Meta-Outpost", "X-Authentik-Meta-Provider",
	"X-Authentik-Meta-App", "X-Authentik-Meta-Version",
}

// checkDroppedHeaders are visitor headers the check request does not
// carry: the body's (a check has none), and the ones Gatehouse sets or
// authentik's nginx handler reads, which a visitor must not choose.
var checkDroppedHeaders = []string{
	"Content-Length", "Content-Type", "Content-Encoding", "Expect",
	"X-Forwarded-Method", "X-Forwarded-Uri", "X-Original-Url", "X-Original-Uri",
}

// forwardAuth protects one site: it wraps the handler that forwards a
// request to the site's upstream (proxyHandler.serve).
type forwardAuth struct {
	outpost    *url.URL
	checkURL   url.URL
	publicHost string // the Host and X-Forwarded-Host the outpost receives
	hsts       bool   // Gatehouse sets Strict-Transport-Security itself
	forwarding forwarding
	trust      upstream.Trust // how the outpost's certificate is checked
	transport  *http.Transport
	outpostRP  *httputil.ReverseProxy // /outpost.goauthentik.io/*
	next       http.Handler
	timeout    time.Duration
	cache      *authCache // nil: every request is checked
	logger     *slog.Logger
}

// protect puts forward auth with the outpost fa in front of p's upstream.
// This is the hook a generation calls for a protected site; prev is the
// site's forward auth in the generation before, if it had one. When it
// asks the same outpost for the same name, its pool of connections to the
// outpost and its cached passes carry over, so an edit of the settings
// costs no new handshakes with the outpost and signs no one's pass out.
func (p *proxyHandler) protect(fa config.ForwardAuth, prev *forwardAuth) (*forwardAuth, error) {
	u, err := upstream.ParseURL(fa.URL)
	if err != nil {
		return nil, err
	}
	f := &forwardAuth{
		outpost: u, publicHost: p.publicHost, hsts: p.hsts != "", forwarding: p.forwarding,
		trust: fa.Trust(), next: p.serve, timeout: forwardAuthTimeout, logger: p.logger,
	}
	if prev != nil && *prev.outpost == *f.outpost && prev.trust == f.trust && prev.publicHost == f.publicHost {
		f.transport, f.cache = prev.transport, prev.cache
	} else {
		f.transport, err = upstream.NewTransport(u, f.trust, upstream.Pool{
			Keepalive: forwardAuthKeepalive, IdleTimeout: forwardAuthIdleTimeout, ResponseTimeout: forwardAuthTimeout,
		})
		if err != nil {
			return nil, err
		}
		f.cache = &authCache{ttl: forwardAuthCacheTTL, max: forwardAuthCacheMax}
	}
	f.checkURL = *u
	f.checkURL.Path = forwardAuthCheckPath
	f.outpostRP = &httputil.ReverseProxy{
		Rewrite:        f.rewriteToOutpost,
		ModifyResponse: f.modifyResponse,
		Transport:      f.transport,
		ErrorHandler:   f.serveError,
		BufferPool:     proxyBuffers,
		ErrorLog:       slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn),
	}
	p.serve = f
	return f, nil
}

func (f *forwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// In place, so neither the check nor the app nor the outpost sees
	// them; the WebSocket path clones r after this.
	dropAuthentikHeaders(r.Header)
	dropAuthentikHeaders(r.Trailer)
	if hasDotSegment(r.URL.Path) {
		// The outpost matches the path as sent, the app may resolve it:
		// "/public/../admin" would pass as a public page and be served as
		// /admin. Browsers resolve dot segments before they send.
		writeErrorPage(w, http.StatusBadRequest, "This address has . or .. in its path",
			"Browsers remove them before they send a request; open the address without them.")
		return
	}
	if strings.HasPrefix(r.URL.Path, forwardAuthPrefix) {
		if asksUpgrade(r) {
			writeErrorPage(w, http.StatusBadRequest, "This gateway does not switch to that protocol",
				"The sign-in service's pages take no upgrades.")
			return
		}
		// sign_out ends the session: forget its pass at once.
		f.cache.forget(authCacheKey(r))
		f.outpostRP.ServeHTTP(w, r)
		return
	}
	id, ok := f.check(w, r)
	if !ok {
		return
	}
	f.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authIdentityKey{}, id)))
}

// hasDotSegment reports whether the decoded path p has a "." or ".."
// segment, taking a backslash as a separator too, as some servers do.
func hasDotSegment(p string) bool {
	for _, seg := range strings.FieldsFunc(p, func(c rune) bool { return c == '/' || c == '\\' }) {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// check asks the outpost about r. On a pass it returns the identity
// headers for the app; otherwise it has answered the visitor.
func (f *forwardAuth) check(w http.ResponseWriter, r *http.Request) (http.Header, bool) {
	key := authCacheKey(r)
	if id, ok := f.cache.get(key); ok {
		return id, true
	}
	began := f.cache.begin()
	ctx, cancel := context.WithTimeout(r.Context(), f.timeout)
	defer cancel()
	resp, err := f.transport.RoundTrip(f.checkRequest(ctx, r))
	if err != nil {
		f.serveError(w, r, err)
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Read so the connection goes back to the pool; a body too large
		// or too slow only costs the connection.
		io.Copy(io.Discard, io.LimitReader(resp.Body, forwardAuthMaxBody))
		id := http.Header{}
		for _, k := range authentikHeaders {
			if v := resp.Header.Get(k); v != "" {
				id[k] = []string{v}
			}
		}
		// A provider set to send HTTP Basic credentials puts them in its
		// answer's Authorization, for the app in place of the visitor's
		// own (authentik's nginx and Traefik setups copy it so).
		if v := resp.Header.Get("Authorization"); v != "" {
			id["Authorization"] = []string{v}
		}
		// The outpost may renew its session cookie on a pass: the visitor
		// gets it with the app's answer, as authentik's nginx setup adds
		// it. A pass taken from the cache has none to give again.
		for _, c := range resp.Header["Set-Cookie"] {
			w.Header().Add("Set-Cookie", c)
		}
		// Only a signed-in session's pass is kept: a pass without a user
		// is authentik letting an unauthenticated path through, which
		// says nothing about the visitor's other requests.
		if id.Get("X-Authentik-Username") != "" {
			f.cache.put(key, id, began)
		}
		return id, true
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, forwardAuthMaxBody+1))
	if err != nil {
		f.serveError(w, r, err)
		return nil, false
	}
	if len(body) > forwardAuthMaxBody {
		f.logger.Warn("the outpost's answer to a forward auth check is too large to relay", "outpost", f.outpost.Host, "status", resp.StatusCode, "limit", forwardAuthMaxBody)
		writeErrorPage(w, http.StatusBadGateway, "The sign-in service answered oddly",
			"The gateway asked the sign-in service (authentik) whether you are signed in, and could not use its answer. Try again in a moment.")
		return nil, false
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400, resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		f.logger.Debug("forward auth: not signed in", "path", r.URL.Path, "status", resp.StatusCode, "location", resp.Header.Get("Location"))
	default:
		// authentik answers 400 when no provider on the outpost has this
		// host, 404 when the provider is not in forward auth mode, 500
		// when it lacks the X-Forwarded headers: the setup is wrong.
		f.logger.Warn("forward auth: the outpost refused the check; is a proxy provider in forward auth mode for this host on that outpost?",
			"outpost", f.outpost.Host, "host", f.publicHost, "status", resp.StatusCode)
	}
	removeHopHeaders(resp.Header)
	if f.hsts {
		resp.Header.Del("Strict-Transport-Security")
	}
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
	return nil, false
}

// checkRequest is the GET that asks the outpost about r: r's end-to-end
// headers (cookies above all) without the ones checkDroppedHeaders lists,
// the forwarding headers for the public name, and the visitor's method
// and request URI.
func (f *forwardAuth) checkRequest(ctx context.Context, r *http.Request) *http.Request {
	h := r.Header.Clone()
	removeHopHeaders(h)
	dropUnderscoreHeaders(h)
	for _, k := range checkDroppedHeaders {
		delete(h, k)
	}
	u := f.checkURL
	out := (&http.Request{
		Method: http.MethodGet, URL: &u, Host: f.publicHost, Header: h,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}).WithContext(ctx)
	f.forwarding.apply(out, r)
	h.Set("X-Forwarded-Method", r.Method)
	h.Set("X-Forwarded-Uri", r.URL.RequestURI())
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // no Go default in its place
	}
	return out
}

// rewriteToOutpost routes /outpost.goauthentik.io/* to the outpost with
// the public Host, as the app's requests are routed to the app.
func (f *forwardAuth) rewriteToOutpost(pr *httputil.ProxyRequest) {
	pr.SetURL(f.outpost)
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Host = f.publicHost
	dropUnderscoreHeaders(pr.Out.Header)
	dropUnderscoreHeaders(pr.Out.Trailer)
	for _, k := range []string{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Original-Url", "X-Original-Uri"} {
		pr.Out.Header.Del(k)
	}
	f.forwarding.apply(pr.Out, pr.In)
}

func (f *forwardAuth) modifyResponse(resp *http.Response) error {
	if f.hsts {
		resp.Header.Del("Strict-Transport-Security")
	}
	return nil
}

// serveError answers a visitor whose check, or whose request to the
// outpost's pages, got no answer: 504 for a timeout, 502 otherwise.
func (f *forwardAuth) serveError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		f.logger.Debug("client went away during the forward auth check", "path", r.URL.Path, "err", err)
		return
	}
	if upstream.IsTimeout(err) {
		f.logger.Warn("the forward auth outpost timed out", "outpost", f.outpost.Host, "path", r.URL.Path, "err", err)
		writeErrorPage(w, http.StatusGatewayTimeout, "The sign-in service took too long to answer",
			"This site needs you to sign in, and the gateway could not get an answer from the sign-in service (authentik) in time. Try again in a moment.")
		return
	}
	f.logger.Warn("the forward auth outpost is unreachable", "outpost", f.outpost.Host, "path", r.URL.Path, "err", err)
	writeErrorPage(w, http.StatusBadGateway, "The sign-in service is not reachable",
		"This site needs you to sign in, but the gateway could not reach the sign-in service (authentik). It may be stopped or restarting; try again in a moment.")
}

// authIdentityKey holds, in a checked request's context, the identity
// headers the outpost's pass gave.
type authIdentityKey struct{}

// applyIdentity gives the upstream request out the identity headers of
// the pass that let in through (the outpost's Authorization, if it sent
// one, in place of the visitor's), and no other X-Authentik-* header. It
// runs in rewrite, after hop-by-hop headers are gone, so a visitor's
// Connection header cannot remove them. Requests of unprotected sites
// carry no identity and are left as they are.
func applyIdentity(out, in *http.Request) {
	id, ok := in.Context().Value(authIdentityKey{}).(http.Header)
	if !ok {
		return
	}
	dropAuthentikHeaders(out.Header)
	dropAuthentikHeaders(out.Trailer)
	for k, v := range id {
		out.Header[k] = v
	}
}

// dropAuthentikHeaders deletes every field whose name is X-Authentik-
// and more, in any case and with "_" for "-" (which CGI and WSGI apps read
// alike).
func dropAuthentikHeaders(h http.Header) {
	const prefix = "x-authentik-"
	for k := range h {
		if len(k) < len(prefix) {
			continue
		}
		match := true
		for i := 0; i < len(prefix) && match; i++ {
			c := k[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			} else if c == '_' {
				c = '-'
			}
			match = c == prefix[i]
		}
		if match {
			delete(h, k)
		}
	}
}

// authCache keeps signed-in visitors' passes for a few seconds, keyed by
// their cookies and Authorization. A nil *authCache keeps nothing.
type authCache struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[[sha256.Size]byte]authCacheEntry
	// forgets counts forget calls: a pass whose check began before one
	// (begin) is not kept, since the sign-out it raced may have ended the
	// very session the outpost had just let through.
	forgets uint64
}

type authCacheEntry struct {
	id      http.Header // shared, never changed
	expires time.Time
}

// authCacheKey is what r's pass is cached under: a hash of its cookies
// and Authorization, or the zero key for a request that is never served
// from the cache: one without cookies, or one whose query carries
// authentik's signatures (X-authentik-auth-callback, X-authentik-logout),
// which the outpost acts on at any path.
func authCacheKey(r *http.Request) (key [sha256.Size]byte) {
	cookies := r.Header["Cookie"]
	q := r.URL.RawQuery
	if strings.IndexByte(q, '%') >= 0 {
		// The outpost reads the query decoded.
		var err error
		if q, err = url.QueryUnescape(q); err != nil {
			return key
		}
	}
	if len(cookies) == 0 || containsFold(q, "x-authentik") {
		return key
	}
	s := sha256.New()
	for _, c := range cookies {
		io.WriteString(s, c)
		s.Write([]byte{0})
	}
	for _, a := range r.Header["Authorization"] {
		s.Write([]byte{1})
		io.WriteString(s, a)
	}
	s.Sum(key[:0])
	return key
}

func (c *authCache) get(key [sha256.Size]byte) (http.Header, bool) {
	if c == nil || key == ([sha256.Size]byte{}) {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil, false
	}
	if time.Now().After(e.expires) {
		delete(c.m, key)
		return nil, false
	}
	return e.id, true
}

// begin marks the start of a check whose pass may be put.
func (c *authCache) begin() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.forgets
}

// put keeps id under key for the cache's ttl, unless something was
// forgotten since began (begin's answer before the check was sent).
func (c *authCache) put(key [sha256.Size]byte, id http.Header, began uint64) {
	if c == nil || key == ([sha256.Size]byte{}) {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != began {
		return
	}
	if c.m == nil {
		c.m = map[[sha256.Size]byte]authCacheEntry{}
	}
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			return
		}
	}
	c.m[key] = authCacheEntry{id: id, expires: now.Add(c.ttl)}
}

func (c *authCache) forget(key [sha256.Size]byte) {
	if c == nil || key == ([sha256.Size]byte{}) {
		return
	}
	c.mu.Lock()
	delete(c.m, key)
	c.forgets++
	c.mu.Unlock()
}

// containsFold reports whether s contains the lower-case ASCII substr in
// any case.
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}
