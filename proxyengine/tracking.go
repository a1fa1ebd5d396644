package proxyengine

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// tracker follows every client connection and request of the TLS listener.
// The hot path touches only atomics and the connection's own fields; the
// registry mutex is taken when a connection opens or closes, and snapshots
// are built on demand by Status.
type tracker struct {
	nextID atomic.Uint64

	mu    sync.Mutex
	conns map[uint64]*trackedConn

	requests       atomic.Uint64
	byClass        [6]atomic.Uint64 // index status/100; 0 holds anything else
	upstreamErrors atomic.Uint64
	latency        latencyWindow
	events         eventRing

	// changed is set by anything a dashboard would redraw for; the
	// notifier clears it when it tells subscribers.
	changed atomic.Bool
}

func newTracker() *tracker {
	return &tracker{conns: map[uint64]*trackedConn{}}
}

// Protocols of a tracked connection.
const (
	protoUnknown int32 = iota
	protoHTTP1
	protoHTTP2
	protoWebSocket
)

var protocolNames = [...]string{"TLS", "HTTP/1.1", "HTTP/2", "WebSocket"}

// trackedConn is a client connection with its traffic counters. It wraps
// the raw TCP connection, so its byte counts are what crossed the wire,
// TLS included, and it keeps counting after a WebSocket takes it over.
type trackedConn struct {
	net.Conn
	t      *tracker
	id     uint64
	remote string
	opened time.Time
	// release counts the connection out of its visitor's (visitorConns);
	// nil for one that was not counted.
	release func()

	bytesIn, bytesOut atomic.Int64
	active            atomic.Bool
	protocol          atomic.Int32
	serverName        atomic.Pointer[string]
	// site is the site of the connection's first routed request, counted
	// in its open connections until the connection closes.
	site      atomic.Pointer[siteStats]
	closed    bool // under t.mu: Close ran, so setSite counts no more
	last      atomic.Pointer[requestInfo]
	closeOnce sync.Once
	// gather takes the connection's writes for good once it speaks
	// HTTP/2, and on HTTP/1.1 while it sends a large answer
	// (gatherWrites).
	gather atomic.Pointer[writeGatherer]
	// stalled is set once a write has timed out: the visitor stopped
	// taking bytes, and every later write fails at once (Write).
	stalled atomic.Bool
}

// requestInfo is a connection's current or last request.
type requestInfo struct {
	method, path string
	status       int // 0 while in flight
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.bytesIn.Add(int64(n))
	return n, err
}

// Write sends p, or fails at once if an earlier write timed out. A timed-out
// write has already ended the connection's TLS (crypto/tls makes the error
// permanent), but closing it still writes a close_notify alert with a
// deadline of its own, 5 s, which a visitor that reads nothing would make
// the engine wait out before the socket is let go.
func (c *trackedConn) Write(p []byte) (n int, err error) {
	if c.stalled.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	if g := c.gather.Load(); g != nil {
		n, err = g.write(p)
	} else {
		n, err = c.Conn.Write(p)
	}
	c.bytesOut.Add(int64(n))
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.stalled.Store(true)
	}
	return n, err
}

// gatherWrites hands the connection's writes to a writeGatherer from the
// next one on: crypto/tls, which serializes writes, has none in progress
// between two of them. timeout bounds each system call (the send timeout).
// An HTTP/2 connection gathers for good (its socket is never taken over by
// the WebSocket relay); an HTTP/1.1 one while it sends a large answer, until
// stopGathering.
func (c *trackedConn) gatherWrites(timeout time.Duration) {
	if c.gather.Load() == nil {
		c.gather.CompareAndSwap(nil, newWriteGatherer(c.Conn, timeout))
	}
}

// stopGathering waits until what the gatherer holds is sent, then has
// writes go straight to the socket again, under a write deadline a send
// timeout away as after any progress (the gatherer's last one may be long
// gone by the next write). Only the goroutine that writes may call it.
func (c *trackedConn) stopGathering() {
	if g := c.gather.Load(); g != nil {
		g.flushed()
		c.gather.Store(nil)
		if g.timeout > 0 {
			c.Conn.SetWriteDeadline(time.Now().Add(g.timeout))
		}
	}
}

// SetWriteDeadline and SetDeadline leave the socket's write deadline to the
// gatherer, if any, which times its own system calls.
func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	if c.gather.Load() != nil {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	if c.gather.Load() != nil {
		return c.Conn.SetReadDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c.id)
		c.closed = true
		if site := c.site.Load(); site != nil {
			site.connections.Add(-1)
		}
		c.t.mu.Unlock()
		if c.release != nil {
			c.release()
		}
		c.t.changed.Store(true)
	})
	if g := c.gather.Load(); g != nil {
		return g.close()
	}
	return c.Conn.Close()
}

// setSite notes the site the connection's first routed request went to
// (a connection is one site's even if HTTP/2 coalescing sends it others':
// its TLS name is that site's). It costs an atomic load after the first.
func (c *trackedConn) setSite(s *siteStats) {
	if c.site.Load() != nil {
		return
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if c.closed || c.site.Load() != nil {
		return
	}
	c.site.Store(s)
	s.connections.Add(1)
}

// trackingListener registers each connection that visitors admits.
type trackingListener struct {
	net.Listener
	t        *tracker
	visitors *visitorConns
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, release, err := l.visitors.accept(l.Listener)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t, id: l.t.nextID.Add(1), remote: c.RemoteAddr().String(), opened: time.Now(), release: release}
	l.t.mu.Lock()
	l.t.conns[tc.id] = tc
	l.t.mu.Unlock()
	l.t.changed.Store(true)
	return tc, nil
}

type trackedConnKey struct{}

// connContext makes the tracked connection reachable from its requests.
func (t *tracker) connContext(ctx context.Context, c net.Conn) context.Context {
	if tc := unwrapTracked(c); tc != nil {
		return context.WithValue(ctx, trackedConnKey{}, tc)
	}
	return ctx
}

// connState follows whether a connection is busy or idle.
func (t *tracker) connState(c net.Conn, s http.ConnState) {
	if tc := unwrapTracked(c); tc != nil {
		switch s {
		case http.StateActive:
			tc.active.Store(true)
		case http.StateIdle:
			tc.active.Store(false)
		}
	}
}

func unwrapTracked(c net.Conn) *trackedConn {
	if tlsConn, ok := c.(*tls.Conn); ok {
		c = tlsConn.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}

// connFromRequest returns the tracked connection a request arrived on.
func connFromRequest(r *http.Request) *trackedConn {
	tc, _ := r.Context().Value(trackedConnKey{}).(*trackedConn)
	return tc
}

// middleware counts requests and records each in its connection and the
// event ring. An HTTP/2 connection's writes are gathered from its first
// request on, each system call bounded by sendTimeout.
func (t *tracker) middleware(next http.Handler, sendTimeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		tc := connFromRequest(r)
		if tc != nil {
			if tc.protocol.Load() != protoWebSocket {
				p := protoHTTP1
				if r.ProtoMajor == 2 {
					p = protoHTTP2
					tc.gatherWrites(sendTimeout)
				}
				tc.protocol.Store(p)
			}
			if r.TLS != nil && tc.serverName.Load() == nil {
				name := r.TLS.ServerName
				tc.serverName.Store(&name)
			}
			tc.last.Store(&requestInfo{method: r.Method, path: r.URL.Path})
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK // the handler wrote nothing: net/http sends 200
		}
		if tc != nil {
			tc.last.Store(&requestInfo{method: r.Method, path: r.URL.Path, status: status})
		}
		t.requests.Add(1)
		class := status / 100
		if class < 1 || class > 5 {
			class = 0
		}
		t.byClass[class].Add(1)
		if rec.site != nil {
			rec.site.count(status)
		}
		t.events.add(Event{Time: start, Kind: EventRequest, Method: r.Method, Path: r.URL.Path,
			Status: status, Duration: time.Since(start), Remote: r.RemoteAddr})
		t.changed.Store(true)
	})
}

// statusRecorder notes the status a handler answered with. Unwrap lets
// http.ResponseController reach Flush and Hijack underneath.
type statusRecorder struct {
	http.ResponseWriter
	status int
	site   *siteStats // the site the request was routed to, if any
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 || s.status < 200 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusRecorder) Flush() { http.NewResponseController(s.ResponseWriter).Flush() }

// Hijack records 101: a connection is taken over only to switch protocols,
// and the 101 is then written on the raw connection.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil {
		s.status = http.StatusSwitchingProtocols
	}
	return c, brw, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// noteUpstreamError counts a failure to get an answer from the upstream.
func (t *tracker) noteUpstreamError(r *http.Request, status int, err error) {
	t.upstreamErrors.Add(1)
	t.events.add(Event{Time: time.Now(), Kind: EventError, Method: r.Method, Path: r.URL.Path, Status: status,
		Remote: r.RemoteAddr, Message: "upstream: " + err.Error()})
	t.changed.Store(true)
}

// closeUnused closes connections that have not sent a byte of a request.
func (t *tracker) closeUnused() {
	for _, c := range t.connections() {
		if c.last.Load() == nil && !c.active.Load() {
			c.Close()
		}
	}
}

// connections lists the open connections, oldest first.
func (t *tracker) connections() []*trackedConn {
	t.mu.Lock()
	out := make([]*trackedConn, 0, len(t.conns))
	for _, c := range t.conns {
		out = append(out, c)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b *trackedConn) int { return cmp.Compare(a.id, b.id) })
	return out
}

// trackerCounts is the tracker's counters at one moment.
type trackerCounts struct {
	requests       uint64
	byClass        map[string]uint64 // "1xx" to "5xx"
	upstreamErrors uint64
	latency        LatencySummary
}

// counts reads the counters, for the status snapshot and the metrics.
func (t *tracker) counts() trackerCounts {
	c := trackerCounts{
		requests:       t.requests.Load(),
		byClass:        make(map[string]uint64, 5),
		upstreamErrors: t.upstreamErrors.Load(),
		latency:        t.latency.summary(),
	}
	for class := 1; class <= 5; class++ {
		c.byClass[strconv.Itoa(class)+"xx"] = t.byClass[class].Load()
	}
	return c
}

// connectionInfos describes at most rows of the open connections, oldest
// first (all when rows < 0), only those of the site whose key is site
// when it is set, and counts them all. With rows 0 it only
// counts, so a stream of totals costs the same with ten connections or
// ten thousand.
func (t *tracker) connectionInfos(rows int, site string) (infos []ConnectionInfo, open int) {
	out := []ConnectionInfo{} // [] rather than null in JSON
	if rows == 0 {
		return out, t.count()
	}
	for _, c := range t.connections() {
		if rows > 0 && len(out) == rows {
			break
		}
		if site != "" && !c.servesSite(site) {
			continue
		}
		out = append(out, c.info())
	}
	return out, t.count()
}

// servesSite reports whether c's requests went to the site whose key is
// site.
func (c *trackedConn) servesSite(site string) bool {
	s := c.site.Load()
	return s != nil && config.SiteKey(s.name()) == site
}

// info describes c as the status shows it.
func (c *trackedConn) info() ConnectionInfo {
	proto := c.protocol.Load()
	info := ConnectionInfo{
		ID: c.id, Remote: c.remote, OpenedAt: c.opened,
		Protocol: protocolNames[proto], WebSocket: proto == protoWebSocket,
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), Active: c.active.Load() || proto == protoWebSocket,
	}
	if name := c.serverName.Load(); name != nil {
		info.ServerName = *name
	}
	if site := c.site.Load(); site != nil {
		info.Site = site.name()
	}
	if r := c.last.Load(); r != nil {
		info.Method, info.Path, info.Status = r.method, r.path, r.status
	}
	return info
}

// wireBytes sums the bytes on the wire of the open connections.
func (t *tracker) wireBytes() (in, out int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.conns {
		in += c.bytesIn.Load()
		out += c.bytesOut.Load()
	}
	return in, out
}

// count is the number of open connections.
func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}
