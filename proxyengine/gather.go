package proxyengine

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// gatherMax is how much a writeGatherer takes before a write waits for the
// socket: four full TLS records, which one system call sends for little
// more than the cost of one.
const gatherMax = 64 << 10

// gatherCloseDrain is how long what is still pending when the connection
// is closed may take to send, as crypto/tls bounds its close_notify alert.
const gatherCloseDrain = 5 * time.Second

var gatherBuffers = sync.Pool{New: func() any {
	// Room for gatherMax and the record that takes it past.
	b := make([]byte, 0, gatherMax+16<<10+64)
	return &b
}}

// putGatherBuffer empties b and gives it back to gatherBuffers.
func putGatherBuffer(b *[]byte) {
	*b = (*b)[:0]
	gatherBuffers.Put(b)
}

// writeGatherer sends what a visitor's connection writes with as few system
// calls as the visitor's pace allows: an HTTP/2 connection's for good, an
// HTTP/1.1 connection's while it sends a large answer (trackedConn's
// gatherWrites and stopGathering).
//
// Why: Go's HTTP/2 server writes each DATA frame, HEADERS frame and
// END_STREAM marker to the TLS connection on its own, and crypto/tls makes
// each one a record and a write(2). On this machine a write to a socket
// costs about 10 µs whether it carries 4 KiB or 64 KiB (page-table
// isolation without PCID makes every system call expensive): a 100 KiB
// answer took nine of them. A write here copies the record and returns; a
// goroutine sends everything that has gathered meanwhile in one write
// while the server encrypts the next frames (docs/BENCHMARKS.md).
//
// Past gatherMax a write waits for the socket, so a visitor that reads
// slowly still holds the server back as before; a connection holds at most
// gatherMax and a record pending and one batch being written, and nothing
// once it is idle (the buffers go back to a pool). Errors are the socket's,
// reported by the next write. Every system call to the socket is bounded by
// timeout as http.HTTP2Config.WriteByteTimeout bounds the server's own
// (which the connection then no longer passes on: the server would clear
// the deadline while the gatherer's write waits).
type writeGatherer struct {
	conn    net.Conn      // the socket
	timeout time.Duration // per system call, while the visitor takes nothing
	drain   time.Duration // gatherCloseDrain; tests shorten it

	mu      sync.Mutex
	drained sync.Cond // signalled when the sender takes pending or stops
	pending *[]byte   // written and not yet taken by the sender; nil when empty and idle
	sending bool      // the sender goroutine runs
	closed  bool      // close ran: the sender closes the socket when done
	drainBy time.Time // once closed: when the sender gives up on what is pending
	err     error     // the first failed write's; every later write fails with it
}

func newWriteGatherer(conn net.Conn, timeout time.Duration) *writeGatherer {
	g := &writeGatherer{conn: conn, timeout: timeout, drain: gatherCloseDrain}
	g.drained.L = &g.mu
	return g
}

// write takes p, starting the sender if it is idle.
func (g *writeGatherer) write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.err == nil && !g.closed && g.pending != nil && len(*g.pending) >= gatherMax {
		g.drained.Wait()
	}
	switch {
	case g.err != nil:
		return 0, g.err
	case g.closed:
		return 0, net.ErrClosed
	}
	if g.pending == nil {
		g.pending = gatherBuffers.Get().(*[]byte)
	}
	*g.pending = append(*g.pending, p...)
	if !g.sending {
		g.sending = true
		go g.send()
	}
	return len(p), nil
}

// send writes what is pending, in one system call each time, until nothing
// is, the socket fails or, once closed, it has sent what was left.
func (g *writeGatherer) send() {
	var batch *[]byte
	for {
		g.mu.Lock()
		if batch != nil {
			putGatherBuffer(batch)
			batch = nil
		}
		if g.pending == nil || len(*g.pending) == 0 || g.err != nil {
			if g.pending != nil {
				putGatherBuffer(g.pending)
				g.pending = nil
			}
			g.sending = false
			closed := g.closed
			g.drained.Broadcast()
			g.mu.Unlock()
			if closed {
				g.conn.Close()
			}
			return
		}
		batch, g.pending = g.pending, nil
		g.drained.Broadcast()
		g.mu.Unlock()

		if err := g.writeAll(*batch); err != nil {
			g.mu.Lock()
			g.err = err
			g.mu.Unlock()
		}
	}
}

// flushed waits until the sender has sent what is pending, and returns the
// socket's error, if any.
func (g *writeGatherer) flushed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.sending {
		g.drained.Wait()
	}
	return g.err
}

// writeAll writes b, failing when timeout passes without a byte taken or,
// once the connection is closed, when its drain time is up.
func (g *writeGatherer) writeAll(b []byte) error {
	for len(b) > 0 {
		g.conn.SetWriteDeadline(g.writeDeadline())
		n, err := g.conn.Write(b)
		b = b[n:]
		if err != nil && (n == 0 || !errors.Is(err, os.ErrDeadlineExceeded)) {
			return err
		}
	}
	return nil
}

// writeDeadline is the deadline of the sender's next system call.
func (g *writeGatherer) writeDeadline() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return g.drainBy
	case g.timeout > 0:
		return time.Now().Add(g.timeout)
	}
	return time.Time{}
}

// close closes the socket once what is pending is sent (within drain, how
// ever slowly the visitor reads), and at once if nothing is. A read waiting
// on the socket ends now.
func (g *writeGatherer) close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		g.drainBy = time.Now().Add(g.drain)
	}
	sending, drainBy := g.sending, g.drainBy
	g.drained.Broadcast()
	g.mu.Unlock()
	if !sending {
		return g.conn.Close()
	}
	g.conn.SetReadDeadline(time.Unix(1, 0))
	g.conn.SetWriteDeadline(drainBy)
	return nil
}
