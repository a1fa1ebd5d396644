package proxyengine

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gorilla/websocket"
)

// loopbackPair returns the two ends of a real TCP connection on loopback.
func loopbackPair(t *testing.T) (near, far *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); a.Close() })
	return c.(*net.TCPConn), a.(*net.TCPConn)
}

// gatedConn is a real socket whose writes it records; while gate is open
// (not nil), a write waits until the test closes it.
type gatedConn struct {
	net.Conn
	mu     sync.Mutex
	gate   chan struct{}
	writes []int // the size of each system call's worth, in order
}

func (c *gatedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return c.Conn.Write(p)
}

func (c *gatedConn) sizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.writes)
}

// record returns a TLS record's worth of bytes, each i.
func record(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 16<<10+22) }

// TestWriteGathererGathersWhileTheSocketIsBusy: what is written while the
// sender is in a system call goes out in one more, up to gatherMax; a
// write past that waits for the socket; the bytes arrive in order.
func TestWriteGathererGathersWhileTheSocketIsBusy(t *testing.T) {
	near, far := loopbackPair(t)
	gate := make(chan struct{})
	conn := &gatedConn{Conn: near, gate: gate}
	g := newWriteGatherer(conn, time.Minute)

	var want bytes.Buffer
	for i := 1; i <= 5; i++ {
		want.Write(record(i))
		if n, err := g.write(record(i)); n != len(record(i)) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
		for waited := 0; i == 1 && len(conn.sizes()) == 0; waited++ { // until the sender is at the gate
			if waited == 10_000 {
				t.Fatal("the sender never wrote the first record")
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The sender holds the first record at the gate, four are pending:
	// gatherMax is reached, so the sixth write waits for the socket.
	sixth := make(chan error, 1)
	go func() {
		_, err := g.write(record(6))
		sixth <- err
	}()
	select {
	case err := <-sixth:
		t.Fatalf("a write past gatherMax returned (%v) while the socket took nothing", err)
	case <-time.After(50 * time.Millisecond):
	}
	want.Write(record(6))

	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, want.Len())
		_, err := io.ReadFull(far, b)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	conn.mu.Lock()
	conn.gate = nil
	conn.mu.Unlock()
	close(gate)
	if err := <-sixth; err != nil {
		t.Fatalf("sixth write: %v", err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatal("the bytes arrived changed or out of order")
	}
	r := len(record(0))
	if w := conn.sizes(); !slices.Equal(w, []int{r, 4 * r, r}) {
		t.Errorf("system calls of %v bytes, want %v: one record, the four gathered behind it, the last", w, []int{r, 4 * r, r})
	}
}

// TestWriteGathererReportsTheSocketsError: once the visitor is gone, a
// later write fails with the socket's error rather than taking bytes that
// will never be sent.
func TestWriteGathererReportsTheSocketsError(t *testing.T) {
	near, far := loopbackPair(t)
	far.SetLinger(0)
	far.Close() // a reset
	g := newWriteGatherer(near, time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := g.write(record(1))
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("error %v, want the socket's own (reset or broken pipe)", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a reset connection kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := g.write(record(2)); err == nil {
		t.Error("a write after the error succeeded")
	}
}

// TestWriteGathererTimesOutAVisitorThatTakesNothing: the send timeout ends
// a connection whose visitor stops reading, and a write waiting for the
// socket returns with the error instead of hanging.
func TestWriteGathererTimesOutAVisitorThatTakesNothing(t *testing.T) {
	near, _ := loopbackPair(t)
	g := newWriteGatherer(near, 100*time.Millisecond)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 100_000; i++ { // far more than loopback buffers hold
			if _, err := g.write(record(i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("writes to a visitor that reads nothing ended with %v, want the timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writes to a visitor that reads nothing never timed out")
	}
}

// TestWriteGathererCloseSendsWhatIsPending: bytes taken before close reach
// the visitor, then the end of the stream; a read waiting on the socket
// returns at once; writes after close fail.
func TestWriteGathererCloseSendsWhatIsPending(t *testing.T) {
	near, far := loopbackPair(t)
	g := newWriteGatherer(near, time.Minute)
	const n = 64 // 1 MiB, more than loopback buffers take without a reader
	readErr := make(chan error, 1)
	go func() {
		_, err := near.Read(make([]byte, 1))
		readErr <- err
	}()
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := 0; i < n; i++ {
			if _, err := g.write(record(i)); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	}()
	got := make(chan []byte, 1)
	go func() {
		b, err := io.ReadAll(far)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	<-written
	if err := g.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case <-readErr:
	case <-time.After(10 * time.Second):
		t.Fatal("a read waiting on the socket did not return after close")
	}
	if _, err := g.write(record(0)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v, want net.ErrClosed", err)
	}
	var want bytes.Buffer
	for i := 0; i < n; i++ {
		want.Write(record(i))
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("the visitor got %d bytes, want the %d written before close, in order", len(b), want.Len())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the socket was never closed after what was pending was sent")
	}
}

// TestHTTP2ConnectionsGatherTheirWrites: a visitor's HTTP/2 connection
// sends through a writeGatherer, with answers large and small intact; an
// HTTP/1.1 connection, whose socket a WebSocket relay may take over, does
// not.
func TestHTTP2ConnectionsGatherTheirWrites(t *testing.T) {
	body := make([]byte, 1<<20)
	rand.Read(body)
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(body[:n])
	}))
	t.Cleanup(up.Close)
	e := startEngine(t, testConfig(t, up))

	for _, h2 := range []bool{true, false} {
		c := httpClient(t, e, h2)
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				n := []int{0, 1, 100, 16<<10 - 9, 100 << 10, 1 << 20}[i%6]
				resp, err := c.Get(engineURL("/?n=" + strconv.Itoa(n)))
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil || !bytes.Equal(got, body[:n]) {
					t.Errorf("HTTP/2 %v, %d bytes: got %d bytes (%v), not the upstream's", h2, n, len(got), err)
				}
			})
		}
		wg.Wait()
		e.tracker.mu.Lock()
		for _, tc := range e.tracker.conns {
			if gathers, isH2 := tc.gather.Load() != nil, tc.protocol.Load() == protoHTTP2; gathers != isH2 {
				t.Errorf("a %s connection gathers its writes: %v", protocolNames[tc.protocol.Load()], gathers)
			}
		}
		e.tracker.mu.Unlock()
		c.CloseIdleConnections()
	}
}

// TestWriteGathererCloseGivesUpOnASlowVisitor: a closed connection whose
// visitor reads a trickle, so that every system call makes some progress,
// is let go after its drain time, not kept open write by write.
func TestWriteGathererCloseGivesUpOnASlowVisitor(t *testing.T) {
	near, far := loopbackPair(t)
	// Small socket buffers, so that what is pending is most of what
	// there is to send: at 6.4 KB/s it would take over ten seconds.
	near.SetWriteBuffer(4096)
	far.SetReadBuffer(4096)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		b := make([]byte, 64)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if _, err := far.Read(b); err != nil {
				return
			}
		}
	}()
	g := newWriteGatherer(near, time.Hour)
	g.drain = 200 * time.Millisecond
	// Enough to fill the loopback buffers, so the sender is stuck in a
	// write when close comes.
	for i := 0; i < 400; i++ {
		if _, err := g.write(record(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		g.mu.Lock()
		full := g.pending != nil && len(*g.pending) >= gatherMax
		g.mu.Unlock()
		if full {
			break
		}
	}
	g.close()
	for waited := 0; ; waited++ {
		g.mu.Lock()
		sending := g.sending
		g.mu.Unlock()
		if !sending {
			break
		}
		if waited == 5_000 { // 25 times the drain time
			t.Fatal("the sender still trickles to a slow visitor, 5 s after close")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := near.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the socket after the drain time: write error %v, want it closed", err)
	}
}

// TestHTTP1LargeAnswersGatherUntilTheyEnd: an HTTP/1.1 connection gathers
// its writes while it sends an answer of h1GatherMin or more, and only
// then: on the same connection a later small answer, after a pause longer
// than the send timeout, and then a WebSocket (whose socket the relay
// takes over) work as on any other.
func TestHTTP1LargeAnswersGatherUntilTheyEnd(t *testing.T) {
	body := make([]byte, 1<<20)
	rand.Read(body)
	atHalf, resume := make(chan struct{}), make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case websocket.IsWebSocketUpgrade(r):
			testutil.EchoWebSocket(w, r)
		case r.URL.Path == "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			close(atHalf)
			<-resume
			w.Write(body[len(body)/2:])
		default:
			io.WriteString(w, "small")
		}
	}))
	t.Cleanup(up.Close)
	e := startEngine(t, testConfig(t, up), shortLimits)
	c := dialRawTLS(t, e)
	c.SetDeadline(time.Now().Add(cutOffBound))
	br := bufio.NewReader(c)
	conn := func() *trackedConn {
		t.Helper()
		for _, tc := range e.tracker.connections() {
			if tc.remote == c.LocalAddr().String() {
				return tc
			}
		}
		t.Fatal("the connection is not tracked")
		return nil
	}
	get := func(path string) *http.Response {
		t.Helper()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+testHostname+"\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp
	}

	if resp := get("/small"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /small: %s", resp.Status)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	if conn().gather.Load() != nil {
		t.Error("a small answer was gathered")
	}

	resp := get("/big")
	<-atHalf
	if conn().gather.Load() == nil {
		t.Error("a 1 MiB answer is not gathered while it is sent")
	}
	close(resume)
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the 1 MiB answer: %d bytes (%v), not the upstream's", len(got), err)
	}
	if conn().gather.Load() != nil {
		t.Error("the connection still gathers after the large answer")
	}

	time.Sleep(3 * e.limits.sendTimeout) // past any deadline the gatherer left
	if resp := get("/small"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /small after the large answer: %s", resp.Status)
	} else if b, _ := io.ReadAll(resp.Body); string(b) != "small" {
		t.Fatalf("GET /small after the large answer: %q", b)
	}

	ws, _, err := websocket.NewClient(c, &url.URL{Scheme: "ws", Host: testHostname, Path: "/ws/"}, nil, 1024, 1024) // c is TLS already
	if err != nil {
		t.Fatalf("WebSocket on the connection after the large answer: %v", err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "hello" {
		t.Fatalf("echo %q, %v", msg, err)
	}
}
