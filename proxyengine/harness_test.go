package proxyengine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gorilla/websocket"
)

// testHostname is the public name the engine serves in tests; clients dial
// the engine's loopback address and send this name as SNI and Host.
const testHostname = "gatehouse.test"

// testOptions sends the engine's logs to the test's -v output only.
func testOptions(t testing.TB) Options { return Options{Logger: testutil.Logger(t)} }

// testConfig is a self-signed engine on ephemeral loopback ports in front of
// upstream, which must be an httptest TLS server.
func testConfig(t testing.TB, upstream *httptest.Server) config.Config {
	t.Helper()
	return config.Config{
		Hostname:         testHostname,
		Upstream:         upstream.URL,
		UpstreamInsecure: upstream.TLS != nil,
		HTTPAddr:         "127.0.0.1:0",
		HTTPSAddr:        "127.0.0.1:0",
		TLS:              config.TLSSelfSigned,
		StateDir:         filepath.Join(t.TempDir(), "state"),
		StatusAddr:       config.Off,
	}
}

// startEngine starts an engine for cfg and stops it when the test ends.
// Each setup function may adjust the engine between New and Start, such as
// shortening its client limits.
func startEngine(t testing.TB, cfg config.Config, setup ...func(*Engine)) *Engine {
	t.Helper()
	e, err := New(cfg, testOptions(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, f := range setup {
		f(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	return e
}

// startOwnEngine starts an engine for a test that shuts it down itself.
func startOwnEngine(t testing.TB, cfg config.Config) *Engine {
	t.Helper()
	e, err := New(cfg, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e
}

// localCAPool trusts the engine's self-signed CA.
func localCAPool(t testing.TB, e *Engine) *x509.CertPool {
	t.Helper()
	pool, err := upstream.LoadCertPool(filepath.Join(e.Config().StateDir, certs.LocalCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// clientTLS verifies the engine's certificate for testHostname.
func clientTLS(t testing.TB, e *Engine, protos ...string) *tls.Config {
	return &tls.Config{RootCAs: localCAPool(t, e), ServerName: testHostname, NextProtos: protos}
}

// dialEngine makes every dial go to the engine's HTTPS address.
func dialEngine(e *Engine) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, e.HTTPSAddr().String())
	}
}

// httpClient talks to the engine as a browser would to https://gatehouse.test/,
// over HTTP/2 when h2 is true and HTTP/1.1 otherwise.
func httpClient(t testing.TB, e *Engine, h2 bool) *http.Client {
	tr := &http.Transport{
		DialContext:       dialEngine(e),
		TLSClientConfig:   clientTLS(t, e),
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// wsDialer opens WebSockets through the engine.
func wsDialer(t testing.TB, e *Engine) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   dialEngine(e),
		TLSClientConfig:  clientTLS(t, e),
		HandshakeTimeout: 10 * time.Second,
	}
}

// engineURL is an https URL of the engine's public name.
func engineURL(path string) string { return "https://" + testHostname + path }

// wsURL is a wss URL of the engine's public name.
func wsURL(path string) string { return "wss://" + testHostname + path }

// openWS opens a WebSocket to /ws/client/ through e, closed when the test
// ends.
func openWS(t testing.TB, e *Engine) *websocket.Conn {
	t.Helper()
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// goroutinesIn counts the goroutines whose stacks pass through frame, a
// function as runtime.Stack prints it, such as "proxyengine.waitReadable(".
func goroutinesIn(frame string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), frame)
}
