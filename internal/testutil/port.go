package testutil

import (
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// A ReservedPort holds a loopback TCP port for a whole test, where a port
// released for later use could be taken meanwhile: Pebble's validator
// needs ports fixed before the server under test starts, and a test of an
// unreachable upstream needs a port that stays closed. The socket is bound
// but not listening, so connections are refused (a port the validator must
// find closed stays closed) until Listener is first called; each listener
// shares the socket, so a server closing its own does not give the port up.
type ReservedPort struct {
	Port int
	Addr string // 127.0.0.1:Port

	sock       *os.File
	listenOnce sync.Once
	listenErr  error
}

// ReservePort binds a loopback port until the test ends.
func ReservePort(t testing.TB) *ReservedPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(fd), "reserved port")
	t.Cleanup(func() { sock.Close() })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	return &ReservedPort{Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), sock: sock}
}

// Listener starts the port listening and returns a listener of its own on
// the socket.
func (p *ReservedPort) Listener() (net.Listener, error) {
	p.listenOnce.Do(func() {
		if conn, err := p.sock.SyscallConn(); err != nil {
			p.listenErr = err
		} else if err := conn.Control(func(fd uintptr) { p.listenErr = syscall.Listen(int(fd), syscall.SOMAXCONN) }); err != nil {
			p.listenErr = err
		}
	})
	if p.listenErr != nil {
		return nil, p.listenErr
	}
	return net.FileListener(p.sock)
}
