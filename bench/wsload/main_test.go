package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var samples []time.Duration
	for i := 1; i <= 200; i++ {
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, 100 * time.Millisecond}, {99, 198 * time.Millisecond}, {100, 200 * time.Millisecond}} {
		if got := percentile(samples, tc.p); got != tc.want {
			t.Errorf("p%d of 1..200 ms = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(samples[:1], 99); got != time.Millisecond {
		t.Errorf("p99 of one sample = %v, want it", got)
	}
}

// wsServer answers WebSockets with reply(msg) for every message.
func wsServer(t *testing.T, reply func([]byte) []byte) string {
	up := websocket.Upgrader{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws/client/" {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(kind, reply(msg)) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "wss" + strings.TrimPrefix(srv.URL, "https")
}

func TestOpenAllChecksEachConnectionWithAnEcho(t *testing.T) {
	url := wsServer(t, func(b []byte) []byte { return b })
	conns, err := openAll(t.Context(), url+"/ws/client/", 40)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(conns)
	if len(conns) != 40 {
		t.Fatalf("%d connections, want 40", len(conns))
	}

	garbled := wsServer(t, func(b []byte) []byte { return append(b, '!') })
	if _, err := openAll(t.Context(), garbled+"/ws/client/", 3); err == nil || !strings.Contains(err.Error(), "came back as") {
		t.Errorf("a garbled echo gave %v, want an echo mismatch", err)
	}
	if _, err := openAll(t.Context(), url+"/elsewhere/", 2); err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("a refused upgrade gave %v, want the HTTP status", err)
	}
}
