package proxyengine

import (
	"net/http"
	"time"
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
)

// clientLimits holds the limits an engine applies; tests shorten them
// through Engine.limits before Start.
type clientLimits struct {
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	sendTimeout       time.Duration
}

var defaultClientLimits = clientLimits{
	readHeaderTimeout: readHeaderTimeout,
	idleTimeout:       clientIdleTimeout,
	maxHeaderBytes:    maxHeaderBytes,
	sendTimeout:       clientSendTimeout,
}

// server returns an http.Server for handler under these limits. Writes are
// bounded per write by sendTimeout: HTTP/2 connections by WriteByteTimeout,
// each request's response by withSendTimeout.
func (l clientLimits) server(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           l.withSendTimeout(handler),
		ReadHeaderTimeout: l.readHeaderTimeout,
		IdleTimeout:       l.idleTimeout,
		MaxHeaderBytes:    l.maxHeaderBytes,
		HTTP2:             &http.HTTP2Config{WriteByteTimeout: l.sendTimeout},
	}
}

// withSendTimeout gives every response a write deadline that moves forward
// as the response is written, so a client that stops reading is cut off
// after sendTimeout while one that reads slowly but steadily is served to
// the end. Arming it as the request starts also replaces the deadline an
// earlier response left on a keepalive connection.
func (l clientLimits) withSendTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &sendDeadlineWriter{ResponseWriter: w, rc: *http.NewResponseController(w)}
		sw.deadline = progressDeadline{timeout: l.sendTimeout, conn: &sw.rc}
		sw.deadline.progress()
		next.ServeHTTP(sw, r)
	})
}

// sendDeadlineWriter re-arms the write deadline as a response is written.
// Unwrap lets http.ResponseController reach Hijack and the deadlines
// underneath.
type sendDeadlineWriter struct {
	http.ResponseWriter
	rc       http.ResponseController // of the ResponseWriter, held here to save an allocation
	deadline progressDeadline
}

func (w *sendDeadlineWriter) WriteHeader(code int) {
	w.deadline.progress()
	w.ResponseWriter.WriteHeader(code)
}

func (w *sendDeadlineWriter) Write(p []byte) (int, error) {
	w.deadline.progress()
	return w.ResponseWriter.Write(p)
}

func (w *sendDeadlineWriter) FlushError() error {
	w.deadline.progress()
	return w.rc.Flush()
}

func (w *sendDeadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
