package ui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/control"
)

const (
	// installTimeout bounds the install command, password prompt included.
	installTimeout = 5 * time.Minute
	// serviceWait is how long the app waits for a service just installed
	// to answer on its socket.
	serviceWait = time.Minute
	// servicePoll is how often it looks meanwhile.
	servicePoll = 300 * time.Millisecond
)

// runPkexec runs args as root through pkexec, which asks for a password in
// a dialog of the desktop's own. Without pkexec it returns an error
// wrapping exec.ErrNotFound.
func runPkexec(ctx context.Context, args []string) (string, error) {
	pkexec, err := exec.LookPath("pkexec")
	if err != nil {
		return "", fmt.Errorf("pkexec is not installed: %w", exec.ErrNotFound)
	}
	out, err := exec.CommandContext(ctx, pkexec, args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case 126:
			err = errors.New("the password was not given, so nothing was installed")
		case 127:
			err = errors.New("the system refused: this user may not install services")
		}
	}
	return string(out), err
}

// sessionBusAvailable reports whether this session has a D-Bus that
// answers, which a system tray needs on Linux and the BSDs: fyne.io/systray
// registers the icon through it, and (v1.12.2 included) panics on quit
// when it could not connect. Elsewhere the tray always works.
func sessionBusAvailable() bool {
	switch runtime.GOOS {
	case "linux", "freebsd", "openbsd", "netbsd":
	default:
		return true
	}
	addrs := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addrs == "" {
		addrs = "unix:path=/run/user/" + strconv.Itoa(os.Getuid()) + "/bus"
	}
	for _, addr := range strings.Split(addrs, ";") {
		if busAnswers(addr) {
			return true
		}
	}
	return false
}

// busAnswers reports whether a D-Bus address (such as unix:path=/run/user/1000/bus)
// accepts a connection. Transports other than Unix sockets are taken on
// trust.
func busAnswers(addr string) bool {
	transport, params, ok := strings.Cut(addr, ":")
	if !ok {
		return false
	}
	if transport != "unix" {
		return true
	}
	for _, kv := range strings.Split(params, ",") {
		key, value, _ := strings.Cut(kv, "=")
		path := ""
		switch key {
		case "path":
			path = value
		case "abstract":
			path = "@" + value
		default:
			continue
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '~' || r == ':' || r == '=' ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// serviceInstall is the screen shown while the service is installed and
// started: what runs, a spinner, and what to do when it fails.
type serviceInstall struct {
	stop context.CancelFunc // drops the command's wait and the wait for the socket

	heading *widget.Label
	spinner *widget.Activity
	status  *widget.Label
	output  *widget.Label // what the install command printed
	command *widget.Entry // the command to type in a terminal, when pkexec is missing
	cmdBox  fyne.CanvasObject
	buttons *fyne.Container
	root    fyne.CanvasObject
}

func (s *serviceInstall) cancel() {
	if s.stop != nil {
		s.stop()
	}
}

// installArgs is the command that installs the service from the saved setup.
func (g *App) installArgs() []string {
	return []string{g.opts.Executable, "service", "install", "--config", g.opts.ConfigPath}
}

// installService says the system will ask for a password, then installs
// the service from the saved setup, then attaches to it.
func (g *App) installService() {
	dialog.ShowCustomConfirm("Install the Gatehouse service", "Continue", "Cancel",
		note("Gatehouse will install itself as a system service, so it keeps serving when this window closes, "+
			"when you log out and after a restart.\n\nThe system will ask for your password next: installing a service needs administrator rights."),
		func(ok bool) {
			if ok && !g.closed {
				g.runInstall()
			}
		}, g.win)
}

// runInstall shows the install screen and runs the install command.
func (g *App) runInstall() {
	if g.wizard != nil {
		g.wizard.close()
	}
	s := g.newInstallScreen()
	g.install = s
	g.win.SetContent(s.root)
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	s.stop = cancel
	args := g.installArgs()
	run := g.opts.RunPrivileged
	inBackground(func() installResult {
		defer cancel() // its timer too, once the command has ended
		out, err := run(ctx, args)
		return installResult{strings.TrimSpace(out), err}
	}, func(r installResult) {
		if g.install != s || g.closed {
			return
		}
		s.output.SetText(r.output)
		s.output.Hidden = r.output == ""
		if r.err != nil {
			g.installFailed(s, r.err)
			return
		}
		g.awaitService(s)
	})
}

type installResult struct {
	output string
	err    error
}

func (g *App) newInstallScreen() *serviceInstall {
	s := &serviceInstall{}
	s.heading = widget.NewLabelWithStyle("Installing the Gatehouse service", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	s.heading.SizeName = theme.SizeNameSubHeadingText
	s.spinner = widget.NewActivity()
	s.spinner.Start()
	s.status = note("Waiting for the system to ask for your password, and for the installation…")
	s.output = note("")
	s.output.TextStyle.Monospace = true
	s.output.Hide()
	s.command = widget.NewEntry()
	s.command.TextStyle.Monospace = true
	s.cmdBox = container.NewVBox(s.command)
	s.cmdBox.Hide()
	s.buttons = container.NewHBox()
	s.root = container.NewBorder(container.NewPadded(s.heading), nil, nil, nil,
		container.NewVScroll(container.NewPadded(container.NewVBox(
			container.NewBorder(nil, nil, s.spinner, nil, s.status), s.output, s.cmdBox, s.buttons))))
	return s
}

// awaitService waits, with the spinner, until the service installed
// answers on its socket, then shows the dashboard watching it.
func (g *App) awaitService(s *serviceInstall) {
	s.spinner.Start()
	s.spinner.Show()
	s.buttons.RemoveAll()
	s.status.SetText("Installed. Waiting for the Gatehouse service to answer…")
	ctx, cancel := context.WithTimeout(context.Background(), serviceWait)
	s.stop = cancel
	sockets := g.opts.ServiceSockets
	inBackground(func() serviceFound {
		defer cancel()
		for {
			c, err := control.Find(ctx, sockets...)
			if err == nil {
				return serviceFound{client: c}
			}
			select {
			case <-ctx.Done():
				return serviceFound{err: err}
			case <-time.After(servicePoll):
			}
		}
	}, func(r serviceFound) {
		if g.install != s || g.closed {
			return
		}
		if r.err != nil {
			g.installFailed(s, fmt.Errorf("the service did not answer on %s within %s: %w", strings.Join(sockets, " or "), serviceWait, r.err))
			return
		}
		s.spinner.Stop()
		g.install = nil
		g.wizard = nil
		g.attach(r.client)
	})
}

type serviceFound struct {
	client *control.Client
	err    error
}

// installFailed explains why the service is not running, and offers to
// try again, to go back, or to run the proxy in this window instead.
// Without pkexec it shows the command to run in a terminal.
func (g *App) installFailed(s *serviceInstall, err error) {
	s.spinner.Stop()
	s.spinner.Hide()
	s.heading.SetText("The Gatehouse service is not installed yet")
	retry := widget.NewButtonWithIcon("Try again", theme.ViewRefreshIcon(), g.runInstall)
	if errors.Is(err, exec.ErrNotFound) {
		args := g.installArgs()
		for i, a := range args {
			args[i] = shellQuote(a)
		}
		s.status.SetText("This system cannot ask for your password from here (pkexec is not installed). " +
			"Run this command in a terminal, then press Check again:")
		s.command.SetText("sudo " + strings.Join(args, " "))
		s.cmdBox.Show()
		retry = widget.NewButtonWithIcon("Check again", theme.ViewRefreshIcon(), func() { g.awaitService(s) })
	} else {
		s.status.SetText("Not installed: " + plainError(err))
	}
	retry.Importance = widget.HighImportance
	back := widget.NewButtonWithIcon("Back to the setup", theme.NavigateBackIcon(), func() {
		s.cancel()
		g.install = nil
		g.showWizard(nil)
	})
	window := widget.NewButtonWithIcon("Run in this window instead", theme.MediaPlayIcon(), func() {
		s.cancel()
		g.install = nil
		cfg, err := config.Load(g.opts.ConfigPath)
		if err != nil {
			s.status.SetText(plainError(err))
			return
		}
		g.start(cfg)
	})
	s.buttons.Objects = []fyne.CanvasObject{back, window, retry}
	s.buttons.Refresh()
}
