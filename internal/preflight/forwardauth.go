package preflight

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// forwardAuthCheckPath is the outpost endpoint the engine asks (its Caddy
// one: a redirect to sign in for a visitor without a session).
const forwardAuthCheckPath = "/outpost.goauthentik.io/auth/caddy"

// CheckForwardAuth asks the forward auth outpost once, as the engine asks
// it for a visitor without cookies, and explains the answer: a redirect
// to authentik's sign-in means forward auth works; authentik answers 404
// when the site's provider is not in forward auth mode (or not on that
// outpost). Without forward auth configured the result is skipped.
func (k *Checker) CheckForwardAuth(ctx context.Context, cfg config.Config) Result {
	r := Result{Name: NameForwardAuth, Title: "Forward auth outpost", Field: config.FieldForwardAuth}
	fa := cfg.ForwardAuth
	if fa == nil {
		r.Status, r.Finding = Skip, "forward auth is off: every visitor reaches the app, which signs them in itself"
		return r
	}
	cfg = cfg.WithDefaults()
	if fe := config.FieldErrors(cfg.Validate()).For(config.FieldForwardAuth); fe != nil {
		r.Status, r.Finding = Fail, fe.Message
		r.Fix = "correct forward_auth in the config file as the finding says"
		return r
	}
	u, _ := upstream.ParseURL(fa.URL) // valid: Validate passed
	t, err := upstream.NewTransport(u, fa.Trust(), upstream.Pool{})
	if err != nil {
		r.Status, r.Finding = Fail, err.Error()
		return r
	}
	t.DialContext = k.upstreamDialer().DialContext
	defer t.CloseIdleConnections()

	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	host := publicHost(cfg, u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+forwardAuthCheckPath, nil)
	if err != nil {
		r.Status, r.Finding = Fail, err.Error()
		return r
	}
	req.Host = host
	req.Header = http.Header{
		"X-Forwarded-Method": {"GET"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {host},
		"X-Forwarded-Uri": {"/"}, "User-Agent": {"gatehouse-check"},
	}
	start := time.Now()
	resp, err := t.RoundTrip(req)
	r.Elapsed = time.Since(start)
	if err != nil {
		r.Status = Fail
		r.Finding, r.Fix = describeOutpostError(u, err, k.timeout())
		return r
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, upstreamBodySample))
	r.HTTPStatus = resp.StatusCode
	asked := fmt.Sprintf("GET %s%s for %s", u.Host, forwardAuthCheckPath, host)
	setUp := fmt.Sprintf("in authentik, create a Proxy Provider in \"Forward auth (single application)\" mode with external host https://%s, an application that uses it, and add that application to the outpost at %s (for the embedded outpost: Applications > Outposts > authentik Embedded Outpost)", host, u.Host)
	loc := resp.Header.Get("Location")
	switch code := resp.StatusCode; {
	case code >= 300 && code < 400 && signInRedirect(loc):
		r.Status = Pass
		r.Finding = fmt.Sprintf("%s answered %s in %s, sending a visitor without a session to sign in (%s): forward auth works", asked, resp.Status, roundElapsed(r.Elapsed), loc)
	case code >= 300 && code < 400:
		r.Status = Warn
		r.Finding = fmt.Sprintf("%s answered %s, redirecting to %s rather than to authentik's sign-in", asked, resp.Status, loc)
		r.Fix = "check that the url is authentik's (or its outpost's) address as Gatehouse reaches it; " + setUp
	case code >= 200 && code < 300:
		r.Status = Fail
		r.Finding = fmt.Sprintf("%s answered %s to a visitor without a session: every visitor would reach the app", asked, resp.Status)
		r.Fix = "check that the url is authentik's or its outpost's, not the app's; if it is, the provider's \"Unauthenticated paths\" let / through: narrow them"
	case code == http.StatusNotFound:
		r.Status = Fail
		r.Finding = fmt.Sprintf("%s answered 404 Not Found: authentik answers so when no provider in forward auth mode serves %s on this outpost", asked, host)
		r.Fix = setUp
	case code == http.StatusBadRequest:
		r.Status = Fail
		r.Finding = fmt.Sprintf("%s answered 400 Bad Request: the outpost has no application for %s", asked, host)
		r.Fix = setUp
		if strings.Contains(string(body), "HTTP request to an HTTPS server") {
			r.Finding = fmt.Sprintf("%s answered 400: that port expects HTTPS", asked)
			r.Fix = "use https:// in forward_auth's url"
		}
	case code >= 500:
		r.Status = Fail
		r.Finding = fmt.Sprintf("%s answered %s: the outpost reports a problem", asked, resp.Status)
		r.Fix = "read the outpost's log (for the embedded outpost, authentik's server log); authentik answers 500 \"configuration error\" when a provider cannot tell which URL was asked for"
	default:
		r.Status = Warn
		r.Finding = fmt.Sprintf("%s answered %s rather than a redirect to sign in", asked, resp.Status)
		r.Fix = "check that the url is authentik's or its outpost's address; " + setUp
	}
	return r
}

// signInRedirect reports whether loc is where authentik sends a visitor
// to sign in: the outpost's start page, or (newer outposts) authentik's
// OAuth authorize endpoint.
func signInRedirect(loc string) bool {
	u, err := url.Parse(loc)
	return err == nil && (strings.HasPrefix(u.Path, "/outpost.goauthentik.io/start") || strings.Contains(u.Path, "/application/o/authorize"))
}

// describeOutpostError explains a check that got no answer.
func describeOutpostError(u *url.URL, err error, timeout time.Duration) (finding, fix string) {
	addr := upstream.HostPort(u)
	var certErr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var rhe tls.RecordHeaderError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("the outpost's host name %s does not resolve on this machine: %v", u.Hostname(), dnsErr.Err),
			"check the spelling, or use the address Gatehouse reaches authentik at, such as https://192.168.1.5:9443"
	case errors.As(err, &certErr) || errors.As(err, &unknown) || errors.As(err, &hostErr) || strings.Contains(err.Error(), "fingerprint"):
		return fmt.Sprintf("the outpost at %s presented a certificate Gatehouse does not trust: %v", addr, err),
			"pin the outpost's certificate with forward_auth's fingerprint (the upstream check shows how to read one), or give its CA file as forward_auth's ca"
	case errors.As(err, &rhe):
		return fmt.Sprintf("%s answered in plain HTTP, not TLS", addr), "use http:// in forward_auth's url"
	case strings.Contains(err.Error(), "malformed HTTP response"):
		return fmt.Sprintf("%s did not answer in HTTP, so it probably expects TLS", addr), "use https:// in forward_auth's url"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("%s refused the connection: nothing is listening there", addr),
			"start authentik or its outpost, or correct the port: authentik serves HTTPS on 9443 and HTTP on 9000, as does a standalone proxy outpost"
	case upstream.IsTimeout(err):
		return fmt.Sprintf("the outpost at %s did not answer within %s", addr, timeout),
			"check the address, and that no firewall drops connections to it; the machine may be off or authentik still starting"
	}
	return fmt.Sprintf("cannot reach the outpost at %s: %v", addr, err), "check forward_auth's url"
}
