package config

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// A FieldError says what is wrong with one Config field, in words meant for
// the person who typed it, including how to fix it.
type FieldError struct {
	// Field is the config file key, such as "upstream" (the flag is
	// --upstream), or for a key of an entry of the sites list, that key
	// with the entry's place, such as "sites[1].upstream" (see SiteField
	// and Field.InSite).
	Field   Field
	Message string
}

func (e *FieldError) Error() string { return string(e.Field) + ": " + e.Message }

// ValidationErrors is every FieldError found in a Config, in field order.
type ValidationErrors []*FieldError

func (v ValidationErrors) Error() string {
	msgs := make([]string, len(v))
	for i, e := range v {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// For returns the error for field, or nil if it is fine.
func (v ValidationErrors) For(field Field) *FieldError {
	for _, e := range v {
		if e.Field == field {
			return e
		}
	}
	return nil
}

// FieldErrors extracts the field errors from an error returned by Validate.
func FieldErrors(err error) ValidationErrors {
	var v ValidationErrors
	if errors.As(err, &v) {
		return v
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return ValidationErrors{fe}
	}
	return nil
}

// Validate checks every field of c (with defaults applied) and returns a
// ValidationErrors listing each problem, or nil. Files named by the config
// (CA bundles, certificate and key) are read and checked on the spot.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs ValidationErrors
	add := func(field Field, err error) {
		if err != nil {
			errs = append(errs, &FieldError{Field: field, Message: err.Error()})
		}
	}
	c.validateSites(add)
	if c.HTTPAddr != Off {
		add(FieldHTTPAddr, validateListenAddr(c.HTTPAddr))
	}
	add(FieldHTTPSAddr, validateListenAddr(c.HTTPSAddr))
	if _, port, _ := ports.SplitAddr(c.HTTPSAddr); c.HTTPAddr != Off && c.HTTPAddr == c.HTTPSAddr && port != 0 {
		add(FieldHTTPSAddr, errors.New("the HTTP and HTTPS listeners cannot share one address; give each its own port, such as :80 and :443"))
	}
	if c.PublicHTTPSPort < 1 || c.PublicHTTPSPort > 65535 {
		add(FieldPublicHTTPSPort, fmt.Errorf("%d is not a port; use a number from 1 to 65535, usually 443", c.PublicHTTPSPort))
	}
	switch c.TLS {
	case TLSSelfSigned, TLSACME:
	case TLSFiles:
		if c.CertFile != "" || c.KeyFile != "" || c.sitesNeedSharedChain() {
			add(FieldCertFile, validateCertFiles(c.CertFile, c.KeyFile, ""))
		}
	default:
		add(FieldTLS, fmt.Errorf("%q is not a certificate source; use acme, files or self-signed", c.TLS))
	}
	if c.TLS == TLSACME {
		c.validateACME(add)
	}
	if c.StateDir == "" {
		add(FieldStateDir, errors.New("no state directory could be derived from the user's config directory; set one, such as /var/lib/gatehouse"))
	}
	_, err := ParseTrustedProxies(c.TrustedProxies)
	add(FieldTrustedProxies, err)
	if c.UpstreamKeepalive < 0 {
		add(FieldUpstreamKeepalive, fmt.Errorf("%d idle connections is negative; use 0 for the default of %d, or a positive number", c.UpstreamKeepalive, DefaultUpstreamKeepalive))
	}
	if c.UpstreamIdleTimeout < 0 {
		add(FieldUpstreamIdleTimeout, errors.New("must be a positive duration such as 90s"))
	}
	if c.UpstreamTimeout < 0 {
		add(FieldUpstreamTimeout, errors.New("must be a positive duration such as 60s"))
	}
	if c.StatusAddr != Off {
		add(FieldStatusAddr, validateListenAddr(c.StatusAddr))
	}
	if _, err := c.HSTSHeader(); err != nil {
		add(FieldHSTS, err)
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		add(FieldHealthPath, fmt.Errorf("%q must start with /, such as %s", c.HealthPath, DefaultHealthPath))
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// ValidateHostname checks that name is a DNS host name fit for a certificate:
// no scheme, port, path or IP address, and only letters, digits and hyphens.
func ValidateHostname(name string) error {
	switch {
	case name == "":
		return errors.New("enter the public name visitors type, such as sso.example.com")
	case strings.Contains(name, "://"):
		return fmt.Errorf("%q includes a scheme; enter only the name, such as sso.example.com", name)
	case strings.ContainsAny(name, "/?#"):
		return fmt.Errorf("%q includes a path; enter only the name, such as sso.example.com", name)
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return fmt.Errorf("%s is an IP address; certificates are issued for names, so enter a DNS name that points here, such as sso.example.com", name)
	}
	if strings.Contains(name, ":") {
		return fmt.Errorf("%q includes a port; enter only the name, and set ports under Listen addresses", name)
	}
	if len(name) > 253 {
		return fmt.Errorf("the name is %d characters long; DNS allows at most 253", len(name))
	}
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	for _, label := range labels {
		if err := validateLabel(label); err != nil {
			return fmt.Errorf("%q is not a valid host name: %v", name, err)
		}
	}
	if isNumericLabel(labels[len(labels)-1]) {
		return fmt.Errorf("%q ends in a number, so browsers read it as an IP address; enter a name whose last part has letters, such as sso.example.com", name)
	}
	return nil
}

// isNumericLabel reports whether a label is what the WHATWG URL standard's
// "ends in a number" check takes for part of an IPv4 address: decimal
// digits, or 0x and hex digits. Browsers parse a host ending in one as an
// address ("http://0/" is 0.0.0.0), so such a name can never be visited.
func isNumericLabel(label string) bool {
	if hex, ok := strings.CutPrefix(strings.ToLower(label), "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return label != "" && strings.Trim(label, "0123456789") == ""
}

func validateLabel(label string) error {
	if label == "" {
		return errors.New("it has an empty part between dots")
	}
	if len(label) > 63 {
		return fmt.Errorf("the part %q is longer than 63 characters", label)
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Errorf("the part %q starts or ends with a hyphen", label)
	}
	for _, r := range label {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%q is not allowed; use letters, digits, hyphens and dots (write international names in their xn-- form)", r)
		}
	}
	return nil
}

func validateUpstreamTrust(t upstream.Trust, u *url.URL) error {
	return validateTrust(t, u, "upstream")
}

// validateTrust checks how the certificate of server (at u, nil when
// unknown) is trusted: one way at most, over https:// only, with a CA file
// that holds certificates.
func validateTrust(t upstream.Trust, u *url.URL, server string) error {
	set := 0
	for _, on := range []bool{t.Insecure, t.CAFile != "", t.Fingerprint != ""} {
		if on {
			set++
		}
	}
	if set > 1 {
		return fmt.Errorf("choose one way to trust the %s: a pinned fingerprint, a CA file, or skipping verification", server)
	}
	if set == 1 && u != nil && u.Scheme != "https" {
		return fmt.Errorf("certificate trust options apply to an https:// %s only; remove them or use https://", server)
	}
	if t.CAFile == "" {
		return nil
	}
	_, err := upstream.LoadCertPool(t.CAFile)
	return err
}

func validateListenAddr(addr string) error {
	host, _, err := ports.SplitAddr(addr)
	if err != nil {
		return fmt.Errorf("%q is not a listen address (%v); use :port or address:port, such as :443 or 127.0.0.1:8443", addr, err)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("%q: listen on an IP address, not the name %q; use :port to listen on every address", addr, host)
	}
	return nil
}

// validateCertFiles checks a PEM chain and its key, and when hostname is
// not empty that the certificate is valid for it.
func validateCertFiles(certFile, keyFile, hostname string) error {
	if certFile == "" || keyFile == "" {
		return errors.New("the files certificate needs both a certificate chain file and a key file (PEM)")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("cannot use %s with %s: %v; check that the chain and key are PEM and belong together", certFile, keyFile, err)
	}
	if hostname != "" && pair.Leaf.VerifyHostname(hostname) != nil {
		return fmt.Errorf("%s is not valid for %s (it names %s); use a certificate for this site's name", certFile, hostname, strings.Join(pair.Leaf.DNSNames, ", "))
	}
	return nil
}

// sitesNeedSharedChain reports whether a site has no certificate files of
// its own, so the top-level chain must be set with TLS "files".
func (c Config) sitesNeedSharedChain() bool {
	for _, s := range c.AllSites() {
		if s.CertFile == "" && s.KeyFile == "" {
			return true
		}
	}
	return false
}

func (c Config) validateACME(add func(Field, error)) {
	if c.ACMEEmail != "" {
		if a, err := mail.ParseAddress(c.ACMEEmail); err != nil || a.Address != c.ACMEEmail {
			add(FieldACMEEmail, fmt.Errorf("%q is not an email address; enter one such as you@example.com, or leave it empty", c.ACMEEmail))
		}
	}
	dir := c.ACMEDirectoryURL()
	if u, err := url.Parse(dir); err != nil || u.Scheme != "https" || u.Host == "" {
		add(FieldACMEDirectory, fmt.Errorf("%q is not an ACME directory; use production, staging or an https:// directory URL", c.ACMEDirectory))
	}
	if c.ACMECARoots != "" {
		_, err := upstream.LoadCertPool(c.ACMECARoots)
		add(FieldACMECARoots, err)
	}
	if (c.ACMEEABKeyID == "") != (c.ACMEEABHMAC == "") {
		add(FieldACMEEABKeyID, errors.New("External Account Binding needs both the key ID and the HMAC key your CA gave you"))
	}
	if c.ACMEEABHMAC != "" {
		if _, err := DecodeEABKey(c.ACMEEABHMAC); err != nil {
			add(FieldACMEEABHMAC, errors.New("the HMAC key is not base64url; paste it exactly as your CA shows it"))
		}
	}
}

// DecodeEABKey decodes an EAB HMAC key, which CAs give as base64url,
// sometimes padded.
func DecodeEABKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// ParseTrustedProxies parses CIDRs and single addresses.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR range; use forms such as 192.168.1.10 or 10.0.0.0/8", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
