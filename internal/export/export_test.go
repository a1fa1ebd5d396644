package export

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

func wantLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestExportNginxACME(t *testing.T) {
	cfg := config.Config{
		Hostname:            "sso.example.com",
		Upstream:            "https://authentik.lan:9443",
		UpstreamFingerprint: "sha256:" + strings.Repeat("ab", 32),
		HTTPAddr:            ":8080",
		HTTPSAddr:           ":8443",
		PublicHTTPSPort:     443,
		ACMEEmail:           "me@example.com",
		TrustedProxies:      []string{"10.0.0.0/8"},
	}
	got := Nginx(cfg)
	wantLines(t, "nginx config", got,
		"server authentik.lan:9443;",
		fmt.Sprintf("keepalive %d;", config.DefaultUpstreamKeepalive),
		"keepalive_timeout 90s;",
		"map $http_upgrade $connection_upgrade {",
		"listen 8080;",
		"server_name sso.example.com;",
		"return 301 https://sso.example.com$request_uri;", // the fixed name, as Gatehouse redirects
		"listen 8443 ssl http2;",
		"ssl_certificate /etc/letsencrypt/live/sso.example.com/fullchain.pem;",
		"proxy_pass https://gatehouse_upstream;",
		"proxy_http_version 1.1;",
		"proxy_set_header Host $host;",
		"proxy_set_header X-Forwarded-For $remote_addr;",
		"proxy_set_header X-Forwarded-Proto https;",
		"proxy_set_header X-Forwarded-Host $host;",
		"proxy_set_header Upgrade $http_upgrade;",
		"proxy_set_header Connection $connection_upgrade;",
		"proxy_ssl_verify off;",
		"cannot,", // the pin is explained as a comment
		"set_real_ip_from 10.0.0.0/8;",
	)
	if strings.Contains(got, "$proxy_add_x_forwarded_for") {
		t.Error("nginx config appends to the client's X-Forwarded-For; Gatehouse replaces it")
	}
	if strings.Count(got, "{") != strings.Count(got, "}") {
		t.Errorf("unbalanced braces:\n%s", got)
	}
}

func TestExportNginxRedirectKeepsPublicPortAndFiles(t *testing.T) {
	cfg := config.Config{Hostname: "home.example.net", Upstream: "http://127.0.0.1:9000", HTTPSAddr: "127.0.0.1:8443",
		TLS: config.TLSFiles, CertFile: "/etc/tls/home.pem", KeyFile: "/etc/tls/home.key"}
	got := Nginx(cfg)
	wantLines(t, "nginx config", got,
		"return 301 https://home.example.net:8443$request_uri;",
		"listen 127.0.0.1:8443 ssl http2;",
		"ssl_certificate /etc/tls/home.pem;",
		"ssl_certificate_key /etc/tls/home.key;",
		"proxy_pass http://gatehouse_upstream;",
	)
	if strings.Contains(got, "proxy_ssl") {
		t.Errorf("plain-HTTP upstream got proxy_ssl settings:\n%s", got)
	}
	cfg.HTTPAddr = config.Off
	if got := Nginx(cfg); strings.Contains(got, "return 301") {
		t.Error("redirect server written with http_addr off")
	}
}

func TestExportCaddyfile(t *testing.T) {
	cfg := config.Config{
		Hostname:      "sso.example.com",
		Upstream:      "https://authentik.lan:9443",
		UpstreamCA:    "/etc/ssl/authentik-ca.pem",
		HTTPAddr:      ":8080",
		HTTPSAddr:     ":8443",
		ACMEEmail:     "me@example.com",
		ACMEDirectory: "staging",
		ACMEEABKeyID:  "kid-1",
		ACMEEABHMAC:   "c2VjcmV0",
	}
	got := Caddyfile(cfg)
	wantLines(t, "Caddyfile", got,
		"http_port 8080",
		"https_port 8443",
		"email me@example.com",
		"acme_ca "+config.LetsEncryptStaging,
		"key_id kid-1",
		"mac_key c2VjcmV0",
		"sso.example.com {",
		"reverse_proxy https://authentik.lan:9443 {",
		"header_up Host {host}",
		"header_up X-Forwarded-For {client_ip}",
		"header_up X-Forwarded-Proto https",
		"versions 1.1",
		"keepalive 1m30s",
		fmt.Sprintf("keepalive_idle_conns %d", config.DefaultUpstreamKeepalive),
		"tls_trusted_ca_certs /etc/ssl/authentik-ca.pem",
	)
	if strings.Count(got, "{")-strings.Count(got, "{host}")-strings.Count(got, "{client_ip}") != strings.Count(got, "}")-strings.Count(got, "{host}")-strings.Count(got, "{client_ip}") {
		t.Errorf("unbalanced braces:\n%s", got)
	}
}

func TestExportDemoAndSelfSigned(t *testing.T) {
	cfg := config.Config{Hostname: "gatehouse.localhost", Upstream: config.UpstreamDemo, TLS: config.TLSSelfSigned, StateDir: "/home/me/.config/gatehouse/state"}
	caddy := Caddyfile(cfg)
	wantLines(t, "Caddyfile", caddy, "tls internal", "reverse_proxy "+exportDemoUpstream, "demo app exists only inside Gatehouse")
	nginx := Nginx(cfg)
	wantLines(t, "nginx config", nginx, "server 127.0.0.1:9000;", "/home/me/.config/gatehouse/state/local-ca.crt", "demo app exists only inside Gatehouse")
}

// TestExportsKeepForwardAuth: a site protected by authentik stays
// protected in both exports: the outpost's paths, the check, and the
// identity headers passed on.
func TestExportsKeepForwardAuth(t *testing.T) {
	cfg := config.Config{Hostname: "grafana.example.com", Upstream: "http://grafana.lan:3000", TLS: config.TLSACME,
		ForwardAuth: &config.ForwardAuth{URL: "https://authentik.lan:9443", Insecure: true}}
	nginx := Nginx(cfg)
	for _, want := range []string{
		"location /outpost.goauthentik.io {\n        proxy_pass https://authentik.lan:9443/outpost.goauthentik.io;",
		"auth_request /outpost.goauthentik.io/auth/nginx;",
		"error_page 401 = @goauthentik_proxy_signin;",
		"return 302 /outpost.goauthentik.io/start?rd=$scheme://$http_host$request_uri;",
		"auth_request_set $authentik_username $upstream_http_x_authentik_username;",
		"proxy_set_header X-Authentik-Username $authentik_username;",
		"proxy_set_header X-Authentik-Meta-Version $authentik_meta_version;",
		"proxy_ssl_verify off;",
	} {
		if !strings.Contains(nginx, want) {
			t.Errorf("nginx export lacks %q:\n%s", want, nginx)
		}
	}
	caddy := Caddyfile(cfg)
	for _, want := range []string{
		"reverse_proxy /outpost.goauthentik.io/* https://authentik.lan:9443 {",
		"forward_auth https://authentik.lan:9443 {\n\t\turi /outpost.goauthentik.io/auth/caddy\n\t\tcopy_headers X-Authentik-Username X-Authentik-Groups",
		"tls_insecure_skip_verify",
	} {
		if !strings.Contains(caddy, want) {
			t.Errorf("Caddyfile lacks %q:\n%s", want, caddy)
		}
	}
	if strings.Index(caddy, "forward_auth") > strings.Index(caddy, "reverse_proxy http://grafana.lan:3000") {
		t.Error("the Caddyfile proxies to the app before the check")
	}
	if unprotected := Nginx(config.Config{Hostname: "a.example.com", Upstream: "http://a.lan"}); strings.Contains(unprotected, "auth_request") {
		t.Error("an unprotected site's export checks with an outpost")
	}
}

// TestExportEverySite: each site gets its own upstream and server blocks
// (nginx) or site block (Caddy), with its own trust; names no site has get
// 421 in nginx, as in Gatehouse.
func TestExportEverySite(t *testing.T) {
	cfg := config.Config{
		Hostname: "sso.example.com", Upstream: "https://authentik.lan:9443", UpstreamInsecure: true,
		Sites: []config.Site{{Hostname: "app.example.com", Upstream: "http://10.0.0.5:8080"}},
		TLS:   config.TLSACME,
	}
	n := Nginx(cfg)
	for _, want := range []string{
		"setup for sso.example.com, app.example.com.",
		"upstream gatehouse_upstream {\n    server authentik.lan:9443;",
		"upstream gatehouse_upstream_2 {\n    server 10.0.0.5:8080;",
		"    listen 80 default_server;\n    server_name sso.example.com;",
		"    listen 80;\n    server_name app.example.com;",
		"return 301 https://app.example.com$request_uri;",
		"proxy_pass https://gatehouse_upstream;",
		"proxy_pass http://gatehouse_upstream_2;",
		"ssl_certificate /etc/letsencrypt/live/app.example.com/fullchain.pem;",
		"    listen 443 ssl default_server;\n    server_name _;",
		"    return 421;",
	} {
		if !strings.Contains(n, want) {
			t.Errorf("nginx export lacks %q:\n%s", want, n)
		}
	}
	if strings.Count(n, "map $http_upgrade") != 1 || strings.Count(n, "proxy_ssl_verify off;") != 1 {
		t.Errorf("nginx export: one map, and verification off for the first site only:\n%s", n)
	}
	c := Caddyfile(cfg)
	for _, want := range []string{
		"\nsso.example.com {\n",
		"\napp.example.com {\n",
		"reverse_proxy https://authentik.lan:9443 {",
		"reverse_proxy http://10.0.0.5:8080 {",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("Caddyfile lacks %q:\n%s", want, c)
		}
	}
	if strings.Count(c, "tls_insecure_skip_verify") != 1 {
		t.Errorf("Caddyfile: verification off for the first site only:\n%s", c)
	}
}

// TestExportsResolveTheOutpostSite: forward auth through another site
// exports as that site's address and trust, as Gatehouse resolves it, not
// as a placeholder to fill in.
func TestExportsResolveTheOutpostSite(t *testing.T) {
	cfg := config.Config{
		Hostname: "sso.example.com", Upstream: "https://authentik.lan:9443", UpstreamCA: "/etc/ssl/authentik-ca.pem",
		Sites: []config.Site{{Hostname: "grafana.example.com", Upstream: "http://grafana.lan:3000",
			ForwardAuth: &config.ForwardAuth{Site: "sso.example.com"}}},
		TLS: config.TLSACME,
	}
	n := Nginx(cfg)
	for _, want := range []string{
		"# Forward auth: the outpost is authentik at https://authentik.lan:9443, the app of the site sso.example.com.",
		"proxy_pass https://authentik.lan:9443/outpost.goauthentik.io;",
		"proxy_ssl_verify on;\n        proxy_ssl_trusted_certificate /etc/ssl/authentik-ca.pem;",
	} {
		if !strings.Contains(n, want) {
			t.Errorf("nginx export lacks %q:\n%s", want, n)
		}
	}
	c := Caddyfile(cfg)
	for _, want := range []string{
		"reverse_proxy /outpost.goauthentik.io/* https://authentik.lan:9443 {",
		"forward_auth https://authentik.lan:9443 {",
		"tls_trusted_ca_certs /etc/ssl/authentik-ca.pem",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("Caddyfile lacks %q:\n%s", want, c)
		}
	}
	for name, out := range map[string]string{"nginx": n, "Caddy": c} {
		if strings.Contains(out, "AUTHENTIK") {
			t.Errorf("%s export still has the placeholder:\n%s", name, out)
		}
	}
	// A site that is not there (config.Validate refuses it) keeps the
	// placeholder and says what to put there.
	cfg.Sites[0].ForwardAuth.Site = "gone.example.com"
	if n := Nginx(cfg); !strings.Contains(n, "put its address in place of https://AUTHENTIK") {
		t.Errorf("an unresolved outpost site gives no placeholder:\n%s", n)
	}
}
