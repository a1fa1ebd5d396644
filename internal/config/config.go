// Package config is Gatehouse's configuration: the Config struct the
// wizard produces, the config file holds and `gatehouse serve` flags
// override; its defaults; and Validate, whose errors name the field (a
// Field, the config key) in words the wizard shows beside it.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// A TLSSource names where the certificate comes from: the values of
// Config.TLS.
type TLSSource string

// Certificate sources.
const (
	TLSSelfSigned TLSSource = "self-signed" // a local CA in the state dir issues the leaf
	TLSFiles      TLSSource = "files"       // a PEM chain and key on disk, reloaded when they change
	TLSACME       TLSSource = "acme"        // obtained and renewed from an ACME CA such as Let's Encrypt
)

// Well-known ACME directories, accepted by name in Config.ACMEDirectory.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// Off disables an optional listener when given as its address.
const Off = "off"

// UpstreamDemo as Config.Upstream makes the engine start its built-in demo
// app on a loopback port and proxy to it, to try Gatehouse without an app.
const UpstreamDemo = "demo"

// Config is everything Gatehouse needs to run the proxy. It is what the wizard
// produces, what the config file holds and what `gatehouse serve` flags override.
// Zero values mean the documented default; Validate reports what is wrong,
// field by field, in words the wizard shows next to the field.
type Config struct {
	// Hostname is the public DNS name visitors use, such as sso.example.com:
	// with Upstream and the upstream trust keys, the first site (see
	// AllSites). Required unless Sites lists the sites. Requests for a host
	// no site has get 421 Misdirected Request.
	Hostname string `json:"hostname"`

	// Upstream is the base URL of the app behind the proxy, such as
	// https://authentik.lan:9443. Required; http and https are accepted.
	Upstream string `json:"upstream"`

	// UpstreamInsecure skips verification of the upstream's certificate.
	// Prefer UpstreamFingerprint, which pins the one certificate you saw.
	UpstreamInsecure bool `json:"upstream_insecure,omitempty"`

	// UpstreamCA is a PEM file of CA certificates trusted for the upstream,
	// in place of the system roots.
	UpstreamCA string `json:"upstream_ca,omitempty"`

	// UpstreamFingerprint pins the upstream's leaf certificate by the SHA-256
	// of its DER bytes (hex, colons optional). The certificate is then trusted
	// whoever issued it, which suits authentik's self-signed default.
	UpstreamFingerprint string `json:"upstream_fingerprint,omitempty"`

	// Sites are the sites served besides (or, without a top-level
	// Hostname and Upstream, in place of) the one the keys above describe:
	// each a hostname with its own upstream and trust, certificate files
	// and forward auth. AllSites lists every site, the top-level one
	// first; see Site.
	Sites []Site `json:"sites,omitempty"`

	// HTTPAddr is the plain HTTP listen address, which redirects to HTTPS and
	// answers ACME HTTP-01 challenges. Default ":80"; "off" disables it.
	HTTPAddr string `json:"http_addr,omitempty"`

	// HTTPSAddr is the TLS listen address. Default ":443".
	HTTPSAddr string `json:"https_addr,omitempty"`

	// PublicHTTPSPort is the port visitors reach HTTPS on, used in redirects
	// (a router may forward 443 to a local 8443). Default: HTTPSAddr's port.
	PublicHTTPSPort int `json:"public_https_port,omitempty"`

	// TLS names the certificate source: "self-signed", "files" or "acme".
	// Default "acme".
	TLS TLSSource `json:"tls,omitempty"`

	// CertFile and KeyFile are the PEM chain and key for TLS "files": of
	// every site that has none of its own (Site.CertFile).
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`

	// StateDir holds certificates, keys and ACME state (directories 0700,
	// files 0600). Default: "state" in DefaultConfigDir.
	StateDir string `json:"state_dir,omitempty"`

	// TrustedProxies lists the CIDRs (or single addresses) of proxies in front
	// of Gatehouse whose X-Forwarded-* headers are believed. Default: none,
	// so every client's own forwarding headers are replaced.
	TrustedProxies []string `json:"trusted_proxies,omitempty"`

	// UpstreamKeepalive is how many idle upstream connections are kept for
	// reuse. Default 256. authentik's nginx example says `keepalive 10`, but
	// that caps each nginx worker, and nginx runs one per core; Go keeps one
	// pool, and a request that finds no idle connection dials a new one while
	// the busy ones are still finishing, so the pool must hold more than the
	// peak number of requests in flight. A smaller pool closes the surplus and
	// dials again: with 10, a proxy serving 32 busy clients spent 45% of its
	// CPU on upstream TLS handshakes (docs/BENCHMARKS.md). The cap costs
	// nothing until a burst fills it, and idle connections close after
	// UpstreamIdleTimeout. With this many requests in flight, the next
	// waits up to a second for one of them to finish and reuses its
	// connection, then dials (an event stream or WebSocket does not count).
	UpstreamKeepalive int `json:"upstream_keepalive,omitempty"`

	// UpstreamIdleTimeout closes idle upstream connections. Default 90s,
	// below the 120 s after which authentik closes them itself.
	UpstreamIdleTimeout Duration `json:"upstream_idle_timeout,omitempty"`

	// UpstreamTimeout is how long to wait for the upstream's response headers
	// before answering 504. Default 60s.
	UpstreamTimeout Duration `json:"upstream_timeout,omitempty"`

	// ACMEEmail is the contact address given to the ACME CA (optional).
	ACMEEmail string `json:"acme_email,omitempty"`

	// ACMEDirectory is the ACME directory URL, or "production" / "staging"
	// for Let's Encrypt's. Default "production".
	ACMEDirectory string `json:"acme_directory,omitempty"`

	// ACMECARoots is a PEM file of extra roots trusted for the ACME server's
	// API, for a private CA such as step-ca.
	ACMECARoots string `json:"acme_ca_roots,omitempty"`

	// ACMEEABKeyID and ACMEEABHMAC are External Account Binding credentials
	// for CAs that need them; the HMAC key is base64url as CAs hand it out.
	ACMEEABKeyID string `json:"acme_eab_kid,omitempty"`
	ACMEEABHMAC  string `json:"acme_eab_hmac,omitempty"`

	// ACMEStagingFirst, with Let's Encrypt's production CA, first obtains a
	// certificate from its staging CA, whose limits are generous, so a
	// setup that cannot validate fails there rather than against
	// production's limit on failed validations. It applies until a
	// production certificate has been obtained once; later starts and
	// renewals go to production directly. Default false.
	ACMEStagingFirst bool `json:"acme_staging_first,omitempty"`

	// StatusAddr serves the status JSON and Prometheus metrics.
	// Default "127.0.0.1:9180"; "off" disables it.
	StatusAddr string `json:"status_addr,omitempty"`

	// HealthPath is the upstream path checked periodically.
	// Default "/-/health/live/", authentik's liveness endpoint.
	HealthPath string `json:"health_path,omitempty"`

	// HSTS sets Strict-Transport-Security on HTTPS answers: "on"
	// (max-age of two years, DefaultHSTSMaxAge), "off", or a max-age such
	// as "730d", "8760h" or "31536000" (seconds). Default: on with the acme
	// and files certificate sources, off with self-signed, whose local CA
	// browsers may not trust yet (HSTS would then lock visitors out).
	// Neither includeSubDomains nor preload is sent: they bind names
	// Gatehouse does not serve.
	HSTS string `json:"hsts,omitempty"`

	// ForwardAuth, when set, protects the site with authentik's forward
	// auth: only visitors signed in to authentik reach the upstream. Its
	// Site cannot be used with a single site: give the outpost's URL.
	ForwardAuth *ForwardAuth `json:"forward_auth,omitempty"`
}

// ForwardAuth protects a site with authentik's forward auth: each request
// is first checked with an authentik outpost, and only signed-in visitors
// reach the app.
type ForwardAuth struct {
	// URL is the outpost: authentik's embedded outpost (its own URL, such
	// as https://authentik.lan:9443) or a standalone proxy outpost (such as
	// http://outpost.lan:9000). Either URL or Site is required.
	URL string `json:"url,omitempty"`
	// Insecure, Fingerprint and CA say how the outpost's certificate is
	// trusted, as upstream_insecure, upstream_fingerprint and upstream_ca
	// do for an upstream.
	Insecure    bool   `json:"insecure,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	CA          string `json:"ca,omitempty"`
	// Site names another site (its hostname) whose upstream is the
	// outpost, with that site's trust settings: usually authentik's own.
	Site string `json:"site,omitempty"`
}

// Trust is how the outpost's certificate is checked.
func (f ForwardAuth) Trust() upstream.Trust {
	return upstream.Trust{Insecure: f.Insecure, CAFile: f.CA, Fingerprint: f.Fingerprint}
}

// Defaults used where a Config field is zero.
const (
	DefaultHTTPAddr            = ":80"
	DefaultHTTPSAddr           = ":443"
	DefaultTLS                 = TLSACME
	DefaultUpstreamKeepalive   = 256
	DefaultUpstreamIdleTimeout = 90 * time.Second
	DefaultUpstreamTimeout     = 60 * time.Second
	DefaultStatusAddr          = "127.0.0.1:9180"
	DefaultHealthPath          = "/-/health/live/"
	// DefaultHSTSMaxAge is two years, what Mozilla's guidelines and the
	// HSTS preload list ask for.
	DefaultHSTSMaxAge = 63072000 * time.Second
)

// HSTSHeader returns the Strict-Transport-Security value c asks for, or ""
// when HSTS is off; an error for a value that is neither on, off nor a
// positive max-age.
func (c Config) HSTSHeader() (string, error) {
	maxAge := DefaultHSTSMaxAge
	switch v := strings.ToLower(strings.TrimSpace(c.HSTS)); v {
	case "":
		if c.WithDefaults().TLS == TLSSelfSigned {
			return "", nil
		}
	case "on":
	case "off":
		return "", nil
	default:
		d, err := parseMaxAge(v)
		if err != nil {
			return "", fmt.Errorf("%q is not on, off or a max-age such as 730d or 8760h", c.HSTS)
		}
		if d < time.Second {
			return "", fmt.Errorf("a max-age of %q would end HSTS at once; use off, or a duration such as 730d", c.HSTS)
		}
		maxAge = d
	}
	return "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10), nil
}

// parseMaxAge reads "730d" (days), a Go duration such as "8760h", or a
// number of seconds.
func parseMaxAge(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil || n > 100*365 {
			return 0, errors.New("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// DefaultDir is where the config file and, by default, the state dir
// live: "gatehouse" in the user's config directory (~/.config/gatehouse).
func DefaultDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config directory: %w", err)
	}
	return filepath.Join(dir, "gatehouse"), nil
}

// DefaultPath is the config file used when none is named.
func DefaultPath() (string, error) {
	dir, err := DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "config.json"), nil
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.HTTPSAddr == "" {
		c.HTTPSAddr = DefaultHTTPSAddr
	}
	if c.PublicHTTPSPort == 0 {
		c.PublicHTTPSPort = 443
		if _, port, err := ports.SplitAddr(c.HTTPSAddr); err == nil && port != 0 {
			c.PublicHTTPSPort = port
		}
	}
	if c.TLS == "" {
		c.TLS = DefaultTLS
	}
	if c.StateDir == "" {
		if dir, err := DefaultDir(); err == nil {
			c.StateDir = filepath.Join(dir, "state")
		}
	}
	if c.UpstreamKeepalive == 0 {
		c.UpstreamKeepalive = DefaultUpstreamKeepalive
	}
	if c.UpstreamIdleTimeout == 0 {
		c.UpstreamIdleTimeout = Duration(DefaultUpstreamIdleTimeout)
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = Duration(DefaultUpstreamTimeout)
	}
	if c.ACMEDirectory == "" {
		c.ACMEDirectory = "production"
	}
	if c.StatusAddr == "" {
		c.StatusAddr = DefaultStatusAddr
	}
	if c.HealthPath == "" {
		c.HealthPath = DefaultHealthPath
	}
	return c
}

// ACMEDirectoryURL resolves the "production" and "staging" shortcuts.
func (c Config) ACMEDirectoryURL() string {
	switch strings.ToLower(c.ACMEDirectory) {
	case "", "production":
		return LetsEncryptProduction
	case "staging":
		return LetsEncryptStaging
	}
	return c.ACMEDirectory
}

// Load reads a config file. A missing file is reported as an error
// wrapping fs.ErrNotExist; unknown keys are errors, so typos do not pass
// silently.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	// The config names the upstream, its trust and the state dir: one
	// another user may write could send visitors' logins elsewhere.
	if err := privatefile.CheckNotShared(path, "config file"); err != nil {
		return Config{}, err
	}
	return Parse(data, path)
}

// Parse decodes a config file's contents as Load does: unknown keys and
// text after the closing } are errors; path names the file in them.
func Parse(data []byte, path string) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line := 1 + bytes.Count(data[:min(int(syn.Offset), len(data))], []byte("\n"))
			return c, fmt.Errorf("config %s, line %d: %v", path, line, err)
		}
		return c, fmt.Errorf("config %s: %v", path, err)
	}
	// Decode stops after the first value; anything behind it (a second
	// object pasted in, stray text) would otherwise be ignored silently.
	if _, err := dec.Token(); err != io.EOF {
		line := 1 + bytes.Count(data[:dec.InputOffset()], []byte("\n"))
		return c, fmt.Errorf("config %s, line %d: unexpected text after the closing }", path, line)
	}
	return c, nil
}

// Save writes c to path atomically with mode 0600, creating a
// missing directory with mode 0700; an existing one is left as it is.
func Save(path string, c Config) error {
	data, err := Encode(c)
	if err != nil {
		return err
	}
	if err := privatefile.Write(path, data); err != nil {
		return fmt.Errorf("saving config: %w", err)
	}
	return nil
}

// Encode is a config file's contents, as Save writes them.
func Encode(c Config) ([]byte, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return append(data, '\n'), nil
}

// UpstreamTrust is how the top-level upstream's certificate is checked
// (the first site's, when the top-level keys describe it).
func (c Config) UpstreamTrust() upstream.Trust { return c.legacySite().UpstreamTrust() }

// UpstreamPool sizes the keepalive pool to the upstream.
func (c Config) UpstreamPool() upstream.Pool {
	return upstream.Pool{
		Keepalive:       c.UpstreamKeepalive,
		IdleTimeout:     time.Duration(c.UpstreamIdleTimeout),
		ResponseTimeout: time.Duration(c.UpstreamTimeout),
	}
}

// Duration is a time.Duration written as text ("90s", "2m") in config files.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 90s or 2m", b)
	}
	*d = Duration(v)
	return nil
}

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }
