// Package upstream holds what both the engine and the pre-flight checks
// need to know about the app behind Gatehouse: its URL, how its TLS
// certificate is trusted (system roots, a CA file, a pinned fingerprint, or
// not at all), the HTTP/1.1 keepalive pool that reaches it, and the
// periodic health check.
package upstream

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/ports"
)

// ParseURL parses and checks an upstream URL: http or https, a host,
// an optional port and no path beyond "/".
func ParseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("enter the address of the app to protect, such as https://authentik.lan:9443")
	}
	if !strings.Contains(raw, "://") {
		return nil, fmt.Errorf("%q has no scheme; start it with https:// (authentik's default, port 9443) or http:// (port 9000)", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", raw, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("the scheme %s is not supported; use https:// or http://", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host name; use a form such as https://authentik.lan:9443", raw)
	}
	// url.Parse lets odd bytes through in an IPv6 zone and writes them back
	// escaped in a form it then refuses: the proxy could not use such a URL.
	if _, err := url.Parse(u.String()); err != nil {
		return nil, fmt.Errorf("%q has an invalid host %q; use a host name or IP address such as https://authentik.lan:9443", raw, u.Host)
	}
	if p := u.Port(); p != "" {
		if _, port, err := ports.SplitAddr(":" + p); err != nil || port == 0 {
			return nil, fmt.Errorf("port %s is not a number from 1 to 65535", p)
		}
	}
	if u.User != nil {
		return nil, errors.New("remove the user name and password from the URL; the proxy passes visitors' own credentials through")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("remove the path %q; Gatehouse forwards every path to the upstream as it is", u.RequestURI())
	}
	u.Path, u.RawPath = "", ""
	return u, nil
}

// LoadCertPool reads a PEM bundle of CA certificates.
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, errors.Unwrap(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate; use a file with -----BEGIN CERTIFICATE----- blocks", path)
	}
	return pool, nil
}

// ParseFingerprint accepts a SHA-256 certificate fingerprint as 64 hex digits,
// with or without colons and an optional "sha256:" prefix.
func ParseFingerprint(s string) ([]byte, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	h = strings.TrimPrefix(strings.TrimPrefix(h, "sha256:"), "sha256 ")
	h = strings.NewReplacer(":", "", " ", "").Replace(h)
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%q is not a SHA-256 fingerprint; it should be 64 hex digits (colons allowed), as the upstream check shows", s)
	}
	return b, nil
}

// FormatFingerprint writes a SHA-256 fingerprint as colon-separated hex.
func FormatFingerprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// HostPort is the upstream's host:port, with the scheme's default port.
func HostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// IsTimeout reports whether err is a timeout: the context's deadline, or a
// network operation's.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
