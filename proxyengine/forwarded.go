package proxyengine

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// forwarding decides which forwarding headers the upstream receives.
//
// authentik believes X-Forwarded-For from proxies in its trusted ranges and
// takes the leftmost entry as the client, so a proxy that appends to a
// visitor's own header lets the visitor choose its IP address. Gatehouse
// therefore replaces the header, and appends (as nginx's
// $proxy_add_x_forwarded_for does) only for clients that are themselves
// configured trusted proxies.
type forwarding struct {
	trusted []netip.Prefix
}

// clientSpoofableHeaders are dropped from untrusted clients' requests.
// httputil.ReverseProxy already removes Forwarded and X-Forwarded-* before
// Rewrite; the WebSocket path calls apply on a raw clone, so all are listed.
var clientSpoofableHeaders = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Port", "X-Forwarded-Server", "X-Real-Ip", "X-Client-Ip",
}

// isTrusted reports whether the peer at ip is a configured trusted proxy.
func (f forwarding) isTrusted(ip netip.Addr) bool {
	return ip.IsValid() && slices.ContainsFunc(f.trusted, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// apply sets out's forwarding headers for the client request in;
// X-Forwarded-Host is out's Host, the canonical public one.
func (f forwarding) apply(out, in *http.Request) {
	ip := remoteIP(in.RemoteAddr)
	trusted := f.isTrusted(ip)
	// A trusted proxy's headers are kept unless its Connection header
	// names them, which makes them its hop's alone (RFC 9110, 7.6.1).
	keep := func(h string) bool { return trusted && !headerHasToken(in.Header, "Connection", h) }
	for _, h := range clientSpoofableHeaders {
		if h != "X-Forwarded-For" && h != "X-Forwarded-Proto" && h != "X-Forwarded-Host" && keep(h) {
			if v, ok := in.Header[h]; ok {
				out.Header[h] = v
			}
			continue
		}
		out.Header.Del(h)
	}
	xff := ip.String()
	if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 && keep("X-Forwarded-For") {
		xff = strings.Join(prior, ", ") + ", " + xff
	}
	if ip.IsValid() {
		out.Header.Set("X-Forwarded-For", xff)
	}
	out.Header.Set("X-Forwarded-Proto", "https")
	out.Header.Set("X-Forwarded-Host", out.Host)
}

// remoteIP parses the address of a request's peer, "ip:port" as the net
// package gives it (or a bare IP). An IPv6 zone (fe80::1%eth0) is dropped: it
// names an interface of this machine, means nothing to the upstream, and no
// trusted-proxy prefix would contain it.
func remoteIP(remoteAddr string) netip.Addr {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		ip = ap.Addr()
	} else if a, err := netip.ParseAddr(remoteAddr); err == nil {
		ip = a
	}
	return ip.WithZone("").Unmap()
}
