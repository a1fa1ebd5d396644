//go:build unix

package proxyengine

import (
	"net"
	"syscall"
)

// rawConnOf returns the socket under c, through TLS and the wrapper that
// holds it (holderOf), or nil when there is none (a net.Pipe in tests): a
// pump over such a connection never parks.
func rawConnOf(c net.Conn) syscall.RawConn {
	if h := holderOf(c); h != nil {
		c = *h.inner()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// waitReadable blocks until rc's socket has bytes to read, has ended, or
// its read deadline passes, without reading anything: the bytes stay for
// the TLS layer above. It peeks once, since data that arrived before the
// wait began raises no new readiness event, then sleeps in the poller.
func waitReadable(rc syscall.RawConn) error {
	peeked := false
	return rc.Read(func(fd uintptr) bool {
		if peeked {
			// Woken by the poller. A spurious wake-up only means the read
			// that follows blocks, as it would have without parking.
			return true
		}
		peeked = true
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Anything but "nothing yet" (data, EOF, an error) is for the read.
		return err != syscall.EAGAIN
	})
}
