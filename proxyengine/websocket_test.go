package proxyengine

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// wsUpstream is a gorilla/websocket server standing in for authentik's
// /ws/client/ and /ws/outpost/<id>/ endpoints. It echoes every message; the
// text "close <code> <reason>" makes it close with that code; "drop" makes
// it vanish without a close frame. It records each handshake's request.
type wsUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	closed   chan wsClose // how each session ended, as the upstream saw it
}

type wsClose struct {
	code int
	text string
}

func newWSUpstream(t testing.TB) *wsUpstream {
	u := &wsUpstream{closed: make(chan wsClose, 16)}
	upgrader := websocket.Upgrader{
		Subprotocols: []string{"authentik.v1", "chat"},
		CheckOrigin:  func(*http.Request) bool { return true },
	}
	u.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			// Health checks and ordinary requests.
			if r.URL.Path == "/missing" {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, "a plain page")
			return
		}
		if r.URL.Path == "/ws/refuse/" {
			http.Error(w, "no websockets for you", http.StatusForbidden)
			return
		}
		u.mu.Lock()
		u.requests = append(u.requests, r)
		u.mu.Unlock()
		c, err := upgrader.Upgrade(w, r, http.Header{"Set-Cookie": {"seen=1"}})
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPingHandler(func(data string) error {
			return c.WriteControl(websocket.PongMessage, []byte("pong:"+data), time.Now().Add(time.Second))
		})
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					u.closed <- wsClose{ce.Code, ce.Text}
				} else {
					u.closed <- wsClose{code: websocket.CloseAbnormalClosure}
				}
				return
			}
			if kind == websocket.TextMessage {
				var code int
				var reason string
				if s := string(msg); strings.HasPrefix(s, "close ") {
					parts := strings.SplitN(s, " ", 3)
					code, _ = strconv.Atoi(parts[1])
					if len(parts) == 3 {
						reason = parts[2]
					}
					c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
					continue
				} else if s == "drop" {
					c.UnderlyingConn().Close()
					u.closed <- wsClose{code: -1, text: "dropped"}
					return
				}
			}
			if err := c.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *wsUpstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests[len(u.requests)-1]
}

func (u *wsUpstream) waitClose(t *testing.T) wsClose {
	t.Helper()
	select {
	case c := <-u.closed:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream never saw the WebSocket end")
		return wsClose{}
	}
}

func startWSEngine(t *testing.T) (*Engine, *wsUpstream) {
	up := newWSUpstream(t)
	return startEngine(t, testConfig(t, up.Server)), up
}

func TestWebSocketEchoOnEveryPath(t *testing.T) {
	e, up := startWSEngine(t)
	big := make([]byte, 5<<20)
	rand.Read(big)
	for _, path := range []string{"/ws/client/", "/ws/outpost/3f1c2a4e-9b7d-4c1e-8f00-1234567890ab/", "/any/app/path"} {
		hdr := http.Header{"Origin": {"https://" + testHostname}, "Cookie": {"authentik_session=s3cret"}}
		hdr.Set("Sec-WebSocket-Protocol", "authentik.v1")
		c, resp, err := wsDialer(t, e).Dial(wsURL(path+"?v=1"), hdr)
		if err != nil {
			t.Fatalf("%s: dial: %v", path, err)
		}
		if c.Subprotocol() != "authentik.v1" {
			t.Errorf("%s: subprotocol %q, want authentik.v1 negotiated through the proxy", path, c.Subprotocol())
		}
		if resp.Header.Get("Set-Cookie") != "seen=1" {
			t.Errorf("%s: the upstream's handshake headers were not passed back", path)
		}
		r := up.lastRequest()
		if r.URL.RequestURI() != path+"?v=1" || r.Host != testHostname || r.Header.Get("Origin") != "https://"+testHostname ||
			r.Header.Get("Cookie") != "authentik_session=s3cret" || r.Header.Get("X-Forwarded-Proto") != "https" ||
			r.Header.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Errorf("%s: upstream handshake saw URI %q Host %q headers %v", path, r.URL.RequestURI(), r.Host, r.Header)
		}
		for _, m := range []struct {
			kind int
			data []byte
		}{{websocket.TextMessage, []byte("hello authentik")}, {websocket.BinaryMessage, []byte{0, 1, 2, 255}}, {websocket.BinaryMessage, big}} {
			if err := c.WriteMessage(m.kind, m.data); err != nil {
				t.Fatal(err)
			}
			kind, got, err := c.ReadMessage()
			if err != nil || kind != m.kind || !bytes.Equal(got, m.data) {
				t.Fatalf("%s: echo of %d bytes came back as kind %d, %d bytes, err %v", path, len(m.data), kind, len(got), err)
			}
		}
		pong := make(chan string, 1)
		c.SetPongHandler(func(s string) error { pong <- s; return nil })
		c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second))
		go c.ReadMessage() // pongs are delivered while reading
		select {
		case s := <-pong:
			if s != "pong:p1" {
				t.Errorf("pong %q", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no pong came back through the proxy")
		}
		c.Close()
		up.waitClose(t)
	}
}

func TestWebSocketCloseCodesPassBothWays(t *testing.T) {
	e, up := startWSEngine(t)

	// Client closes: the upstream sees the client's code and reason.
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "tab closed"))
	if got := up.waitClose(t); got.code != 4001 || got.text != "tab closed" {
		t.Errorf("upstream saw close %+v, want 4001 tab closed", got)
	}
	c.Close()

	// Upstream closes: the client sees the upstream's code and reason.
	c, _, err = wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("close 4403 session expired"))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4403 || ce.Text != "session expired" {
		t.Errorf("client saw %v, want close 4403 session expired", err)
	}
}

func TestWebSocketUpstreamVanishingClosesClient(t *testing.T) {
	e, _ := startWSEngine(t)
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("drop"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("client saw %v, want a 1001 close frame from the proxy", err)
	}
	testutil.Eventually(t, "the session is gone", func() bool { return e.ws.count() == 0 })
}

func TestWebSocketClientVanishingClosesUpstream(t *testing.T) {
	e, up := startWSEngine(t)
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.UnderlyingConn().Close() // no close frame: the tab was killed
	if got := up.waitClose(t); got.code != websocket.CloseGoingAway {
		t.Errorf("upstream saw %+v, want 1001 going away from the proxy", got)
	}
	testutil.Eventually(t, "the session is gone", func() bool { return e.ws.count() == 0 })
}

func TestWebSocketRefusedUpgradeIsRelayed(t *testing.T) {
	e, _ := startWSEngine(t)
	_, resp, err := wsDialer(t, e).Dial(wsURL("/ws/refuse/"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused upgrade: err %v, resp %v; want the upstream's 403", err, resp)
	}
}

func TestWebSocketShutdownSends1001(t *testing.T) {
	up := newWSUpstream(t)
	e := startOwnEngine(t, testConfig(t, up.Server))
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- e.Shutdown(t.Context()) }()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("client saw %v, want 1001 on shutdown", err)
	}
	if got := up.waitClose(t); got.code != websocket.CloseGoingAway {
		t.Errorf("upstream saw %+v, want 1001 on shutdown", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestWebSocketNoLeaks opens and closes sessions every way they can end and
// checks no goroutine outlives them.
func TestWebSocketNoLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	up := newWSUpstream(t)
	e := startOwnEngine(t, testConfig(t, up.Server))
	d := wsDialer(t, e)
	for i := range 30 {
		c, _, err := d.Dial(wsURL("/ws/client/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteMessage(websocket.TextMessage, []byte("hi"))
		c.ReadMessage()
		switch i % 3 {
		case 0:
			c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
			c.ReadMessage()
		case 1:
			c.WriteMessage(websocket.TextMessage, []byte("drop"))
			c.ReadMessage()
		}
		c.Close()
		up.waitClose(t)
	}
	testutil.Eventually(t, "all sessions end", func() bool { return e.ws.count() == 0 })
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	up.Close()
}

// TestWebSocketUpgradeDropsHopByHopHeaders sends an upgrade naming headers
// of its own in two Connection lines (gorilla's dialer cannot) and checks
// the upstream's handshake carries none of them, nor the standard hop-by-hop
// headers, while end-to-end headers pass and Connection and Upgrade are set
// again for the upstream hop.
func TestWebSocketUpgradeDropsHopByHopHeaders(t *testing.T) {
	e, up := startWSEngine(t)
	c, _ := rawWebSocket(t, e, "GET /ws/client/ HTTP/1.1\r\nHost: "+testHostname+"\r\n"+
		"Connection: Upgrade, X-Private-Hop\r\n"+
		"Connection: x-second-hop\r\n"+
		"Upgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
		"X-Private-Hop: secret\r\n"+
		"X-Second-Hop: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic eA==\r\n"+
		"Te: trailers\r\n"+
		"X-End-To-End: kept\r\n\r\n")
	h := up.lastRequest().Header
	for _, k := range []string{"X-Private-Hop", "X-Second-Hop", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te"} {
		if v, ok := h[k]; ok {
			t.Errorf("hop-by-hop %s reached the upstream: %q", k, v)
		}
	}
	if got := strings.Join(h.Values("Connection"), ","); got != "Upgrade" || h.Get("Upgrade") != "websocket" {
		t.Errorf("upstream Connection %q, Upgrade %q; want Upgrade and websocket alone", got, h.Get("Upgrade"))
	}
	if h.Get("X-End-To-End") != "kept" || h.Get("Sec-Websocket-Key") != "dGhlIHNhbXBsZSBub25jZQ==" {
		t.Errorf("end-to-end headers did not pass: %v", h)
	}
	c.Close()
	up.waitClose(t)
}

// wsFrame encodes a final frame of at most 125 bytes, masked as clients
// send theirs when masked is set.
func wsFrame(opcode byte, payload []byte, masked bool) []byte {
	f := []byte{0x80 | opcode, byte(len(payload))}
	if !masked {
		return append(f, payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f[1] |= 0x80
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

// readWSFrame reads a frame of at most 125 bytes, unmasking it if masked.
func readWSFrame(r io.Reader) (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x7f > 125 {
		return 0, nil, fmt.Errorf("frame header %x: longer than this test reads", h)
	}
	var key [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return h[0] & 0x0f, payload, nil
}

// rawWebSocket opens a WebSocket through the engine on a raw TLS
// connection, sending request (an upgrade, and whatever follows it) in one
// write, and returns the connection and its reader past the 101.
func rawWebSocket(t *testing.T, e *Engine, request string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := dialRawTLS(t, e)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, request)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	return c, br
}

// wsUpgradeRequest is a client's WebSocket upgrade for path, as bytes.
func wsUpgradeRequest(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + testHostname + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
}

// TestWebSocketBytesBehindTheHandshakesPass: a client may send its first
// frame in the same write as its upgrade request, and a server its first
// frame in the same write as its 101. Either lands in a buffer that read
// the handshake; the engine must pass those bytes on, in order.
func TestWebSocketBytesBehindTheHandshakesPass(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			return // health checks
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		accept := wsAccept(r.Header.Get("Sec-WebSocket-Key"))
		c.Write(append([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: "+accept+"\r\n\r\n"),
			wsFrame(websocket.TextMessage, []byte("welcome"), false)...))
		if op, msg, err := readWSFrame(brw); err == nil && op == websocket.TextMessage {
			c.Write(wsFrame(websocket.TextMessage, msg, false)) // echo
		}
		io.Copy(io.Discard, brw) // until the session ends
	}))
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	_, br := rawWebSocket(t, e, wsUpgradeRequest("/ws/client/")+string(wsFrame(websocket.TextMessage, []byte("first words"), true)))
	for _, want := range []string{"welcome", "first words"} {
		op, msg, err := readWSFrame(br)
		if err != nil || op != websocket.TextMessage || string(msg) != want {
			t.Fatalf("got opcode %d %q, %v; want the text %q", op, msg, err, want)
		}
	}
}

// TestWebSocketNoProxyCloseAfterThePeersClose: once the upstream has sent
// its close frame, the client must get nothing more from the engine when
// the session ends, as a second close frame breaks the protocol.
func TestWebSocketNoProxyCloseAfterThePeersClose(t *testing.T) {
	e, up := startWSEngine(t)
	c, br := rawWebSocket(t, e, wsUpgradeRequest("/ws/client/"))
	c.Write(wsFrame(websocket.TextMessage, []byte("close 4403 session expired"), true))
	op, payload, err := readWSFrame(br)
	if err != nil || op != websocket.CloseMessage || !bytes.Equal(payload, websocket.FormatCloseMessage(4403, "session expired")) {
		t.Fatalf("got opcode %d %q, %v; want the upstream's close 4403", op, payload, err)
	}
	c.Write(wsFrame(websocket.CloseMessage, payload, true)) // the client's answer ends the session
	if got := up.waitClose(t); got.code != 4403 {
		t.Errorf("upstream saw %+v, want the client's answering 4403", got)
	}
	if op, payload, err := readWSFrame(br); err == nil {
		t.Errorf("after the close handshake the client got opcode %d %q, want the connection closed", op, payload)
	}
}
