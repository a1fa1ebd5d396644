package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/control"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// runningService is `gatehouse serve` in a child process with its control
// socket and config file in a temporary directory.
type runningService struct {
	*serveChild
	client *control.Client
	config string
}

// startService runs serve in front of upstream on a port the system picks
// (the control socket says which), and waits until it answers.
func startService(t *testing.T, upstream string) *runningService {
	t.Helper()
	dir := t.TempDir()
	s := &runningService{config: filepath.Join(dir, "config.json")}
	cfg := config.Config{Hostname: "sso.test", Upstream: upstream, TLS: config.TLSSelfSigned, StateDir: filepath.Join(dir, "state"),
		HTTPAddr: config.Off, HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off}
	if err := config.Save(s.config, cfg); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "control.sock")
	s.serveChild = startServe(t, []string{"--config", s.config, "--control-socket", socket, "--log-level", "warn"})
	s.listening(t, socket)
	s.client = control.NewClient(socket)
	return s
}

// visitor is a client of the service's HTTPS port, keeping its
// connections alive.
func (s *runningService) visitor(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 keepalive
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			st, err := s.client.Status(ctx, proxyengine.View{})
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, network, st.HTTPSAddr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get fetches / and says whether it went over a connection opened before.
func get(t *testing.T, c *http.Client) (body string, reused bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://sso.test/", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), reused
}

func (s *runningService) webSocket(t *testing.T) *websocket.Conn {
	t.Helper()
	st, err := s.client.Status(t.Context(), proxyengine.View{})
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "sso.test"},
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, st.HTTPSAddr)
		},
	}
	c, _, err := d.Dial("wss://sso.test/ws/client/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func echo(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// TestServiceSIGHUPMovesNewRequestsOnly: after the config file is edited
// and SIGHUP sent, new requests go to the new upstream, over the
// keepalive connection opened before, while a WebSocket opened before
// keeps its upstream.
func TestServiceSIGHUPMovesNewRequestsOnly(t *testing.T) {
	a, b := testutil.NamedUpstream(t, "A", false), testutil.NamedUpstream(t, "B", false)
	s := startService(t, a.URL)
	visitor := s.visitor(t)
	if body, _ := get(t, visitor); body != "A" {
		t.Fatalf("before: %q", body)
	}
	ws := s.webSocket(t)
	if got := echo(t, ws, "hi"); got != "A:hi" {
		t.Fatalf("WebSocket before: %q", got)
	}
	cfg, _ := config.Load(s.config)
	cfg.Upstream = b.URL
	config.Save(s.config, cfg)
	s.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := s.client.Config(t.Context())
		if err == nil && c.Upstream == b.URL {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload: %+v, %v\n%s", c, err, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body, reused := get(t, visitor); body != "B" || !reused {
		t.Errorf("after SIGHUP: %q over a reused connection %v; want B over the one opened before", body, reused)
	}
	if got := echo(t, ws, "still"); got != "A:still" {
		t.Errorf("the WebSocket opened before answered %q, want A:still", got)
	}
}

// TestServiceControlSocket: status, apply (and a refused config), a listen
// address change without dropping the connection opened before, pause and
// resume, against a real serve process.
func TestServiceControlSocket(t *testing.T) {
	a, b := testutil.NamedUpstream(t, "A", false), testutil.NamedUpstream(t, "B", false)
	s := startService(t, a.URL)
	ctx := t.Context()
	visitor := s.visitor(t)
	get(t, visitor)

	code, out, errOut := runControlCommand(t, runStatus, "--control-socket", s.client.Socket)
	if code != 0 || !strings.Contains(out, "Gatehouse is running, serving https://sso.test") || !strings.Contains(out, "up, answered in") {
		t.Errorf("gatehouse status: %d\n%s%s", code, out, errOut)
	}

	cfg, err := s.client.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := cfg
	bad.Upstream = "authentik.lan:9443"
	if err := s.client.Apply(ctx, bad); config.FieldErrors(err).For(config.FieldUpstream) == nil {
		t.Errorf("a bad upstream: %v, want its field error", err)
	}
	old, _ := s.client.Status(ctx, proxyengine.View{})
	next := cfg
	next.Upstream, next.HTTPSAddr = b.URL, freeLoopbackAddr(t)
	if err := s.client.Apply(ctx, next); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if body, reused := get(t, visitor); body != "B" || !reused {
		t.Errorf("after moving the port: %q, reused %v; want B over the connection opened before", body, reused)
	}
	if st, _ := s.client.Status(ctx, proxyengine.View{}); st.HTTPSAddr != next.HTTPSAddr {
		t.Errorf("listening on %s, want %s", st.HTTPSAddr, next.HTTPSAddr)
	}
	if c, err := net.DialTimeout("tcp", old.HTTPSAddr, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("the old address %s still accepts", old.HTTPSAddr)
	}
	saved, _ := config.Load(s.config)
	if saved.Upstream != b.URL || saved.HTTPSAddr != next.HTTPSAddr {
		t.Errorf("apply saved %+v", saved)
	}

	// A config file broken by hand: reload refuses it, naming the field,
	// and the service keeps serving.
	broken := saved
	broken.Upstream = "authentik.lan:9443"
	config.Save(s.config, broken)
	code, _, errOut = runControlCommand(t, runReload, "--control-socket", s.client.Socket)
	if code != 1 || !strings.Contains(errOut, "upstream: ") || !strings.Contains(errOut, "has no scheme") {
		t.Errorf("gatehouse reload of a broken file: %d %q", code, errOut)
	}
	if body, _ := get(t, visitor); body != "B" {
		t.Errorf("after a refused reload the service answers %q, want B", body)
	}
	config.Save(s.config, saved)

	if err := s.client.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runControlCommand(t, runStatus, "--control-socket", s.client.Socket)
	if code != 0 || !strings.Contains(out, "paused") {
		t.Errorf("status while paused: %d %q", code, out)
	}
	if err := s.client.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if body, _ := get(t, s.visitor(t)); body != "B" {
		t.Errorf("after resume: %q", body)
	}
}

// freeLoopbackAddr is an address free a moment ago, on an address of its
// own in 127/8 where no other test's :0 listener can take the port.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func runControlCommand(t *testing.T, cmd func([]string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := cmd(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestStatusAndReloadWithoutService: one line and exit 3.
func TestStatusAndReloadWithoutService(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "control.sock")
	for name, cmd := range map[string]func([]string, io.Writer, io.Writer) int{"status": runStatus, "reload": runReload} {
		code, out, errOut := runControlCommand(t, cmd, "--control-socket", socket)
		if code != exitNotRunning || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "no Gatehouse service is running") {
			t.Errorf("%s without a service: %d %q %q", name, code, out, errOut)
		}
	}
}

// TestStatusVisitorsLine: the visitors line names refused connections only
// when there were some.
func TestStatusVisitorsLine(t *testing.T) {
	st := proxyengine.Status{State: proxyengine.StateRunning, ActiveConnections: 7, ActiveWebSockets: 2,
		RequestsTotal: 120, RequestsLastMinute: 1.5, UpstreamErrors: 3}
	for refused, want := range map[uint64]string{
		0:  "7 connections, 2 WebSockets; 120 requests (1.5/s over the last minute), 3 upstream errors\n",
		42: "7 connections, 2 WebSockets; 120 requests (1.5/s over the last minute), 3 upstream errors; 42 connections refused (too many from one address)\n",
	} {
		st.ConnectionsRefused = refused
		var out strings.Builder
		writeStatus(&out, st, "/run/gatehouse/control.sock")
		if !strings.Contains(out.String(), "  Visitors     "+want) {
			t.Errorf("with %d refused:\n%s\nwant the line %q", refused, out.String(), want)
		}
	}
}
