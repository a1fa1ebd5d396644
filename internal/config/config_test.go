package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigSaveLoadRoundTripPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf", "config.json")
	in := Config{
		Hostname: "sso.example.com", Upstream: "https://authentik.lan:9443",
		UpstreamFingerprint: strings.Repeat("ab", 32), TLS: TLSSelfSigned,
		TrustedProxies: []string{"10.0.0.0/8"}, UpstreamTimeout: Duration(45 * time.Second),
	}
	if err := Save(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip changed the config:\n in %+v\nout %+v", in, out)
	}
	fi, _ := os.Stat(path)
	di, _ := os.Stat(filepath.Dir(path))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("config mode %v, dir mode %v; want 0600 and 0700", fi.Mode().Perm(), di.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"upstream_timeout": "45s"`) {
		t.Errorf("durations should read as text:\n%s", data)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestLoadConfigErrorsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ body, want string }{
		"typo":     {`{"hostnme": "x"}`, `unknown field "hostnme"`},
		"syntax":   {"{\n\"hostname\": \"x\",\n}", "line 3"},
		"duration": {`{"upstream_timeout": "soon"}`, `"soon" is not a duration`},
	} {
		path := filepath.Join(dir, name+".json")
		os.WriteFile(path, []byte(tc.body), 0o600)
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, tc.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestWithDefaults(t *testing.T) {
	c := Config{HTTPSAddr: "127.0.0.1:8443"}.WithDefaults()
	if c.HTTPAddr != ":80" || c.PublicHTTPSPort != 8443 || c.TLS != TLSACME || c.UpstreamKeepalive != 256 ||
		c.UpstreamIdleTimeout != Duration(90*time.Second) || c.UpstreamTimeout != Duration(60*time.Second) ||
		c.StatusAddr != "127.0.0.1:9180" || c.HealthPath != "/-/health/live/" || c.StateDir == "" {
		t.Errorf("defaults: %+v", c)
	}
	if p := (Config{}).WithDefaults().PublicHTTPSPort; p != 443 {
		t.Errorf("public port %d, want 443", p)
	}
	if u := (Config{ACMEDirectory: "staging"}).ACMEDirectoryURL(); u != LetsEncryptStaging {
		t.Errorf("staging resolves to %s", u)
	}
}

func TestValidateNamesEachField(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	base := Config{Hostname: "sso.example.com", Upstream: "https://authentik.lan:9443", TLS: TLSSelfSigned, StateDir: dir}
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tc := range []struct {
		field  Field
		mutate func(*Config)
		want   string
	}{
		{"hostname", func(c *Config) { c.Hostname = "" }, "enter the public name"},
		{"hostname", func(c *Config) { c.Hostname = "https://sso.example.com" }, "includes a scheme"},
		{"hostname", func(c *Config) { c.Hostname = "192.168.1.5" }, "is an IP address"},
		{"hostname", func(c *Config) { c.Hostname = "sso.example.com:443" }, "includes a port"},
		{"hostname", func(c *Config) { c.Hostname = "sso_x.example.com" }, "'_' is not allowed"},
		{"hostname", func(c *Config) { c.Hostname = "-a.example.com" }, "starts or ends with a hyphen"},
		{"hostname", func(c *Config) { c.Hostname = "nas"; c.TLS = TLSACME }, "not a public name"},
		{"upstream", func(c *Config) { c.Upstream = "authentik.lan:9443" }, "has no scheme"},
		{"upstream", func(c *Config) { c.Upstream = "ftp://authentik.lan" }, "scheme ftp is not supported"},
		{"upstream", func(c *Config) { c.Upstream = "https://authentik.lan:99999" }, "port 99999"},
		{"upstream", func(c *Config) { c.Upstream = "https://authentik.lan/if/" }, "remove the path"},
		{"upstream_ca", func(c *Config) { c.UpstreamCA = notPEM }, "holds no PEM certificate"},
		{"upstream_ca", func(c *Config) { c.UpstreamCA = notPEM; c.UpstreamInsecure = true }, "choose one way"},
		{"upstream_ca", func(c *Config) { c.Upstream = "http://a.lan"; c.UpstreamInsecure = true }, "https:// upstream only"},
		{"upstream_fingerprint", func(c *Config) { c.UpstreamFingerprint = "abc" }, "64 hex digits"},
		{"https_addr", func(c *Config) { c.HTTPSAddr = "443" }, "not a listen address"},
		{"https_addr", func(c *Config) { c.HTTPSAddr = ":80" }, "cannot share one address"},
		{"http_addr", func(c *Config) { c.HTTPAddr = "example.com:80" }, "listen on an IP address"},
		{"public_https_port", func(c *Config) { c.PublicHTTPSPort = 70000 }, "not a port"},
		{"tls", func(c *Config) { c.TLS = "letsencrypt" }, "not a certificate source"},
		{"cert_file", func(c *Config) { c.TLS = TLSFiles }, "needs both"},
		{"cert_file", func(c *Config) { c.TLS, c.CertFile, c.KeyFile = TLSFiles, notPEM, notPEM }, "cannot use"},
		{"acme_email", func(c *Config) { c.TLS, c.ACMEEmail = TLSACME, "me at example" }, "not an email address"},
		{"acme_directory", func(c *Config) { c.TLS, c.ACMEDirectory = TLSACME, "http://ca.lan/dir" }, "not an ACME directory"},
		{"acme_eab_kid", func(c *Config) { c.TLS, c.ACMEEABKeyID = TLSACME, "kid" }, "needs both"},
		{"acme_eab_hmac", func(c *Config) { c.TLS, c.ACMEEABKeyID, c.ACMEEABHMAC = TLSACME, "kid", "!!" }, "not base64url"},
		{"trusted_proxies", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "neither an address nor a CIDR"},
		{"upstream_keepalive", func(c *Config) { c.UpstreamKeepalive = -1 }, "negative"},
		{"health_path", func(c *Config) { c.HealthPath = "health" }, "must start with /"},
	} {
		c := base
		tc.mutate(&c)
		fe := FieldErrors(c.Validate()).For(tc.field)
		if fe == nil || !strings.Contains(fe.Message, tc.want) {
			t.Errorf("%s: got %v, want a message containing %q", tc.field, c.Validate(), tc.want)
		}
	}
}

// TestValidateHostnameRules names the cases the fuzz corpus found or
// probes: names browsers would read as an address, and DNS length limits.
func TestValidateHostnameRules(t *testing.T) {
	label := func(c string, n int) string { return strings.Repeat(c, n) }
	name253 := label("a", 63) + "." + label("b", 63) + "." + label("c", 63) + "." + label("d", 61)
	for _, name := range []string{
		"sso.example.com",
		"SSO.Example.COM.",
		"localhost",
		"xn--caf-dma.example",
		"sso.123.example", // a number before the last label is a name
		"sso.0x1g",        // not hex: a name
		"sso.example.1a",
		label("a", 63) + ".example",
		name253,
	} {
		if err := ValidateHostname(name); err != nil {
			t.Errorf("%.40q (%d bytes) refused: %v", name, len(name), err)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"sso.example.123", "ends in a number"},
		{"0", "ends in a number"},
		{"sso.0x1F", "ends in a number"},
		{"sso.0X1f", "ends in a number"},
		{"sso.0x", "ends in a number"},
		{name253 + "d", "at most 253"},
		{label("a", 64) + ".example", "longer than 63"},
		{"sso..example", "empty part"},
		{"_acme.example.com", "'_' is not allowed"},
		{"\u212a.example", "not a valid host name"}, // the Kelvin sign, which lower-cases to k
	} {
		err := ValidateHostname(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q (%d bytes): %v, want an error saying %q", tc.name, len(tc.name), err, tc.want)
		}
	}
}
