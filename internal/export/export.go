// Package export writes Gatehouse's setup as another proxy's config (an
// nginx server block, a Caddyfile) doing the same job: for people who
// move on, or who want to compare.
package export

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// The exports write, for someone moving to a bigger setup, an nginx or Caddy
// configuration that does what Gatehouse does with cfg: redirect HTTP to
// HTTPS with 301, serve the hostname over TLS, replace (not append to) the
// forwarding headers, keep upstream connections alive over HTTP/1.1 and pass
// WebSocket upgrades on any path. What the other server cannot express (a
// pinned upstream certificate, the built-in demo app) becomes a comment
// saying what to do instead.

// exportDemoUpstream stands in for the demo app, which only exists inside
// Gatehouse: authentik's plain-HTTP port on this machine.
const exportDemoUpstream = "http://127.0.0.1:9000"

// Nginx returns an nginx configuration equivalent to cfg, modelled on
// authentik's documented example: per site an upstream block and its
// server blocks.
func Nginx(cfg config.Config) string {
	cfg = cfg.WithDefaults()
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	ups := exportHeader(cfg, line, "nginx configuration", "put it in /etc/nginx/conf.d/ and run `nginx -t` before reloading")
	sites := cfg.AllSites()
	line("")
	line("# Connection: upgrade for WebSockets, and an empty Connection header (keepalive) otherwise.")
	line("map $http_upgrade $connection_upgrade {")
	line("    default upgrade;")
	line("    ''      '';")
	line("}")
	for i, site := range sites {
		nginxSite(siteConfig(cfg, site), ups[i], nginxUpstreamName(i), i == 0 && len(sites) > 1, line)
	}
	if len(sites) > 1 {
		// Gatehouse answers 421 to names it does not serve; nginx would
		// serve the default server's site instead.
		cert, key, _ := exportCertFiles(cfg.ForSite(sites[0]))
		line("")
		line("# Names no site has: 421 Misdirected Request, as Gatehouse answers.")
		line("server {")
		line("    listen %s ssl default_server;", nginxListen(cfg.HTTPSAddr))
		line("    server_name _;")
		line("    ssl_certificate %s;", cert)
		line("    ssl_certificate_key %s;", key)
		line("    return 421;")
		line("}")
	}
	return b.String()
}

// nginxUpstreamName names the upstream block of the site at index i.
func nginxUpstreamName(i int) string {
	if i == 0 {
		return "gatehouse_upstream"
	}
	return "gatehouse_upstream_" + strconv.Itoa(i+1)
}

// nginxSite writes one site's upstream block and server blocks; cfg is
// the site's (config.Config.ForSite). The first of several sites is the
// plain port's default_server: Gatehouse redirects names no site has to
// the first site.
func nginxSite(cfg config.Config, up *url.URL, name string, defaultServer bool, line func(string, ...any)) {
	line("")
	line("upstream %s {", name)
	line("    server %s;", up.Host)
	line("    # Keep idle connections to the app for reuse (needs HTTP/1.1 and an empty Connection header).")
	line("    keepalive %d;", cfg.UpstreamKeepalive)
	line("    keepalive_timeout %s;", nginxDuration(time.Duration(cfg.UpstreamIdleTimeout)))
	line("}")
	line("")
	if cfg.HTTPAddr != config.Off {
		dflt := ""
		if defaultServer {
			dflt = " default_server"
		}
		line("server {")
		line("    listen %s%s;", nginxListen(cfg.HTTPAddr), dflt)
		line("    server_name %s;", cfg.Hostname)
		line("    location / {")
		line("        return 301 https://%s%s$request_uri;", cfg.Hostname, portSuffix(cfg.PublicHTTPSPort))
		line("    }")
		line("}")
		line("")
	}
	line("server {")
	line("    listen %s ssl http2;", nginxListen(cfg.HTTPSAddr))
	line("    server_name %s;", cfg.Hostname)
	cert, key, certNote := exportCertFiles(cfg)
	if certNote != "" {
		line("    # %s", certNote)
	}
	line("    ssl_certificate %s;", cert)
	line("    ssl_certificate_key %s;", key)
	line("")
	if len(cfg.TrustedProxies) > 0 {
		line("    # Believe X-Forwarded-For only from the proxies in front of this one.")
		for _, p := range cfg.TrustedProxies {
			line("    set_real_ip_from %s;", p)
		}
		line("    real_ip_header X-Forwarded-For;")
		line("    real_ip_recursive on;")
		line("")
	}
	if cfg.ForwardAuth != nil {
		nginxForwardAuth(cfg, line)
	}
	line("    location / {")
	if cfg.ForwardAuth != nil {
		nginxAuthRequest(line)
	}
	line("        proxy_pass %s://%s;", up.Scheme, name)
	line("        proxy_http_version 1.1;")
	line("        proxy_set_header Host $host;")
	line("        # Replace what the client sent: authentik trusts the leftmost X-Forwarded-For.")
	line("        proxy_set_header X-Forwarded-For $remote_addr;")
	line("        proxy_set_header X-Forwarded-Proto https;")
	line("        proxy_set_header X-Forwarded-Host $host;")
	line("        proxy_set_header X-Real-IP \"\";")
	line("        proxy_set_header Forwarded \"\";")
	line("        proxy_set_header Upgrade $http_upgrade;")
	line("        proxy_set_header Connection $connection_upgrade;")
	line("        proxy_read_timeout %s;", nginxDuration(time.Duration(cfg.UpstreamTimeout)))
	if up.Scheme == "https" {
		line("        proxy_ssl_server_name on;")
		line("        proxy_ssl_name %s;", up.Hostname())
		switch {
		case cfg.UpstreamCA != "":
			line("        proxy_ssl_verify on;")
			line("        proxy_ssl_trusted_certificate %s;", cfg.UpstreamCA)
		case cfg.UpstreamInsecure, cfg.UpstreamFingerprint != "":
			line("        proxy_ssl_verify off;")
		default:
			line("        proxy_ssl_verify on;")
			line("        proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;")
		}
	}
	line("    }")
	line("}")
}

// Caddyfile returns a Caddyfile equivalent to cfg.
func Caddyfile(cfg config.Config) string {
	cfg = cfg.WithDefaults()
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	ups := exportHeader(cfg, line, "Caddyfile", "check it with `caddy validate --config Caddyfile`")
	line("{")
	if _, port, err := ports.SplitAddr(cfg.HTTPSAddr); err == nil && port != 443 && port != 0 {
		line("\thttps_port %d", port)
	}
	if cfg.HTTPAddr == config.Off {
		line("\tauto_https disable_redirects")
	} else if _, port, err := ports.SplitAddr(cfg.HTTPAddr); err == nil && port != 80 && port != 0 {
		line("\thttp_port %d", port)
	}
	if cfg.TLS == config.TLSACME {
		if cfg.ACMEEmail != "" {
			line("\temail %s", cfg.ACMEEmail)
		}
		line("\tacme_ca %s", cfg.ACMEDirectoryURL())
		if cfg.ACMECARoots != "" {
			line("\tacme_ca_root %s", cfg.ACMECARoots)
		}
		if cfg.ACMEEABKeyID != "" {
			line("\tacme_eab {")
			line("\t\tkey_id %s", cfg.ACMEEABKeyID)
			line("\t\tmac_key %s", cfg.ACMEEABHMAC)
			line("\t}")
		}
	}
	if len(cfg.TrustedProxies) > 0 {
		line("\t# Needs Caddy 2.7 or newer.")
		line("\tservers {")
		line("\t\ttrusted_proxies static %s", strings.Join(cfg.TrustedProxies, " "))
		line("\t}")
	}
	line("}")
	line("")
	for i, site := range cfg.AllSites() {
		caddySite(siteConfig(cfg, site), ups[i], line)
	}
	return b.String()
}

// siteConfig is the configuration of one site for an export
// (config.Config.ForSite), with a forward-auth outpost named by its site
// resolved to that site's upstream and trust, as the engine resolves it. An
// outpost that does not resolve (config.Validate refuses such a file) is
// left for a placeholder.
func siteConfig(cfg config.Config, site config.Site) config.Config {
	sc := cfg.ForSite(site)
	if fa := sc.ForwardAuth; fa != nil && fa.Site != "" {
		if outpost, err := cfg.Outpost(*fa); err == nil {
			outpost.Site = fa.Site
			sc.ForwardAuth = &outpost
		}
	}
	return sc
}

// caddySite writes one site's block; cfg is the site's
// (config.Config.ForSite).
func caddySite(cfg config.Config, up *url.URL, line func(string, ...any)) {
	line("")
	line("%s {", cfg.Hostname)
	switch cfg.TLS {
	case config.TLSSelfSigned:
		line("\t# Caddy's own local CA, as Gatehouse's self-signed source; trust it with `caddy trust`.")
		line("\ttls internal")
	case config.TLSFiles:
		line("\ttls %s %s", cfg.CertFile, cfg.KeyFile)
	}
	if fa := cfg.ForwardAuth; fa != nil {
		caddyForwardAuth(fa, line)
	}
	line("\treverse_proxy %s {", up.String())
	line("\t\theader_up Host {host}")
	line("\t\t# Replace what the client sent: authentik trusts the leftmost X-Forwarded-For.")
	line("\t\theader_up X-Forwarded-For {client_ip}")
	line("\t\theader_up X-Forwarded-Proto https")
	line("\t\theader_up X-Forwarded-Host {host}")
	line("\t\theader_up -X-Real-IP")
	line("\t\theader_up -Forwarded")
	line("\t\ttransport http {")
	line("\t\t\tversions 1.1")
	line("\t\t\tkeepalive %s", time.Duration(cfg.UpstreamIdleTimeout))
	line("\t\t\tkeepalive_idle_conns %d", cfg.UpstreamKeepalive)
	line("\t\t\tresponse_header_timeout %s", time.Duration(cfg.UpstreamTimeout))
	if up.Scheme == "https" {
		switch {
		case cfg.UpstreamCA != "":
			line("\t\t\ttls_trusted_ca_certs %s", cfg.UpstreamCA)
		case cfg.UpstreamInsecure, cfg.UpstreamFingerprint != "":
			line("\t\t\ttls_insecure_skip_verify")
		}
		line("\t\t\ttls_server_name %s", up.Hostname())
	}
	line("\t\t}")
	line("\t}")
	line("}")
}

// exportHeader writes the comment opening an export and returns each
// site's upstream to forward to.
func exportHeader(cfg config.Config, line func(string, ...any), what, check string) []*url.URL {
	sites := cfg.AllSites()
	names := make([]string, len(sites))
	ups := make([]*url.URL, len(sites))
	var notes []string
	for i, site := range sites {
		names[i] = site.Hostname
		up, siteNotes := exportUpstream(cfg.ForSite(site))
		ups[i] = up
		for _, n := range siteNotes {
			if len(sites) > 1 {
				n = site.Hostname + ": " + n
			}
			notes = append(notes, n)
		}
	}
	line("# %s equivalent to Gatehouse's setup for %s.", what, strings.Join(names, ", "))
	line("# Written by Gatehouse; %s.", check)
	for _, n := range notes {
		line("# %s", n)
	}
	return ups
}

// exportUpstream is the upstream URL to write, and notes about what the
// other server cannot do as Gatehouse does.
func exportUpstream(cfg config.Config) (u *url.URL, notes []string) {
	raw := cfg.Upstream
	if raw == config.UpstreamDemo {
		raw = exportDemoUpstream
		notes = append(notes, "The built-in demo app exists only inside Gatehouse: replace "+exportDemoUpstream+" with your app's address.")
	}
	u, err := upstream.ParseURL(raw)
	if err != nil {
		u, _ = upstream.ParseURL(exportDemoUpstream)
		notes = append(notes, fmt.Sprintf("The upstream %q is not valid (%v): replace %s with your app's address.", raw, err, exportDemoUpstream))
	}
	if cfg.UpstreamFingerprint != "" {
		notes = append(notes, "Gatehouse pins the upstream's certificate ("+cfg.UpstreamFingerprint+"); this server cannot,")
		notes = append(notes, "so verification is off below: give it the upstream's CA instead if you can.")
	}
	u.Host = upstream.HostPort(u)
	return u, notes
}

// exportCertFiles names the certificate and key nginx should serve.
func exportCertFiles(cfg config.Config) (cert, key, note string) {
	switch cfg.TLS {
	case config.TLSFiles:
		return cfg.CertFile, cfg.KeyFile, ""
	case config.TLSSelfSigned:
		return "/etc/nginx/tls/" + cfg.Hostname + ".crt", "/etc/nginx/tls/" + cfg.Hostname + ".key",
			"Gatehouse's local CA (" + filepath.Join(cfg.StateDir, certs.LocalCACertFile) + ") issues its certificate itself; put a certificate and key for " + cfg.Hostname + " here."
	default:
		return "/etc/letsencrypt/live/" + cfg.Hostname + "/fullchain.pem", "/etc/letsencrypt/live/" + cfg.Hostname + "/privkey.pem",
			"Obtain the certificate with certbot (certbot certonly --webroot or --nginx) from " + cfg.ACMEDirectoryURL() + "."
	}
}

// nginxListen turns a Go listen address into nginx's listen argument.
func nginxListen(addr string) string {
	host, port, err := ports.SplitAddr(addr)
	if err != nil {
		return addr
	}
	if host == "" {
		return strconv.Itoa(port)
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// nginxDuration writes d in whole seconds, nginx's usual unit.
func nginxDuration(d time.Duration) string {
	return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s"
}

func portSuffix(port int) string {
	if port == 443 {
		return ""
	}
	return ":" + strconv.Itoa(port)
}

// authentikHeaders are the identity headers authentik's outpost answers a
// passed check with, for the app.
var authentikHeaders = []string{
	"X-Authentik-Username", "X-Authentik-Groups", "X-Authentik-Entitlements", "X-Authentik-Email",
	"X-Authentik-Name", "X-Authentik-Uid", "X-Authentik-Jwt", "X-Authentik-Meta-Jwks",
	"X-Authentik-Meta-Outpost", "X-Authentik-Meta-Provider", "X-Authentik-Meta-App", "X-Authentik-Meta-Version",
}

// nginxForwardAuth writes the outpost's locations of authentik's nginx
// integration: its own paths (sign-in start, callback, sign-out) go to
// the outpost, and a 401 from the check turns into the sign-in redirect.
func nginxForwardAuth(cfg config.Config, line func(string, ...any)) {
	fa := cfg.ForwardAuth
	outpost := strings.TrimSuffix(fa.URL, "/")
	switch {
	case fa.URL == "":
		outpost = "https://AUTHENTIK" // Site names a site that is not there: put its address here
		line("    # Forward auth uses the site %s as the outpost: put its address in place of %s.", fa.Site, outpost)
	case fa.Site != "":
		line("    # Forward auth: the outpost is authentik at %s, the app of the site %s.", outpost, fa.Site)
	}
	line("    # authentik forward auth (its nginx integration): the outpost's own paths,")
	line("    # and the check every request below makes first.")
	line("    location /outpost.goauthentik.io {")
	line("        proxy_pass %s/outpost.goauthentik.io;", outpost)
	line("        proxy_set_header Host $host;")
	line("        proxy_set_header X-Original-URL $scheme://$http_host$request_uri;")
	line("        add_header Set-Cookie $auth_cookie;")
	line("        auth_request_set $auth_cookie $upstream_http_set_cookie;")
	line("        proxy_pass_request_body off;")
	line("        proxy_set_header Content-Length \"\";")
	if fa.Insecure || fa.Fingerprint != "" {
		line("        proxy_ssl_verify off;")
	} else if fa.CA != "" {
		line("        proxy_ssl_verify on;")
		line("        proxy_ssl_trusted_certificate %s;", fa.CA)
	}
	line("    }")
	line("    location @goauthentik_proxy_signin {")
	line("        internal;")
	line("        add_header Set-Cookie $auth_cookie;")
	line("        return 302 /outpost.goauthentik.io/start?rd=$scheme://$http_host$request_uri;")
	line("    }")
	line("")
}

// nginxAuthRequest writes the check in front of the app and passes the
// outpost's identity headers on (a visitor's own are replaced).
func nginxAuthRequest(line func(string, ...any)) {
	line("        auth_request /outpost.goauthentik.io/auth/nginx;")
	line("        error_page 401 = @goauthentik_proxy_signin;")
	line("        auth_request_set $auth_cookie $upstream_http_set_cookie;")
	line("        add_header Set-Cookie $auth_cookie;")
	for _, h := range authentikHeaders {
		v := "$authentik_" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(h, "X-Authentik-")), "-", "_")
		line("        auth_request_set %s $upstream_http_%s;", v, strings.ReplaceAll(strings.ToLower(h), "-", "_"))
		line("        proxy_set_header %s %s;", h, v)
	}
}

// caddyForwardAuth writes authentik's Caddy integration: the outpost's own
// paths, then the check with the identity headers copied to the app.
func caddyForwardAuth(fa *config.ForwardAuth, line func(string, ...any)) {
	outpost := strings.TrimSuffix(fa.URL, "/")
	switch {
	case fa.URL == "":
		outpost = "https://AUTHENTIK"
		line("\t# Forward auth uses the site %s as the outpost: put its address in place of %s.", fa.Site, outpost)
	case fa.Site != "":
		line("\t# Forward auth: the outpost is authentik at %s, the app of the site %s.", outpost, fa.Site)
	}
	transport := func() {
		if fa.Insecure || fa.Fingerprint != "" {
			line("\t\ttransport http {")
			line("\t\t\ttls_insecure_skip_verify")
			line("\t\t}")
		} else if fa.CA != "" {
			line("\t\ttransport http {")
			line("\t\t\ttls_trusted_ca_certs %s", fa.CA)
			line("\t\t}")
		}
	}
	line("\t# authentik forward auth (its Caddy integration).")
	line("\treverse_proxy /outpost.goauthentik.io/* %s {", outpost)
	transport()
	line("\t}")
	line("\tforward_auth %s {", outpost)
	line("\t\turi /outpost.goauthentik.io/auth/caddy")
	line("\t\tcopy_headers %s", strings.Join(authentikHeaders, " "))
	transport()
	line("\t}")
}
