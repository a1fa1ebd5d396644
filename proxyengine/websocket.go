package proxyengine

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gorilla/websocket"
)

const (
	// wsDialTimeout bounds connecting to the upstream, TLS included; its
	// 101 answer is then awaited for the configured UpstreamTimeout.
	wsDialTimeout = upstream.DialTimeout + upstream.TLSTimeout
	// wsCloseWait bounds writing the proxy's own close frame.
	wsCloseWait = time.Second
	// wsSmallBuffer is what a direction reads into between bursts, from
	// a pool; a full read switches to a pooled copy buffer until the burst
	// ends, and a parked direction holds neither. Small messages (pings,
	// notifications) are the common case, and a TLS record larger than the
	// buffer is read in two calls rather than one. Before directions
	// parked, every idle one held this buffer, and 512 bytes rather than
	// 1 KiB measured 1.5 KiB less per idle WebSocket (docs/BENCHMARKS.md).
	wsSmallBuffer = 512
	// wsParkAfter is how long a direction may carry nothing before its
	// pump parks (see pump). Sooner is leaner: parked goroutines start on
	// the runtime's average stack size, which falls to 2 KiB only once
	// most pumps are parked, and 100 ms measured 29.4 KiB per idle
	// WebSocket against 30.1 at 250 ms and 33 at 1 s (docs/BENCHMARKS.md).
	// The price is small: a busy direction's park deadline fires, and is
	// moved, at most ten times a second, and a direction that pauses
	// longer pays a goroutine and a peek to wake.
	wsParkAfter = 100 * time.Millisecond
)

var wsHandshakeReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// wsProxy forwards WebSocket upgrades to the upstream over a dedicated
// HTTP/1.1 connection, then splices the two connections byte for byte.
// Frames pass untouched (extensions such as permessage-deflate included),
// while a scanner per direction follows the frame boundaries so the proxy
// can count messages, see close codes, and send a close frame of its own
// when one side vanishes or Gatehouse shuts down.
//
// httputil.ReverseProxy can pass upgrades itself, but it takes the
// connection from the keepalive pool, copies without knowing frames (no
// counts, no close codes, no 1001 of its own at shutdown) and keeps no list
// of open sessions for the dashboard; hence this handler.
type wsProxy struct {
	upstream *url.URL // where upgrades go
	// rewrite sets routing and forwarding headers, as for any request.
	rewrite func(*httputil.ProxyRequest)
	// dial and tlsConfig are the transport's: the same address and trust.
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsConfig *tls.Config
	// upstreamTimeout bounds the wait for the upstream's 101.
	upstreamTimeout time.Duration
	limits          *clientLimits // the engine's, read once serving starts
	// errorHandler answers the visitor when the upstream fails.
	errorHandler func(http.ResponseWriter, *http.Request, error)
	logger       *slog.Logger
	tracker      *tracker
	// sessions are the engine's, shared by every configuration it has
	// applied: a WebSocket outlives a reload on its old upstream.
	sessions *wsSessions
	// site counts the site's open sessions, or is nil outside an engine.
	site *siteStats
}

// wsHopHeaders are removed from the upgrade request before Connection and
// Upgrade are set again for the upstream hop (RFC 7230, section 6.1).
var wsHopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders deletes hop-by-hop headers, including those that
// Connection names.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range wsHopHeaders {
		h.Del(name)
	}
}

func (x *wsProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if x.sessions.isClosing() {
		w.Header().Set("Retry-After", "5")
		writeErrorPage(w, http.StatusServiceUnavailable, "The gateway is restarting", "Try again in a few seconds.")
		return
	}
	key, status, problem := checkWebSocketRequest(r)
	if problem != "" {
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		writeErrorPage(w, status, "This is not a valid WebSocket request", problem)
		return
	}
	up, resp, br, err := x.connect(r, key)
	if err != nil {
		x.errorHandler(w, r, err)
		return
	}
	spliced := false
	defer func() {
		wsHandshakeReaders.Put(br)
		if !spliced {
			up.Close()
		}
	}()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// The upstream declined (authentication, origin checks, a wrong
		// path): the visitor gets its answer as it was.
		x.relayRefusal(w, resp)
		return
	}
	spliced = x.splice(w, r, up, resp, br)
}

// connect dials the upstream and sends it the upgrade request for r. It
// returns the upstream's answer, with the reader holding what came after
// it: a refusal to relay, or a 101 whose Upgrade and Sec-WebSocket-Accept
// answer this request. The caller closes up and returns br to the pool.
func (x *wsProxy) connect(r *http.Request, key string) (up net.Conn, resp *http.Response, br *bufio.Reader, err error) {
	out := x.upgradeRequest(r)
	dialCtx, cancelDial := context.WithTimeout(r.Context(), wsDialTimeout)
	up, err = x.dialUpstream(dialCtx)
	cancelDial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), x.upstreamTimeout)
	defer cancel()
	resp, br, err = x.handshake(ctx, up, out)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		if want := out.Header.Get("Upgrade"); !strings.EqualFold(resp.Header.Get("Upgrade"), want) {
			err = fmt.Errorf("upstream switched to %q instead of %q", resp.Header.Get("Upgrade"), want)
		} else if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept(key) {
			// Whatever answered is no WebSocket server that read this
			// request; its connection must not become a tunnel.
			err = fmt.Errorf("upstream answered 101 with Sec-WebSocket-Accept %q, not the one for the key sent", got)
		}
		if err != nil {
			wsHandshakeReaders.Put(br)
		}
	}
	if err != nil {
		up.Close()
		return nil, nil, nil, err
	}
	return up, resp, br, nil
}

// splice takes over the client's connection, sends it the upstream's 101
// and starts the session that copies between the two. It reports whether
// the session took up over (it closes it when it ends).
func (x *wsProxy) splice(w http.ResponseWriter, r *http.Request, up net.Conn, resp *http.Response, br *bufio.Reader) bool {
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		x.logger.Error("taking over the client connection for a WebSocket", "err", err)
		return false
	}
	// Bytes already read past either handshake belong to the other side.
	upPending, err := drainBuffered(br)
	if err == nil {
		err = write101(client, resp, upPending, x.limits.sendTimeout)
	}
	var clientPending []byte
	if err == nil {
		clientPending, err = drainBuffered(brw.Reader)
	}
	if err == nil && len(clientPending) > 0 {
		_, err = up.Write(clientPending)
	}
	if err != nil {
		client.Close()
		return false
	}
	client.SetDeadline(time.Time{})
	up.SetDeadline(time.Time{})

	s := &wsSession{proxy: x, client: client, upstream: up, path: r.URL.Path, remote: r.RemoteAddr, opened: time.Now()}
	if tc := connFromRequest(r); tc != nil {
		// The connection shows its 101 from now on, not only once this
		// handler returns and the middleware notes the request.
		tc.last.Store(&requestInfo{method: r.Method, path: r.URL.Path, status: http.StatusSwitchingProtocols})
		tc.protocol.Store(protoWebSocket)
		s.connID = tc.id
	}
	s.up = wsDirection{src: client, dst: up, scanner: &s.toUpstream, bytes: &s.bytesUp, from: sideClient, raw: rawConnOf(client)}
	s.down = wsDirection{src: up, dst: client, scanner: &s.toClient, bytes: &s.bytesDown, from: sideUpstream, raw: rawConnOf(up)}
	s.toUpstream.scan(clientPending)
	s.toClient.scan(upPending)
	s.bytesUp.Add(int64(len(clientPending)))
	s.bytesDown.Add(int64(len(upPending)))
	if x.site != nil {
		s.site = x.site
		s.site.websockets.Add(1)
	}
	if !x.sessions.open(s) {
		s.finish()
		return true
	}
	x.logger.Debug("websocket opened", "path", s.path, "client", r.RemoteAddr)
	return true
}

// checkWebSocketRequest checks an upgrade request as RFC 6455 (section
// 4.2.1) asks before anything is dialled: a Sec-WebSocket-Key of 16
// base64 bytes, Sec-WebSocket-Version 13, and no body (a body behind an
// upgrade would reach the upstream as the first WebSocket bytes). It
// returns the key, or the status and reason to refuse with.
func checkWebSocketRequest(r *http.Request) (key string, status int, problem string) {
	keys := r.Header.Values("Sec-WebSocket-Key")
	switch {
	case r.Method != http.MethodGet:
		return "", http.StatusBadRequest, "A WebSocket opens with a GET request."
	case r.ContentLength != 0 || len(r.TransferEncoding) > 0:
		return "", http.StatusBadRequest, "A WebSocket upgrade request has no body."
	case len(keys) != 1:
		return "", http.StatusBadRequest, "It needs exactly one Sec-WebSocket-Key."
	}
	if b, err := base64.StdEncoding.DecodeString(keys[0]); err != nil || len(b) != 16 {
		return "", http.StatusBadRequest, "Its Sec-WebSocket-Key is not 16 bytes in base64."
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		return "", http.StatusUpgradeRequired, "Only WebSocket version 13 is supported."
	}
	return keys[0], 0, ""
}

// wsAccept is the Sec-WebSocket-Accept that answers key (RFC 6455, 4.2.2).
func wsAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// upgradeRequest is the upgrade request for the upstream hop: the
// client's, without its hop-by-hop headers, routed and with the forwarding
// headers set like any proxied request.
func (x *wsProxy) upgradeRequest(r *http.Request) *http.Request {
	out := r.Clone(r.Context())
	out.RequestURI, out.Body, out.ContentLength = "", nil, 0
	upgrade := r.Header.Get("Upgrade")
	removeHopHeaders(out.Header)
	x.rewrite(&httputil.ProxyRequest{In: r, Out: out})
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", upgrade)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // no Go default in its place
	}
	return out
}

func (x *wsProxy) dialUpstream(ctx context.Context) (net.Conn, error) {
	u := x.upstream
	conn, err := x.dial(ctx, "tcp", upstream.HostPort(u))
	if err != nil {
		return nil, err
	}
	conn = &relayableConn{conn}
	if u.Scheme != "https" {
		return conn, nil
	}
	tc := tls.Client(conn, x.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// relayableConn holds the upstream's socket of a WebSocket, under its TLS
// if any, where the relay can put its own in place (wsRelay).
type relayableConn struct{ net.Conn }

// socketHolder is a wrapper around a WebSocket side's socket, under its TLS
// if any: trackedConn on the visitor's side, relayableConn on the
// upstream's. The pumps park on the socket it holds; the relay puts a
// relaySock in its place.
type socketHolder interface {
	inner() *net.Conn
}

// holderOf returns the holder under c and its TLS, or nil.
func holderOf(c net.Conn) socketHolder {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	h, _ := c.(socketHolder)
	return h
}

func (c *trackedConn) inner() *net.Conn   { return &c.Conn }
func (c *relayableConn) inner() *net.Conn { return &c.Conn }

// handshake sends the upgrade request and reads the upstream's answer.
func (x *wsProxy) handshake(ctx context.Context, up net.Conn, out *http.Request) (*http.Response, *bufio.Reader, error) {
	if dl, ok := ctx.Deadline(); ok {
		up.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { up.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := out.Write(up); err != nil {
		return nil, nil, err
	}
	br := wsHandshakeReaders.Get().(*bufio.Reader)
	// http.ReadResponse has no cap of its own; past the limit the answer
	// ends, and the handshake fails. Frames behind the 101 that the reader
	// did not take stay in up.
	br.Reset(io.LimitReader(up, upstream.MaxHeaderBytes))
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		wsHandshakeReaders.Put(br)
		return nil, nil, err
	}
	return resp, br, nil
}

// relayRefusal passes a non-101 answer to the visitor. A
// Strict-Transport-Security already set is Gatehouse's own (serveSite),
// which replaces the upstream's as on every other answer.
func (x *wsProxy) relayRefusal(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	if w.Header().Get("Strict-Transport-Security") != "" {
		resp.Header.Del("Strict-Transport-Security")
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

// write101 sends the upstream's 101 answer to the client, with any frames
// the upstream already sent behind it.
func write101(client net.Conn, resp *http.Response, pending []byte, sendTimeout time.Duration) error {
	client.SetWriteDeadline(time.Now().Add(sendTimeout))
	upgrade := resp.Header.Get("Upgrade")
	removeHopHeaders(resp.Header)
	resp.Header.Set("Connection", "Upgrade")
	resp.Header.Set("Upgrade", upgrade)
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(&b)
	b.WriteString("\r\n")
	buf := append([]byte(b.String()), pending...)
	_, err := client.Write(buf)
	return err
}

// drainBuffered returns the bytes a reader has buffered but not handed out.
func drainBuffered(br *bufio.Reader) ([]byte, error) {
	n := br.Buffered()
	if n == 0 {
		return nil, nil
	}
	b := make([]byte, n)
	_, err := io.ReadFull(br, b)
	return b, err
}

// wsSessions are the open WebSocket sessions of an engine.
type wsSessions struct {
	tracker *tracker
	// parkAfter is how long a direction idles before its pump parks;
	// tests shorten it before serving starts.
	parkAfter time.Duration
	// pumpsOnly leaves every session to its pumps, not the relay; tests of
	// the pumps set it before serving starts.
	pumpsOnly bool
	relay     wsRelay

	mu      sync.Mutex
	set     map[*wsSession]struct{}
	closing bool
	done    sync.WaitGroup
}

func newWSSessions(t *tracker) *wsSessions {
	return &wsSessions{tracker: t, parkAfter: wsParkAfter, set: map[*wsSession]struct{}{}}
}

func (x *wsSessions) isClosing() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.closing
}

// open lists s and starts carrying it: the relay takes it where it can,
// its pumps otherwise. It reports false, with nothing started, once
// shutdown has begun.
func (x *wsSessions) open(s *wsSession) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closing {
		return false
	}
	x.set[s] = struct{}{}
	x.done.Add(1)
	x.tracker.changed.Store(true)
	if x.pumpsOnly || !x.relay.take(s) {
		go s.pump(&s.up, false)
		go s.pump(&s.down, false)
	}
	return true
}

// remove counts out a session that open listed.
func (x *wsSessions) remove(s *wsSession) {
	x.mu.Lock()
	_, listed := x.set[s]
	delete(x.set, s)
	x.mu.Unlock()
	if listed {
		x.done.Done()
	}
}

// shutdown closes every session with 1001 Going Away and waits for them to
// end, or for ctx, after which connections are cut.
func (x *wsSessions) shutdown(ctx context.Context) error {
	x.mu.Lock()
	x.closing = true
	sessions := make([]*wsSession, 0, len(x.set))
	for s := range x.set {
		sessions = append(sessions, s)
	}
	x.mu.Unlock()
	for _, s := range sessions {
		s.stop(endShutdown)
	}
	done := make(chan struct{})
	go func() { x.done.Wait(); close(done) }()
	defer x.relay.close()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// A relayed session ends as soon as its loop reads the stop: its
		// writes never wait. Pumps may be stuck in a write.
		for _, s := range sessions {
			if s.relay == nil {
				s.client.Close()
				s.upstream.Close()
			}
		}
		<-done
		return ctx.Err()
	}
}

// list returns the open sessions, oldest first.
func (x *wsSessions) list() []*wsSession {
	x.mu.Lock()
	out := make([]*wsSession, 0, len(x.set))
	for s := range x.set {
		out = append(out, s)
	}
	x.mu.Unlock()
	slices.SortFunc(out, func(a, b *wsSession) int { return a.opened.Compare(b.opened) })
	return out
}

// count reports the number of open sessions.
func (x *wsSessions) count() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.set)
}

// wsSide names the side of a session whose going away ended it.
type wsSide int32

const (
	sideClient wsSide = iota + 1
	sideUpstream
	endShutdown // neither: Gatehouse is shutting down
)

// other returns the opposite side of a session.
func (s wsSide) other() wsSide {
	if s == sideClient {
		return sideUpstream
	}
	return sideClient
}

// wsSession is one proxied WebSocket: two pumps, one per direction. The
// first pump to end stops the other; the last one sends the proxy's own
// close frames where a side did not get one, and closes both connections.
type wsSession struct {
	proxy            *wsProxy
	client, upstream net.Conn
	path, remote     string
	connID           uint64 // the tracked client connection
	opened           time.Time
	site             *siteStats // counted in, if any; set before the pumps start

	up, down             wsDirection    // client to upstream, upstream to client
	toUpstream, toClient wsFrameScanner // each owned by its pump until both end
	bytesUp, bytesDown   atomic.Int64

	ended    atomic.Int32 // pumps that have returned
	endedBy  atomic.Int32 // the wsSide whose read ended first, or endShutdown
	stopOnce sync.Once

	// relay is the loop carrying the session, or nil if its pumps do; set
	// before the session is seen by anything that could stop it.
	relay      *relayLoop
	relayEnded bool // set by the loop once it has finished the session
}

// wsDirection is what one pump reads, writes and counts.
type wsDirection struct {
	src, dst net.Conn
	scanner  *wsFrameScanner
	bytes    *atomic.Int64
	from     wsSide          // the side src belongs to
	raw      syscall.RawConn // src's socket, or nil: the pump never parks
}

// stop ends the session. A relayed one is ended by its loop, which is told
// so; pumps are made to return by expiring their reads. endedBy is set
// before the deadline, so a pump that moves its own read deadline and then
// finds endedBy unset knows any stop comes after, with a deadline of its own.
func (s *wsSession) stop(reason wsSide) {
	s.stopOnce.Do(func() {
		s.endedBy.Store(int32(reason))
		if s.relay != nil {
			s.relay.stop(s)
			return
		}
		past := time.Unix(1, 0)
		s.client.SetReadDeadline(past)
		s.upstream.SetReadDeadline(past)
	})
}

// stopping reports whether stop has been called.
func (s *wsSession) stopping() bool { return s.endedBy.Load() != 0 }

// pump copies d.src to d.dst until either fails, following the frames. A
// destination that reads nothing for the send timeout fails the write, so a
// peer that stops reading cannot hold the session and its buffers.
//
// A direction that carries nothing for parkAfter (wsParkAfter) parks: its
// read times out, its buffer goes back to the pool, and this goroutine,
// whose stack the TLS read path has grown to 4 KiB, hands over to a new one
// that waits on the socket and reads only once bytes arrive. The new stack
// is the runtime's starting size, 2 KiB once most goroutines are parked
// ones. Most WebSockets sit idle (one per browser tab), so this is most of
// what a crowd of them holds (docs/BENCHMARKS.md); a busy direction pays
// one clock read per read for it. Parking is safe because a TLS read that
// times out has handed out all it decrypted and holds at most part of a
// record, whose rest must still come from the socket.
func (s *wsSession) pump(d *wsDirection, parked bool) {
	if parked {
		if err := waitReadable(d.raw); err != nil {
			// Expired by stop, or the connection was closed under it.
			s.stop(d.from)
			s.pumpEnded()
			return
		}
	}
	small := wsSmallBuffers.Get().(*[wsSmallBuffer]byte)
	buf := small[:]
	var large []byte // from proxyBuffers, during a burst
	sendDeadline := progressDeadline{timeout: s.proxy.limits.sendTimeout, conn: d.dst}
	parkAfter := s.proxy.sessions.parkAfter
	var lastRead time.Time
	if d.raw != nil {
		lastRead = time.Now()
		d.src.SetReadDeadline(lastRead.Add(parkAfter))
		if s.stopping() {
			// A stop before this pump began may have had its deadline
			// overwritten just now.
			d.src.SetReadDeadline(time.Unix(1, 0))
		}
	}
	park := false
	for {
		n, err := d.src.Read(buf)
		if n > 0 {
			if d.raw != nil {
				lastRead = time.Now()
			}
			d.scanner.scan(buf[:n])
			d.bytes.Add(int64(n))
			sendDeadline.progress()
			if _, werr := d.dst.Write(buf[:n]); werr != nil {
				// The destination is gone: it is the side that ended.
				s.stop(d.from.other())
				break
			}
			switch {
			case n == len(buf) && large == nil:
				large = proxyBuffers.Get()
				buf = large
			case n < len(small) && large != nil:
				proxyBuffers.Put(large)
				large, buf = nil, small[:]
			}
		}
		if err == nil {
			continue
		}
		if d.raw != nil && errors.Is(err, os.ErrDeadlineExceeded) && !s.stopping() {
			// The park deadline, not stop's.
			park = time.Since(lastRead) >= parkAfter
			next := lastRead.Add(parkAfter)
			if park {
				next = time.Time{}
			}
			d.src.SetReadDeadline(next)
			if !s.stopping() {
				if park {
					break
				}
				continue
			}
			park = false
		}
		s.stop(d.from)
		break
	}
	wsSmallBuffers.Put(small)
	if large != nil {
		proxyBuffers.Put(large)
	}
	if park {
		go s.pump(d, true)
		return
	}
	s.pumpEnded()
}

// pumpEnded counts a pump out; the second one finishes the session.
func (s *wsSession) pumpEnded() {
	if s.ended.Add(1) == 2 {
		s.finish()
	}
}

// finish runs once both pumps have stopped: it tells each side that did not
// see a close frame why the session ended, then closes both connections.
func (s *wsSession) finish() {
	reason := "going away"
	switch wsSide(s.endedBy.Load()) {
	case endShutdown:
		reason = "Gatehouse is shutting down"
	case sideUpstream:
		reason = "the upstream closed the connection"
	case sideClient:
		reason = "the client closed the connection"
	}
	payload := websocket.FormatCloseMessage(websocket.CloseGoingAway, reason)
	if !s.toClient.closeSeen && s.toClient.atBoundary() && wsSide(s.endedBy.Load()) != sideClient {
		writeCloseFrame(s.client, payload, false)
	}
	if !s.toUpstream.closeSeen && s.toUpstream.atBoundary() && wsSide(s.endedBy.Load()) != sideUpstream {
		writeCloseFrame(s.upstream, payload, true)
	}
	s.client.Close()
	s.upstream.Close()
	if s.site != nil {
		s.site.websockets.Add(-1)
	}
	s.proxy.sessions.remove(s)
	ending := s.ending()
	s.proxy.tracker.events.add(Event{Time: time.Now(), Kind: EventWebSocket, Path: s.path, Remote: s.remote,
		Duration: time.Since(s.opened), Message: "WebSocket " + ending})
	s.proxy.tracker.changed.Store(true)
	s.proxy.logger.Debug("websocket ended", "path", s.path, "how", ending, "duration", time.Since(s.opened).Round(time.Millisecond),
		"bytes_up", s.bytesUp.Load(), "bytes_down", s.bytesDown.Load())
}

// ending says how a finished session ended: who sent the first close
// frame and its code, or which side dropped the connection.
func (s *wsSession) ending() string {
	switch {
	case s.toUpstream.closeSeen:
		return closeDescription("client", s.toUpstream.closeCode, s.toUpstream.closeText)
	case s.toClient.closeSeen:
		return closeDescription("upstream", s.toClient.closeCode, s.toClient.closeText)
	}
	switch wsSide(s.endedBy.Load()) {
	case sideClient:
		return "dropped by the client without a close frame"
	case sideUpstream:
		return "dropped by the upstream without a close frame"
	}
	return "closed by Gatehouse shutting down (1001)"
}

func closeDescription(who string, code int, text string) string {
	d := fmt.Sprintf("closed by the %s with %d", who, code)
	if text != "" {
		d += " (" + text + ")"
	}
	return d
}

// info describes the session for the status API.
func (s *wsSession) info() WebSocketInfo {
	info := WebSocketInfo{
		ConnectionID: s.connID, Remote: s.remote, Path: s.path, OpenedAt: s.opened,
		BytesIn: s.bytesUp.Load(), BytesOut: s.bytesDown.Load(),
		MessagesIn: s.toUpstream.messages.Load(), MessagesOut: s.toClient.messages.Load(),
	}
	if s.site != nil {
		info.Site = s.site.name()
	}
	return info
}

// writeCloseFrame writes a close frame; frames a client sends are masked
// with a random key (RFC 6455, section 5.3). Errors are not reported: the
// connection is closed next either way.
func writeCloseFrame(c net.Conn, payload []byte, masked bool) {
	frame := []byte{0x80 | wsOpClose, byte(len(payload))}
	if masked {
		var key [4]byte
		rand.Read(key[:])
		frame[1] |= 0x80
		frame = append(frame, key[:]...)
		for i, b := range payload {
			frame = append(frame, b^key[i%4])
		}
	} else {
		frame = append(frame, payload...)
	}
	c.SetWriteDeadline(time.Now().Add(wsCloseWait))
	c.Write(frame)
}
