package acme

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
)

// An ErrorKind sorts ACME failures by what the user can do about them.
type ErrorKind string

// Kinds of ACME failure, the values of Error.Kind.
const (
	RateLimited   ErrorKind = "rate-limited"   // the CA's rate limit was reached
	Connection    ErrorKind = "connection"     // the CA could not connect to this machine
	DNS           ErrorKind = "dns"            // the name does not resolve (or not usably)
	Unauthorized  ErrorKind = "unauthorized"   // the CA reached a server that did not answer the challenge
	CAA           ErrorKind = "caa"            // a CAA record forbids this CA
	Rejected      ErrorKind = "rejected"       // the CA will not issue for this name at all
	Account       ErrorKind = "account"        // the ACME account could not be created or used
	CAUnreachable ErrorKind = "ca-unreachable" // Gatehouse could not reach the CA's API
	CAUntrusted   ErrorKind = "ca-untrusted"   // the CA's API certificate is not trusted
	Backoff       ErrorKind = "backoff"        // Gatehouse is waiting after earlier failures
	Timeout       ErrorKind = "timeout"        // the CA did not finish in time
	Other         ErrorKind = "other"
)

// Error explains why no certificate could be obtained from the ACME CA,
// in words for the person running Gatehouse: what went wrong, and what to
// do next. The UI shows Summary and Fix; Detail keeps the CA's own words.
type Error struct {
	Kind    ErrorKind // what sort of failure, for a UI to pick its words
	Summary string    // what went wrong
	Fix     string    // what to do next
	RetryAt time.Time // the earliest next attempt (rate limit or backoff); zero if none is known
	Detail  string    // the CA's messages, for the curious and for bug reports
	Err     error
}

func (e *Error) Error() string {
	msg := e.Summary + " " + e.Fix
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// challengeFailure is a challenge the CA marked invalid, as seen by the
// ACME transport. autocert moves on to the next challenge type and finally
// returns an error without these details, so they are collected on the way.
type challengeFailure struct {
	Type    string // "tls-alpn-01" or "http-01"
	Problem *acme.Error
}

// acmeBackoffError is returned, without contacting the CA, while the
// backoff schedule forbids a new attempt.
type acmeBackoffError struct {
	Next time.Time
}

func (e *acmeBackoffError) Error() string {
	return "no new ACME attempt before " + e.Next.Format(time.RFC3339)
}

// explainACMEError turns what went wrong during an attempt into an
// Error. err is the attempt's error; failed lists the challenges the CA
// rejected on the way; lastError is the reason recorded for the previous
// attempt (shown when the backoff refuses a new one).
func explainACMEError(err error, failed []challengeFailure, host, lastError string, now time.Time) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var be *acmeBackoffError
	if errors.As(err, &be) {
		e := &Error{
			Kind:    Backoff,
			Summary: "Gatehouse is waiting before asking the certificate authority again, so that repeated failures do not use up its limits.",
			Fix: fmt.Sprintf("The next attempt is allowed %s. Fix the cause of the last failure, then start Gatehouse again after that time.",
				describeWhen(be.Next, now)),
			RetryAt: be.Next,
			Detail:  lastError,
			Err:     err,
		}
		if lastError != "" {
			e.Summary += " The last attempt failed: " + lastError
			e.Detail = ""
		}
		return e
	}
	var pe *acme.Error
	if errors.As(err, &pe) {
		return explainProblem(pe, nil, host, now, err)
	}
	if len(failed) > 0 {
		return explainChallengeFailures(failed, host, now, err)
	}
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostnameErr) || errors.As(err, &certInvalid) {
		return &Error{
			Kind:    CAUntrusted,
			Summary: "Gatehouse does not trust the HTTPS certificate of the certificate authority's ACME server.",
			Fix:     "For a private CA (such as step-ca or Pebble), give its root certificate with --acme-ca-roots FILE. For Let's Encrypt, check that the system's CA certificates are installed and that nothing intercepts HTTPS.",
			Detail:  err.Error(),
			Err:     err,
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{
			Kind:    Timeout,
			Summary: "The certificate authority did not finish in time.",
			Fix:     "Its validation may be slow or stuck; start Gatehouse again later (the backoff schedule says when).",
			Detail:  err.Error(),
			Err:     err,
		}
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.As(err, &netErr) {
		return &Error{
			Kind:    CAUnreachable,
			Summary: "Gatehouse could not reach the certificate authority's ACME server.",
			Fix:     "Check this machine's internet connection and the --acme-directory URL (production, staging, or your CA's https:// directory).",
			Detail:  err.Error(),
			Err:     err,
		}
	}
	return &Error{
		Kind:    Other,
		Summary: "The certificate could not be obtained.",
		Fix:     "Read the detail below; proving the setup with --acme-directory staging first costs nothing against Let's Encrypt's production limits.",
		Detail:  err.Error(),
		Err:     err,
	}
}

// explainChallengeFailures explains the rejected challenges, leading with
// the most telling one: a DNS problem explains a connection failure, and a
// connection failure explains a wrong answer.
func explainChallengeFailures(failed []challengeFailure, host string, now time.Time, err error) *Error {
	order := []ErrorKind{DNS, CAA, RateLimited, Connection, Unauthorized}
	rank := func(f challengeFailure) int {
		if i := slices.Index(order, problemKind(f.Problem)); i >= 0 {
			return i
		}
		return len(order)
	}
	best := failed[0]
	for _, f := range failed[1:] {
		if rank(f) < rank(best) {
			best = f
		}
	}
	e := explainProblem(best.Problem, failed, host, now, err)
	var details []string
	for _, f := range failed {
		details = append(details, fmt.Sprintf("%s: %s", f.Type, f.Problem.Detail))
	}
	e.Detail = strings.Join(details, "; ")
	return e
}

// problemKind classifies an ACME problem. CAs do not all use the specific
// types (Pebble reports a refused TLS connection as "unauthorized"), so the
// detail text is consulted too.
func problemKind(p *acme.Error) ErrorKind {
	typ := p.ProblemType
	if i := strings.LastIndexByte(typ, ':'); i >= 0 {
		typ = typ[i+1:]
	}
	detail := strings.ToLower(p.Detail)
	containsAny := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(detail, w) {
				return true
			}
		}
		return false
	}
	switch typ {
	case "rateLimited":
		return RateLimited
	case "caa":
		return CAA
	case "dns":
		return DNS
	case "connection":
		return Connection
	case "rejectedIdentifier":
		return Rejected
	case "externalAccountRequired", "accountDoesNotExist", "badPublicKey", "invalidContact",
		"unsupportedContact", "userActionRequired", "badSignatureAlgorithm":
		return Account
	}
	switch {
	case containsAny("could not resolve", "nxdomain", "no valid a records", "no valid ip addresses", "servfail", "dns problem", "no such host"):
		return DNS
	case containsAny("failed to connect", "connection refused", "timeout during connect", "i/o timeout",
		"no route to host", "connection reset", "network is unreachable", "timeout after connect"):
		return Connection
	case typ == "unauthorized" && strings.Contains(detail, "external account"):
		return Account
	case typ == "unauthorized", typ == "incorrectResponse", typ == "tls":
		return Unauthorized
	}
	return Other
}

// explainProblem words one ACME problem. failed, if given, names the
// challenges tried, so the advice names the ports the CA used.
func explainProblem(p *acme.Error, failed []challengeFailure, host string, now time.Time, err error) *Error {
	e := &Error{Kind: problemKind(p), Detail: p.Detail, Err: err}
	ports := challengePorts(failed)
	switch e.Kind {
	case RateLimited:
		e.RetryAt = problemRetryAt(p, now)
		when := "after the limit's window has passed (see letsencrypt.org/docs/rate-limits)"
		if !e.RetryAt.IsZero() {
			when = describeWhen(e.RetryAt, now)
		}
		e.Summary = fmt.Sprintf("The certificate authority's rate limit for %s has been reached; it lifts %s.", host, when)
		e.Fix = "Gatehouse will not ask again before then. Meanwhile, test any change with --acme-directory staging, which has far higher limits."
	case Connection:
		e.Summary = fmt.Sprintf("The certificate authority could not connect to %s on %s, so it could not check that this machine answers for the name.", host, ports)
		e.Fix = "Make the ports reachable from the internet: forward TCP 443 (and 80 for HTTP-01) on your router to this machine's Gatehouse ports, allow them in the firewall, and check that your ISP does not block them. `gatehouse check` tests the ports and DNS."
	case DNS:
		e.Summary = fmt.Sprintf("The certificate authority could not find an address for %s in DNS.", host)
		e.Fix = fmt.Sprintf("Create an A record (and AAAA for IPv6) for %s pointing at your public IP address, wait a few minutes for it to spread, then try again. `gatehouse check` shows what the name resolves to.", host)
	case Unauthorized:
		e.Summary = fmt.Sprintf("The certificate authority reached a server for %s on %s, but it did not give Gatehouse's answer to the challenge: the name probably points at another machine, or another server answers on that port.", host, ports)
		e.Fix = fmt.Sprintf("Check that %s resolves to this network's public IP address (mind stale AAAA records) and that the router forwards the port to this machine, not to another device or proxy.", host)
	case CAA:
		e.Summary = fmt.Sprintf("A CAA record in DNS for %s (or its parent domain) does not allow this certificate authority to issue for it.", host)
		e.Fix = "Add a CAA record that allows this CA (for Let's Encrypt: 0 issue \"letsencrypt.org\"), or remove the restricting one, at your DNS provider."
	case Rejected:
		e.Summary = fmt.Sprintf("The certificate authority will not issue a certificate for %s.", host)
		e.Fix = "Use a public name under a domain you own; names such as .local, .lan or .internal cannot get public certificates (choose the self-signed certificate for those)."
	case Account:
		e.Summary = "The certificate authority did not accept Gatehouse's ACME account."
		e.Fix = "If your CA requires External Account Binding, give the key ID and HMAC key it issued with --acme-eab-kid and --acme-eab-hmac; check the contact email address too."
	default:
		e.Summary = "The certificate authority refused to issue the certificate."
		e.Fix = "Read the CA's message below; proving the setup with --acme-directory staging first costs nothing against Let's Encrypt's production limits."
	}
	return e
}

// challengePort names the port the CA uses for a challenge type.
func challengePort(typ string) string {
	switch typ {
	case "tls-alpn-01":
		return "port 443"
	case "http-01":
		return "port 80"
	}
	return ""
}

// challengePorts names the ports the CA used for the given challenges.
func challengePorts(failed []challengeFailure) string {
	var ports []string
	for _, f := range failed {
		p := challengePort(f.Type)
		if p == "" {
			continue
		}
		if p += " (" + strings.ToUpper(f.Type) + " challenge)"; !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	if len(ports) == 0 {
		return "port 443 or 80"
	}
	return strings.Join(ports, " and ")
}

// retryAfterInDetail finds Let's Encrypt's "retry after 2006-01-02 15:04:05 UTC".
var retryAfterInDetail = regexp.MustCompile(`(?i)retry after (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC)`)

// problemRetryAt is when a rate-limited request may be repeated: from the
// Retry-After header (seconds or an HTTP date), else from the detail text.
func problemRetryAt(p *acme.Error, now time.Time) time.Time {
	if v := p.Header.Get("Retry-After"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil {
			return now.Add(time.Duration(secs) * time.Second)
		}
		if t, err := http.ParseTime(v); err == nil {
			return t
		}
	}
	if m := retryAfterInDetail.FindStringSubmatch(p.Detail); m != nil {
		if t, err := time.Parse("2006-01-02 15:04:05 MST", m[1]); err == nil {
			return t
		}
	}
	return time.Time{}
}

// describeWhen says when t is, absolutely and relative to now:
// "at 15:04 UTC on 2 Jan (in 1h30m)".
func describeWhen(t, now time.Time) string {
	in := t.Sub(now).Round(time.Second)
	if in < 0 {
		in = 0
	}
	return fmt.Sprintf("at %s (in %s)", t.Local().Format("15:04:05 MST on 2 Jan"), in)
}
