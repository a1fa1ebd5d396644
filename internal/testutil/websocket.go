package testutil

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/websocket"
)

var echoUpgrader = websocket.Upgrader{}

// EchoWebSocket upgrades the request and sends every message back, with
// its kind, until the other side goes: the stand-in for an app's live
// connection that most WebSocket tests need.
func EchoWebSocket(w http.ResponseWriter, r *http.Request) { echoWebSocket(w, r, "") }

// NamedUpstream is an app that answers every request with its name and
// echoes WebSocket messages behind "name:", so a test sees which upstream
// served what; with useTLS it speaks HTTPS (its own certificate). It
// closes when the test ends.
func NamedUpstream(t testing.TB, name string, useTLS bool) *httptest.Server {
	t.Helper()
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			echoWebSocket(w, r, name+":")
			return
		}
		io.WriteString(w, name)
	}))
	if useTLS {
		up.StartTLS()
	} else {
		up.Start()
	}
	t.Cleanup(up.Close)
	return up
}

// echoWebSocket sends every message back behind prefix.
func echoWebSocket(w http.ResponseWriter, r *http.Request, prefix string) {
	c, err := echoUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer c.Close()
	for {
		kind, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(kind, append([]byte(prefix), msg...)); err != nil {
			return
		}
	}
}
