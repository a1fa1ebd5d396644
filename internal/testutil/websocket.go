package testutil

import (
	"net/http"

	"github.com/gorilla/websocket"
)

var echoUpgrader = websocket.Upgrader{}

// EchoWebSocket upgrades the request and sends every message back, with
// its kind, until the other side goes: the stand-in for an app's live
// connection that most WebSocket tests need.
func EchoWebSocket(w http.ResponseWriter, r *http.Request) {
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
		if err := c.WriteMessage(kind, msg); err != nil {
			return
		}
	}
}
