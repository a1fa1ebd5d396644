package proxyengine

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// visitorConns counts each visitor's open connections to the visitor ports
// (HTTPS and plain HTTP together) and, once the engine is busy, refuses
// one past the limit, so one host cannot take the process's file
// descriptors and memory from everyone else: without a cap, a single
// address that opens connections and idles on them (two minutes each
// after a request) could hold all of them. Until then nothing is short
// and no one is refused. A visitor is an IPv4 address or an IPv6 /64, as
// for the per-visitor request limit. The engine owns one for its
// lifetime; it carries across configuration changes like the connections
// it counts.
type visitorConns struct {
	// limit is the most connections one visitor may hold open while the
	// engine is busy; 0 means no limit. Set before the listeners accept.
	limit int
	// busyAt is the number of open connections, every visitor's
	// together (exempt ones too), from which limit applies; 0 means
	// always.
	busyAt int
	// exempt reports whether connections from an address are not
	// counted: loopback (a local tunnel such as cloudflared brings every
	// visitor from 127.0.0.1) and the configured trusted proxies, which
	// carry many visitors each.
	exempt func(netip.Addr) bool
	// refusedNote is called for a refused connection, at most once per
	// refusalNoteEvery, with the visitor and the refusals since the last
	// note.
	refusedNote func(visitor netip.Prefix, refusals uint64)

	open    visitorCounts
	total   atomic.Int64 // open connections, exempt ones included
	refused atomic.Uint64

	noteMu   sync.Mutex
	noted    uint64    // refused at the last note
	lastNote time.Time // when refusedNote was last called
}

// refusalNoteEvery spaces the log lines and events about refused
// connections, so a flood of them does not flood the log as well.
const refusalNoteEvery = 10 * time.Second

// admit counts a connection from remote in. It returns the function that
// counts it out when it closes, or ok false when the engine is busy and
// the connection's visitor already holds the limit.
func (v *visitorConns) admit(remote net.Addr) (release func(), ok bool) {
	if v.limit <= 0 {
		return func() {}, true
	}
	busy := v.total.Add(1) > int64(v.busyAt)
	ip := remoteIP(remote.String())
	if v.exempt != nil && v.exempt(ip) {
		return v.releaser(func() {}), true
	}
	key, limit := visitorPrefix(ip), math.MaxInt
	if busy {
		limit = v.limit
	}
	if !v.open.acquire(key, limit) {
		v.total.Add(-1)
		v.noteRefusal(key)
		return nil, false
	}
	return v.releaser(func() { v.open.release(key) }), true
}

// releaser returns the function that counts a connection out, once
// however often it is called.
func (v *visitorConns) releaser(release func()) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			release()
			v.total.Add(-1)
		})
	}
}

// noteRefusal counts a refused connection and calls refusedNote if the
// last call was refusalNoteEvery ago.
func (v *visitorConns) noteRefusal(key netip.Prefix) {
	refusals := v.refused.Add(1)
	v.noteMu.Lock()
	note := time.Since(v.lastNote) >= refusalNoteEvery
	since := refusals - v.noted
	if note {
		v.lastNote, v.noted = time.Now(), refusals
	}
	v.noteMu.Unlock()
	if note && v.refusedNote != nil {
		v.refusedNote(key, since)
	}
}

// accept accepts from ln until a connection is admitted, and returns it
// with the function that counts it out. A refused connection is reset at
// once: no TLS handshake is spent on it, and no TIME_WAIT is left behind.
func (v *visitorConns) accept(ln net.Listener) (net.Conn, func(), error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil, nil, err
		}
		if release, ok := v.admit(c.RemoteAddr()); ok {
			return c, release, nil
		}
		if tcp, ok := c.(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
		c.Close()
	}
}

// limitingListener admits the plain port's connections; the HTTPS port's
// are admitted by trackingListener, whose connections count themselves
// out.
type limitingListener struct {
	net.Listener
	v *visitorConns
}

func (l limitingListener) Accept() (net.Conn, error) {
	c, release, err := l.v.accept(l.Listener)
	if err != nil {
		return nil, err
	}
	return &admittedConn{Conn: c, release: release}, nil
}

// admittedConn counts itself out of its visitor's connections on Close.
type admittedConn struct {
	net.Conn
	release func()
}

func (c *admittedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// CloseWrite half-closes the TCP connection underneath. net/http does so
// before it closes a connection after an answer, and waits a moment, so a
// visitor still sending (a body the redirect did not read) gets the answer
// before the reset that closing with unread bytes causes.
func (c *admittedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// visitorPrefix is the visitor an address belongs to for the per-visitor
// limits: an IPv4 address, or an IPv6 address's /64, since one host
// usually holds a whole /64 and can pick addresses from it.
func visitorPrefix(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	pfx, _ := ip.Prefix(bits) // an invalid address gives the zero Prefix, one key for all such
	return pfx
}

// visitorCounts counts what each visitor holds: its upstream requests in
// flight (a generation's), or its open connections (visitorConns).
type visitorCounts struct {
	mu sync.Mutex
	n  map[netip.Prefix]int
}

// acquire counts one more for key unless it already holds limit.
func (v *visitorCounts) acquire(key netip.Prefix, limit int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.n == nil {
		v.n = map[netip.Prefix]int{}
	}
	if v.n[key] >= limit {
		return false
	}
	v.n[key]++
	return true
}

func (v *visitorCounts) release(key netip.Prefix) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.n[key] <= 1 {
		delete(v.n, key)
	} else {
		v.n[key]--
	}
}
