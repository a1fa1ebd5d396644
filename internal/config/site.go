package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// A Site is one public hostname Gatehouse serves and the app behind it.
// Every site shares the listeners, the certificate source (Config.TLS),
// the ACME settings, the state dir and the limits of its Config; each has
// its own upstream pool, health check, certificate and status.
//
// A Config describes its sites in two ways, which may be combined: the
// top-level Hostname, Upstream and upstream trust keys (the form of a
// single-site config, kept valid) are the first site, and Sites lists the
// others (or all of them, when the top-level keys are empty). AllSites
// returns them in that order; everything that serves or checks sites
// reads AllSites, never the top-level keys alone.
type Site struct {
	// Hostname is the site's public DNS name, such as app.example.com.
	// Required; unique among the sites (letter case and a trailing dot
	// do not make a name different).
	Hostname string `json:"hostname"`

	// Upstream is the base URL of the site's app, such as
	// http://10.0.0.5:8080, or "demo". Required.
	Upstream string `json:"upstream"`

	// UpstreamInsecure, UpstreamCA and UpstreamFingerprint say how the
	// upstream's certificate is trusted, as the top-level keys of the same
	// names do; at most one.
	UpstreamInsecure    bool   `json:"upstream_insecure,omitempty"`
	UpstreamCA          string `json:"upstream_ca,omitempty"`
	UpstreamFingerprint string `json:"upstream_fingerprint,omitempty"`

	// CertFile and KeyFile are this site's PEM chain and key with TLS
	// "files". Without them the site is served from the top-level
	// cert_file and key_file, whose certificate must then cover its name.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`

	// ForwardAuth, when set, asks authentik's outpost whether each visitor
	// may reach this site before the request goes to its upstream.
	ForwardAuth *ForwardAuth `json:"forward_auth,omitempty"`
}

// hasLegacySite reports whether the top-level keys describe a site: they
// do when set, and when no site is listed at all (so that an empty
// config is reported as missing its hostname).
func (c Config) hasLegacySite() bool {
	return c.Hostname != "" || c.Upstream != "" || len(c.Sites) == 0
}

// legacySite is the site the top-level keys describe. Its CertFile and
// KeyFile stay empty: the top-level chain is every site's default.
func (c Config) legacySite() Site {
	return Site{Hostname: c.Hostname, Upstream: c.Upstream, UpstreamInsecure: c.UpstreamInsecure,
		UpstreamCA: c.UpstreamCA, UpstreamFingerprint: c.UpstreamFingerprint, ForwardAuth: c.ForwardAuth}
}

// AllSites is every site c serves, the first first: the one the top-level
// hostname and upstream keys describe, if set (or if Sites is empty),
// followed by Sites. The first site is the default: its hostname is the
// one plain-HTTP requests for unknown names are redirected to, and its
// certificate answers handshakes naming no configured site.
func (c Config) AllSites() []Site {
	var out []Site
	if c.hasLegacySite() {
		out = append(out, c.legacySite())
	}
	return append(out, c.Sites...)
}

// ForSite is c as a single-site config serving s alone: the top-level
// hostname, upstream, trust (and, if s has its own, certificate files)
// are s's, and Sites is empty. The checks, the exports and the
// certificate sources, which handle one name, take it.
func (c Config) ForSite(s Site) Config {
	c.Hostname, c.Upstream, c.ForwardAuth = s.Hostname, s.Upstream, s.ForwardAuth
	c.UpstreamInsecure, c.UpstreamCA, c.UpstreamFingerprint = s.UpstreamInsecure, s.UpstreamCA, s.UpstreamFingerprint
	if s.CertFile != "" || s.KeyFile != "" {
		c.CertFile, c.KeyFile = s.CertFile, s.KeyFile
	}
	c.Sites = nil
	return c
}

// UpstreamTrust is how the site's upstream certificate is checked.
func (s Site) UpstreamTrust() upstream.Trust {
	return upstream.Trust{Insecure: s.UpstreamInsecure, CAFile: s.UpstreamCA, Fingerprint: s.UpstreamFingerprint}
}

// Key is the site's hostname as requests are matched against it: lower
// case, without a trailing dot.
func (s Site) Key() string { return SiteKey(s.Hostname) }

// SiteKey normalizes a hostname as Site.Key does.
func SiteKey(hostname string) string { return strings.TrimSuffix(strings.ToLower(hostname), ".") }

// SiteField names field of the site at index i of the config file's
// sites list, such as "sites[1].upstream".
func SiteField(i int, field Field) Field {
	return Field(string(FieldSites) + "[" + strconv.Itoa(i) + "]." + string(field))
}

// InSite splits a Field naming a site's key ("sites[1].upstream") into
// the index in the sites list and the key; ok is false for a top-level
// Field.
func (f Field) InSite() (index int, key Field, ok bool) {
	rest, found := strings.CutPrefix(string(f), string(FieldSites)+"[")
	if !found {
		return 0, "", false
	}
	num, key0, found := strings.Cut(rest, "].")
	n, err := strconv.Atoi(num)
	if !found || err != nil || n < 0 {
		return 0, "", false
	}
	return n, Field(key0), true
}

// validateSites checks every site: its name (unique), its upstream and
// trust, its certificate files and its forward auth.
func (c Config) validateSites(add func(Field, error)) {
	sites := c.AllSites()
	// name gives the Field of key for the site at position i of sites.
	first := 0
	if c.hasLegacySite() {
		first = 1
	}
	name := func(i int, key Field) Field {
		if i < first {
			return key
		}
		return SiteField(i-first, key)
	}
	if !c.hasLegacySite() && (c.UpstreamInsecure || c.UpstreamCA != "" || c.UpstreamFingerprint != "") {
		add(FieldUpstreamInsecure, errors.New("the top-level upstream trust keys apply to the top-level upstream, which is not set; give each site in sites its own"))
	}
	known := map[string]int{}
	for i, s := range sites {
		if err := ValidateHostname(s.Hostname); err != nil {
			add(name(i, FieldHostname), err)
		} else if c.TLS == TLSACME && !strings.Contains(s.Hostname, ".") {
			add(name(i, FieldHostname), fmt.Errorf("%q is not a public name, so no ACME CA will issue a certificate for it; use a full name such as sso.example.com, or choose the local certificate authority", s.Hostname))
		} else if j, dup := known[s.Key()]; dup {
			add(name(i, FieldHostname), fmt.Errorf("%q is already served by %s; each site needs its own name", s.Hostname, siteLabel(sites, j, name)))
		} else {
			known[s.Key()] = i
		}
		u, err := upstream.ParseURL(s.Upstream)
		if s.Upstream == UpstreamDemo {
			u, err = &url.URL{Scheme: "http", Host: "127.0.0.1"}, nil // the engine picks the port
		}
		add(name(i, FieldUpstream), err)
		add(name(i, FieldUpstreamCA), validateUpstreamTrust(s.UpstreamTrust(), u))
		if s.UpstreamFingerprint != "" {
			_, err := upstream.ParseFingerprint(s.UpstreamFingerprint)
			add(name(i, FieldUpstreamFingerprint), err)
		}
		c.validateSiteCertificate(s, len(sites), func(key Field, err error) { add(name(i, key), err) })
	}
	for i, s := range sites {
		if s.ForwardAuth != nil {
			add(name(i, FieldForwardAuth), validateForwardAuth(*s.ForwardAuth, s, sites, known))
		}
	}
}

// siteLabel names the site at i for a message: its key in the file.
func siteLabel(sites []Site, i int, name func(int, Field) Field) string {
	if f := name(i, FieldHostname); f != FieldHostname {
		idx, _, _ := f.InSite()
		return fmt.Sprintf("sites[%d]", idx)
	}
	return "the top-level hostname"
}

// validateSiteCertificate checks the certificate files a site is served
// from with TLS "files": its own, or the top-level chain, which must then
// cover its name when there is more than one site (one site alone is
// served its chain whatever the visitor asks for, as always).
func (c Config) validateSiteCertificate(s Site, sites int, add func(Field, error)) {
	if s.CertFile != "" || s.KeyFile != "" {
		if c.TLS != TLSFiles {
			add(FieldCertFile, fmt.Errorf("a site's own certificate files apply with the files certificate source only, not %s; remove them or set tls to files", c.TLS))
			return
		}
		add(FieldCertFile, validateCertFiles(s.CertFile, s.KeyFile, s.Hostname))
		return
	}
	if c.TLS != TLSFiles || sites < 2 || c.CertFile == "" || c.KeyFile == "" {
		return // the top-level chain is checked on its own
	}
	if pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err == nil && pair.Leaf.VerifyHostname(s.Hostname) != nil {
		add(FieldCertFile, fmt.Errorf("the shared certificate %s is not valid for %s (it names %s); give this site its own cert_file and key_file, or use a certificate that covers every site", c.CertFile, s.Hostname, strings.Join(pair.Leaf.DNSNames, ", ")))
	}
}

// validateForwardAuth checks site s's forward auth: one outpost, given
// by a URL (its base address, reachable and trusted as the settings say)
// or by another of sites (known by key), and neither Gatehouse itself nor
// the app it protects.
func validateForwardAuth(f ForwardAuth, s Site, sites []Site, known map[string]int) error {
	switch {
	case f.URL != "" && f.Site != "":
		return errors.New("forward auth needs one outpost: give its url or a site, not both")
	case f.Site != "" && len(sites) == 1:
		return fmt.Errorf("site names another site whose upstream is the outpost, but this configuration serves one site, %s; give the outpost's address as url instead, such as https://authentik.lan:9443", s.Hostname)
	case f.Site != "":
		if SiteKey(f.Site) == s.Key() {
			return errors.New("a site cannot be its own forward auth outpost; name the site that serves authentik")
		}
		if _, ok := known[SiteKey(f.Site)]; !ok {
			return fmt.Errorf("%q is not one of the configured sites; name the site that serves authentik, or give the outpost's url", f.Site)
		}
		return nil
	case f.URL == "":
		return errors.New("enter the outpost's address as url: authentik's own for its embedded outpost, such as https://authentik.lan:9443, or a standalone proxy outpost, such as http://outpost.lan:9000")
	case strings.Contains(f.URL, "/outpost.goauthentik.io"):
		return fmt.Errorf("give the outpost's base address without its path, such as https://authentik.lan:9443; Gatehouse adds /outpost.goauthentik.io/auth/caddy itself (%q)", f.URL)
	}
	u, err := upstream.ParseURL(f.URL)
	if err != nil {
		return fmt.Errorf("the outpost's url: %v", err)
	}
	if err := validateTrust(f.Trust(), u, "outpost"); err != nil {
		return err
	}
	if f.Fingerprint != "" {
		if _, err := upstream.ParseFingerprint(f.Fingerprint); err != nil {
			return err
		}
	}
	// Either would loop: a check sent to Gatehouse itself is checked
	// again, and authentik's own sign-in pages cannot sit behind its sign-in.
	if _, served := known[SiteKey(u.Hostname())]; served || SiteKey(u.Hostname()) == s.Key() {
		return fmt.Errorf("the outpost cannot be %s, a name Gatehouse serves: give the address Gatehouse reaches authentik or the outpost at, such as https://authentik.lan:9443", u.Hostname())
	}
	if up, err := upstream.ParseURL(s.Upstream); err == nil && strings.EqualFold(upstream.HostPort(u), upstream.HostPort(up)) {
		return fmt.Errorf("the outpost %s is the upstream this site protects: authentik's sign-in pages cannot sit behind its own sign-in; protect another app with it", upstream.HostPort(u))
	}
	return nil
}

// Outpost is the outpost f names, as a URL with its trust: f itself, or
// for a site (usually authentik's own) that site's upstream and trust.
func (c Config) Outpost(f ForwardAuth) (ForwardAuth, error) {
	if f.Site == "" {
		return f, nil
	}
	for _, other := range c.AllSites() {
		if other.Key() == SiteKey(f.Site) {
			if other.Upstream == UpstreamDemo {
				return f, fmt.Errorf("forward auth: the site %s serves the demo app, not authentik", f.Site)
			}
			return ForwardAuth{URL: other.Upstream, Insecure: other.UpstreamInsecure,
				Fingerprint: other.UpstreamFingerprint, CA: other.UpstreamCA}, nil
		}
	}
	return f, fmt.Errorf("forward auth: %s is not a configured site", f.Site)
}
