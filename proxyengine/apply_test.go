package proxyengine

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
)

// getOn fetches path with c and reports the body and whether the request
// went over a connection opened before.
func getOn(t *testing.T, c *http.Client, path string) (body string, reused bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, engineURL(path), nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %q", path, resp.Status, b)
	}
	return string(b), reused
}

func wsRoundTrip(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("WebSocket write: %v", err)
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("WebSocket read: %v", err)
	}
	return string(got)
}

// TestApplyMovesNewRequestsToTheNewUpstream: after Apply, the next request
// on a keepalive connection opened before goes to the new upstream over
// that same connection, while a WebSocket opened before keeps its old
// upstream.
func TestApplyMovesNewRequestsToTheNewUpstream(t *testing.T) {
	a, b := testutil.NamedUpstream(t, "A", true), testutil.NamedUpstream(t, "B", true)
	cfg := testConfig(t, a)
	e := startEngine(t, cfg)
	c := httpClient(t, e, false)
	if body, _ := getOn(t, c, "/"); body != "A" {
		t.Fatalf("before Apply: %q", body)
	}
	ws, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if got := wsRoundTrip(t, ws, "hi"); got != "A:hi" {
		t.Fatalf("WebSocket before Apply: %q", got)
	}

	cfg.Upstream = b.URL
	if err := e.Apply(t.Context(), cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if body, reused := getOn(t, c, "/"); body != "B" || !reused {
		t.Errorf("after Apply: %q over a reused connection %v; want B over the connection opened before", body, reused)
	}
	if got := wsRoundTrip(t, ws, "still"); got != "A:still" {
		t.Errorf("the WebSocket opened before Apply answered %q; want its old upstream's A:still", got)
	}
	if e.Config().Upstream != b.URL {
		t.Errorf("Config().Upstream = %q after Apply", e.Config().Upstream)
	}
	ws2, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.Close()
	if got := wsRoundTrip(t, ws2, "new"); got != "B:new" {
		t.Errorf("a WebSocket opened after Apply answered %q; want B:new", got)
	}
	var applied bool
	for _, ev := range e.Status().Events {
		applied = applied || ev.Kind == EventConfig
	}
	if !applied {
		t.Error("no event says the settings were applied")
	}
}

// TestApplyMovesAListenAddress: the new address serves when Apply returns,
// a connection accepted on the old one carries on, and the old address no
// longer accepts.
func TestApplyMovesAListenAddress(t *testing.T) {
	cfg := testConfig(t, testutil.NamedUpstream(t, "A", true))
	e := startEngine(t, cfg)
	old := e.HTTPSAddr().String()
	c := httpClient(t, e, false)
	getOn(t, c, "/")

	next := reservedAddr(t)
	cfg.HTTPSAddr = next
	if err := e.Apply(t.Context(), cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := e.HTTPSAddr().String(); got != next {
		t.Fatalf("HTTPSAddr = %s, want %s", got, next)
	}
	if body, reused := getOn(t, c, "/"); body != "A" || !reused {
		t.Errorf("the connection accepted on the old address: %q, reused %v; want it to carry on", body, reused)
	}
	fresh := httpClient(t, e, false) // dials the engine's address now
	if body, reused := getOn(t, fresh, "/"); body != "A" || reused {
		t.Errorf("a new connection: %q, reused %v; want A on the new address", body, reused)
	}
	if conn, err := net.DialTimeout("tcp", old, 2*time.Second); err == nil {
		conn.Close()
		t.Errorf("the old address %s still accepts connections", old)
	}
	select {
	case err := <-e.Err():
		t.Errorf("closing the old listener was reported as a failure: %v", err)
	default:
	}
}

// reservedAddr is a loopback address free for a moment: for a setting
// that must name its port before the listener exists. It sits on an
// address of its own in 127/8, where no other test's :0 listener or
// connection can take the port in between.
func reservedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestApplyRefusesWhatCannotServe: an invalid setting, a port that cannot
// be bound and a certificate that cannot be had are each refused with the
// reason, and the engine keeps serving as before.
func TestApplyRefusesWhatCannotServe(t *testing.T) {
	a, b := testutil.NamedUpstream(t, "A", true), testutil.NamedUpstream(t, "B", true)
	cfg := testConfig(t, a)
	e := startEngine(t, cfg)
	c := httpClient(t, e, false)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notADir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notADir, []byte("x"), 0o600)

	for _, tc := range []struct {
		name  string
		edit  func(*config.Config)
		check func(error) bool
	}{
		{"invalid upstream", func(c *config.Config) { c.Upstream = "authentik.lan:9443" }, func(err error) bool {
			return config.FieldErrors(err).For(config.FieldUpstream) != nil
		}},
		{"port in use", func(c *config.Config) { c.HTTPSAddr = busy.Addr().String() }, func(err error) bool {
			var le *ports.ListenError
			return errors.As(err, &le)
		}},
		{"no certificate", func(c *config.Config) { c.Hostname, c.StateDir = "other.test", filepath.Join(notADir, "state") }, func(err error) bool {
			return strings.HasPrefix(err.Error(), "certificate:")
		}},
	} {
		next := cfg
		next.Upstream = b.URL
		tc.edit(&next)
		err := e.Apply(t.Context(), next)
		if err == nil || !tc.check(err) {
			t.Errorf("%s: Apply = %v", tc.name, err)
		}
		if body, _ := getOn(t, c, "/"); body != "A" {
			t.Errorf("%s: after the refusal the engine serves %q, want A as before", tc.name, body)
		}
		if e.Config().Upstream != a.URL || e.HTTPSAddr() == nil {
			t.Errorf("%s: the refused settings were taken: %+v", tc.name, e.Config())
		}
	}
	select {
	case err := <-e.Err():
		t.Errorf("a refused Apply stopped a listener: %v", err)
	default:
	}
}

// TestApplyNewHostnameGetsItsCertificate: a new public name gets a
// certificate from the local CA before it is served, and the old name is
// then another host (421).
func TestApplyNewHostnameGetsItsCertificate(t *testing.T) {
	cfg := testConfig(t, testutil.NamedUpstream(t, "A", true))
	e := startEngine(t, cfg)
	cfg.Hostname = "renamed.test"
	if err := e.Apply(t.Context(), cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	pool := localCAPool(t, e)
	conn, err := tls.Dial("tcp", e.HTTPSAddr().String(), &tls.Config{ServerName: "renamed.test", RootCAs: pool})
	if err != nil {
		t.Fatalf("handshake for the new name: %v", err)
	}
	conn.Close()
	if conn, err := tls.Dial("tcp", e.HTTPSAddr().String(), &tls.Config{ServerName: testHostname, RootCAs: pool}); err == nil {
		conn.Close()
		t.Errorf("the old name %s still has a certificate", testHostname)
	}
	// A client that does not check still reaches no app under the old name.
	insecure := &http.Client{Transport: &http.Transport{DialContext: dialEngine(e), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer insecure.CloseIdleConnections()
	resp, err := insecure.Get(engineURL("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("the old name got %s, want 421", resp.Status)
	}
	if st := e.CertStatus(); len(st.Names) != 1 || st.Names[0] != "renamed.test" {
		t.Errorf("certificate status names %v", st.Names)
	}
}

func TestApplyNeedsARunningEngine(t *testing.T) {
	cfg := testConfig(t, testutil.NamedUpstream(t, "A", true))
	e, err := New(cfg, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(t.Context(), cfg); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Apply before Start = %v, want ErrNotRunning", err)
	}
	e = startOwnEngine(t, cfg)
	e.Shutdown(t.Context())
	if err := e.Apply(t.Context(), cfg); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Apply after Shutdown = %v, want ErrNotRunning", err)
	}
}
