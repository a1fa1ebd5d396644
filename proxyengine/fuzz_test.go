package proxyengine

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// Fuzz targets for what a user or a visitor controls. `make fuzz` runs each
// briefly; seeds live in testdata/fuzz/<FuzzName>/ beside the f.Add ones.

// FuzzValidateHostname checks that every accepted name is a DNS host name
// a browser and a certificate can use, and that it matches itself in any
// letter case, with a port or a trailing dot, as visitors' Host headers do.
func FuzzValidateHostname(f *testing.F) {
	for _, s := range []string{"sso.example.com", "SSO.Example.COM.", "localhost", "xn--caf-dma.example", "a-b.c-d.e",
		"sso.example.com:443", "https://sso.example.com", "1.2.3.4", "[::1]", "-a.com", strings.Repeat("a", 64) + ".com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if config.ValidateHostname(name) != nil {
			return
		}
		if len(name) > 253 {
			t.Fatalf("accepted a %d-character name", len(name))
		}
		labels := strings.Split(strings.TrimSuffix(name, "."), ".")
		for _, l := range labels {
			if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
				t.Fatalf("accepted %q with the label %q", name, l)
			}
			for _, r := range l {
				if r > 127 || !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
					t.Fatalf("accepted %q with the character %q", name, r)
				}
			}
		}
		// WHATWG URL parsing reads a name whose last label is a number as
		// an IPv4 address, so a browser could never reach it by name.
		if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" ||
			strings.HasPrefix(strings.ToLower(last), "0x") && strings.Trim(strings.ToLower(last[2:]), "0123456789abcdef") == "" {
			t.Fatalf("accepted %q, which browsers read as an IP address", name)
		}
		want := strings.ToLower(strings.TrimSuffix(name, "."))
		for _, host := range []string{name, strings.ToUpper(name), strings.ToLower(name) + ":443", name + ":8443"} {
			if got := normalizeHost(host); got != want {
				t.Fatalf("Host %q normalizes to %q, want %q", host, got, want)
			}
		}
		if config.ValidateHostname(strings.ToLower(name)) != nil {
			t.Fatalf("%q is accepted but its lower case is not", name)
		}
		if _, err := upstream.ParseURL("https://" + name); err != nil {
			t.Fatalf("an accepted name does not make a URL: %v", err)
		}
	})
}

// FuzzForwardedHeaders feeds a visitor's forwarding and hop-by-hop headers
// through both request paths (proxied requests and WebSocket upgrades) and
// checks what the upstream would receive. For an untrusted client,
// X-Forwarded-For is its address alone and none of its own forwarding
// headers survive; hop-by-hop headers never pass.
func FuzzForwardedHeaders(f *testing.F) {
	f.Add("203.0.113.7", "6.6.6.6", "for=6.6.6.6", "6.6.6.6", "X-Private-Hop, keep-alive", false, "sso.example.com")
	f.Add("::ffff:192.0.2.1", "1.2.3.4, 5.6.7.8", "", "", "close", true, "sso.example.com:443")
	f.Add("fe80::1%eth0", "", "for=\"[::1]\"", "::1", "Upgrade", false, "SSO.example.com")
	f.Add("not an address", "x", "y", "z", "X-Forwarded-For", true, "")
	f.Fuzz(func(t *testing.T, peer, xff, forwarded, realIP, connection string, trustPeer bool, host string) {
		in := httptest.NewRequest("GET", "https://sso.example.com/", nil)
		in.Host = host
		in.RemoteAddr = net.JoinHostPort(peer, "5555")
		for k, v := range map[string]string{
			"X-Forwarded-For": xff, "Forwarded": forwarded, "X-Real-Ip": realIP, "X-Client-Ip": realIP,
			"X-Forwarded-Port": "1", "X-Forwarded-Server": "evil", "Connection": connection,
			"Keep-Alive": "timeout=5", "Proxy-Connection": "keep-alive", "Proxy-Authorization": "Basic eA==",
			"Trailer": "X-T", "X-Private-Hop": "secret",
		} {
			if v != "" {
				in.Header.Set(k, v)
			}
		}
		ip, _ := netip.ParseAddr(peer)
		ip = ip.WithZone("").Unmap()
		var fwd forwarding
		if trustPeer && ip.IsValid() {
			fwd.trusted = []netip.Prefix{netip.PrefixFrom(ip, ip.BitLen())}
		}
		p := fuzzProxyHandler(fwd)

		var proxied *http.Request
		p.rp.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			proxied = r
			return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
		})
		p.rp.ServeHTTP(httptest.NewRecorder(), in)
		if proxied == nil {
			t.Fatal("the request was not proxied")
		}
		checkForwarded(t, "proxied", proxied.Header, in, ip, fwd.isTrusted(ip), "")
		checkForwarded(t, "upgrade", p.ws.upgradeRequest(in).Header, in, ip, fwd.isTrusted(ip), "Upgrade")
	})
}

// fuzzProxyHandler is the engine's request handler without listeners.
func fuzzProxyHandler(fwd forwarding) *proxyHandler {
	up, _ := upstream.ParseURL("https://authentik.lan:9443")
	cfg := config.Config{Hostname: "sso.example.com"}
	return newProxyHandler(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), up, &http.Transport{}, fwd, newTracker(), newWSSessions(newTracker()), &clientLimits{})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// checkForwarded checks the upstream's headers h for the client request in
// from ip; upgrade names the hop header the WebSocket path sets again.
func checkForwarded(t *testing.T, path string, h http.Header, in *http.Request, ip netip.Addr, trusted bool, upgrade string) {
	t.Helper()
	xff := h.Values("X-Forwarded-For")
	switch {
	case !ip.IsValid():
		if len(xff) != 0 {
			t.Fatalf("%s: X-Forwarded-For %q for an unparseable peer %q", path, xff, in.RemoteAddr)
		}
	case trusted:
		// A trusted proxy's own chain is passed on as it sent it; the
		// entry Gatehouse adds is the peer's address, without a zone.
		if len(xff) != 1 || xff[0] != ip.String() && !strings.HasSuffix(xff[0], ", "+ip.String()) {
			t.Fatalf("%s: trusted X-Forwarded-For %q does not end in the entry %s", path, xff, ip)
		}
	default:
		if len(xff) != 1 || xff[0] != ip.String() || strings.Contains(xff[0], "%") {
			t.Fatalf("%s: X-Forwarded-For %q for untrusted %q, want exactly %s", path, xff, in.RemoteAddr, ip)
		}
		for _, k := range []string{"Forwarded", "X-Real-Ip", "X-Client-Ip", "X-Forwarded-Port", "X-Forwarded-Server"} {
			if v, ok := h[k]; ok {
				t.Fatalf("%s: the client's %s %q reached the upstream", path, k, v)
			}
		}
	}
	if v := h.Values("X-Forwarded-Proto"); len(v) != 1 || v[0] != "https" {
		t.Fatalf("%s: X-Forwarded-Proto %q", path, v)
	}
	if v := h.Values("X-Forwarded-Host"); len(v) != 1 || v[0] != "sso.example.com" {
		t.Fatalf("%s: X-Forwarded-Host %q, want the configured sso.example.com", path, v)
	}
	setByProxy := map[string]bool{"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true}
	if upgrade != "" {
		setByProxy["Connection"], setByProxy["Upgrade"] = true, true
	}
	hop := []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Trailer", "Transfer-Encoding", "Upgrade"}
	for _, v := range in.Header.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" && utf8.ValidString(name) {
				hop = append(hop, http.CanonicalHeaderKey(name))
			}
		}
	}
	for _, k := range hop {
		if _, ok := h[k]; ok && !setByProxy[k] {
			t.Fatalf("%s: hop-by-hop %s reached the upstream (client Connection %q)", path, k, in.Header.Get("Connection"))
		}
	}
}
