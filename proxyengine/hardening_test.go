package proxyengine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// cutOffBound is how long a test waits for the engine to cut off a hostile
// client whose limit is far shorter; it only keeps a broken limit from
// hanging the test.
const cutOffBound = 15 * time.Second

// shortLimits makes the engine's client limits short enough for tests.
func shortLimits(e *Engine) {
	e.limits.readHeaderTimeout = time.Second
	e.limits.sendTimeout = 300 * time.Millisecond
}

// upstreamHit is one request as the upstream received it.
type upstreamHit struct {
	method, uri, host string
	header            http.Header
	transferEncoding  []string
	contentLength     int64
	body              string
}

// recordingUpstream is a TLS upstream that records every visitor request
// (health checks aside) and answers "ok".
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	hits []upstreamHit
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == config.DefaultHealthPath {
			return
		}
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.hits = append(u.hits, upstreamHit{r.Method, r.RequestURI, r.Host, r.Header, r.TransferEncoding, r.ContentLength, string(body)})
		u.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

// take returns the hits so far and forgets them.
func (u *recordingUpstream) take() []upstreamHit {
	u.mu.Lock()
	defer u.mu.Unlock()
	hits := u.hits
	u.hits = nil
	return hits
}

// dialRawTLS opens an HTTP/1.1 TLS connection to the engine for requests
// written byte by byte.
func dialRawTLS(t *testing.T, e *Engine) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tlsDial(d, e.HTTPSAddr().String(), clientTLS(t, e, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tlsDial connects to addr and completes the TLS handshake.
func tlsDial(d *net.Dialer, addr string, cfg *tls.Config) (net.Conn, error) {
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// rawExchange sends request exactly as written on a new connection and
// reads the engine's answer.
func rawExchange(t *testing.T, e *Engine, request string) *http.Response {
	t.Helper()
	c := dialRawTLS(t, e)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The engine may answer before reading everything (431), so write from
	// another goroutine.
	go io.WriteString(c, request)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to %.60q: %v", request, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestHardeningHostileRequests sends malformed and dangerous requests on raw
// TLS connections and checks each answer and what reached the upstream.
func TestHardeningHostileRequests(t *testing.T) {
	up := newRecordingUpstream(t)
	e := startEngine(t, testConfig(t, up.Server))
	const host = "Host: " + testHostname + "\r\n"
	for _, tc := range []struct {
		name, request string
		status        int
		check         func(t *testing.T, hits []upstreamHit) // nil: the upstream must see nothing
		close         bool                                   // the engine must close the connection after answering
	}{
		{"oversized headers", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 100<<10) + "\r\n\r\n", 431, nil, false},
		{"NUL in a header value", "GET / HTTP/1.1\r\n" + host + "X-Bad: a\x00b\r\n\r\n", 400, nil, false},
		{"control byte in a header value", "GET / HTTP/1.1\r\n" + host + "X-Bad: a\x1bb\r\n\r\n", 400, nil, false},
		{"space in a header name", "GET / HTTP/1.1\r\n" + host + "X Bad: x\r\n\r\n", 400, nil, false},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, nil, false},
		{"two Hosts", "GET / HTTP/1.1\r\n" + host + "Host: other.example\r\n\r\n", 400, nil, false},
		{"differing Content-Lengths", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, nil, false},
		{"Transfer-Encoding other than chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, nil, false},
		{"absolute form for another host", "GET https://other.example/admin/ HTTP/1.1\r\n" + host + "\r\n", 421, nil, false},
		{"CONNECT to this host", "CONNECT " + testHostname + ":443 HTTP/1.1\r\nHost: " + testHostname + ":443\r\n\r\n", 405, nil, false},
		{"CONNECT elsewhere", "CONNECT internal.lan:22 HTTP/1.1\r\nHost: internal.lan:22\r\n\r\n", 405, nil, false},
		{"h2c upgrade", "GET / HTTP/1.1\r\n" + host + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 400, nil, false},
		{"other upgrade", "GET / HTTP/1.1\r\n" + host + "Connection: upgrade\r\nUpgrade: irc/6.9\r\n\r\n", 400, nil, false},
		{"Upgrade without Connection", "GET / HTTP/1.1\r\n" + host + "Upgrade: h2c\r\n\r\n", 400, nil, false},
		{
			// RFC 9112, section 6.3: Transfer-Encoding overrides
			// Content-Length. Go's server drops the Content-Length and reads
			// the chunked body; the upstream must then see that one framing
			// only, never both, and the connection must close after the
			// answer (section 6.1).
			"Content-Length and chunked", "POST /flow HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200,
			func(t *testing.T, hits []upstreamHit) {
				if len(hits) != 1 {
					t.Fatalf("%d upstream hits, want 1", len(hits))
				}
				h := hits[0]
				if h.body != "abc" || h.header.Get("Content-Length") != "" || h.contentLength != -1 ||
					strings.Join(h.transferEncoding, ",") != "chunked" {
					t.Errorf("upstream saw body %q, Content-Length %q (%d), Transfer-Encoding %q; want the chunked body alone",
						h.body, h.header.Get("Content-Length"), h.contentLength, h.transferEncoding)
				}
			},
			true,
		},
		{
			// The absolute form's authority is the request's host (RFC 9112,
			// section 3.2.2); the Host header is ignored, and the upstream
			// gets an ordinary origin-form request for this host.
			"absolute form for this host", "GET https://" + testHostname + "/if/flow/ HTTP/1.1\r\nHost: other.example\r\n\r\n", 200,
			func(t *testing.T, hits []upstreamHit) {
				if len(hits) != 1 || hits[0].host != testHostname || hits[0].uri != "/if/flow/" {
					t.Errorf("upstream saw %+v, want one origin-form request for %s", hits, testHostname)
				}
			},
			false,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawExchange(t, e, tc.request)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.close && !resp.Close {
				t.Error("the connection stays open for another request")
			}
			hits := up.take()
			if tc.check != nil {
				tc.check(t, hits)
			} else if len(hits) != 0 {
				t.Errorf("reached the upstream as %+v", hits)
			}
		})
	}
}

// TestHardeningHostileRequestsHTTP2 checks the same refusals hold for
// HTTP/2, where the host is the :authority pseudo-header.
func TestHardeningHostileRequestsHTTP2(t *testing.T) {
	up := newRecordingUpstream(t)
	e := startEngine(t, testConfig(t, up.Server))
	c := httpClient(t, e, true)
	connect, _ := http.NewRequest(http.MethodConnect, engineURL("/"), nil)
	connect.URL.Path = ""
	other, _ := http.NewRequest(http.MethodGet, engineURL("/admin/"), nil)
	other.Host = "other.example"
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
	}{{"CONNECT", connect, 405}, {"another :authority", other, 421}} {
		resp, err := c.Do(tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != tc.status {
			t.Errorf("%s: %s %d, want HTTP/2 %d", tc.name, resp.Proto, resp.StatusCode, tc.status)
		}
	}
	if hits := up.take(); len(hits) != 0 {
		t.Errorf("reached the upstream as %+v", hits)
	}
}

// TestHardeningSlowloris opens connections that stall in the TLS handshake
// or trickle their headers byte by byte, on the TLS and the plain port, and
// checks a normal visitor is served meanwhile and the engine closes every
// slow connection.
func TestHardeningSlowloris(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)), shortLimits)
	tlsConfig := clientTLS(t, e, "http/1.1")
	d := &net.Dialer{Timeout: 5 * time.Second}
	modes := []struct {
		name    string
		dial    func() (net.Conn, error)
		trickle bool
	}{
		{"stalled TLS handshake", func() (net.Conn, error) { return d.Dial("tcp", e.HTTPSAddr().String()) }, false},
		{"headers trickled over TLS", func() (net.Conn, error) { return tlsDial(d, e.HTTPSAddr().String(), tlsConfig) }, true},
		{"headers trickled over plain HTTP", func() (net.Conn, error) { return d.Dial("tcp", e.HTTPAddr().String()) }, true},
	}
	const attackers = 21
	type outcome struct {
		err     error
		elapsed time.Duration
	}
	ended := make(chan outcome, attackers)
	var established sync.WaitGroup
	for i := range attackers {
		mode := modes[i%len(modes)]
		c, err := mode.dial()
		if err != nil {
			t.Fatalf("%s: %v", mode.name, err)
		}
		defer c.Close()
		established.Add(1)
		go func() {
			start := time.Now()
			err := slowloris(c, mode.trickle, established.Done)
			if err != nil {
				err = fmt.Errorf("%s: %w", mode.name, err)
			}
			ended <- outcome{err, time.Since(start)}
		}()
	}
	established.Wait()

	// Every attacker holds a connection; visitors must not notice.
	c := httpClient(t, e, false)
	for i := range 5 {
		resp, err := c.Get(engineURL("/during-attack"))
		if err != nil {
			t.Fatalf("visitor request %d during the attack: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("visitor request %d during the attack: status %d", i, resp.StatusCode)
		}
	}
	var slowest time.Duration
	for range attackers {
		o := <-ended
		if o.err != nil {
			t.Error(o.err)
		}
		slowest = max(slowest, o.elapsed)
	}
	t.Logf("%d slow connections closed by the engine, the last after %v (read-header timeout %v)",
		attackers, slowest.Round(time.Millisecond), e.limits.readHeaderTimeout)
	// The engine's own limit, not net/http's or the default 10 s, must have
	// cut them off; the margin is for a loaded machine.
	if bound := 5 * e.limits.readHeaderTimeout; slowest > bound {
		t.Errorf("the last slow connection was closed after %v, more than %v with a read-header timeout of %v",
			slowest.Round(time.Millisecond), bound, e.limits.readHeaderTimeout)
	}
}

// slowloris holds c, trickling a request's headers a byte every 20 ms if
// trickle is set and sending nothing otherwise. It calls started once the
// trickle has begun, and returns nil when the engine closes the
// connection (after a 4xx at most), an error if cutOffBound passes first.
func slowloris(c net.Conn, trickle bool, started func()) error {
	stop := make(chan struct{})
	defer close(stop)
	if trickle {
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: " + testHostname + "\r\n")); err != nil {
			started()
			return err
		}
		go func() {
			for _, b := range []byte(strings.Repeat("X-Slow: 1\r\n", 1000)) {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
	}
	started()
	c.SetReadDeadline(time.Now().Add(cutOffBound))
	// Go's server may answer 400 as it hangs up on a half-read request.
	answer, err := io.ReadAll(c)
	switch {
	case upstream.IsTimeout(err):
		return errors.New("a slow connection was still open after " + cutOffBound.String())
	case len(answer) > 0 && !bytes.HasPrefix(answer, []byte("HTTP/1.1 4")):
		return fmt.Errorf("the engine answered a request it never fully received with %.40q", answer)
	}
	return nil
}

// TestHardeningIdleKeepaliveClosed checks a keepalive connection that
// sends nothing after its request is closed after the idle timeout.
func TestHardeningIdleKeepaliveClosed(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)), func(e *Engine) { e.limits.idleTimeout = time.Second })
	c := dialRawTLS(t, e)
	c.SetDeadline(time.Now().Add(cutOffBound))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+testHostname+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("status %d, close %v; want 200 on a keepalive connection", resp.StatusCode, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want closed by the engine", err)
	}
}

// bigUpstream serves /big: a body of bigSize bytes with a Content-Length,
// reporting on done how many bytes it wrote before it stopped.
const bigSize = 1 << 30

func newBigUpstream(t *testing.T) (*httptest.Server, <-chan int64) {
	done := make(chan int64, 4)
	chunk := bytes.Repeat([]byte("gatehouse"), 1<<13)
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(bigSize))
		var n int64
		for n < bigSize {
			m, err := w.Write(chunk[:min(len(chunk), bigSize-int(n))])
			n += int64(m)
			if err != nil {
				break
			}
		}
		done <- n
	}))
	t.Cleanup(up.Close)
	return up, done
}

// waitUpstreamGaveUp waits until the upstream's /big handler has stopped,
// which happens when the engine abandons the response.
func waitUpstreamGaveUp(t *testing.T, done <-chan int64) int64 {
	t.Helper()
	select {
	case n := <-done:
		if n >= bigSize {
			t.Fatal("the upstream wrote the whole body to a client that reads nothing")
		}
		return n
	case <-time.After(cutOffBound):
		t.Fatal("the engine kept writing to a client that stopped reading")
		return 0
	}
}

// TestHardeningSlowReaderHTTP1 requests a large body and reads none of it:
// the engine must give up after its send timeout, close the connection and
// the upstream request, while serving others.
func TestHardeningSlowReaderHTTP1(t *testing.T) {
	up, done := newBigUpstream(t)
	e := startEngine(t, testConfig(t, up), shortLimits)
	c := dialRawTLS(t, e)
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: "+testHostname+"\r\n\r\n")

	resp, err := httpClient(t, e, false).Get(engineURL("/"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("visitor during the stalled download: %v %v", resp, err)
	}
	resp.Body.Close()

	sent := waitUpstreamGaveUp(t, done)
	attacker := c.LocalAddr().String()
	testutil.Eventually(t, "the engine closes the stalled connection", func() bool {
		for _, tc := range e.tracker.connections() {
			if tc.remote == attacker {
				return false
			}
		}
		return true
	})
	c.SetReadDeadline(time.Now().Add(cutOffBound))
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	if err == nil || upstream.IsTimeout(err) || got >= bigSize {
		t.Errorf("the stalled client read %d of %d bytes, ending with %v; want the connection closed short of Content-Length", got, bigSize, err)
	}
	t.Logf("upstream wrote %d MiB before the engine gave up; the client found %d MiB buffered, then %v", sent>>20, got>>20, err)
}

// TestHardeningSlowReaderPlainHTTP pipelines redirect requests on the plain
// port and reads none of the answers: once they fill the socket buffers the
// engine must give up after its send timeout and hang up, while serving
// others.
func TestHardeningSlowReaderPlainHTTP(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)), shortLimits)
	c, err := net.Dial("tcp", e.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Long paths make long Location headers, so the buffers fill sooner.
	request := "GET /" + strings.Repeat("p", 2000) + " HTTP/1.1\r\nHost: " + testHostname + "\r\n\r\n"
	batch := []byte(strings.Repeat(request, 32))
	c.SetWriteDeadline(time.Now().Add(cutOffBound))
	type outcome struct {
		sent int
		err  error
	}
	flood := make(chan outcome, 1)
	go func() {
		var o outcome
		for o.err == nil {
			var n int
			n, o.err = c.Write(batch)
			o.sent += n
		}
		flood <- o
	}()

	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		Get("http://" + e.HTTPAddr().String() + "/meanwhile")
	if err != nil || resp.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("a visitor during the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	o := <-flood
	if upstream.IsTimeout(o.err) {
		t.Fatalf("the engine still reads requests from a client that reads no answers after %v", cutOffBound)
	}
	t.Logf("the engine hung up after %d MiB of pipelined requests: %v", o.sent>>20, o.err)
}

// TestHardeningSlowReaderHTTP2 stalls one HTTP/2 stream: the engine resets
// that stream after its send timeout, and the connection goes on serving.
func TestHardeningSlowReaderHTTP2(t *testing.T) {
	up, done := newBigUpstream(t)
	e := startEngine(t, testConfig(t, up), shortLimits)
	c := httpClient(t, e, true)
	stalled, err := c.Get(engineURL("/big"))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Body.Close()
	if stalled.ProtoMajor != 2 {
		t.Fatalf("got %s, want HTTP/2", stalled.Proto)
	}
	waitUpstreamGaveUp(t, done)

	resp, err := c.Get(engineURL("/"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the connection no longer serves after one stream stalled: %v %v", resp, err)
	}
	resp.Body.Close()
	got, err := io.Copy(io.Discard, stalled.Body)
	if err == nil || got >= bigSize {
		t.Errorf("the stalled stream gave %d of %d bytes and ended with %v; want a reset", got, bigSize, err)
	}
}

// TestHardeningSlowReaderWebSocket floods a WebSocket client that reads
// nothing: the engine ends the session after its send timeout, while
// another session keeps echoing. The write to the client failed first, so
// the client is the side that went away: the engine's 1001 goes to the
// upstream, which is still there to read it.
func TestHardeningSlowReaderWebSocket(t *testing.T) {
	echo := newWSUpstream(t)
	flooded := make(chan error, 1)
	told := make(chan error, 1) // what the flooding upstream read: the engine's close
	upgrader := websocket.Upgrader{}
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws/flood/" {
			echo.Config.Handler.ServeHTTP(w, r)
			return
		}
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		go func() {
			_, _, err := c.ReadMessage()
			told <- err
		}()
		msg := make([]byte, 1<<20)
		for {
			if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				flooded <- err
				return
			}
		}
	}))
	defer up.Close()
	e := startEngine(t, testConfig(t, up), shortLimits)
	d := wsDialer(t, e)
	attacker, _, err := d.Dial(wsURL("/ws/flood/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	visitor, _, err := d.Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer visitor.Close()

	select {
	case <-flooded:
	case <-time.After(cutOffBound):
		t.Fatal("the engine kept the flooded session open")
	}
	select {
	case err := <-told:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("the upstream read %v, want a 1001 close frame from the engine", err)
		}
	case <-time.After(cutOffBound):
		t.Fatal("the upstream's read never ended")
	}
	testutil.Eventually(t, "the flooded session ends", func() bool { return e.ws.count() == 1 })
	visitor.WriteMessage(websocket.TextMessage, []byte("still here"))
	if _, msg, err := visitor.ReadMessage(); err != nil || string(msg) != "still here" {
		t.Errorf("the other session: %q %v", msg, err)
	}
	// The attacker finds what its buffers held, then a closed connection.
	attacker.SetReadDeadline(time.Now().Add(cutOffBound))
	for {
		if _, _, err = attacker.ReadMessage(); err != nil {
			break
		}
	}
	if upstream.IsTimeout(err) {
		t.Errorf("the flooded client's connection is still open: %v", err)
	}
}

// TestHardeningUpstreamDiesMidResponse kills the upstream's connection in
// the middle of a body: every client must see an error, never a shorter
// body passed off as complete.
func TestHardeningUpstreamDiesMidResponse(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sized" {
			w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		}
		w.Write(bytes.Repeat([]byte("x"), 100<<10))
		http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	for _, h2 := range []bool{false, true} {
		for _, path := range []string{"/sized", "/chunked"} {
			resp, err := httpClient(t, e, h2).Get(engineURL(path))
			if err != nil {
				t.Fatalf("h2=%v %s: %v", h2, path, err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Errorf("h2=%v %s: a %d-byte body read as complete after the upstream died", h2, path, n)
			}
			t.Logf("h2=%v %s: %d bytes, then %v", h2, path, n, err)
		}
	}
}

// killableListener remembers every connection it accepts, so a test can
// drop them all at once as a killed process would, hijacked ones included
// (httptest forgets those).
type killableListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *killableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *killableListener) kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

// TestHardeningUpstreamDiesMidWebSocket kills the upstream under an open
// session: the client gets a close frame at once.
func TestHardeningUpstreamDiesMidWebSocket(t *testing.T) {
	up := httptest.NewUnstartedServer(newWSUpstream(t).Config.Handler)
	ln := &killableListener{Listener: up.Listener}
	up.Listener = ln
	up.StartTLS()
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	c.ReadMessage()
	ln.kill()
	c.SetReadDeadline(time.Now().Add(cutOffBound))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("client saw %v, want a 1001 close frame", err)
	}
	testutil.Eventually(t, "the session ends", func() bool { return e.ws.count() == 0 })
}

// TestHardeningUpstreamRestart restarts the upstream on the same address
// under a warm keepalive pool: at most the first request after the restart
// may fail, and every later one succeeds.
func TestHardeningUpstreamRestart(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	first := httptest.NewTLSServer(handler)
	addr := first.Listener.Addr().String()
	e := startEngine(t, testConfig(t, first))
	c := httpClient(t, e, false)
	request := func(i int) (int, error) {
		req, _ := http.NewRequest("GET", engineURL("/"), nil)
		if i%2 == 1 { // POST is not retried by net/http on a dead pooled connection
			req, _ = http.NewRequest("POST", engineURL("/"), strings.NewReader("form=1"))
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// Warm the pool with several idle connections.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { request(i) })
	}
	wg.Wait()

	first.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("rebinding %s: %v", addr, err)
	}
	second := httptest.NewUnstartedServer(handler)
	second.Listener.Close()
	second.Listener = ln
	second.StartTLS()
	defer second.Close()

	failures := 0
	for i := range 20 {
		status, err := request(i)
		if err == nil && status == 200 {
			continue
		}
		failures++
		if i > 0 {
			t.Errorf("request %d after the restart: status %d, %v", i, status, err)
		}
	}
	t.Logf("%d of the first requests after the restart failed", failures)
}

// TestHardeningSlowUpstreamWebSocketGets504 holds back the 101: the
// handshake waits UpstreamTimeout, as a plain request does, then 504.
func TestHardeningSlowUpstreamWebSocketGets504(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer up.Close()
	defer close(release)
	cfg := testConfig(t, up)
	cfg.UpstreamTimeout = config.Duration(200 * time.Millisecond)
	e := startEngine(t, cfg)
	_, resp, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("dial: %v, response %v; want 504", err, resp)
	}
}

// TestHardeningForwardedForDropsIPv6Zone checks a link-local client's
// interface zone stays out of X-Forwarded-For.
func TestHardeningForwardedForDropsIPv6Zone(t *testing.T) {
	in := httptest.NewRequest("GET", "/", nil)
	in.RemoteAddr = "[fe80::1%eth0]:5555"
	out := in.Clone(context.Background())
	forwarding{}.apply(out, in)
	if got := out.Header.Get("X-Forwarded-For"); got != "fe80::1" {
		t.Errorf("X-Forwarded-For = %q, want fe80::1", got)
	}
	trusted, _ := config.ParseTrustedProxies([]string{"fe80::/10"})
	in.Header.Set("X-Forwarded-For", "203.0.113.9")
	forwarding{trusted: trusted}.apply(out, in)
	if got := out.Header.Get("X-Forwarded-For"); got != "203.0.113.9, fe80::1" {
		t.Errorf("from a trusted link-local proxy X-Forwarded-For = %q, want 203.0.113.9, fe80::1", got)
	}
}

var long = flag.Bool("long", false, "run the churn tests at full size (10,000 WebSockets, 100,000 requests)")

// churnSize is n in `make test` and full with -long.
func churnSize(n, full int) int {
	if *long {
		return full
	}
	return n
}

// resources are what a leak grows: goroutines and open file descriptors.
type resources struct{ goroutines, fds int }

func countResources(t *testing.T) resources {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return resources{runtime.NumGoroutine(), len(fds)}
}

// churnTolerance allows for goroutines and descriptors of the runtime and
// of background work (the health check) that come and go on their own.
const churnTolerance = 5

// waitSettled polls until the counts are back within churnTolerance of
// base, dropping idle keepalive connections (whose number the pool bounds)
// before each look, and returns where they settled.
func waitSettled(t *testing.T, base resources, dropIdle func()) resources {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		dropIdle()
		now := countResources(t)
		if now.goroutines <= base.goroutines+churnTolerance && now.fds <= base.fds+churnTolerance {
			return now
		}
		if time.Now().After(deadline) {
			t.Fatalf("resources did not return: %d goroutines and %d fds, from %d and %d before", now.goroutines, now.fds, base.goroutines, base.fds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inParallel runs n jobs over workers goroutines and returns the first error.
func inParallel(workers, n int, job func(i int) error) error {
	var next atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := job(i); err != nil {
					errs <- fmt.Errorf("job %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// TestChurnWebSockets opens and closes WebSockets through the engine, every
// way a session can end, and checks goroutines and file descriptors return
// to where they were.
func TestChurnWebSockets(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after the engine and upstream stop
	e, up := startWSEngine(t)
	d := wsDialer(t, e)
	cycle := func(i int) error {
		c, _, err := d.Dial(wsURL("/ws/client/"), nil)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(cutOffBound))
		if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
			return err
		}
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "ping" {
			return fmt.Errorf("echo %q, %v", msg, err)
		}
		switch i % 3 {
		case 0: // a clean close, answered
			c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			c.ReadMessage()
		case 1: // the upstream drops the connection
			c.WriteMessage(websocket.TextMessage, []byte("drop"))
			c.ReadMessage()
		} // case 2: the client vanishes
		c.Close()
		select {
		case <-up.closed:
			return nil
		case <-time.After(cutOffBound):
			return errors.New("the upstream never saw the session end")
		}
	}
	dropIdle := func() { e.current().sites[0].transport.CloseIdleConnections() }
	if err := cycle(0); err != nil { // warm up what stays: pools, timers, the engine's workers
		t.Fatal(err)
	}
	base := waitSettled(t, countResources(t), dropIdle)
	n := churnSize(200, 10000)
	start := time.Now()
	if err := inParallel(4, n, cycle); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	testutil.Eventually(t, "every session ends", func() bool { return e.ws.count() == 0 })
	after := waitSettled(t, base, dropIdle)
	t.Logf("%d WebSocket cycles in %v: goroutines %d -> %d, fds %d -> %d",
		n, elapsed.Round(time.Millisecond), base.goroutines, after.goroutines, base.fds, after.fds)
}

// TestChurnKeepaliveRequests sends many requests over keepalive
// connections and checks goroutines and file descriptors return to where
// they were.
func TestChurnKeepaliveRequests(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	e := startEngine(t, testConfig(t, newEchoUpstream(t)))
	const workers = 4
	c := httpClient(t, e, false)
	client := c.Transport.(*http.Transport)
	client.MaxIdleConnsPerHost = workers
	request := func(i int) error {
		resp, err := c.Get(engineURL("/churn?i=" + strconv.Itoa(i)))
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	dropIdle := func() {
		client.CloseIdleConnections()
		e.current().sites[0].transport.CloseIdleConnections()
	}
	if err := request(0); err != nil {
		t.Fatal(err)
	}
	base := waitSettled(t, countResources(t), dropIdle)
	n := churnSize(2000, 100000)
	start := time.Now()
	if err := inParallel(workers, n, request); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	after := waitSettled(t, base, dropIdle)
	t.Logf("%d keepalive requests in %v: goroutines %d -> %d, fds %d -> %d",
		n, elapsed.Round(time.Millisecond), base.goroutines, after.goroutines, base.fds, after.fds)
}
