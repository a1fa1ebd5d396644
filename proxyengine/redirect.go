package proxyengine

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// redirectHandler answers every plain-HTTP request with a 301 to the same
// path and query on https://hostname[:port]. The target host is the
// configured name, never the request's Host, so the redirect cannot be
// pointed elsewhere; the port appears only when it is not 443.
func redirectHandler(hostname string, publicPort int) http.Handler {
	base := "https://" + hostname
	if publicPort != 443 {
		base = "https://" + net.JoinHostPort(hostname, strconv.Itoa(publicPort))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// RequestURI is the request target exactly as sent, so the path and
		// query survive byte for byte; absolute-form targets are reduced to
		// their path and query. An opaque target (http:@evil.com/x) has no
		// path: its text after the scheme would follow the host and could
		// name another one (https://sso.example.com@evil.com/x). The
		// Location therefore always continues the host with "/".
		target := r.RequestURI
		if !strings.HasPrefix(target, "/") {
			if r.URL.Opaque != "" || r.URL.Scheme == "" && r.URL.Host == "" {
				http.Error(w, "Bad Request: the request target has no path", http.StatusBadRequest)
				return
			}
			target = r.URL.EscapedPath()
			if !strings.HasPrefix(target, "/") {
				target = "/" + target
			}
			if r.URL.ForceQuery || r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
		}
		w.Header().Set("Location", base+target)
		w.WriteHeader(http.StatusMovedPermanently)
	})
}
