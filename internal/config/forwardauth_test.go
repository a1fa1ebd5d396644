package config

import (
	"strings"
	"testing"
)

// TestValidateForwardAuth: a usable outpost passes; each mistake names
// forward_auth and says what is wrong, including the two set-ups that
// would loop (the outpost being Gatehouse itself, or the app it protects).
func TestValidateForwardAuth(t *testing.T) {
	base := Config{Hostname: "app.example.com", Upstream: "http://app.lan:8080", TLS: TLSSelfSigned, StateDir: t.TempDir()}
	for _, tc := range []struct {
		name string
		fa   ForwardAuth
		want string // "" for valid
	}{
		{"embedded outpost", ForwardAuth{URL: "https://authentik.lan:9443", Fingerprint: strings.Repeat("ab", 32)}, ""},
		{"standalone outpost", ForwardAuth{URL: "http://outpost.lan:9000"}, ""},
		{"insecure", ForwardAuth{URL: "https://authentik.lan:9443", Insecure: true}, ""},
		{"nothing", ForwardAuth{}, "enter the outpost's address"},
		{"site with one site", ForwardAuth{Site: "sso.example.com"}, "serves one site"},
		{"auth path pasted", ForwardAuth{URL: "http://outpost.lan:9000/outpost.goauthentik.io/auth/traefik"}, "without its path"},
		{"no scheme", ForwardAuth{URL: "authentik.lan:9443"}, "no scheme"},
		{"two trusts", ForwardAuth{URL: "https://authentik.lan:9443", Insecure: true, Fingerprint: strings.Repeat("ab", 32)}, "choose one way"},
		{"trust on http", ForwardAuth{URL: "http://outpost.lan:9000", Insecure: true}, "https:// outpost only"},
		{"bad pin", ForwardAuth{URL: "https://authentik.lan:9443", Fingerprint: "abc"}, "not a SHA-256"},
		{"missing CA", ForwardAuth{URL: "https://authentik.lan:9443", CA: "/nonexistent/ca.pem"}, "cannot read"},
		{"itself", ForwardAuth{URL: "https://APP.example.com."}, "a name Gatehouse serves"},
		{"its own upstream", ForwardAuth{URL: "http://app.lan:8080"}, "is the upstream this site protects"},
	} {
		c := base
		fa := tc.fa
		c.ForwardAuth = &fa
		fe := FieldErrors(c.Validate()).For(FieldForwardAuth)
		switch {
		case tc.want == "" && fe != nil:
			t.Errorf("%s: %v, want valid", tc.name, fe)
		case tc.want != "" && (fe == nil || !strings.Contains(fe.Message, tc.want)):
			t.Errorf("%s: %v, want an error on forward_auth mentioning %q", tc.name, fe, tc.want)
		}
	}
	if err := base.Validate(); err != nil {
		t.Errorf("without forward_auth: %v", err)
	}
}
