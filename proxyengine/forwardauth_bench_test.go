package proxyengine

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// BenchmarkForwardAuth measures what forward auth costs per proxied
// request: none, a check with the outpost for every request, and checks
// spared by the 2 s cache of signed-in passes. Signed-in visitors, 100-byte
// answers, HTTP/1.1 keepalive, GOMAXPROCS parallel clients; the stand-in
// outpost (plain HTTP on loopback, as a standalone outpost on :9000)
// answers at once, so the numbers are Gatehouse's own cost, not
// authentik's. cpu-ns/op is the whole process: engine, clients, app and
// outpost.
//
//	go test -run '^$' -bench ForwardAuth -count 6 ./proxyengine | benchstat -
func BenchmarkForwardAuth(b *testing.B) {
	body := strings.Repeat("x", 100)
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	defer app.Close()
	outpost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Cookie"), validSession) {
			http.Redirect(w, r, "/outpost.goauthentik.io/start", http.StatusFound)
			return
		}
		h := w.Header()
		for _, k := range authentikHeaders {
			h.Set(k, "value")
		}
		h.Set("X-Authentik-Jwt", strings.Repeat("j", 800)) // a JWT's usual size
	}))
	defer outpost.Close()
	for _, mode := range []string{"off", "check", "cached"} {
		b.Run("forward-auth="+mode, func(b *testing.B) {
			cfg := testConfig(b, app)
			cfg.HTTPAddr = config.Off
			if mode != "off" {
				cfg.ForwardAuth = &config.ForwardAuth{URL: outpost.URL}
			}
			e, err := New(cfg, testOptions(b))
			if err != nil {
				b.Fatal(err)
			}
			if mode == "check" {
				e.current().sites[0].auth.cache = nil
			}
			benchRequests(b, e, func() *http.Request {
				req, _ := http.NewRequest(http.MethodGet, engineURL("/"), nil)
				req.Header.Set("Cookie", validSession+"; csrftoken=abcdef0123456789")
				return req
			})
		})
	}
}
