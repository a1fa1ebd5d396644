package proxyengine

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
)

func TestTLSVersionsAndALPN(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)))
	dial := func(tc *tls.Config) (*tls.Conn, error) {
		return tls.Dial("tcp", e.HTTPSAddr().String(), tc)
	}
	for _, proto := range []string{"h2", "http/1.1"} {
		c, err := dial(clientTLS(t, e, proto))
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != proto {
			t.Errorf("ALPN negotiated %q, want %q", got, proto)
		}
		c.Close()
	}
	old := clientTLS(t, e)
	old.MaxVersion = tls.VersionTLS11
	old.MinVersion = tls.VersionTLS10
	if c, err := dial(old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded; want TLS 1.2 at least")
	}
}

func TestHTTP10ClientIsServed(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)))
	c, err := tls.Dial("tcp", e.HTTPSAddr().String(), clientTLS(t, e))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /x HTTP/1.0\r\nHost: " + testHostname + "\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen seenRequest
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil || seen.Proto != "HTTP/1.1" {
		t.Errorf("an HTTP/1.0 client's request reached the upstream as %q (%v); want HTTP/1.1", seen.Proto, err)
	}
}

func TestStartReportsBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, newEchoUpstream(t))
	cfg.HTTPSAddr = ln.Addr().String()
	var events []progress.Event
	opts := testOptions(t)
	opts.Progress = func(ev progress.Event) { events = append(events, ev) }
	e, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Start(t.Context())
	var le *ports.ListenError
	// On Linux the message names the holder (this test process itself);
	// elsewhere it says "another program".
	if !errors.As(err, &le) || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "is already in use by this program itself") && !strings.Contains(err.Error(), "another program is already using port") {
		t.Fatalf("Start on a busy port: %v", err)
	}
	if len(events) == 0 || events[0].Stage != progress.Listen {
		t.Errorf("progress events %v, want the listen stage first", events)
	}
	// The failed start released what it had bound.
	if e.HTTPAddr() != nil {
		if c, err := net.Dial("tcp", e.HTTPAddr().String()); err == nil {
			c.Close()
			t.Error("the HTTP listener is still open after a failed start")
		}
	}
}

func TestListenErrorAdvice(t *testing.T) {
	err := &ports.ListenError{Purpose: "HTTPS", Addr: ":443", Err: syscall.EACCES}
	for _, want := range []string{"setcap cap_net_bind_service=+ep", "ip_unprivileged_port_start=443", "listen on 8443 and forward port 443"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("privileged-port advice %q lacks %q", err, want)
		}
	}
}

func TestStartProgressAndReady(t *testing.T) {
	cfg := testConfig(t, newEchoUpstream(t))
	var stages []progress.Stage
	opts := testOptions(t)
	opts.Progress = func(ev progress.Event) { stages = append(stages, ev.Stage) }
	e, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	if strings.Join(stageStrings(stages), ",") != "listen,certificate,upstream,upstream,ready" {
		t.Errorf("stages %v", stages)
	}
}

func stageStrings(s []progress.Stage) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

// TestShutdownFinishesRequestsInFlight starts a slow request, shuts down
// while it runs, and checks that it completes and that new connections are
// refused.
func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	entered := make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "done")
	}))
	defer up.Close()
	e := startOwnEngine(t, testConfig(t, up))
	c := httpClient(t, e, false)
	result := make(chan string, 1)
	go func() {
		resp, err := c.Get(engineURL("/slow"))
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-entered
	addr := e.HTTPSAddr().String()
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := <-result; got != "done" {
		t.Errorf("in-flight request ended with %q, want it to finish", got)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Error("the listener still accepts after Shutdown")
	}
	if st := e.Status().State; st != StateStopped {
		t.Errorf("state %q after Shutdown", st)
	}
}

// TestShutdownDoesNotWaitForUnusedConnections opens a TLS connection that
// never sends a request, as a browser's preconnect does, and checks that
// Shutdown does not wait for net/http's 5 s grace for such connections.
func TestShutdownDoesNotWaitForUnusedConnections(t *testing.T) {
	e := startOwnEngine(t, testConfig(t, newEchoUpstream(t)))
	c, err := tls.Dial("tcp", e.HTTPSAddr().String(), clientTLS(t, e))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v with an unused connection open", d)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the unused connection is still open")
	}
}
