//go:build linux

package proxyengine

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// wsRelay carries the WebSocket sessions of an engine on Linux. Once a
// session is open, its two sockets leave Go's network poller for one of a
// few event loops (relayLoopsPerCPU for each processor of the Go runtime),
// each waiting on an epoll instance of its own, and the loop moves the bytes
// of all its sessions: it reads what a socket has, follows the frames, and
// writes it to the other side, in one goroutine.
//
// Why: with a pump goroutine per direction, each small message cost its
// direction a read, a write, a second read that found nothing (EAGAIN) before
// the goroutine parked, and a trip through the scheduler to wake it again.
// The loop's sockets are edge-triggered, so a read that returns less than it
// asked for took everything and the next read waits for the next event: a
// read and a write per message, and one epoll_wait for every socket that
// became ready meanwhile. An idle session holds no goroutine and no buffer.
// The figures are in docs/BENCHMARKS.md.
//
// TLS stays with crypto/tls: each side's tls.Conn reads and writes through
// a relaySock put in place of the socket under it (trackedConn for the
// visitor's side, relayableConn for the upstream's). A relaySock never
// blocks: a read with nothing ready returns errWouldBlock, which crypto/tls
// treats as a timeout (the partial record stays buffered for the next read),
// and bytes the socket does not take are kept until it is writable again,
// meanwhile nothing more is read from the other side.
type wsRelay struct {
	mu     sync.Mutex
	loops  []*relayLoop
	next   int
	closed bool
}

// take hands s over to a loop and reports whether it did. It does not when
// a side is not a TCP socket under the wrappers the relay knows (a
// net.Pipe in tests), or an epoll instance cannot be had; the session's
// pumps carry it then. Called with the sessions' lock held, so a shutdown
// either sees s handed over or does not see s at all.
func (r *wsRelay) take(s *wsSession) bool {
	client, up := holderOf(s.client), holderOf(s.upstream)
	if client == nil || up == nil {
		return false
	}
	clientTCP, ok1 := (*client.inner()).(*net.TCPConn)
	upTCP, ok2 := (*up.inner()).(*net.TCPConn)
	if !ok1 || !ok2 {
		return false
	}
	l := r.loop()
	if l == nil {
		return false
	}
	clientFD, err := dupSocket(clientTCP)
	if err != nil {
		return false
	}
	upFD, err := dupSocket(upTCP)
	if err != nil {
		unix.Close(clientFD)
		return false
	}
	cs := &relaySock{loop: l, fd: clientFD, side: sideClient, s: s,
		local: clientTCP.LocalAddr(), remote: clientTCP.RemoteAddr(), readable: true, writable: true}
	us := &relaySock{loop: l, fd: upFD, side: sideUpstream, s: s,
		local: upTCP.LocalAddr(), remote: upTCP.RemoteAddr(), readable: true, writable: true}
	cs.peer, us.peer = us, cs
	if !l.post(relayCmd{s: s, add: [2]*relaySock{cs, us}}, func() {
		// Each original leaves Go's poller and closes its descriptor;
		// the socket lives on in the duplicate.
		*client.inner(), *up.inner() = cs, us
		clientTCP.Close()
		upTCP.Close()
		s.relay = l
	}) {
		unix.Close(clientFD)
		unix.Close(upFD)
		return false
	}
	return true
}

// relayLoopsPerCPU is how many loops share each of the Go runtime's
// processors. A loop's sessions wait while the system runs something else
// on its thread; with several loops per processor, fewer sessions wait, and
// Go runs the other loops on the processors that are free. With one loop per
// processor the 64 B echo's p99 at 32 connections was 4.8 ms, with four
// 3.5 (docs/BENCHMARKS.md).
const relayLoopsPerCPU = 4

// loop returns the loop for the next session, starting loops the first
// time, or nil.
func (r *wsRelay) loop() *relayLoop {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if r.loops == nil {
		for range relayLoopsPerCPU * runtime.GOMAXPROCS(0) {
			l, err := newRelayLoop()
			if err != nil {
				break
			}
			r.loops = append(r.loops, l)
			go l.run()
		}
		if len(r.loops) == 0 {
			r.closed = true
			return nil
		}
	}
	l := r.loops[r.next%len(r.loops)]
	r.next++
	return l
}

// close stops the loops once every session has ended.
func (r *wsRelay) close() {
	r.mu.Lock()
	r.closed = true
	loops := r.loops
	r.loops = nil
	r.mu.Unlock()
	for _, l := range loops {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		l.post(relayCmd{}, nil)
		<-l.done
	}
}

// dupSocket duplicates c's descriptor, close-on-exec and, as the original,
// non-blocking.
func dupSocket(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, dupErr
}

// relayCmd is a message to a loop: a session to take on (add), or one to
// end (stop, its reason already in endedBy), or only a wake-up.
type relayCmd struct {
	s   *wsSession
	add [2]*relaySock // the visitor's and the upstream's, for a new session
}

// relayLoop is one event loop. Its goroutine alone touches the sessions it
// carries, their connections and everything below the marked line.
type relayLoop struct {
	epfd int
	ep   *os.File // epfd in Go's poller, which wakes the loop when it has events
	poll syscall.RawConn
	wake int // an eventfd in epfd: the inbox has something

	mu      sync.Mutex
	inbox   []relayCmd
	closing bool
	dead    bool // its epoll instance failed: it takes no more sessions
	done    chan struct{}

	// Only the loop's goroutine uses these.
	socks    map[int32]*relaySock
	waiting  map[*relaySock]struct{} // holding bytes their socket has not taken
	queued   []*relaySock            // with more to read after their turn (relayTurn)
	gathered []byte                  // records for the socket relay writes to, not yet written
	requeued []*relaySock
	sessions int
	wakeBy   time.Time  // the epoll descriptor's read deadline, zero for none
	taken    []relayCmd // the inbox being worked through
	events   [128]unix.EpollEvent
	buf      [copyBufferSize]byte
}

func newRelayLoop() (*relayLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so os.NewFile puts it in Go's poller: the loop parks
	// as any goroutine waiting on a socket does, not in a system call.
	unix.SetNonblock(epfd, true)
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	f := os.NewFile(uintptr(epfd), "websocket relay")
	poll, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(wake)
		return nil, err
	}
	return &relayLoop{epfd: epfd, ep: f, poll: poll, wake: wake, done: make(chan struct{}),
		socks: map[int32]*relaySock{}, waiting: map[*relaySock]struct{}{}}, nil
}

// stop tells the loop to end s, whose endedBy says why.
func (l *relayLoop) stop(s *wsSession) { l.post(relayCmd{s: s}, nil) }

// post gives the loop a command, waking it if its inbox was empty, and
// reports whether the loop took it: a dead loop takes none. accepted, if
// not nil, runs with the inbox locked once the command is certain to be
// carried out.
func (l *relayLoop) post(c relayCmd, accepted func()) bool {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		return false
	}
	if accepted != nil {
		accepted()
	}
	wasEmpty := len(l.inbox) == 0
	l.inbox = append(l.inbox, c)
	l.mu.Unlock()
	if wasEmpty {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(l.wake, one[:])
	}
	return true
}

func (l *relayLoop) run() {
	defer func() {
		l.ep.Close()
		unix.Close(l.wake)
		close(l.done)
	}()
	for l.takeInbox() {
		n, err := l.wait()
		if err != nil && !os.IsTimeout(err) {
			// The epoll instance failed (which only a bug could make it
			// do), so nothing would wake the sessions: end them, and those
			// posted meanwhile, rather than leave them hanging. New
			// sessions go to the pumps.
			l.mu.Lock()
			l.dead = true
			l.mu.Unlock()
			l.takeInbox()
			for _, k := range l.socks {
				l.end(k.s, endShutdown)
			}
			return
		}
		for _, ev := range l.events[:n] {
			l.handle(ev)
		}
		l.relayQueued()
		if len(l.waiting) > 0 {
			l.checkSendTimeouts(time.Now())
		}
	}
}

// takeInbox carries out the posted commands and reports whether the loop
// goes on.
func (l *relayLoop) takeInbox() bool {
	l.mu.Lock()
	l.taken, l.inbox = l.inbox, l.taken[:0]
	closing := l.closing
	l.mu.Unlock()
	for i, c := range l.taken {
		switch {
		case c.add[0] != nil:
			l.add(c.s, c.add)
		case c.s != nil && !c.s.relayEnded:
			l.end(c.s, wsSide(c.s.endedBy.Load()))
		}
		l.taken[i] = relayCmd{}
	}
	return !closing || l.sessions > 0
}

// wait returns the events that are ready, parking the goroutine in Go's
// poller until there are some. While a socket holds bytes its peer has not
// taken, it wakes at least once a second to time them out.
func (l *relayLoop) wait() (int, error) {
	switch {
	case len(l.waiting) > 0:
		// Moved only once passed (or unset), not on every turn: a busy
		// loop with one slow reader would otherwise reset a timer per turn.
		if now := time.Now(); !now.Before(l.wakeBy) {
			l.wakeBy = now.Add(time.Second)
			l.ep.SetReadDeadline(l.wakeBy)
		}
	case !l.wakeBy.IsZero():
		l.ep.SetReadDeadline(time.Time{})
		l.wakeBy = time.Time{}
	}
	n := 0
	var waitErr error
	err := l.poll.Read(func(uintptr) bool {
		n, waitErr = unix.EpollWait(l.epfd, l.events[:], 0)
		if waitErr == unix.EINTR {
			n, waitErr = 0, nil
		}
		// Sockets with a turn to come must not wait for an event.
		return n > 0 || waitErr != nil || len(l.queued) > 0
	})
	if waitErr != nil {
		return 0, os.NewSyscallError("epoll_wait", waitErr)
	}
	return n, err
}

// add takes on a session: its sockets join the epoll instance, and whatever
// each side's TLS already holds is passed on.
func (l *relayLoop) add(s *wsSession, socks [2]*relaySock) {
	l.sessions++
	for _, k := range socks {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(k.fd)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, k.fd, &ev); err != nil {
			s.proxy.logger.Error("websocket relay: watching a socket", "err", err)
			l.end(s, endShutdown)
			return
		}
		l.socks[int32(k.fd)] = k
	}
	l.relay(socks[0])
	l.relay(socks[1])
}

// handle follows one event.
func (l *relayLoop) handle(ev unix.EpollEvent) {
	if ev.Fd == int32(l.wake) {
		var b [8]byte
		unix.Read(l.wake, b[:])
		return
	}
	k := l.socks[ev.Fd]
	if k == nil {
		return // closed earlier in this batch
	}
	const gone = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	if ev.Events&gone != 0 {
		k.peerClosed = true
	}
	if ev.Events&(unix.EPOLLIN|gone) != 0 {
		k.readable = true
	}
	if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !k.writable {
		k.writable = true
		l.flush(k)
	}
	if k.readable {
		l.relay(k)
	}
}

// relayTurn is how many reads a socket gets before the loop turns to the
// others: a session streaming as fast as both sides go must not hold up
// the rest of the loop's sessions. At 16 KiB a record, 256 KiB a turn.
const relayTurn = 16

// relayGatherLimit is how many bytes of records the relay gathers for a
// socket before it writes them (relay).
const relayGatherLimit = 64 << 10

// relay passes what arrives on k to its peer until k has nothing more
// ready, or the peer's socket takes no more (its EPOLLOUT resumes this), or
// its turn is over (the loop comes back to it before waiting again).
//
// The records the peer's TLS makes of it are gathered and written together
// once k has nothing more ready: crypto/tls returns one record per read and
// writes each record on its own, and a message rarely fills just one (a
// 16 KiB one with its frame header is a full record and a small one, and a
// burst of small messages is a record each). Gathered, each such burst is
// one system call instead of one per record.
func (l *relayLoop) relay(k *relaySock) {
	d, dst := k.reading(), k.peer
	ended := false
	dst.gathering = true
	for reads := 0; !k.closed && len(dst.out) == 0; reads++ {
		if reads == relayTurn {
			if !k.queued {
				k.queued = true
				l.queued = append(l.queued, k)
			}
			break
		}
		n, err := d.src.Read(l.buf[:])
		if n > 0 {
			d.scanner.scan(l.buf[:n])
			d.bytes.Add(int64(n))
			// Gathered, so the write fails only if an earlier one did.
			_, werr := d.dst.Write(l.buf[:n])
			if werr == nil && len(l.gathered) >= relayGatherLimit {
				werr = l.sendGathered(dst)
			}
			if werr != nil {
				dst.gathering = false
				l.gathered = l.gathered[:0] // not for any other socket
				l.end(k.s, dst.side)        // the destination is gone
				return
			}
		}
		if err != nil {
			ended = err != errWouldBlock
			break
		}
	}
	dst.gathering = false
	if err := l.sendGathered(dst); err != nil {
		l.end(k.s, dst.side)
		return
	}
	if ended {
		l.end(k.s, k.side)
	}
}

// sendGathered writes what relay gathered for dst.
func (l *relayLoop) sendGathered(dst *relaySock) error {
	if len(l.gathered) == 0 {
		return nil
	}
	_, err := dst.write(l.gathered)
	l.gathered = l.gathered[:0]
	return err
}

// relayQueued gives the sockets whose turn ended another.
func (l *relayLoop) relayQueued() {
	l.requeued, l.queued = l.queued, l.requeued[:0]
	for i, k := range l.requeued {
		k.queued = false
		l.relay(k)
		l.requeued[i] = nil
	}
}

// flush writes what k holds; once it is all out, what waits on the other
// side flows again.
func (l *relayLoop) flush(k *relaySock) {
	n, err := k.writeSome(k.out)
	if err != nil {
		l.end(k.s, k.side)
		return
	}
	if n > 0 {
		k.out = k.out[n:]
		k.progressed = time.Now()
	}
	if len(k.out) == 0 && k.out != nil {
		k.out = nil
		delete(l.waiting, k)
		l.relay(k.peer)
	}
}

// checkSendTimeouts ends the sessions of sockets that have taken nothing of
// what they hold for the send timeout: a peer that stops reading cannot
// hold its session, and the other side's bytes, for ever.
func (l *relayLoop) checkSendTimeouts(now time.Time) {
	for k := range l.waiting {
		if now.Sub(k.progressed) >= k.s.proxy.limits.sendTimeout {
			l.end(k.s, k.side)
		}
	}
}

// end finishes s: close frames where a side got none, both sockets closed,
// the session counted out. The first reason given is kept.
func (l *relayLoop) end(s *wsSession, reason wsSide) {
	if s.relayEnded {
		return
	}
	s.relayEnded = true
	s.stopOnce.Do(func() { s.endedBy.Store(int32(reason)) })
	l.sessions--
	s.finish()
}

// relaySock is one side's socket, carried by a loop. It is the net.Conn
// that side's TLS reads and writes through, and it never blocks.
type relaySock struct {
	loop *relayLoop
	fd   int
	side wsSide
	s    *wsSession
	peer *relaySock // the other side's

	local, remote net.Addr

	readable   bool // no read has found it empty since its last event
	writable   bool
	peerClosed bool // the peer has shut down or failed: read until the end
	queued     bool // in the loop's queue for another turn
	gathering  bool // relay is gathering what is written to it (loop.gathered)
	closed     bool
	out        []byte    // bytes written that the socket has not taken yet
	progressed time.Time // when out was last added to, or shrank
}

// reading is the direction of k's session that reads from k.
func (k *relaySock) reading() *wsDirection {
	if k.side == sideClient {
		return &k.s.up
	}
	return &k.s.down
}

// errWouldBlock is a relaySock's answer to a read with nothing ready. It is
// a timeout to crypto/tls, which keeps a partial record and tries again on
// the next read.
var errWouldBlock net.Error = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "websocket relay: nothing to read yet" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }

func (k *relaySock) Read(p []byte) (int, error) {
	if k.closed {
		return 0, net.ErrClosed
	}
	if !k.readable {
		return 0, errWouldBlock
	}
	for {
		n, err := unix.Read(k.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			k.readable = false
			return 0, errWouldBlock
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		if n < len(p) && !k.peerClosed {
			// Edge-triggered: a short read took all there was, and bytes
			// arriving after it raise a new event. Once the peer has
			// shut down no event follows, so reads go on to the end.
			k.readable = false
		}
		return n, nil
	}
}

// Write gathers p while relay gathers for this socket, and otherwise
// writes what the socket takes now and keeps the rest, which goes out when
// the socket is writable again; meanwhile the relay reads nothing more for
// it. It fails only if the socket has.
func (k *relaySock) Write(p []byte) (int, error) {
	if k.closed {
		return 0, net.ErrClosed
	}
	if k.gathering {
		k.loop.gathered = append(k.loop.gathered, p...)
		return len(p), nil
	}
	return k.write(p)
}

// write is Write without gathering.
func (k *relaySock) write(p []byte) (int, error) {
	if len(k.out) > 0 {
		k.out = append(k.out, p...)
		return len(p), nil
	}
	n, err := k.writeSome(p)
	if err != nil {
		return n, err
	}
	if n < len(p) {
		k.out = append([]byte(nil), p[n:]...)
		k.progressed = time.Now()
		k.loop.waiting[k] = struct{}{}
	}
	return len(p), nil
}

// writeSome writes as much of p as the socket takes while it is writable,
// and notes when it is not: a short write means its buffer is full, and
// the next EPOLLOUT says there is room again.
func (k *relaySock) writeSome(p []byte) (int, error) {
	n := 0
	for n < len(p) && k.writable {
		m, err := unix.Write(k.fd, p[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			k.writable = false
		case err != nil:
			return n, os.NewSyscallError("write", err)
		default:
			n += m
			if n < len(p) {
				k.writable = false
			}
		}
	}
	return n, nil
}

// Close closes the socket. Only the loop's goroutine calls it, through
// the session's finish.
func (k *relaySock) Close() error {
	if k.closed {
		return nil
	}
	k.closed = true
	unix.EpollCtl(k.loop.epfd, unix.EPOLL_CTL_DEL, k.fd, nil)
	delete(k.loop.socks, int32(k.fd))
	delete(k.loop.waiting, k)
	k.out = nil
	return unix.Close(k.fd)
}

func (k *relaySock) LocalAddr() net.Addr  { return k.local }
func (k *relaySock) RemoteAddr() net.Addr { return k.remote }

// Deadlines mean nothing to a socket that never blocks; crypto/tls sets
// them around its close_notify.
func (k *relaySock) SetDeadline(time.Time) error      { return nil }
func (k *relaySock) SetReadDeadline(time.Time) error  { return nil }
func (k *relaySock) SetWriteDeadline(time.Time) error { return nil }
