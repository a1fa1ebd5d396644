package proxyengine

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// BenchmarkProxyTracking measures proxied requests per second with the
// status tracking on and off: 100-byte answers over HTTP/1.1 keepalive
// connections, GOMAXPROCS parallel clients. Besides wall time per request it
// reports the process's CPU time per request (cpu-ns/op), which other load
// on a shared machine disturbs far less than wall time.
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
			cfg.HTTPAddr = config.Off
			e, err := New(cfg, testOptions(b))
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
			cpuBefore := processCPUTime(b)
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
			b.ReportMetric(float64(processCPUTime(b)-cpuBefore)/float64(b.N), "cpu-ns/op")
			e.Shutdown(b.Context())
		})
	}
}

// processCPUTime is the user and system CPU time this process has used.
func processCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
