//go:build unix

package proxyengine

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gorilla/websocket"
)

// parkedPumps counts the pumps waiting on their socket in waitReadable.
func parkedPumps() int { return goroutinesIn("proxyengine.waitReadable(") }

// startParkingEngine starts an engine whose WebSocket directions park
// after a millisecond of quiet, so every wait between messages parks.
func startParkingEngine(t *testing.T) (*Engine, *wsUpstream) {
	up := newWSUpstream(t)
	e, err := New(testConfig(t, up.Server), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	e.ws.parkAfter = time.Millisecond
	e.ws.pumpsOnly = true
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e, up
}

// TestWebSocketParkedPumpsCarryOn parks both directions between messages
// of every size, small ones and bursts larger than the copy buffer, and
// checks that each arrives whole and is counted, and that shutdown still
// sends 1001 both ways to a parked session.
func TestWebSocketParkedPumpsCarryOn(t *testing.T) {
	e, up := startParkingEngine(t)
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sizes := []int{1, 100, wsSmallBuffer, wsSmallBuffer + 1, 16 << 10, 100 << 10, 5}
	var sent int64
	for i, size := range sizes {
		testutil.Eventually(t, "both directions park", func() bool { return parkedPumps() == 2 })
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", i, size, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("message %d (%d bytes) came back as %d different bytes", i, size, len(got))
		}
		sent += int64(size)
	}
	sessions := e.ws.list()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(sessions))
	}
	info := sessions[0].info()
	if info.MessagesIn != uint64(len(sizes)) || info.MessagesOut != uint64(len(sizes)) {
		t.Errorf("messages in/out %d/%d, want %d each", info.MessagesIn, info.MessagesOut, len(sizes))
	}
	// Frame headers (and the client's masks) come on top of the payloads.
	if info.BytesIn <= sent || info.BytesOut <= sent {
		t.Errorf("bytes in/out %d/%d, want more than the %d payload bytes each way", info.BytesIn, info.BytesOut, sent)
	}

	testutil.Eventually(t, "both directions park", func() bool { return parkedPumps() == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Shutdown(ctx) }()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("parked client saw %v, want 1001 on shutdown", err)
	}
	if got := up.waitClose(t); got.code != websocket.CloseGoingAway {
		t.Errorf("parked upstream saw %+v, want 1001 on shutdown", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestWebSocketParkedClientVanishing checks that a client dropping its
// connection wakes the parked pump, which ends the session with 1001 to the
// upstream.
func TestWebSocketParkedClientVanishing(t *testing.T) {
	e, up := startParkingEngine(t)
	defer e.Shutdown(context.Background())
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "both directions park", func() bool { return parkedPumps() == 2 })
	c.UnderlyingConn().Close()
	if got := up.waitClose(t); got.code != websocket.CloseGoingAway {
		t.Errorf("upstream saw %+v, want 1001 going away from the proxy", got)
	}
	testutil.Eventually(t, "the session is gone", func() bool { return e.ws.count() == 0 && parkedPumps() == 0 })
}
