package preflight

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gorilla/websocket"
)

// upstreamWebSocketPath is where authentik's browser interface opens its
// WebSocket; the check asks for an upgrade there.
const upstreamWebSocketPath = "/ws/client/"

// upstreamBodySample is how much of a response body the checks read, to
// recognise a few well-known answers.
const upstreamBodySample = 512

// UpstreamTrust says how the upstream's certificate is checked.
type UpstreamTrust string

const (
	TrustSystemRoots UpstreamTrust = "system-roots" // the system's CA certificates
	TrustCAFile      UpstreamTrust = "ca-file"      // the CAs in config.Config.UpstreamCA
	TrustPinned      UpstreamTrust = "pinned"       // the one certificate of config.Config.UpstreamFingerprint
	TrustInsecure    UpstreamTrust = "insecure"     // not checked (config.Config.UpstreamInsecure)
)

// upstreamTrust reports which trust option of cfg upstream.TLSConfig applies.
func upstreamTrust(cfg config.Config) UpstreamTrust {
	switch {
	case cfg.UpstreamInsecure:
		return TrustInsecure
	case cfg.UpstreamCA != "":
		return TrustCAFile
	case cfg.UpstreamFingerprint != "":
		return TrustPinned
	}
	return TrustSystemRoots
}

// field is the setting that chooses the trust option.
func (t UpstreamTrust) field() config.Field {
	switch t {
	case TrustInsecure:
		return config.FieldUpstreamInsecure
	case TrustCAFile:
		return config.FieldUpstreamCA
	case TrustPinned:
		return config.FieldUpstreamFingerprint
	}
	return config.FieldUpstream
}

// UpstreamCertificate describes the certificate the upstream presented, and
// whether the configured trust accepts it. A UI can offer to pin it by
// Fingerprint, which is what config.Config.UpstreamFingerprint takes.
type UpstreamCertificate struct {
	Subject     string        `json:"subject"` // distinguished name, such as "CN=authentik default certificate,O=authentik"
	Issuer      string        `json:"issuer"`
	DNSNames    []string      `json:"dns_names,omitempty"`
	IPAddresses []string      `json:"ip_addresses,omitempty"`
	NotBefore   time.Time     `json:"not_before"`
	NotAfter    time.Time     `json:"not_after"`
	SelfSigned  bool          `json:"self_signed"`
	Fingerprint string        `json:"fingerprint"` // SHA-256 of the DER certificate, colon hex (FormatFingerprint)
	Trust       UpstreamTrust `json:"trust"`       // how it was checked
	Verified    bool          `json:"verified"`    // the configured trust accepts it (false with TrustInsecure)
	VerifyError string        `json:"verify_error,omitempty"`
}

func describeUpstreamCert(leaf *x509.Certificate, trust UpstreamTrust) *UpstreamCertificate {
	sum := sha256.Sum256(leaf.Raw)
	c := &UpstreamCertificate{
		Subject:     leaf.Subject.String(),
		Issuer:      leaf.Issuer.String(),
		DNSNames:    leaf.DNSNames,
		NotBefore:   leaf.NotBefore,
		NotAfter:    leaf.NotAfter,
		SelfSigned:  isSelfSigned(leaf),
		Fingerprint: upstream.FormatFingerprint(sum[:]),
		Trust:       trust,
	}
	for _, ip := range leaf.IPAddresses {
		c.IPAddresses = append(c.IPAddresses, ip.String())
	}
	if c.Subject == "" {
		c.Subject = "(no subject)"
	}
	return c
}

// isSelfSigned reports whether leaf is signed by its own key. (It may not
// be a CA certificate, so CheckSignatureFrom, which demands one, will not do.)
func isSelfSigned(leaf *x509.Certificate) bool {
	return bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
}

// names lists what the certificate is valid for.
func (c *UpstreamCertificate) names() string {
	names := append(append([]string{}, c.DNSNames...), c.IPAddresses...)
	if len(names) == 0 {
		return "no host name at all"
	}
	return strings.Join(names, ", ")
}

// CheckUpstream checks the way to the upstream step by step, as the proxy
// will travel it, and returns one result per step: TCP connect, TLS
// handshake (with the proxy's own TLS settings and trust, reporting the
// certificate's facts and fingerprint even when it is not trusted), an HTTP
// GET of the health path (falling back to GET / when the path is missing,
// as for an app other than authentik), and a WebSocket upgrade at
// /ws/client/. A step that cannot run because an earlier one failed is
// reported as skipped.
func (k *Checker) CheckUpstream(ctx context.Context, cfg config.Config) []Result {
	cfg = cfg.WithDefaults()
	connect := Result{Name: NameUpstreamConnect, Title: "Upstream connection", Field: config.FieldUpstream}
	handshake := Result{Name: NameUpstreamTLS, Title: "Upstream TLS handshake", Field: upstreamTrust(cfg).field()}
	health := Result{Name: NameUpstreamHealth, Title: "Upstream health", Field: config.FieldHealthPath}
	ws := Result{Name: NameUpstreamWebSocket, Title: "Upstream WebSocket", Field: config.FieldUpstream}
	results := func() []Result { return []Result{connect, handshake, health, ws} }
	skip := func(reason string, rs ...*Result) {
		for _, r := range rs {
			r.Status, r.Finding = Skip, reason
		}
	}

	if cfg.Upstream == config.UpstreamDemo {
		connect.Status, connect.Finding = Pass, "the built-in demo app runs inside Gatehouse, on a loopback port chosen at start"
		skip("not needed: the demo app is part of Gatehouse", &handshake, &health, &ws)
		return results()
	}
	u, err := upstream.ParseURL(cfg.Upstream)
	if err != nil {
		connect.Status, connect.Finding = Fail, err.Error()
		connect.Fix = "enter the address of the app to protect, such as https://authentik.lan:9443 (--upstream)"
		skip("not tried: the upstream address is not valid", &handshake, &health, &ws)
		return results()
	}
	addr := upstream.HostPort(u)
	k.checkConnect(ctx, &connect, addr)
	if connect.Status == Fail {
		skip("not tried: no connection to the upstream", &handshake, &health, &ws)
		return results()
	}
	tc, ok := k.checkTLS(ctx, &handshake, cfg, u, addr)
	if !ok {
		skip("not tried: the TLS handshake with the upstream failed", &health, &ws)
		return results()
	}
	authentik := k.checkHealth(ctx, &health, cfg, u)
	k.checkWebSocket(ctx, &ws, cfg, u, tc, authentik)
	return results()
}

// upstreamDialer connects to the upstream within the check's timeout.
func (k *Checker) upstreamDialer() *net.Dialer {
	return &net.Dialer{Timeout: k.timeout(), Resolver: k.upstreamResolver()}
}

func (k *Checker) checkConnect(ctx context.Context, r *Result, addr string) {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	start := time.Now()
	conn, err := k.upstreamDialer().DialContext(ctx, "tcp", addr)
	r.Elapsed = time.Since(start)
	if err != nil {
		r.Status = Fail
		r.Finding, r.Fix = describeDialError(addr, err, k.timeout())
		return
	}
	defer conn.Close()
	r.Status = Pass
	r.Finding = fmt.Sprintf("connected to %s in %s", addr, roundElapsed(r.Elapsed))
	if remote := conn.RemoteAddr().String(); remote != addr {
		r.Finding = fmt.Sprintf("connected to %s (%s) in %s", addr, remote, roundElapsed(r.Elapsed))
	}
}

// describeDialError explains a failed connection to the upstream.
func describeDialError(addr string, err error, timeout time.Duration) (finding, fix string) {
	host, port, _ := net.SplitHostPort(addr)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("the upstream's host name %s does not resolve on this machine", host),
			"check the spelling, or use the upstream's IP address, such as https://192.168.1.5:9443; for authentik in Docker on this machine, use https://127.0.0.1:9443"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("looking up the upstream's host name %s failed: %v", host, dnsErr.Err),
			"check this machine's DNS server, or use the upstream's IP address"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("%s refused the connection: nothing is listening on port %s there", addr, port),
			"start the app, or correct the port: authentik serves HTTPS on 9443 and HTTP on 9000 (in Docker, check the ports: mapping of its server container)"
	case upstream.IsTimeout(err):
		return fmt.Sprintf("%s did not answer within %s", addr, timeout),
			fmt.Sprintf("check the address, and that no firewall drops connections to port %s; the machine may be off", port)
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("there is no route to %s", host),
			"check the address; that machine may be off or on another network"
	}
	return fmt.Sprintf("cannot connect to %s: %v", addr, err), "check the upstream address"
}

// checkTLS performs the TLS handshake with the same settings the proxy
// uses. It returns those settings (nil for a plain http:// upstream) and
// whether the later steps can go ahead.
func (k *Checker) checkTLS(ctx context.Context, r *Result, cfg config.Config, u *url.URL, addr string) (*tls.Config, bool) {
	trust := upstreamTrust(cfg)
	errs := config.FieldErrors(cfg.Validate())
	for _, field := range []config.Field{config.FieldUpstreamCA, config.FieldUpstreamFingerprint} {
		if fe := errs.For(field); fe != nil {
			r.Status, r.Field, r.Finding = Fail, field, fe.Message
			r.Fix = "correct the upstream's trust setting (--upstream-fingerprint, --upstream-ca or --upstream-insecure) as the finding says"
			return nil, u.Scheme != "https"
		}
	}
	if u.Scheme != "https" {
		r.Status = Skip
		r.Finding = "the upstream is plain http://, so there is no certificate to check; fine on this machine or a network you trust"
		return nil, true
	}
	tc, err := upstream.TLSConfig(u, cfg.UpstreamTrust())
	if err != nil {
		r.Status, r.Finding = Fail, err.Error()
		return nil, false
	}

	// Watch the handshake with the proxy's own settings, noting the
	// certificates a pin check saw, so the facts are there even when the
	// configured trust rejects them.
	probe := tc.Clone()
	var seen []*x509.Certificate
	probe.VerifyConnection = func(cs tls.ConnectionState) error {
		seen = cs.PeerCertificates
		if tc.VerifyConnection != nil {
			return tc.VerifyConnection(cs)
		}
		return nil
	}
	start := time.Now()
	err = k.handshake(ctx, addr, probe)
	r.Elapsed = time.Since(start)
	var verr *tls.CertificateVerificationError
	if err != nil && errors.As(err, &verr) {
		seen = verr.UnverifiedCertificates
	}
	if len(seen) == 0 {
		r.Status = Fail
		r.Finding, r.Fix = describeTLSError(addr, err, k.timeout())
		return nil, false
	}
	cert := describeUpstreamCert(seen[0], trust)
	r.Certificate = cert
	about := fmt.Sprintf("the upstream's certificate for %s (subject %s, issued by %s, SHA-256 %s)", cert.names(), cert.Subject, cert.Issuer, cert.Fingerprint)
	if cert.SelfSigned {
		about = fmt.Sprintf("the upstream's self-signed certificate for %s (subject %s, SHA-256 %s)", cert.names(), cert.Subject, cert.Fingerprint)
	}
	if err != nil {
		cert.VerifyError, r.Fix = explainCertError(err, seen[0], cert, cfg, u)
		r.Status = Fail
		r.Finding = about + " is not trusted: " + cert.VerifyError
		return nil, false
	}
	cert.Verified = trust != TrustInsecure
	switch trust {
	case TrustInsecure:
		r.Status, r.Finding = Warn, about+" is not verified, as --upstream-insecure asks"
		r.Fix = "pin this certificate instead, which is as easy and keeps impostors out: --upstream-fingerprint " + cert.Fingerprint
	case TrustPinned:
		r.Status, r.Finding = Pass, about+" matches the pinned fingerprint"
	case TrustCAFile:
		r.Status, r.Finding = Pass, about+" verifies against "+cfg.UpstreamCA
	default:
		r.Status, r.Finding = Pass, about+" verifies against the system's trusted CAs"
	}
	return tc, true
}

func (k *Checker) handshake(ctx context.Context, addr string, tc *tls.Config) error {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	raw, err := k.upstreamDialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn := tls.Client(raw, tc)
	defer conn.Close()
	return conn.HandshakeContext(ctx)
}

// describeTLSError explains a handshake that failed before any certificate
// could be judged.
func describeTLSError(addr string, err error, timeout time.Duration) (finding, fix string) {
	var rhe tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &rhe):
		return fmt.Sprintf("%s answered in plain HTTP, not TLS", addr),
			"use http:// in the upstream address (authentik serves plain HTTP on 9000 and HTTPS on 9443)"
	case upstream.IsTimeout(err):
		return fmt.Sprintf("the TLS handshake with %s got no answer within %s", addr, timeout),
			"check that this port serves HTTPS; if it serves plain HTTP, use http:// in the upstream address"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("%s closed the connection during the TLS handshake", addr),
			"check that this port serves HTTPS with TLS 1.2 or newer; if it serves plain HTTP, use http:// in the upstream address"
	case errors.As(err, &alert):
		return fmt.Sprintf("%s refused the TLS handshake: %v", addr, err),
			"the upstream may demand a client certificate or only old TLS versions, which Gatehouse does not offer; check its TLS settings"
	}
	return fmt.Sprintf("the TLS handshake with %s failed: %v", addr, err), "check that this port serves HTTPS"
}

// explainCertError says why the configured trust rejects the certificate,
// and how to trust it if it is the right one.
func explainCertError(err error, leaf *x509.Certificate, cert *UpstreamCertificate, cfg config.Config, u *url.URL) (why, fix string) {
	pinIt := "if this is your upstream's certificate, pin it: --upstream-fingerprint " + cert.Fingerprint
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	trusted := "the system's trusted CAs"
	if cfg.UpstreamCA != "" {
		trusted = "the CAs in " + cfg.UpstreamCA
	}
	// Go checks the name before the chain, so a self-signed certificate for
	// another name reports the name; being self-signed is the news then.
	selfSignedUntrusted := cert.SelfSigned && cert.Trust == TrustSystemRoots
	switch {
	case cert.Trust == TrustPinned:
		pin, _ := upstream.ParseFingerprint(cfg.UpstreamFingerprint)
		return fmt.Sprintf("its fingerprint does not match the pinned %s", upstream.FormatFingerprint(pin)),
			fmt.Sprintf("if the upstream's certificate was replaced on purpose (authentik makes a new self-signed one when reinstalled), pin the new one: --upstream-fingerprint %s; otherwise find out what now answers at %s", cert.Fingerprint, u.Host)
	case selfSignedUntrusted || errors.As(err, &unknown) && cert.SelfSigned:
		why = "it is self-signed (as authentik's default certificate is), so no CA vouches for it"
		if errors.As(err, &hostErr) {
			why += fmt.Sprintf(", and it is valid for %s, not for %s", cert.names(), u.Hostname())
		}
		return why, pinIt + " (safer than --upstream-insecure)"
	case errors.As(err, &hostErr):
		return fmt.Sprintf("it is valid for %s, not for %s", cert.names(), u.Hostname()),
			fmt.Sprintf("use a name the certificate covers in the upstream address, or %s", pinIt)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		if time.Now().After(leaf.NotAfter) {
			return fmt.Sprintf("it expired on %s", leaf.NotAfter.Format(time.DateOnly)),
				fmt.Sprintf("renew the upstream's certificate, or %s", pinIt)
		}
		return fmt.Sprintf("it is not valid until %s", leaf.NotBefore.Format(time.DateTime+" MST")),
			"check this machine's clock and the upstream's"
	case errors.As(err, &unknown):
		return fmt.Sprintf("it was issued by %s, which is not among %s", cert.Issuer, trusted),
			pinIt + ", or trust its CA with --upstream-ca FILE (a PEM file of that CA's certificate)"
	}
	return strings.TrimPrefix(err.Error(), "tls: failed to verify certificate: "), pinIt
}

// publicHost is the Host header the proxy passes on for visitors: the
// public hostname, with the public port when it is not 443.
func publicHost(cfg config.Config, u *url.URL) string {
	if config.ValidateHostname(cfg.Hostname) != nil {
		return u.Host
	}
	if cfg.PublicHTTPSPort != 0 && cfg.PublicHTTPSPort != 443 {
		return net.JoinHostPort(cfg.Hostname, strconv.Itoa(cfg.PublicHTTPSPort))
	}
	return cfg.Hostname
}

// upstreamAnswer is what a GET to the upstream returned.
type upstreamAnswer struct {
	status   int
	text     string // such as "204 No Content"
	location string
	body     []byte // the first upstreamBodySample bytes
}

// get asks the upstream for path through t, as the proxy would ask for a
// visitor's request: the public Host and X-Forwarded-Proto https, no
// redirects followed.
func (k *Checker) get(ctx context.Context, t http.RoundTripper, cfg config.Config, u *url.URL, path string) (upstreamAnswer, error) {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+path, nil)
	if err != nil {
		return upstreamAnswer{}, err
	}
	req.Host = publicHost(cfg, u)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("User-Agent", "gatehouse-check")
	resp, err := t.RoundTrip(req)
	if err != nil {
		return upstreamAnswer{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, upstreamBodySample))
	text := resp.Status
	if text == "" {
		text = strconv.Itoa(resp.StatusCode)
	}
	return upstreamAnswer{status: resp.StatusCode, text: text, location: resp.Header.Get("Location"), body: body}, nil
}

// checkHealth GETs the health path and reports whether the upstream looks
// like authentik (its liveness path answered 2xx).
func (k *Checker) checkHealth(ctx context.Context, r *Result, cfg config.Config, u *url.URL) (authentik bool) {
	if fe := config.FieldErrors(cfg.Validate()).For(config.FieldHealthPath); fe != nil {
		r.Status, r.Finding = Fail, fe.Message
		r.Fix = "correct --health-path as the finding says"
		return false
	}
	t, err := upstream.NewTransport(u, cfg.UpstreamTrust(), cfg.UpstreamPool())
	if err != nil {
		r.Status, r.Finding = Fail, err.Error()
		return false
	}
	t.DialContext = k.upstreamDialer().DialContext
	defer t.CloseIdleConnections()

	start := time.Now()
	defer func() { r.Elapsed = time.Since(start) }()
	a, err := k.get(ctx, t, cfg, u, cfg.HealthPath)
	if err != nil {
		r.Status = Fail
		r.Finding, r.Fix = describeHTTPError(cfg.HealthPath, err, k.timeout())
		return false
	}
	r.HTTPStatus = a.status
	asked := "GET " + cfg.HealthPath
	switch {
	case a.status >= 200 && a.status < 300:
		r.Status, r.Finding = Pass, fmt.Sprintf("%s answered %s in %s", asked, a.text, roundElapsed(time.Since(start)))
		if cfg.HealthPath == config.DefaultHealthPath {
			r.Finding += ": authentik is alive"
		}
		return cfg.HealthPath == config.DefaultHealthPath
	case a.status == http.StatusNotFound:
		r.Status = Warn
		r.Finding = asked + " answered 404 Not Found, so this is probably not authentik"
		r.Fix = "for authentik, check that the upstream address points at authentik itself (HTTPS on 9443 or HTTP on 9000); for another app, set --health-path to a path that answers 2xx, such as /"
		if cfg.HealthPath == "/" {
			break
		}
		root, err := k.get(ctx, t, cfg, u, "/")
		if err != nil {
			r.Status = Fail
			r.Finding, r.Fix = describeHTTPError("/", err, k.timeout())
			return false
		}
		r.HTTPStatus = root.status
		r.Finding += "; GET / answered " + root.text
		if root.status >= 500 {
			r.Status = Fail
			r.Fix = "the app answers but reports an error; read its logs"
		}
	case a.status >= 500:
		r.Status, r.Finding = Fail, fmt.Sprintf("%s answered %s: the app is running but reports a problem", asked, a.text)
		r.Fix = "authentik answers 503 while it starts or when it cannot reach its database or Redis: wait a minute, then read its logs (docker compose logs server)"
	case a.status >= 300 && a.status < 400:
		// The engine's periodic check counts a redirect as alive too.
		r.Status, r.Finding = Warn, fmt.Sprintf("%s answered %s, redirecting to %s: the app answers, but not with 2xx", asked, a.text, a.location)
		r.Fix = "if the redirect goes to https://, use https:// in the upstream address; otherwise set --health-path to a path that answers 2xx"
	case a.status == http.StatusBadRequest && bytes.Contains(a.body, []byte("HTTP request to an HTTPS server")):
		r.Status, r.Finding = Fail, fmt.Sprintf("%s answered %s: the upstream expects HTTPS on this port", asked, a.text)
		r.Fix = "use https:// in the upstream address"
	default:
		r.Status, r.Finding = Fail, fmt.Sprintf("%s answered %s", asked, a.text)
		r.Fix = fmt.Sprintf("set --health-path to a path that answers 2xx without signing in (authentik's is %s)", config.DefaultHealthPath)
	}
	return false
}

// describeHTTPError explains a request to the upstream that got no answer.
func describeHTTPError(path string, err error, timeout time.Duration) (finding, fix string) {
	switch {
	case upstream.IsTimeout(err):
		return fmt.Sprintf("GET %s got no answer within %s", path, timeout),
			"the app accepted the connection but did not answer; it may be overloaded or still starting: try again in a minute"
	case strings.Contains(err.Error(), "malformed HTTP response"):
		return fmt.Sprintf("GET %s: the upstream did not answer in HTTP, so it probably expects TLS", path),
			"use https:// in the upstream address"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("GET %s: the upstream closed the connection without answering", path),
			"check that this port serves HTTP/1.1 (authentik: HTTP on 9000, HTTPS on 9443)"
	}
	return fmt.Sprintf("GET %s failed: %v", path, err), "check the upstream address"
}

// checkWebSocket asks for a WebSocket at /ws/client/ with a real client,
// the way a browser behind the proxy would. An upstream that refuses fails
// when it is authentik, whose interface and outposts need WebSockets, and
// warns otherwise, since many apps have no use for them.
func (k *Checker) checkWebSocket(ctx context.Context, r *Result, cfg config.Config, u *url.URL, tc *tls.Config, authentik bool) {
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	target := *u
	target.Scheme = map[string]string{"https": "wss", "http": "ws"}[u.Scheme]
	target.Path = upstreamWebSocketPath
	d := websocket.Dialer{NetDialContext: k.upstreamDialer().DialContext, TLSClientConfig: tc, HandshakeTimeout: k.timeout()}
	host := publicHost(cfg, u)
	header := http.Header{
		"Host":              {host},
		"Origin":            {"https://" + host},
		"X-Forwarded-Proto": {"https"},
		"User-Agent":        {"gatehouse-check"},
	}
	start := time.Now()
	conn, resp, err := d.DialContext(ctx, target.String(), header)
	r.Elapsed = time.Since(start)
	if err == nil {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		conn.Close()
		r.Status, r.HTTPStatus = Pass, http.StatusSwitchingProtocols
		r.Finding = fmt.Sprintf("the upstream accepted a WebSocket at %s in %s", upstreamWebSocketPath, roundElapsed(r.Elapsed))
		return
	}
	if resp != nil {
		resp.Body.Close()
		r.HTTPStatus = resp.StatusCode
		r.Finding = fmt.Sprintf("the upstream answered the WebSocket upgrade at %s with %s instead of 101 Switching Protocols", upstreamWebSocketPath, resp.Status)
	} else {
		r.Finding = fmt.Sprintf("the WebSocket upgrade at %s failed: %v", upstreamWebSocketPath, err)
	}
	if authentik {
		r.Status = Fail
		r.Finding += "; authentik's interface and outposts need WebSockets, so they would break"
		r.Fix = "point the upstream address at authentik itself, with nothing in between that drops the Upgrade header, then check again"
		return
	}
	r.Status = Warn
	r.Fix = "fine if this app does not use WebSockets; authentik needs them, so if this is authentik, point the upstream address at authentik itself"
}

// roundElapsed shortens a duration for a finding: 3ms, 1.2s.
func roundElapsed(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}
