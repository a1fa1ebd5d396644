package proxyengine

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// Client-side limits of the listeners. A visitor may be slow to send its
// headers or to read the answer, but not forever: each wait is bounded so a
// few hostile connections cannot hold the proxy's goroutines and sockets.
const (
	// readHeaderTimeout bounds the TLS handshake and reading a request's
	// headers (the slowloris attack trickles them).
	readHeaderTimeout = 10 * time.Second
	// clientIdleTimeout closes keepalive connections that send nothing.
	clientIdleTimeout = 2 * time.Minute
	// maxHeaderBytes caps a request's headers; more gets 431.
	maxHeaderBytes = 64 << 10
	// clientSendTimeout ends a response or WebSocket whose client has read
	// nothing for this long. It is a deadline per write, re-armed as data
	// flows, not a bound on the whole response: long downloads and
	// WebSockets live on as long as the client keeps reading.
	clientSendTimeout = 60 * time.Second
	// clientBodyTimeout ends a request whose body has not arrived for this
	// long while the proxy waits to read it, as nginx's client_body_timeout
	// (60 s) does: like the send timeout it times each read, not the whole
	// body, so a long upload lives on while it makes progress. Without it a
	// visitor that announces a body and sends none holds an upstream
	// connection for as long as it likes.
	clientBodyTimeout = 60 * time.Second
	// http2MaxStreams caps the requests one HTTP/2 connection may have in
	// flight. RFC 9113 (section 6.5.2) recommends no fewer than 100, and
	// browsers need no more; Go's default of 250 (nginx: 128) let one
	// connection hold 250 upstream connections.
	http2MaxStreams = 100
	// http2MaxFrameSize is the largest HTTP/2 frame a visitor may send:
	// 16 KiB, the protocol's initial value. Go's default of 1 MiB let each
	// connection make the server read a 1 MiB frame whole into memory
	// before handling any of it. A larger frame is a FRAME_SIZE_ERROR,
	// which ends the connection (RFC 9113, section 4.2).
	http2MaxFrameSize = 16 << 10
	// maxUpstreamPerVisitor caps the requests one visitor (an IPv4 address
	// or an IPv6 /64, which one host usually holds whole) may have in
	// flight to the upstream at once; more are answered 429 at once, so one
	// visitor cannot take the upstream's capacity from the others. It
	// equals http2MaxStreams, so a browser's one HTTP/2 connection never
	// meets it, and allows for a few users behind one NAT address.
	// Established WebSockets are not counted, only their handshake, and
	// loopback visitors (a local tunnel such as cloudflared, whose
	// visitors all arrive from 127.0.0.1 unless it is a trusted proxy) are
	// not limited.
	maxUpstreamPerVisitor = 100
	// maxConnectionsPerVisitor caps the connections one visitor (as
	// above) may hold open to the HTTPS and plain ports together once
	// busyConnections are open in all; more are reset as they arrive. A
	// browser holds one HTTP/2 connection per site and one per open
	// WebSocket, so this leaves room for well over a hundred people behind
	// one NAT address, while under load one host can no longer take the
	// file descriptors and memory the others need. Loopback and trusted
	// proxies are not limited, as above.
	maxConnectionsPerVisitor = 512
	// busyConnections is the number of open connections, every visitor's
	// together, from which maxConnectionsPerVisitor applies. Below it
	// nothing is short, and one host may open as many as it likes: a load
	// test, or an office behind one address. It is half this machine's
	// 20,000 open files (a proxied connection takes a second one to the
	// upstream); a single address holding this many idle connections
	// costs a few hundred MB.
	busyConnections = 10_000
)

// clientLimits holds the limits an engine applies; tests shorten them
// through Engine.limits before Start.
type clientLimits struct {
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	sendTimeout       time.Duration
	bodyTimeout       time.Duration
	http2MaxStreams   int
	perVisitor        int // upstream requests in flight per visitor
	connsPerVisitor   int // open connections per visitor, once connsBusy are open
	connsBusy         int // open connections in all from which connsPerVisitor applies
}

var defaultClientLimits = clientLimits{
	readHeaderTimeout: readHeaderTimeout,
	idleTimeout:       clientIdleTimeout,
	maxHeaderBytes:    maxHeaderBytes,
	sendTimeout:       clientSendTimeout,
	bodyTimeout:       clientBodyTimeout,
	http2MaxStreams:   http2MaxStreams,
	perVisitor:        maxUpstreamPerVisitor,
	connsPerVisitor:   maxConnectionsPerVisitor,
	connsBusy:         busyConnections,
}

// server returns an http.Server for handler under these limits. Writes are
// bounded per write by sendTimeout: HTTP/2 connections by WriteByteTimeout,
// each request's response by withSendTimeout. Reads of a request body are
// bounded per read by bodyTimeout (withBodyTimeout).
func (l clientLimits) server(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           l.withSendTimeout(l.withBodyTimeout(handler)),
		ReadHeaderTimeout: l.readHeaderTimeout,
		IdleTimeout:       l.idleTimeout,
		MaxHeaderBytes:    l.maxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			WriteByteTimeout:     l.sendTimeout,
			MaxConcurrentStreams: l.http2MaxStreams,
			MaxReadFrameSize:     http2MaxFrameSize,
		},
	}
}

// withBodyTimeout cuts off a request body read that waits longer than
// bodyTimeout for the visitor's bytes. Only a read in progress is timed: an
// upstream that takes its time to read the body is not the visitor's fault.
// A failed read is noted in the body, which the request's context carries,
// so the proxy answers it as the visitor's error rather than the
// upstream's.
func (l clientLimits) withBodyTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		vb := &visitorBody{ReadCloser: r.Body}
		vb.watch = writeWatchdog{timeout: l.bodyTimeout, expire: rc.SetReadDeadline}
		defer vb.watch.stop()
		r = r.WithContext(context.WithValue(r.Context(), visitorBodyKey{}, vb))
		r.Body = vb
		next.ServeHTTP(w, r)
	})
}

type visitorBodyKey struct{}

// visitorBody times the reads of a request body and notes how it failed.
type visitorBody struct {
	io.ReadCloser
	watch    writeWatchdog
	failed   atomic.Bool
	timedOut atomic.Bool
}

func (b *visitorBody) Read(p []byte) (int, error) {
	b.watch.begin()
	n, err := b.ReadCloser.Read(p)
	b.watch.end()
	if err != nil && err != io.EOF {
		b.timedOut.Store(upstream.IsTimeout(err))
		b.failed.Store(true)
	}
	return n, err
}

// visitorBodyError reports whether reading r's body from the visitor
// failed, and the status that answers it: 408 when the visitor stopped
// sending, 400 for a malformed body (bad chunking, an HTTP/2 length that
// does not match).
func visitorBodyError(r *http.Request) (status int, failed bool) {
	b, _ := r.Context().Value(visitorBodyKey{}).(*visitorBody)
	if b == nil || !b.failed.Load() {
		return 0, false
	}
	if b.timedOut.Load() {
		return http.StatusRequestTimeout, true
	}
	return http.StatusBadRequest, true
}

// withSendTimeout bounds each write of a response by sendTimeout, so a
// client that stops reading is cut off while one that reads slowly but
// steadily is served to the end. Only a write in progress is timed: a
// response may pause for as long as its upstream needs (a long poll, an
// event stream, a slow answer) without being cut off.
//
// HTTP/1.1 uses the connection's write deadline, moved forward as writes
// begin; an expired one does no harm until the next write, which re-arms it
// first. Arming it as the request starts also replaces the deadline an
// earlier response left on a keepalive connection.
//
// An HTTP/2 stream's write deadline resets the stream when it expires, even
// with no write pending, so there a watchdog times each write instead, and
// the stream deadline is armed only once the handler has returned, for the
// final flush of what the response writer still buffers.
func (l clientLimits) withSendTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &sendDeadlineWriter{ResponseWriter: w, rc: *http.NewResponseController(w)}
		if r.ProtoMajor == 2 {
			sw.watch = &writeWatchdog{timeout: l.sendTimeout, expire: sw.rc.SetWriteDeadline}
			// A stream whose deadline was never set would keep the
			// deadline armed below even if the stream had ended before
			// it arrived (it is a message to the connection's goroutine);
			// one set far ahead is stopped when the stream ends, after
			// which re-arming it does nothing.
			sw.rc.SetWriteDeadline(time.Now().Add(farDeadline))
			defer func() {
				sw.watch.stop()
				sw.rc.SetWriteDeadline(time.Now().Add(l.sendTimeout))
			}()
		} else {
			sw.deadline = progressDeadline{timeout: l.sendTimeout, conn: &sw.rc}
			sw.deadline.progress()
		}
		next.ServeHTTP(sw, r)
	})
}

// farDeadline is a deadline that never expires in practice.
const farDeadline = 100 * 365 * 24 * time.Hour

// sendDeadlineWriter times the writes of a response: on HTTP/1.1 by moving
// the connection's write deadline, on HTTP/2 by a watchdog. Unwrap lets
// http.ResponseController reach Hijack and the deadlines underneath.
type sendDeadlineWriter struct {
	http.ResponseWriter
	rc       http.ResponseController // of the ResponseWriter, held here to save an allocation
	deadline progressDeadline        // HTTP/1.1
	watch    *writeWatchdog          // HTTP/2
}

func (w *sendDeadlineWriter) begin() {
	if w.watch != nil {
		w.watch.begin()
	} else {
		w.deadline.progress()
	}
}

func (w *sendDeadlineWriter) end() {
	if w.watch != nil {
		w.watch.end()
	}
}

func (w *sendDeadlineWriter) WriteHeader(code int) {
	w.begin()
	w.ResponseWriter.WriteHeader(code)
	w.end()
}

func (w *sendDeadlineWriter) Write(p []byte) (int, error) {
	w.begin()
	defer w.end()
	return w.ResponseWriter.Write(p)
}

func (w *sendDeadlineWriter) FlushError() error {
	w.begin()
	defer w.end()
	return w.rc.Flush()
}

func (w *sendDeadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeWatchdog cuts off an operation (a write, or a read of a request
// body) that has been in progress for longer than timeout, by calling
// expire with a time in the past. Between operations nothing is timed.
// begin and end cost two clock reads and an atomic store; the timer behind
// them is made on the first begin and fires at most once per timeout.
// begin and end are called by one goroutine at a time.
type writeWatchdog struct {
	timeout time.Duration
	expire  func(time.Time) error
	since   atomic.Int64 // UnixNano when the operation in progress began; 0 between operations

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func (d *writeWatchdog) begin() {
	d.since.Store(time.Now().UnixNano())
	if d.timer == nil {
		d.mu.Lock()
		if !d.stopped {
			d.timer = time.AfterFunc(d.timeout, d.check)
		}
		d.mu.Unlock()
	}
}

func (d *writeWatchdog) end() { d.since.Store(0) }

// check runs on the timer: it expires an operation that has gone on for
// timeout and otherwise looks again when the current one would be due.
func (d *writeWatchdog) check() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	next := d.timeout
	if since := d.since.Load(); since != 0 {
		running := time.Since(time.Unix(0, since))
		if running >= d.timeout {
			d.stopped = true
			d.expire(time.Unix(1, 0))
			return
		}
		next = d.timeout - running
	}
	d.timer.Reset(next)
}

// stop ends the watch; once it returns, expire is not called any more.
func (d *writeWatchdog) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
}

// progressDeadline moves a write deadline to timeout from now each time a
// write begins, which means the previous one finished. It re-arms at most
// once per tenth of the timeout, so most writes cost only a clock read
// (re-arming an HTTP/2 stream's deadline is a message to its connection's
// goroutine); a stalled peer is thus cut off after 0.9 to 1 times timeout.
// It is not safe for concurrent use: one writer owns it.
type progressDeadline struct {
	timeout time.Duration
	conn    writeDeadliner
	armedAt time.Time
}

// writeDeadliner is what takes a write deadline: a net.Conn, or an
// http.ResponseController for one response.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

func (d *progressDeadline) progress() {
	now := time.Now()
	if !d.armedAt.IsZero() && now.Sub(d.armedAt) < d.timeout/10 {
		return
	}
	d.armedAt = now
	// A writer without deadlines (none of net/http's) simply stays unbounded.
	d.conn.SetWriteDeadline(now.Add(d.timeout))
}
