package proxyengine

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// tapConn records the bytes a real gorilla/websocket client sends and
// receives.
type tapConn struct {
	net.Conn
	mu        sync.Mutex
	sent, got bytes.Buffer
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.sent.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// sendSample writes the sample conversation: three messages of each
// length encoding, a ping and a close.
func sendSample(c *websocket.Conn) {
	c.WriteMessage(websocket.TextMessage, []byte("hello"))
	c.WriteMessage(websocket.BinaryMessage, bytes.Repeat([]byte{7}, 70000)) // 64-bit length
	c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), 300))   // 16-bit length
	c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second))
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye now"), time.Now().Add(time.Second))
}

// TestFrameScannerFollowsRealFrames records a real conversation both ways
// (masked client frames, unmasked server frames) and feeds each stream to
// the scanner in awkward pieces, so headers straddle reads.
func TestFrameScannerFollowsRealFrames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		sendSample(c)
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	tap := &tapConn{}
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		tap.Conn = c
		return tap, err
	}}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sendSample(c)
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()

	tap.mu.Lock()
	defer tap.mu.Unlock()
	for name, stream := range map[string][]byte{"client frames": tap.sent.Bytes(), "server frames": tap.got.Bytes()} {
		stream = stream[bytes.Index(stream, []byte("\r\n\r\n"))+4:] // past the handshake
		var s wsFrameScanner
		for i := 0; i < len(stream); {
			n := min(1+i/100, len(stream)-i)
			s.scan(stream[i : i+n])
			if i == 0 && n < 2 && s.atBoundary() {
				t.Errorf("%s: boundary reported inside a header", name)
			}
			i += n
		}
		if s.messages.Load() != 3 || !s.closeSeen || s.closeCode != 4001 || s.closeText != "bye now" || !s.atBoundary() {
			t.Errorf("%s: messages %d, close %v %d %q, boundary %v; want 3 messages and close 4001 bye now",
				name, s.messages.Load(), s.closeSeen, s.closeCode, s.closeText, s.atBoundary())
		}
	}
}
