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
			benchRequests(b, e, func() *http.Request {
				req, _ := http.NewRequest(http.MethodGet, engineURL("/"), nil)
				return req
			})
		})
	}
}

// benchRequests starts e and has GOMAXPROCS clients send newRequest's
// requests to it over keepalive connections, each answer a 200, and
// reports the whole process's CPU time per request as cpu-ns/op.
func benchRequests(b *testing.B, e *Engine, newRequest func() *http.Request) {
	if err := e.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	c := httpClient(b, e, false)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	cpuBefore := processCPUTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := newRequest()
		for pb.Next() {
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer() // a connection still in its first request delays Shutdown up to 5 s
	b.ReportMetric(float64(processCPUTime(b)-cpuBefore)/float64(b.N), "cpu-ns/op")
	e.Shutdown(b.Context())
}

// processCPUTime is the user and system CPU time this process has used.
func processCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
