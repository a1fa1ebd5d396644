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
		// their path and query.
		target := r.RequestURI
		if !strings.HasPrefix(target, "/") {
			target = r.URL.RequestURI()
		}
		w.Header().Set("Location", base+target)
		w.WriteHeader(http.StatusMovedPermanently)
	})
}
