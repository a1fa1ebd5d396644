package proxyengine

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkProxyTracking measures proxied requests per second with the
// status tracking on and off: 100-byte answers over HTTP/1.1 keepalive
// connections, GOMAXPROCS parallel clients.
//
//	go test -run '^$' -bench ProxyTracking -count 10 ./proxyengine | benchstat -
func BenchmarkProxyTracking(b *testing.B) {
	body := strings.Repeat("x", 100)
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	defer up.Close()
	for _, tracked := range []bool{true, false} {
		name := "tracking=on"
		if !tracked {
			name = "tracking=off"
		}
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(b, up)
			cfg.HTTPAddr = Off
			e, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			e.untracked = !tracked
			if err := e.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			c := httpClient(b, e, false)
			c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(engineURL("/"))
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.StopTimer() // a connection still in its first request delays Shutdown up to 5 s
			e.Shutdown(b.Context())
		})
	}
}
