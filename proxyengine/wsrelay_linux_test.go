package proxyengine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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
)

// relayedSessions reports how many of e's open sessions the relay carries,
// and how many are open.
func relayedSessions(e *Engine) (relayed, open int) {
	for _, s := range e.ws.list() {
		if s.relay != nil {
			relayed++
		}
		open++
	}
	return relayed, open
}

// echoOnce sends msg and checks that the same comes back.
func echoOnce(c *websocket.Conn, kind int, msg []byte) error {
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(kind, msg); err != nil {
		return fmt.Errorf("sending %d bytes: %w", len(msg), err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	gotKind, got, err := c.ReadMessage()
	if err != nil {
		return fmt.Errorf("reading the echo of %d bytes: %w", len(msg), err)
	}
	if gotKind != kind || !bytes.Equal(got, msg) {
		return fmt.Errorf("sent %d bytes of kind %d, got %d of kind %d back", len(msg), kind, len(got), gotKind)
	}
	return nil
}

// TestWebSocketRelayCarriesTheSession: on Linux an open session is carried
// by a relay loop, not pumps, and messages of every size pass whole and are
// counted, those larger than the sockets' buffers (which the relay must
// hold back and resume) included.
func TestWebSocketRelayCarriesTheSession(t *testing.T) {
	e, up := startWSEngine(t)
	c := openWS(t, e)
	testutil.Eventually(t, "the session is open", func() bool { return e.ws.count() == 1 })
	if relayed, open := relayedSessions(e); relayed != 1 || open != 1 {
		t.Fatalf("%d of %d sessions relayed, want the one", relayed, open)
	}
	if n := goroutinesIn("proxyengine.(*wsSession).pump("); n != 0 {
		t.Fatalf("%d pumps run beside the relay", n)
	}
	sizes := []int{1, 125, 126, 4 << 10, 16<<10 + 1, 65535, 65536, 4 << 20, 3}
	for i, size := range sizes {
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		kind := websocket.BinaryMessage
		if i%2 == 1 {
			kind = websocket.TextMessage
		}
		if err := echoOnce(c, kind, msg); err != nil {
			t.Fatal(err)
		}
	}
	info := e.ws.list()[0].info()
	if info.MessagesIn != uint64(len(sizes)) || info.MessagesOut != uint64(len(sizes)) {
		t.Errorf("counted %d messages in and %d out, want %d each", info.MessagesIn, info.MessagesOut, len(sizes))
	}
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"), time.Now().Add(time.Second))
	if got := up.waitClose(t); got.code != websocket.CloseNormalClosure || got.text != "done" {
		t.Errorf("upstream saw %+v, want 1000 done", got)
	}
	testutil.Eventually(t, "the session ends", func() bool { return e.ws.count() == 0 })
}

// TestWebSocketRelayPlainUpstream: an upstream without TLS is relayed too,
// its socket read and written by the loop directly.
func TestWebSocketRelayPlainUpstream(t *testing.T) {
	upgrader := websocket.Upgrader{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil || c.WriteMessage(kind, msg) != nil {
				return
			}
		}
	}))
	defer up.Close()
	cfg := testConfig(t, up)
	e := startEngine(t, cfg)
	c := openWS(t, e)
	for _, size := range []int{10, 1 << 20, 10} {
		if err := echoOnce(c, websocket.BinaryMessage, bytes.Repeat([]byte("p"), size)); err != nil {
			t.Fatal(err)
		}
	}
	if relayed, open := relayedSessions(e); relayed != 1 || open != 1 {
		t.Fatalf("%d of %d sessions relayed, want the one", relayed, open)
	}
}

// TestWebSocketRelaySaysGoodbyeAndHangsUp: an upstream that sends a message
// and closes its connection at once (the data and the end arrive together,
// one edge for both) gets its message through, and the visitor then hears
// the proxy's 1001.
func TestWebSocketRelaySaysGoodbyeAndHangsUp(t *testing.T) {
	upgrader := websocket.Upgrader{}
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
		c.WriteMessage(websocket.TextMessage, []byte("goodbye"))
		c.UnderlyingConn().Close()
	}))
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	for range 20 {
		c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteMessage(websocket.TextMessage, []byte("hello"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := c.ReadMessage()
		if err != nil || string(msg) != "goodbye" {
			t.Fatalf("got %q, %v; want goodbye", msg, err)
		}
		_, _, err = c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("after the goodbye the visitor saw %v, want 1001", err)
		}
		c.Close()
	}
	testutil.Eventually(t, "every session ends", func() bool { return e.ws.count() == 0 })
}

// TestWebSocketRelayCrowd runs many sessions at once, spread over the
// loops, each echoing its own messages, under the race detector in CI.
func TestWebSocketRelayCrowd(t *testing.T) {
	e, _ := startWSEngine(t)
	d := wsDialer(t, e)
	const sessions, messages = 24, 40
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	conns := make(chan *websocket.Conn, sessions)
	for i := range sessions {
		wg.Go(func() {
			c, _, err := d.Dial(wsURL("/ws/client/"), nil)
			if err != nil {
				errs <- err
				return
			}
			conns <- c
			for j := range messages {
				msg := []byte(fmt.Sprintf("session %d message %d %s", i, j, strings.Repeat("x", j*97)))
				if err := echoOnce(c, websocket.TextMessage, msg); err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	close(conns)
	for err := range errs {
		t.Error(err)
	}
	if relayed, open := relayedSessions(e); relayed != sessions || open != sessions {
		t.Errorf("%d of %d sessions relayed, want all %d", relayed, open, sessions)
	}
	for c := range conns {
		c.Close()
	}
	testutil.Eventually(t, "every session ends", func() bool { return e.ws.count() == 0 })
}

// TestWebSocketRelayHoldsForASlowVisitor: a visitor that sends 8 MiB and
// reads the echo only later makes the relay hold what its socket
// will not take, stop reading from the upstream meanwhile, and pass it all
// on once the visitor reads again.
func TestWebSocketRelayHoldsForASlowVisitor(t *testing.T) {
	e, _ := startWSEngine(t)
	d := wsDialer(t, e)
	dial := d.NetDialContext
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}
	c, _, err := d.Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("slow"), 2<<20) // 8 MiB, far more than the buffers hold
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		t.Fatal(err)
	}
	// The echo is under way while the visitor does not read: the
	// proxy's send buffer (4 MiB at most) and the visitor's 64 KiB fill, and
	// the relay holds the rest of what it read and stops reading more.
	testutil.Eventually(t, "the echo is under way", func() bool {
		s := e.ws.list()
		return len(s) == 1 && s[0].bytesDown.Load() > 0
	})
	time.Sleep(200 * time.Millisecond)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, got, err := c.ReadMessage()
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes (%v), want the %d sent", len(got), err, len(msg))
	}
	if err := echoOnce(c, websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
}

// TestWebSocketRelayBurst: a burst of messages, each its own TLS record
// and gathered by the relay into fewer writes, reaches the upstream whole
// and in order, and the echoes come back in order. (That they are
// gathered is not visible from here; the benchmark's CPU figures show it.)
func TestWebSocketRelayBurst(t *testing.T) {
	e, _ := startWSEngine(t)
	c := openWS(t, e)
	const n = 300
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("burst %d %s", i, strings.Repeat("b", i*53)))); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		_, got, err := c.ReadMessage()
		if want := fmt.Sprintf("burst %d %s", i, strings.Repeat("b", i*53)); err != nil || string(got) != want {
			t.Fatalf("echo %d: %.40q (%v), want %.40q", i, got, err, want)
		}
	}
	if info := e.ws.list()[0].info(); info.MessagesIn != n || info.MessagesOut != n {
		t.Errorf("counted %d in and %d out, want %d each", info.MessagesIn, info.MessagesOut, n)
	}
}

// FuzzWebSocketRelay sends arbitrary bytes in arbitrary pieces from a
// visitor through a relayed session to an upstream that sends them straight
// back, and checks both ends get them byte for byte: the relay forwards
// what it is given, whatever the frames say (the scanner only watches) and
// however the pieces and TLS records cut them.
func FuzzWebSocketRelay(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}, uint16(3))
	f.Add(bytes.Repeat([]byte{0x82, 0xfe, 0x40, 0x00}, 100), uint16(7))
	f.Add([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8, 0x81, 0x80, 0, 0, 0, 0}, uint16(0))
	f.Add(make([]byte, 100000), uint16(16384))

	// The upstream completes the handshake, then echoes as many bytes as
	// the path says, raw.
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/echo/"))
		if err != nil || !websocket.IsWebSocketUpgrade(r) {
			io.WriteString(w, "a plain page")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+wsAccept(r.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		io.CopyN(c, brw.Reader, int64(n))
	}))
	f.Cleanup(up.Close)
	e := startEngine(f, testConfig(f, up))
	tlsConfig := clientTLS(f, e)

	f.Fuzz(func(t *testing.T, data []byte, piece uint16) {
		if len(data) == 0 || len(data) > 128<<10 {
			return
		}
		// At most 4,096 pieces, each its own TLS record, so that an input
		// takes milliseconds and the fuzzer tries many.
		size := max(int(piece), 1, len(data)/4096)
		rawRelayEcho(t, e, tlsConfig, data, size)
	})
}

// rawRelayEcho sends data through e in pieces of size to an upstream that
// echoes it raw (FuzzWebSocketRelay's), and checks it comes back whole.
func rawRelayEcho(t *testing.T, e *Engine, tlsConfig *tls.Config, data []byte, size int) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", e.HTTPSAddr().String(), tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /echo/%d HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", len(data), testHostname)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echoed := make(chan error, 1)
	got := make([]byte, len(data))
	go func() {
		_, err := io.ReadFull(br, got)
		echoed <- err
	}()
	for rest := data; len(rest) > 0; {
		n := min(size, len(rest))
		if _, err := c.Write(rest[:n]); err != nil {
			t.Fatalf("sending: %v", err)
		}
		rest = rest[n:]
	}
	if err := <-echoed; err != nil {
		t.Fatalf("reading the echo of %d bytes sent in pieces of %d: %v", len(data), size, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%d bytes sent in pieces of %d came back changed", len(data), size)
	}
}
