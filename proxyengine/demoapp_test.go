package proxyengine

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gorilla/websocket"
)

func TestDemoAppServesPageHealthAndEcho(t *testing.T) {
	d := newDemoApp()
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	defer d.close()
	base := "http://" + d.addr()
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("address %q, want a loopback one", d.addr())
	}

	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "Gatehouse's built-in <strong>demo app</strong>") || !strings.Contains(string(body), "/ws/client/") {
		t.Errorf("GET / = %d %q, want the demo page using /ws/client/", res.StatusCode, body)
	}
	for path, want := range map[string]int{config.DefaultHealthPath: 200, "/nothing": 404} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, res.StatusCode, want)
		}
	}

	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(base, "http", "ws", 1)+"/ws/client/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, msg := range []string{"hello", "again"} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		kind, got, err := ws.ReadMessage()
		if err != nil || kind != websocket.TextMessage || string(got) != msg {
			t.Fatalf("echo = %d %q %v, want text %q", kind, got, err, msg)
		}
	}

	// Close ends the open session too.
	if err := d.close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Error("the WebSocket stayed open after Close")
	}
}

func TestDemoUpstreamThroughTheEngine(t *testing.T) {
	cfg := config.Config{
		Hostname:   testHostname,
		Upstream:   config.UpstreamDemo,
		HTTPAddr:   "127.0.0.1:0",
		HTTPSAddr:  "127.0.0.1:0",
		TLS:        config.TLSSelfSigned,
		StateDir:   t.TempDir(),
		StatusAddr: config.Off,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate with the demo upstream: %v", err)
	}
	e := startEngine(t, cfg)
	demo := e.demo.addr()
	if got := e.Status().Upstream.URL; got != "http://"+demo+config.DefaultHealthPath {
		t.Errorf("the health check asks %q, want the demo app at %s", got, demo)
	}

	res, err := httpClient(t, e, true).Get(engineURL("/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "this page came through Gatehouse") {
		t.Errorf("GET / through the engine = %d %q", res.StatusCode, body)
	}
	ws, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("through"))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, got, err := ws.ReadMessage(); err != nil || string(got) != "through" {
		t.Errorf("echo through the engine = %q %v", got, err)
	}
}

// TestDemoAppStopsWithTheEngine: the engine started the demo app, so
// its Shutdown (and a failed Start) stops it.
func TestDemoAppStopsWithTheEngine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, failStart := range []bool{false, true} {
		cfg := testConfig(t, newEchoUpstream(t))
		cfg.Upstream, cfg.UpstreamInsecure = config.UpstreamDemo, false
		if failStart {
			cfg.HTTPAddr = busy.Addr().String()
		}
		e, err := New(cfg, testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(t.Context()); (err != nil) != failStart {
			t.Fatalf("Start (meant to fail: %v): %v", failStart, err)
		}
		demo := e.demo.addr()
		if !failStart {
			e.Shutdown(t.Context())
		}
		if c, err := net.Dial("tcp", demo); err == nil {
			c.Close()
			t.Errorf("the demo app still listens on %s after the engine stopped (failed start: %v)", demo, failStart)
		}
	}
}
