// Package ports binds Gatehouse's listen addresses and explains a failure
// in words that say how to fix it: a port in use (naming the process that
// holds it, from /proc), a privileged port, an address this machine lacks.
// The engine listens through it and the pre-flight port check tries it, so
// both explain a failure the same way.
package ports

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Listen binds addr for the named purpose ("HTTPS", "HTTP", "status") and
// explains a failure in words that say how to fix it.
func Listen(purpose, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		le := &ListenError{Purpose: purpose, Addr: addr, Err: err}
		if errors.Is(err, syscall.EADDRINUSE) {
			if _, port, perr := SplitAddr(addr); perr == nil {
				le.Owner = FindOwner(port)
			}
		}
		return nil, le
	}
	return ln, nil
}

// A ListenError is a failure to bind one of Gatehouse's listen addresses.
// Its message says why, in plain words, and what to do; Reason and Fix give
// the two halves apart, as the pre-flight port check shows them.
type ListenError struct {
	Purpose string // "HTTPS", "HTTP" or "status"
	Addr    string
	Err     error
	Owner   *PortOwner // the process holding the port, when it is in use and that can be found
}

func (e *ListenError) Unwrap() error { return e.Err }

func (e *ListenError) Error() string {
	return fmt.Sprintf("cannot listen for %s on %s: %s. %s", e.Purpose, e.Addr, e.Reason(), capitalize(e.Fix()))
}

// Reason says why the address cannot be bound.
func (e *ListenError) Reason() string {
	_, port, _ := SplitAddr(e.Addr)
	switch {
	case errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, os.ErrPermission):
		return fmt.Sprintf("ports below %d need privileges, and port %d is one of them", UnprivilegedStart(), port)
	case errors.Is(e.Err, syscall.EADDRINUSE):
		if e.Owner != nil {
			return fmt.Sprintf("port %d is already in use by %s", port, e.Owner)
		}
		return fmt.Sprintf("another program is already using port %d", port)
	case errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		return "this machine has no such address"
	}
	return e.Err.Error()
}

// Fix says what to do about it.
func (e *ListenError) Fix() string {
	_, port, _ := SplitAddr(e.Addr)
	switch {
	case errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, os.ErrPermission):
		return fmt.Sprintf("allow this program with `sudo setcap cap_net_bind_service=+ep %s`, or lower the limit with `sudo sysctl net.ipv4.ip_unprivileged_port_start=%d`, or listen on %d and forward port %d to it on your router",
			executablePath(), port, unprivilegedAlternative(port), port)
	case errors.Is(e.Err, syscall.EADDRINUSE):
		switch {
		case e.Owner == nil:
			return fmt.Sprintf("stop it (`sudo ss -ltnp 'sport = :%d'` shows which), or choose another port", port)
		case e.Owner.PID == os.Getpid():
			return "this program already listens there, probably as the running proxy; stop it before starting another, or choose another port"
		case e.Owner.IsGatehouse():
			return fmt.Sprintf("Gatehouse is already running (perhaps as a service: `systemctl status %d` says which); that is expected if it serves these settings, otherwise stop it or choose another port", e.Owner.PID)
		case e.Owner.Command == "docker-proxy":
			return fmt.Sprintf("a Docker container publishes port %d; change or remove its ports: mapping, or choose another port", port)
		case webServers[e.Owner.Command]:
			return fmt.Sprintf("another web server holds the port that Gatehouse is to take over; stop and disable it (`sudo systemctl disable --now %s`), or choose another port", e.Owner.Command)
		case e.Owner.PID != 0:
			return fmt.Sprintf("stop %s, or choose another port (`systemctl status %d` names the service it belongs to, if any)", e.Owner, e.Owner.PID)
		}
		return fmt.Sprintf("stop it (`sudo ss -ltnp 'sport = :%d'` shows which), or choose another port", port)
	case errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("use :%d to listen on every address, or one of this machine's addresses", port)
	}
	return "check the address, or choose another port"
}

// webServers are the programs whose ports Gatehouse usually takes over.
var webServers = map[string]bool{
	"nginx": true, "apache2": true, "httpd": true, "caddy": true, "traefik": true, "haproxy": true, "lighttpd": true,
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
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

// UnprivilegedStart is Linux's net.ipv4.ip_unprivileged_port_start,
// or its default of 1024 where that cannot be read.
func UnprivilegedStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

func executablePath() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/path/to/gatehouse"
}

// A PortOwner is the process listening on a port, as far as this user can
// see: without root, other users' processes show only their user ID.
type PortOwner struct {
	PID     int    `json:"pid,omitempty"`     // 0 when the process could not be found
	Command string `json:"command,omitempty"` // its name, as in /proc/PID/comm
	UID     int    `json:"uid"`               // the user owning the socket
	User    string `json:"user,omitempty"`    // that user's name, if known
}

// IsGatehouse reports whether the owner is this program itself or another
// copy of it, such as the service while `gatehouse check` runs.
func (o *PortOwner) IsGatehouse() bool {
	if o.PID == os.Getpid() {
		return true
	}
	self, err := os.ReadFile("/proc/self/comm")
	return err == nil && o.PID != 0 && o.Command == strings.TrimSpace(string(self))
}

func (o *PortOwner) String() string {
	switch {
	case o.PID == os.Getpid():
		return fmt.Sprintf("this program itself (pid %d)", o.PID)
	case o.PID != 0 && o.Command != "":
		return fmt.Sprintf("%s (pid %d)", o.Command, o.PID)
	case o.PID != 0:
		return fmt.Sprintf("process %d", o.PID)
	}
	if o.User != "" {
		return fmt.Sprintf("a program of user %s (uid %d)", o.User, o.UID)
	}
	return fmt.Sprintf("a program of user ID %d", o.UID)
}

// FindOwner finds the process listening on TCP port through Linux's
// /proc: the socket's inode from /proc/net/tcp and tcp6, then the process
// holding that inode among /proc/*/fd. It returns nil when nothing can be
// learned (another system, or no listening socket visible here) and a
// PortOwner without PID when the process belongs to another user.
func FindOwner(port int) *PortOwner {
	var owner *PortOwner
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, s := range listeningSockets(table, port) {
			inodes[s.inode] = true
			if owner == nil {
				owner = &PortOwner{UID: s.uid}
				if u, err := user.LookupId(strconv.Itoa(s.uid)); err == nil {
					owner.User = u.Username
				}
			}
		}
	}
	if owner == nil {
		return nil
	}
	if pid := findSocketProcess(inodes); pid != 0 {
		owner.PID = pid
		if comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); err == nil {
			owner.Command = strings.TrimSpace(string(comm))
		}
	}
	return owner
}

type procSocket struct {
	inode string
	uid   int
}

// listeningSockets parses a /proc/net/tcp table for sockets in LISTEN state
// (0A) on port, whatever their address.
func listeningSockets(table string, port int) []procSocket {
	f, err := os.Open(table)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []procSocket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); !ok || err != nil || int(p) != port {
			continue
		}
		uid, _ := strconv.Atoi(fields[7])
		out = append(out, procSocket{inode: fields[9], uid: uid})
	}
	return out
}

// findSocketProcess returns the first process with an open file descriptor
// on one of the socket inodes, or 0. Processes this user may not inspect
// are passed over.
func findSocketProcess(inodes map[string]bool) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				return pid
			}
		}
	}
	return 0
}

// SplitAddr splits host:port, requiring a numeric port.
func SplitAddr(addr string) (host string, port int, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, errors.New("missing port")
	}
	host, p := addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return host, port, nil
}
