package proxyengine

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gorilla/websocket"
)

// TestUpstreamTLSSessionsAreResumed has the upstream close every
// connection, so each request and the WebSocket need a new one, and checks
// that all handshakes after the first resume the session: with the
// upstream's certificate skipped, and under each kind of trust.
func TestUpstreamTLSSessionsAreResumed(t *testing.T) {
	for _, trust := range []string{"insecure", "pinned", "ca-file"} {
		t.Run(trust, func(t *testing.T) {
			var mu sync.Mutex
			var resumed []bool
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !websocket.IsWebSocketUpgrade(r) {
					w.Header().Set("Connection", "close")
					io.WriteString(w, "ok")
					return
				}
				testutil.EchoWebSocket(w, r)
			}))
			up.TLS = &tls.Config{VerifyConnection: func(cs tls.ConnectionState) error {
				mu.Lock()
				resumed = append(resumed, cs.DidResume)
				mu.Unlock()
				return nil
			}}
			up.StartTLS()
			defer up.Close()

			cfg := testConfig(t, up)
			switch trust {
			case "pinned":
				sum := sha256.Sum256(up.Certificate().Raw)
				cfg.UpstreamInsecure, cfg.UpstreamFingerprint = false, upstream.FormatFingerprint(sum[:])
			case "ca-file":
				cfg.UpstreamInsecure, cfg.UpstreamCA = false, filepath.Join(t.TempDir(), "upstream-ca.pem")
				pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})
				if err := os.WriteFile(cfg.UpstreamCA, pemData, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e := startEngine(t, cfg)
			c := httpClient(t, e, false)
			for i := range 3 {
				resp, err := c.Get(engineURL("/"))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: %s", i, resp.Status)
				}
			}
			ws, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			ws.WriteMessage(websocket.TextMessage, []byte("hi"))
			if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "hi" {
				t.Fatalf("echo over a resumed upstream session: %q, %v", msg, err)
			}

			mu.Lock()
			defer mu.Unlock()
			// The health check may add handshakes of its own; all resume.
			if len(resumed) < 4 || resumed[0] {
				t.Fatalf("upstream handshakes (resumed or not) = %v, want a full one, then resumed ones", resumed)
			}
			for i, r := range resumed[1:] {
				if !r {
					t.Errorf("upstream handshake %d was a full one: %v", i+2, resumed)
				}
			}
		})
	}
}
