package proxyengine

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestDemoAppServesPageHealthAndEcho(t *testing.T) {
	d, err := StartDemoApp()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !strings.HasPrefix(d.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %q, want a loopback http URL", d.URL())
	}

	res, err := http.Get(d.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "Gatehouse's built-in <strong>demo app</strong>") || !strings.Contains(string(body), "/ws/client/") {
		t.Errorf("GET / = %d %q, want the demo page using /ws/client/", res.StatusCode, body)
	}
	for path, want := range map[string]int{DefaultHealthPath: 200, "/nothing": 404} {
		res, err := http.Get(d.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, res.StatusCode, want)
		}
	}

	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(d.URL(), "http", "ws", 1)+"/ws/client/", nil)
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
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Error("the WebSocket stayed open after Close")
	}
}

func TestDemoUpstreamThroughTheEngine(t *testing.T) {
	cfg := Config{
		Hostname:   testHostname,
		Upstream:   UpstreamDemo,
		HTTPAddr:   "127.0.0.1:0",
		HTTPSAddr:  "127.0.0.1:0",
		TLS:        TLSSelfSigned,
		StateDir:   t.TempDir(),
		StatusAddr: Off,
		Logger:     quietLogger(t),
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate with the demo upstream: %v", err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "WithDemoApp") {
		t.Errorf("New with the demo keyword = %v, want an error pointing to WithDemoApp", err)
	}
	cfg, demo, err := WithDemoApp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	if cfg.Upstream != demo.URL() {
		t.Fatalf("Upstream = %q, want the demo's %q", cfg.Upstream, demo.URL())
	}
	e := startEngine(t, cfg)

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

func TestWithDemoAppLeavesOtherUpstreamsAlone(t *testing.T) {
	cfg := Config{Upstream: "https://authentik.lan:9443"}
	got, demo, err := WithDemoApp(cfg)
	if err != nil || demo != nil || got.Upstream != cfg.Upstream {
		t.Errorf("WithDemoApp(%q) = %q, %v, %v; want it unchanged", cfg.Upstream, got.Upstream, demo, err)
	}
	if err := demo.Close(); err != nil {
		t.Errorf("nil demo Close = %v", err)
	}
}

func TestDemoUpstreamRejectsTrustOptions(t *testing.T) {
	cfg := Config{Hostname: "gatehouse.test", Upstream: UpstreamDemo, UpstreamInsecure: true, TLS: TLSSelfSigned, StateDir: t.TempDir()}
	if fe := FieldErrors(cfg.Validate()).For("upstream_ca"); fe == nil || !strings.Contains(fe.Message, "https:// upstream only") {
		t.Errorf("demo with upstream_insecure: %v, want the https-only trust error", fe)
	}
}

func TestCheckUpstreamPassesTheDemo(t *testing.T) {
	var k Checker
	rs := k.CheckUpstream(context.Background(), Config{Upstream: UpstreamDemo})
	if rs[0].Status != CheckPass {
		t.Errorf("connect = %s %q, want pass", rs[0].Status, rs[0].Finding)
	}
	for _, r := range rs[1:] {
		if r.Status != CheckSkip {
			t.Errorf("%s = %s, want skip", r.Name, r.Status)
		}
	}
}
