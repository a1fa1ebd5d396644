package proxyengine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gorilla/websocket"
)

const (
	demoWriteWait    = 10 * time.Second
	demoPongWait     = 60 * time.Second
	demoPingPeriod   = demoPongWait * 9 / 10
	demoMaxMessage   = 4096
	demoShutdownWait = 5 * time.Second
)

// demoApp is the built-in demo upstream (config.UpstreamDemo), so the whole
// setup can be tried without authentik: plain HTTP on a loopback port,
// serving a page that explains itself, authentik's liveness path and a
// WebSocket echo at /ws/client/ (authentik's WebSocket path).
type demoApp struct {
	srv *http.Server
	ln  net.Listener

	mu    sync.Mutex
	conns map[*websocket.Conn]struct{} // hijacked, so srv.Shutdown does not see them
}

func newDemoApp() *demoApp {
	d := &demoApp{conns: make(map[*websocket.Conn]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.servePage)
	mux.HandleFunc("GET "+config.DefaultHealthPath, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /ws/client/", d.serveEcho)
	d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout}
	return d
}

// start serves the demo app on 127.0.0.1 at a free port.
func (d *demoApp) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the demo app: %w", err)
	}
	d.ln = ln
	go d.srv.Serve(ln)
	return nil
}

// serving reports whether start has run.
func (d *demoApp) serving() bool { return d.ln != nil }

// addr is where the demo app listens, such as 127.0.0.1:40123.
func (d *demoApp) addr() string { return d.ln.Addr().String() }

// close stops the demo app, if it was started, and ends its WebSocket
// sessions; on a nil demoApp it does nothing.
func (d *demoApp) close() error {
	if !d.serving() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), demoShutdownWait)
	defer cancel()
	err := d.srv.Shutdown(ctx)
	d.mu.Lock()
	for c := range d.conns {
		c.Close()
	}
	d.conns = nil
	d.mu.Unlock()
	return err
}

func (d *demoApp) servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(demoPage))
}

var demoUpgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}

// serveEcho sends every message back, as a stand-in for authentik's live
// connection to the browser.
func (d *demoApp) serveEcho(w http.ResponseWriter, r *http.Request) {
	c, err := demoUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	if !d.track(c) {
		c.Close()
		return
	}
	defer d.untrack(c)
	c.SetReadLimit(demoMaxMessage)
	c.SetReadDeadline(time.Now().Add(demoPongWait))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(demoPongWait)) })

	// One writer: this goroutine echoes; pings go through WriteControl,
	// which gorilla allows concurrently with one other writer.
	stopPing := make(chan struct{})
	defer close(stopPing)
	go func() {
		t := time.NewTicker(demoPingPeriod)
		defer t.Stop()
		for {
			select {
			case <-stopPing:
				return
			case <-t.C:
				if c.WriteControl(websocket.PingMessage, nil, time.Now().Add(demoWriteWait)) != nil {
					return
				}
			}
		}
	}()
	for {
		kind, msg, err := c.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && !errors.Is(err, net.ErrClosed) {
				slog.Debug("demo app: websocket ended", "err", err)
			}
			return
		}
		c.SetWriteDeadline(time.Now().Add(demoWriteWait))
		if err := c.WriteMessage(kind, msg); err != nil {
			return
		}
	}
}

// track registers a session for Close; it refuses once Close has begun.
func (d *demoApp) track(c *websocket.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		return false
	}
	d.conns[c] = struct{}{}
	return true
}

func (d *demoApp) untrack(c *websocket.Conn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
	c.Close()
}

// demoPage is the demo app's only page. Its script opens a WebSocket to
// /ws/client/ through whatever served the page (Gatehouse, over wss://) and
// shows each echo, proving that upgrades pass through the proxy.
const demoPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gatehouse demo app</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #1d2733; }
h1 { font-size: 1.6rem; }
.box { border: 1px solid #c9d3df; border-radius: 8px; padding: 1rem; background: #f5f8fb; }
#echo { font-family: ui-monospace, monospace; white-space: pre-wrap; min-height: 4.5em; }
.ok { color: #1b7f3b; } .bad { color: #b3261e; }
</style>
</head>
<body>
<h1>It works: this page came through Gatehouse</h1>
<p>This is Gatehouse's built-in <strong>demo app</strong>. It stands where your real app, such as
authentik, will be: Gatehouse received your visit over HTTPS, checked the certificate and
forwarded the request here.</p>
<div class="box">
<p>Live WebSocket echo at <code>/ws/client/</code> (the path authentik uses):
<span id="state">connecting…</span></p>
<div id="echo"></div>
</div>
<p>When you are ready, open Gatehouse, choose <em>Edit setup</em> and enter your app's address
in place of the demo app.</p>
<script>
(function () {
  var state = document.getElementById("state"), echo = document.getElementById("echo");
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(scheme + location.host + "/ws/client/"), n = 0, timer;
  ws.onopen = function () {
    state.textContent = "connected"; state.className = "ok";
    timer = setInterval(function () { ws.send("hello #" + (++n) + " at " + new Date().toLocaleTimeString()); }, 1000);
  };
  ws.onmessage = function (ev) {
    var lines = (echo.textContent ? echo.textContent.split("\n") : []);
    lines.unshift("echoed: " + ev.data);
    echo.textContent = lines.slice(0, 3).join("\n");
  };
  ws.onclose = function () { clearInterval(timer); state.textContent = "closed"; state.className = "bad"; };
})();
</script>
</body>
</html>
`
