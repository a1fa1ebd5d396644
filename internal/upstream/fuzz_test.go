package upstream

import (
	"strconv"
	"testing"
)

// FuzzParseUpstream checks that an accepted upstream URL is what the proxy
// can use: http or https, a host, a valid port, nothing after the host, and
// the same URL when parsed again from its own text.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"https://authentik.lan:9443", "http://10.0.0.5:9000/", "https://[fe80::1%25eth0]:9443", "https://user:pw@host",
		"ftp://host", "https://host/path?q#f", "https://host:0", "https://host:99999", "authentik.lan:9443", "https://:9443", "HTTPS://Host."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseURL(raw)
		if err != nil {
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("accepted %q as %#v", raw, u)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("accepted %q with port %q", raw, p)
			}
		}
		again, err := ParseURL(u.String())
		if err != nil || *again != *u {
			t.Fatalf("%q parsed as %q, which parses as %v, %v", raw, u, again, err)
		}
	})
}
