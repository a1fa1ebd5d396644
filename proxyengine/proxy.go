package proxyengine

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// proxyHandler serves the TLS listener: it checks the Host, then hands
// WebSocket upgrades to the WebSocket proxy and everything else to an
// httputil.ReverseProxy over the upstream keepalive pool.
type proxyHandler struct {
	// publicHost is the Host the upstream receives, whatever the visitor
	// wrote: the hostname, with the public HTTPS port unless it is 443.
	publicHost string
	hsts       string // the Strict-Transport-Security value, or "" for none
	upstream   *url.URL
	forwarding forwarding
	logger     *slog.Logger
	tracker    *tracker
	rp         *httputil.ReverseProxy
	ws         *wsProxy
	// serve forwards a request that passed ServeHTTP's checks:
	// serveUpstream, or forward auth in front of it (protect).
	serve http.Handler
	// upstreamTimeout bounds the wait for the upstream's response headers,
	// a WebSocket's 101 included.
	upstreamTimeout time.Duration
	limits          *clientLimits // the engine's, read once serving starts
	// visitors counts requests in flight per visitor: the generation's,
	// shared by its sites.
	visitors *visitorCounts
	// stats are the site's counters, or nil for a handler outside an engine.
	stats *siteStats
}

func newProxyHandler(c config.Config, logger *slog.Logger, upstream *url.URL, transport *http.Transport, fwd forwarding, t *tracker, sessions *wsSessions, limits *clientLimits) *proxyHandler {
	p := &proxyHandler{
		publicHost:      publicAuthority(normalizeHost(c.Hostname), c.PublicHTTPSPort),
		upstream:        upstream,
		forwarding:      fwd,
		logger:          logger,
		tracker:         t,
		upstreamTimeout: time.Duration(c.UpstreamTimeout),
		limits:          limits,
		visitors:        &visitorCounts{},
	}
	p.hsts, _ = c.HSTSHeader() // validated in New
	p.serve = http.HandlerFunc(p.serveUpstream)
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: p.modifyResponse,
		Transport:      newUpstreamQueue(timedTransport{transport, t}, transport.MaxIdleConnsPerHost),
		ErrorHandler:   p.serveUpstreamError,
		BufferPool:     proxyBuffers,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	p.ws = &wsProxy{
		upstream:        upstream,
		rewrite:         p.rewrite,
		dial:            transport.DialContext,
		tlsConfig:       transport.TLSClientConfig,
		upstreamTimeout: p.upstreamTimeout,
		limits:          limits,
		errorHandler:    p.serveUpstreamError,
		logger:          logger,
		tracker:         t,
		sessions:        sessions,
	}
	return p
}

// serveConnect refuses CONNECT: a reverse proxy is no tunnel to wherever
// the visitor names.
func serveConnect(w http.ResponseWriter) {
	w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
	writeErrorPage(w, http.StatusMethodNotAllowed, "This gateway does not open tunnels",
		"CONNECT requests are not forwarded.")
}

func serveMalformedHost(w http.ResponseWriter) {
	writeErrorPage(w, http.StatusBadRequest, "The request names no valid host",
		"The address in the request is malformed.")
}

func serveMisdirected(w http.ResponseWriter) {
	writeErrorPage(w, http.StatusMisdirectedRequest, "This server does not serve that name",
		"The address you used is not one this gateway is set up for.")
}

// serveSite serves a request whose Host names p's site.
func (p *proxyHandler) serveSite(w http.ResponseWriter, r *http.Request) {
	if p.hsts != "" {
		// Only for a configured name: HSTS binds the name it arrives
		// under.
		w.Header().Set("Strict-Transport-Security", p.hsts)
	}
	key := p.visitorKey(r)
	if key.Addr().IsLoopback() {
		// A process on this machine: a tunnel (cloudflared) or a
		// proxy not listed as trusted, whose visitors would all share
		// one share, or a benchmark. It is not limited.
		p.serve.ServeHTTP(w, r)
		return
	}
	if !p.visitors.acquire(key, p.limits.perVisitor) {
		p.logger.Debug("too many requests in flight from one visitor", "client", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("Retry-After", "5")
		writeErrorPage(w, http.StatusTooManyRequests, "Too many requests at once",
			"This address has too many requests waiting on the gateway. Try again in a moment.")
		return
	}
	defer p.visitors.release(key)
	p.serve.ServeHTTP(w, r)
}

// serveUpstream forwards a request that passed the checks of ServeHTTP.
func (p *proxyHandler) serveUpstream(w http.ResponseWriter, r *http.Request) {
	switch {
	case isWebSocketUpgrade(r):
		p.ws.ServeHTTP(w, r)
	case asksUpgrade(r):
		// httputil.ReverseProxy would forward any Upgrade; an h2c upgrade
		// passed on would give the visitor an HTTP/2 connection straight to
		// the upstream, past every check here (h2c smuggling).
		writeErrorPage(w, http.StatusBadRequest, "This gateway does not switch to that protocol",
			"Only WebSocket upgrades are forwarded.")
	default:
		if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
			// Go's server frames a request carrying both Transfer-Encoding
			// and Content-Length by the former, but does not say it saw
			// both; RFC 9112 (section 6.1) then requires closing the
			// connection, as a proxy in front may have framed it otherwise.
			// Closing after every chunked HTTP/1.1 request covers that case
			// cheaply: browsers stream request bodies only over HTTP/2.
			w.Header().Set("Connection", "close")
		}
		if r.ProtoMajor == 1 {
			if tc := connFromRequest(r); tc != nil {
				// modifyResponse starts gathering for a large answer;
				// the next request on the connection, or a WebSocket
				// taking it over, finds its writes going straight out.
				defer tc.stopGathering()
			}
		}
		withRecordSizedFrames(w, r, p.rp)
	}
}

// rewrite routes the outbound request to the upstream with the public Host
// (authentik needs it for its security checks and WebSockets) and sets the
// forwarding headers. The Host is the configured one, not the visitor's
// spelling of it: upper case, a trailing dot or a stray port would
// otherwise reach authentik, which builds URLs from it.
//
// The query passes byte for byte: ReverseProxy drops the parameters
// url.ParseQuery refuses (";" separators, bad escapes) before Rewrite, but
// the query is the app's to read (an OAuth state may hold anything), and a
// proxy that reads it otherwise than the app is how cache and WAF bypasses
// begin. The upstream URL has no query of its own (ParseUpstream).
func (p *proxyHandler) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Host = p.publicHost
	dropUnderscoreHeaders(pr.Out.Header)
	dropUnderscoreHeaders(pr.Out.Trailer)
	p.forwarding.apply(pr.Out, pr.In)
	applyIdentity(pr.Out, pr.In)
}

// dropUnderscoreHeaders deletes header fields whose names contain "_", as
// nginx does by default (underscores_in_headers off). CGI, WSGI and so
// Django, which authentik runs on, turn "-" into "_" in header names, so
// X_Forwarded_For would reach the app as the X-Forwarded-For the proxy
// vouches for.
func dropUnderscoreHeaders(h http.Header) {
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 {
			delete(h, k)
		}
	}
}

// modifyResponse drops the upstream's own Strict-Transport-Security when
// Gatehouse sets one, so visitors get one policy, not two.
func (p *proxyHandler) modifyResponse(resp *http.Response) error {
	if p.hsts != "" {
		resp.Header.Del("Strict-Transport-Security")
	}
	if resp.ContentLength >= h1GatherMin {
		// An HTTP/1.1 answer this large goes out as a dozen TLS records
		// or more, each a system call of its own unless gathered
		// (writeGatherer); a small one is a record or two, which would
		// only pay the sender's goroutine.
		if tc := connFromRequest(resp.Request); tc != nil && tc.protocol.Load() == protoHTTP1 {
			tc.gatherWrites(p.limits.sendTimeout)
		}
	}
	return nil
}

// h1GatherMin is the smallest HTTP/1.1 answer whose writes are gathered.
const h1GatherMin = 64 << 10

// publicAuthority is the authority visitors use: hostname, and the port unless
// it is HTTPS's default.
func publicAuthority(hostname string, port int) string {
	if port == 0 || port == 443 {
		return hostname
	}
	return net.JoinHostPort(hostname, strconv.Itoa(port))
}

// errMalformedHost is a Host (or :authority) that is no host[:port].
var errMalformedHost = errors.New("malformed host")

// requestHostName returns the name in a request's Host, lower case and
// without a trailing dot, checking the whole: an ASCII name or a bracketed
// IPv6 address, then nothing or ":" and a port of at most 65535 (RFC 3986
// allows an empty one). Anything else, such as "[sso.example.com]:443",
// "sso.example.com:abc" or a bare IPv6 address, is malformed.
func requestHostName(host string) (string, error) {
	name, port, hasPort := host, "", false
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", errMalformedHost
		}
		name = host[1:end]
		if a, err := netip.ParseAddr(name); err != nil || !a.Is6() || a.Zone() != "" {
			return "", errMalformedHost
		}
		switch rest := host[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			port, hasPort = rest[1:], true
		default:
			return "", errMalformedHost
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name, port, hasPort = host[:i], host[i+1:], true
		if strings.ContainsRune(name, ':') {
			return "", errMalformedHost // an IPv6 address without brackets
		}
	}
	if hasPort && port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || len(port) > 5 || n > 65535 {
			return "", errMalformedHost
		}
	}
	b := []byte(name)
	for i, c := range b {
		switch {
		case c >= 0x80 || c <= ' ' || c == 0x7f:
			// Go's server refuses these already; case folding beyond
			// ASCII could otherwise turn another name into this one.
			return "", errMalformedHost
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	name = strings.TrimSuffix(string(b), ".")
	if name == "" {
		return "", errMalformedHost
	}
	return name, nil
}

// timedTransport measures upstream latency: RoundTrip returns when the
// response headers have arrived.
type timedTransport struct {
	http.RoundTripper
	tracker *tracker
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.RoundTripper.RoundTrip(r)
	if err == nil {
		t.tracker.latency.observe(time.Since(start))
	}
	return resp, err
}

// serveUpstreamError answers 504 when the upstream was too slow and 502 for
// every other failure to reach it.
func (p *proxyHandler) serveUpstreamError(w http.ResponseWriter, r *http.Request, err error) {
	// Checked first: on HTTP/1.1 a failed body read also cancels the
	// request's context, though the visitor may still read an answer.
	if status, ok := visitorBodyError(r); ok {
		// The visitor's body broke off or was malformed: the upstream is
		// fine, and the visitor gets the blame.
		p.logger.Debug("reading the request body from the client failed", "path", r.URL.Path, "status", status, "err", err)
		w.Header().Set("Connection", "close")
		if status == http.StatusRequestTimeout {
			writeErrorPage(w, status, "The request took too long to arrive",
				"The gateway stopped waiting for the rest of the request. Try again.")
		} else {
			writeErrorPage(w, status, "The request was malformed", "Its body could not be read.")
		}
		return
	}
	if errors.Is(r.Context().Err(), context.Canceled) {
		// The visitor left; there is nobody to answer.
		p.logger.Debug("client went away during the upstream request", "path", r.URL.Path, "err", err)
		return
	}
	status := http.StatusBadGateway
	if upstream.IsTimeout(err) {
		status = http.StatusGatewayTimeout
	}
	p.tracker.noteUpstreamError(r, status, err)
	if p.stats != nil {
		p.stats.upstreamErrors.Add(1)
	}
	if status == http.StatusGatewayTimeout {
		p.logger.Warn("upstream timed out", "upstream", p.upstream.Host, "path", r.URL.Path, "err", err)
		writeErrorPage(w, http.StatusGatewayTimeout, "The app took too long to answer",
			"The gateway reached the app behind it, but it did not respond in time. Try again in a moment.")
		return
	}
	p.logger.Warn("upstream unreachable", "upstream", p.upstream.Host, "path", r.URL.Path, "err", err)
	writeErrorPage(w, http.StatusBadGateway, "The app behind this gateway is not reachable",
		"The gateway is running, but it could not get an answer from the app it protects. It may be stopped or restarting; try again in a moment.")
}

// visitorKey names the visitor behind r for the per-visitor limit: its
// address, or for a trusted proxy the address that proxy says it forwards
// for (the last X-Forwarded-For entry), as visitorPrefix.
func (p *proxyHandler) visitorKey(r *http.Request) netip.Prefix {
	ip := remoteIP(r.RemoteAddr)
	if p.forwarding.isTrusted(ip) {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				ip = a.WithZone("").Unmap()
			}
		}
	}
	return visitorPrefix(ip)
}

// normalizeHost lower-cases a Host header and strips its port and any
// trailing dot, so "SSO.example.com.:443" matches "sso.example.com".
func normalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// isWebSocketUpgrade reports whether r asks to switch to WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && headerHasToken(r.Header, "Connection", "upgrade") &&
		strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

// asksUpgrade reports whether r asks to switch protocols at all.
func asksUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || headerHasToken(r.Header, "Connection", "upgrade")
}

// headerHasToken reports whether the comma-separated header name contains
// token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[http.CanonicalHeaderKey(name)] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
