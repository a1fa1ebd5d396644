package proxyengine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// listen binds addr for the named purpose ("HTTPS", "HTTP", "status") and
// explains a failure in words that say how to fix it.
func listen(purpose, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Purpose: purpose, Addr: addr, Err: err}
	}
	return ln, nil
}

// A ListenError is a failure to bind one of Gatehouse's listen addresses.
// Its message says why, in plain words, and what to do.
type ListenError struct {
	Purpose string // "HTTPS", "HTTP" or "status"
	Addr    string
	Err     error
}

func (e *ListenError) Unwrap() error { return e.Err }

func (e *ListenError) Error() string {
	_, port, _ := splitListenAddr(e.Addr)
	switch {
	case errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, os.ErrPermission):
		return fmt.Sprintf("cannot listen for %s on %s: ports below 1024 need privileges. Allow this program with `sudo setcap cap_net_bind_service=+ep %s`, or lower the limit with `sudo sysctl net.ipv4.ip_unprivileged_port_start=%d`, or listen on %d and forward port %d to it on your router",
			e.Purpose, e.Addr, executablePath(), port, unprivilegedAlternative(port), port)
	case errors.Is(e.Err, syscall.EADDRINUSE):
		return fmt.Sprintf("cannot listen for %s on %s: another program is using port %d. Stop it (`sudo ss -ltnp 'sport = :%d'` shows which), or choose another port",
			e.Purpose, e.Addr, port, port)
	case errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("cannot listen for %s on %s: this machine has no such address. Use :%d to listen on every address", e.Purpose, e.Addr, port)
	}
	return fmt.Sprintf("cannot listen for %s on %s: %v", e.Purpose, e.Addr, e.Err)
}

// unprivilegedAlternative suggests a port above 1024 for a privileged one.
func unprivilegedAlternative(port int) int {
	switch port {
	case 80:
		return 8080
	case 443:
		return 8443
	}
	return port + 8000
}

func executablePath() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/path/to/gatehouse"
}
