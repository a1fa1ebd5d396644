package proxyengine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testHostname is the public name the engine serves in tests; clients dial
// the engine's loopback address and send this name as SNI and Host.
const testHostname = "gatehouse.test"

// quietLogger discards logs unless -v is given.
func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is a self-signed engine on ephemeral loopback ports in front of
// upstream, which must be an httptest TLS server.
func testConfig(t testing.TB, upstream *httptest.Server) Config {
	t.Helper()
	return Config{
		Hostname:         testHostname,
		Upstream:         upstream.URL,
		UpstreamInsecure: upstream.TLS != nil,
		HTTPAddr:         "127.0.0.1:0",
		HTTPSAddr:        "127.0.0.1:0",
		TLS:              TLSSelfSigned,
		StateDir:         filepath.Join(t.TempDir(), "state"),
		StatusAddr:       Off,
		Logger:           quietLogger(t),
	}
}

// startEngine starts an engine for cfg and stops it when the test ends.
// Each setup function may adjust the engine between New and Start, such as
// shortening its client limits.
func startEngine(t testing.TB, cfg Config, setup ...func(*Engine)) *Engine {
	t.Helper()
	e, err := New(cfg)
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

// localCAPool trusts the engine's self-signed CA.
func localCAPool(t testing.TB, e *Engine) *x509.CertPool {
	t.Helper()
	pool, err := loadCertPool(filepath.Join(e.Config().StateDir, LocalCACertFile))
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

// eventually polls cond every 10 ms until it holds or 5 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reservedPort holds a loopback TCP port for a whole test, where a port
// released for later use could be taken meanwhile: Pebble's validator
// needs fixed ports, and a test of an unreachable upstream needs a port
// that stays closed. The socket is bound but not listening, so connections
// are refused (a port the validator must find closed stays closed) until
// listener is first called; each listener shares the socket, so an engine
// closing its own does not give the port up.
type reservedPort struct {
	port int
	addr string   // 127.0.0.1:port
	sock *os.File // the bound socket

	listenOnce sync.Once
	listenErr  error
}

func reservePort(t *testing.T) *reservedPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(fd), "reserved port")
	t.Cleanup(func() { sock.Close() })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	return &reservedPort{port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), sock: sock}
}

// listener starts the port listening and returns a listener of its own on
// the socket.
func (p *reservedPort) listener() (net.Listener, error) {
	p.listenOnce.Do(func() {
		if conn, err := p.sock.SyscallConn(); err != nil {
			p.listenErr = err
		} else if err := conn.Control(func(fd uintptr) { p.listenErr = syscall.Listen(int(fd), syscall.SOMAXCONN) }); err != nil {
			p.listenErr = err
		}
	})
	if p.listenErr != nil {
		return nil, p.listenErr
	}
	return net.FileListener(p.sock)
}
