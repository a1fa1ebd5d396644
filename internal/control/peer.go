package control

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A peerListener admits only connections whose peer (SO_PEERCRED) may use
// the API; the socket file's mode already keeps others from connecting,
// and this holds even where the file's mode is loosened by hand.
type peerListener struct {
	net.Listener
	allow  func(uid, gid int) bool
	logger *slog.Logger

	// refusing holds a token per refusal being answered; when all are
	// taken, a refused peer's connection is closed without an answer, so
	// one connecting in a loop cannot pile up goroutines.
	refusing chan struct{}
	// loggedAt is when a refusal was last logged (Unix ns): at most one a
	// second reaches the log.
	loggedAt atomic.Int64
}

func newPeerListener(ln net.Listener, allow func(uid, gid int) bool, logger *slog.Logger) *peerListener {
	return &peerListener{Listener: ln, allow: allow, logger: logger, refusing: make(chan struct{}, 16)}
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, gid, err := peerCred(c)
		if err == nil && l.allow(uid, gid) {
			return c, nil
		}
		if now, last := time.Now().UnixNano(), l.loggedAt.Load(); now-last >= int64(time.Second) && l.loggedAt.CompareAndSwap(last, now) {
			l.logger.Warn("control socket: refused a connection", "uid", uid, "err", err)
		}
		select {
		case l.refusing <- struct{}{}:
			go func() {
				refuse(c)
				<-l.refusing
			}()
		default:
			c.Close()
		}
	}
}

// refusal is the whole answer to a peer that may not use the API, sent
// before its request is read so that it learns why rather than seeing the
// connection drop.
var refusal = func() string {
	body := `{"error":"` + errNotAllowed + `"}` + "\n"
	return "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// errNotAllowed says what to do about a refusal.
const errNotAllowed = "this user may not use the Gatehouse service: add it to the gatehouse group (sudo usermod -aG gatehouse $USER, then log in again), or run as root"

func refuse(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write([]byte(refusal))
	// Read what the peer sent, so closing does not reset the connection
	// before it has read the answer.
	io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// peerCred is the user and group IDs of the process at the other end of
// a Unix socket.
func peerCred(c net.Conn) (uid, gid int, err error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, -1, fmt.Errorf("not a Unix socket connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, -1, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return -1, -1, err
	}
	if credErr != nil {
		return -1, -1, credErr
	}
	return int(cred.Uid), int(cred.Gid), nil
}

// peerPolicy sets the socket's mode and returns who may talk to it: root
// and this service's user, and with Group its members.
//
// With Group the socket is 0666 in a directory anyone may enter, and the
// peer check alone decides, reading the group database (at most once per
// memberTTL for each user): a desktop user added to the group (as the
// desktop app's install does) is admitted within seconds, where a 0660
// socket would refuse them until they logged in again. The service never
// needs chown, which its sandbox forbids.
func (s *Server) peerPolicy(path string) (func(uid, gid int) bool, error) {
	self := os.Geteuid()
	if s.Group == "" {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		return func(uid, _ int) bool { return uid == 0 || uid == self }, nil
	}
	g, err := user.LookupGroup(s.Group)
	if err != nil {
		return nil, fmt.Errorf("control socket: group %q: %w", s.Group, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	members := &memberCache{ttl: memberTTL, lookup: func(uid int) bool {
		u, err := user.LookupId(strconv.Itoa(uid))
		if err != nil {
			return false
		}
		groups, err := u.GroupIds()
		return err == nil && slices.Contains(groups, g.Gid)
	}}
	return func(uid, gid int) bool {
		return uid == 0 || uid == self || strconv.Itoa(gid) == g.Gid || members.member(uid)
	}, nil
}

// memberTTL is how long the group database's answer for a user is kept.
const memberTTL = 2 * time.Second

// memberCache keeps the group database's answer per user for ttl: reading
// the database (or asking NSS, perhaps LDAP) happens in Accept, and a peer
// connecting in a loop would otherwise make every connection wait on it.
type memberCache struct {
	ttl    time.Duration
	lookup func(uid int) bool

	mu      sync.Mutex
	answers map[int]memberAnswer // one per user that connected
}

type memberAnswer struct {
	member bool
	at     time.Time
}

func (m *memberCache) member(uid int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.answers[uid]; ok && time.Since(a.at) < m.ttl {
		return a.member
	}
	if m.answers == nil {
		m.answers = map[int]memberAnswer{}
	}
	a := memberAnswer{member: m.lookup(uid), at: time.Now()}
	m.answers[uid] = a
	return a.member
}
