package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// startServer runs newServer on a loopback port with a fresh certificate
// and returns its https:// base URL and a client for it.
func startServer(t *testing.T) (string, *http.Client) {
	t.Helper()
	cert, err := writeSelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(cert)
	srv.ErrorLog = nil
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(client.CloseIdleConnections)
	return "https://" + ln.Addr().String(), client
}

func TestRoutes(t *testing.T) {
	base, c := startServer(t)
	for _, tc := range []struct {
		path       string
		wantStatus int
		wantLen    int // -1: any length
		wantText   string
	}{
		{"/", http.StatusOK, -1, "authentik stand-in"},
		{"/bytes/100", http.StatusOK, 100, "abcdef"},
		{"/bytes/102400", http.StatusOK, 102400, ""},
		{"/bytes/0", http.StatusOK, 0, ""},
		{"/bytes/-1", http.StatusBadRequest, -1, "not a number of bytes"},
		{"/bytes/99999999999", http.StatusBadRequest, -1, "not a number of bytes"},
		{"/bytes/ten", http.StatusBadRequest, -1, "not a number of bytes"},
		{"/-/health/live/", http.StatusNoContent, 0, ""},
		{"/nowhere", http.StatusNotFound, -1, ""},
	} {
		resp, err := c.Get(base + tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: reading: %v", tc.path, err)
		}
		if resp.StatusCode != tc.wantStatus || tc.wantLen >= 0 && len(body) != tc.wantLen || !strings.Contains(string(body), tc.wantText) {
			t.Errorf("%s: %d with %d bytes %.40q; want %d, %d bytes containing %q", tc.path, resp.StatusCode, len(body), body, tc.wantStatus, tc.wantLen, tc.wantText)
		}
		if resp.ProtoMajor != 1 {
			t.Errorf("%s: answered over %s; the stand-in speaks HTTP/1.1 only", tc.path, resp.Proto)
		}
	}
}

func TestWebSocketEchoAndConnectionCount(t *testing.T) {
	base, c := startServer(t)
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	conn, _, err := dialer.Dial("wss"+strings.TrimPrefix(base, "https")+"/ws/client/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, msg := range []string{"hello", strings.Repeat("x", 70000)} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("echo of %d bytes came back as %d bytes", len(msg), len(got))
		}
	}
	for want := 2; want <= 3; want++ { // the WebSocket's connection, then each request's own
		resp, err := c.Get(base + "/-/bench/connections")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(body)); got != strconv.Itoa(want) {
			t.Errorf("connections counted: %s, want %d", got, want)
		}
		c.CloseIdleConnections() // the next request dials again
	}
}

func TestWriteSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	cert, err := writeSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Leaf.VerifyHostname("localhost"); err != nil {
		t.Errorf("certificate: %v", err)
	}
	if err := cert.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate: %v", err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err != nil {
		t.Errorf("the written files do not load as a pair: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("key.pem mode %o, want 600", mode)
	}
}
