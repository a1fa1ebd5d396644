package ui

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
)

// ErrAlreadyRunning is ClaimInstance's answer when another Gatehouse
// window of this user answered: it was asked to come forward.
var ErrAlreadyRunning = errors.New("Gatehouse is already open; its window was brought forward")

// instanceAsk is what a second launch sends the first, which answers
// instanceAck once it has been told.
const (
	instanceAsk  = "show\n"
	instanceAck  = "ok\n"
	instanceWait = 2 * time.Second
)

// InstanceSocket is this user's app socket: $XDG_RUNTIME_DIR/gatehouse/app.sock,
// or a directory of this user's in the temporary directory without one.
func InstanceSocket() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "gatehouse", "app.sock")
	}
	return filepath.Join(os.TempDir(), "gatehouse-"+strconv.Itoa(os.Getuid()), "app.sock")
}

// An Instance is this user's one Gatehouse window: it listens on a
// private socket (mode 0600 in a 0700 directory), and another launch,
// finding it there, asks it to show its window and exits.
type Instance struct {
	ln   net.Listener
	path string

	mu   sync.Mutex
	show func() // on the Fyne goroutine; nil while no window is there
}

// ClaimInstance makes this process the user's Gatehouse window, listening
// at path; if another one answers there, it asks it to show its window and
// returns ErrAlreadyRunning. A socket nothing answers on is a leftover of
// a crash, and is replaced. The socket's directory must be this user's
// alone: in the temporary directory another user could have made it first
// and put there a socket that answers for Gatehouse.
func ClaimInstance(path string) (*Instance, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := privatefile.CheckNotShared(filepath.Dir(path), "app's socket directory"); err != nil {
		return nil, err
	}
	if askShow(path) == nil {
		return nil, ErrAlreadyRunning
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("the app's socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	in := &Instance{ln: ln, path: path}
	go in.serve()
	return in, nil
}

// askShow asks the instance at path to show its window.
func askShow(path string) error {
	c, err := net.DialTimeout("unix", path, instanceWait)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(instanceWait))
	if _, err := c.Write([]byte(instanceAsk)); err != nil {
		return err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || answer != instanceAck {
		return fmt.Errorf("no answer from %s: %v", path, err)
	}
	return nil
}

func (in *Instance) serve() {
	for {
		c, err := in.ln.Accept()
		if err != nil {
			return
		}
		go in.answer(c)
	}
}

func (in *Instance) answer(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(instanceWait))
	ask, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || ask != instanceAsk {
		return
	}
	in.mu.Lock()
	show := in.show
	in.mu.Unlock()
	if show != nil {
		onFyne(show)
	}
	c.Write([]byte(instanceAck))
}

// onShow sets what a second launch's request runs, on the Fyne goroutine
// (nil: nothing).
func (in *Instance) onShow(f func()) {
	in.mu.Lock()
	in.show = f
	in.mu.Unlock()
}

// Close stops answering and removes the socket.
func (in *Instance) Close() error {
	err := in.ln.Close()
	os.Remove(in.path)
	return err
}
