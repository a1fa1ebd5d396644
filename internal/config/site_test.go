package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAllSitesFoldsTheTopLevelSiteInFirst(t *testing.T) {
	legacy := Config{Hostname: "sso.example.com", Upstream: "https://authentik.lan:9443", UpstreamInsecure: true}
	if got := legacy.AllSites(); len(got) != 1 || got[0].Hostname != "sso.example.com" || !got[0].UpstreamInsecure {
		t.Errorf("legacy config: AllSites = %+v", got)
	}
	both := legacy
	both.Sites = []Site{{Hostname: "app.example.com", Upstream: "http://10.0.0.5"}}
	if got := both.AllSites(); len(got) != 2 || got[0].Hostname != "sso.example.com" || got[1].Hostname != "app.example.com" {
		t.Errorf("top-level and sites: AllSites = %+v", got)
	}
	only := Config{Sites: both.Sites}
	if got := only.AllSites(); len(got) != 1 || got[0].Hostname != "app.example.com" {
		t.Errorf("sites only: AllSites = %+v", got)
	}
	if got := (Config{}).AllSites(); len(got) != 1 || got[0].Hostname != "" {
		t.Errorf("empty config: AllSites = %+v, want one empty site to report", got)
	}
	one := only.ForSite(only.Sites[0])
	if one.Hostname != "app.example.com" || one.Upstream != "http://10.0.0.5" || one.Sites != nil {
		t.Errorf("ForSite = %+v", one)
	}
}

func TestSiteFieldRoundTrip(t *testing.T) {
	f := SiteField(1, FieldUpstream)
	if f != "sites[1].upstream" {
		t.Fatalf("SiteField = %q", f)
	}
	if i, key, ok := f.InSite(); !ok || i != 1 || key != FieldUpstream {
		t.Errorf("InSite(%q) = %d %q %v", f, i, key, ok)
	}
	for _, top := range []Field{FieldUpstream, "sites", "sites[x].upstream", "sites[-1].a"} {
		if _, _, ok := top.InSite(); ok {
			t.Errorf("InSite(%q) reported a site", top)
		}
	}
}

// TestValidateNamesTheSite: each error about a site's key names the site's
// place in the sites list, and the top-level site keeps its plain keys.
func TestValidateNamesTheSite(t *testing.T) {
	dir := t.TempDir()
	base := Config{TLS: TLSSelfSigned, StateDir: dir, Sites: []Site{
		{Hostname: "a.example.com", Upstream: "http://10.0.0.5:8080"},
		{Hostname: "b.example.com", Upstream: "https://10.0.0.6", UpstreamInsecure: true},
	}}
	if err := base.Validate(); err != nil {
		t.Fatalf("valid sites rejected: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		field  Field
		want   string
	}{
		{"bad upstream", func(c *Config) { c.Sites[1].Upstream = "10.0.0.6" }, "sites[1].upstream", "has no scheme"},
		{"no hostname", func(c *Config) { c.Sites[0].Hostname = "" }, "sites[0].hostname", "enter the public name"},
		{"duplicate", func(c *Config) { c.Sites[1].Hostname = "A.Example.com." }, "sites[1].hostname", "already served by sites[0]"},
		{"duplicate of the top-level site", func(c *Config) { c.Hostname, c.Upstream = "b.example.com", "http://x.lan" }, "sites[1].hostname", "already served by the top-level hostname"},
		{"trust on http", func(c *Config) { c.Sites[0].UpstreamInsecure = true }, "sites[0].upstream_ca", "https:// upstream only"},
		{"bad pin", func(c *Config) { c.Sites[1].UpstreamInsecure, c.Sites[1].UpstreamFingerprint = false, "abc" }, "sites[1].upstream_fingerprint", "64 hex digits"},
		{"top-level trust without a top-level site", func(c *Config) { c.UpstreamInsecure = true }, FieldUpstreamInsecure, "give each site"},
		{"own files without files", func(c *Config) { c.Sites[0].CertFile, c.Sites[0].KeyFile = "a.pem", "a.key" }, "sites[0].cert_file", "files certificate source only"},
		{"forward auth without outpost", func(c *Config) { c.Sites[0].ForwardAuth = &ForwardAuth{} }, "sites[0].forward_auth", "enter the outpost's address"},
		{"forward auth url", func(c *Config) { c.Sites[0].ForwardAuth = &ForwardAuth{URL: "ftp://x"} }, "sites[0].forward_auth", "the outpost's url"},
		{"forward auth unknown site", func(c *Config) { c.Sites[0].ForwardAuth = &ForwardAuth{Site: "c.example.com"} }, "sites[0].forward_auth", "not one of the configured sites"},
		{"forward auth itself", func(c *Config) { c.Sites[0].ForwardAuth = &ForwardAuth{Site: "A.example.com"} }, "sites[0].forward_auth", "its own"},
	} {
		c := base
		c.Sites = slices.Clone(base.Sites)
		tc.mutate(&c)
		errs := FieldErrors(c.Validate())
		if fe := errs.For(tc.field); fe == nil || !strings.Contains(fe.Message, tc.want) {
			t.Errorf("%s: got %v, want %s: ...%s...", tc.name, errs, tc.field, tc.want)
		} else if len(errs) != 1 {
			t.Errorf("%s: more errors than the one expected: %v", tc.name, errs)
		}
	}
	ok := base
	ok.Sites = slices.Clone(base.Sites)
	ok.Sites[0].ForwardAuth = &ForwardAuth{Site: "B.example.com."}
	ok.Sites[1].ForwardAuth = &ForwardAuth{URL: "https://authentik.lan:9443"}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid forward auth rejected: %v", err)
	}
}

// TestValidateFilesCoverEverySite: with TLS files, a site is served from
// its own chain or the shared one, which must cover its name.
func TestValidateFilesCoverEverySite(t *testing.T) {
	dir := t.TempDir()
	shared := writePair(t, dir, "shared", "a.example.com", "b.example.com")
	own := writePair(t, dir, "own", "c.example.com")
	c := Config{TLS: TLSFiles, StateDir: dir, CertFile: shared + ".crt", KeyFile: shared + ".key", Sites: []Site{
		{Hostname: "a.example.com", Upstream: "http://10.0.0.5"},
		{Hostname: "b.example.com", Upstream: "http://10.0.0.6"},
		{Hostname: "c.example.com", Upstream: "http://10.0.0.7", CertFile: own + ".crt", KeyFile: own + ".key"},
	}}
	if err := c.Validate(); err != nil {
		t.Fatalf("covered sites rejected: %v", err)
	}
	c.Sites[1].Hostname = "x.example.com"
	if fe := FieldErrors(c.Validate()).For("sites[1].cert_file"); fe == nil || !strings.Contains(fe.Message, "not valid for x.example.com") {
		t.Errorf("uncovered site: %v", c.Validate())
	}
	c.Sites[1].Hostname = "b.example.com"
	c.Sites[2].CertFile = shared + ".crt"
	c.Sites[2].KeyFile = shared + ".key"
	if fe := FieldErrors(c.Validate()).For("sites[2].cert_file"); fe == nil || !strings.Contains(fe.Message, "not valid for c.example.com") {
		t.Errorf("own chain for another name: %v", c.Validate())
	}
	// Every site has its own chain: no shared one is needed.
	c = Config{TLS: TLSFiles, StateDir: dir, Sites: []Site{{Hostname: "c.example.com", Upstream: "http://10.0.0.7", CertFile: own + ".crt", KeyFile: own + ".key"}}}
	if err := c.Validate(); err != nil {
		t.Errorf("own chains only: %v", err)
	}
}

// writePair writes a self-signed certificate for names as base.crt and
// base.key in dir, returning dir/base.
func writePair(t *testing.T, dir, base string, names ...string) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	path := filepath.Join(dir, base)
	os.WriteFile(path+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(path+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return path
}
