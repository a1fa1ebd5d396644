package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// Runner runs a command and returns its combined output. A failed command
// returns an error with an ExitCode() int method, as *exec.ExitError has.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

func execRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// Installer installs, removes and describes the service. The zero value
// works on the real system.
type Installer struct {
	// Root is prefixed to every path read or written (default "/"). The
	// unit and the commands name the paths as they are on the running
	// system. A root other than "/" needs a Run of its own: the default
	// runner refuses to run commands then, as they would act on this
	// system rather than the one under Root.
	Root string
	// Run runs commands (useradd, systemctl, loginctl, getent).
	// Default: os/exec.
	Run Runner
	// Executable is the gatehouse binary to install. Default: the running
	// program (os.Executable).
	Executable string
	// Invoker is the person installing: whose config is copied to the
	// system service, or who owns the user service. Default: the user who
	// ran sudo or pkexec (SUDO_UID, PKEXEC_UID), else the current user.
	Invoker *user.User
	// Geteuid reports the effective user ID. Default: os.Geteuid.
	Geteuid func() int
	// Chown sets a file's owner. Default: os.Lchown.
	Chown func(path string, uid, gid int) error
}

// Options are the choices of `gatehouse service install` and friends.
type Options struct {
	// User installs a user service (~/.config/systemd/user) rather than the
	// system service.
	User bool
	// DryRun reports what would be done, changing nothing.
	DryRun bool
	// ConfigPath is the config file to install: for the system service the
	// one copied to /etc/gatehouse/config.json when that does not exist yet,
	// for a user service the one it runs with. Default: the invoker's
	// ~/.config/gatehouse/config.json.
	ConfigPath string
}

// Args are the command-line flags that give o to `gatehouse service`.
func (o Options) Args() []string {
	var args []string
	if o.User {
		args = append(args, "--user")
	}
	if o.DryRun {
		args = append(args, "--dry-run")
	}
	if o.ConfigPath != "" {
		args = append(args, "--config", o.ConfigPath)
	}
	return args
}

// PkexecArgv is the command line that runs `gatehouse service <command>`
// (install or uninstall) as root through pkexec, which asks for an
// administrator's password in a dialog of its own: tell the user so first.
// executable is the absolute path of the gatehouse binary; a ConfigPath in
// o must be absolute too, as pkexec starts the command in /. pkexec exits
// 126 when the dialog is dismissed and 127 when the user may not.
func PkexecArgv(executable, command string, o Options) []string {
	if command != "install" {
		o.ConfigPath = "" // only install takes --config
	}
	return append([]string{"pkexec", executable, "service", command}, o.Args()...)
}

// ErrNeedRoot is returned by Install and Uninstall of the system service
// when not run as root: run the same command with sudo, or PkexecArgv.
var ErrNeedRoot = errors.New("the system service needs root")

// Step is one thing Install or Uninstall did, or would do.
type Step struct {
	// Text says what it does, such as "write /etc/systemd/system/gatehouse.service (0644)".
	Text string
	// Command is the command it runs, if it runs one.
	Command []string
}

func (s Step) String() string {
	if len(s.Command) == 0 {
		return s.Text
	}
	return s.Text + ": " + shellQuote(s.Command...)
}

// Report is what Install or Uninstall did, for a terminal or a dialog.
type Report struct {
	DryRun bool
	// Steps are the changes made (with DryRun: to be made), in order.
	Steps []Step
	// Notes say what was kept and why, what could not be done, and what
	// to do next.
	Notes []string
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Text is the report for a terminal: the heading (such as "Installed the
// service"), the steps and the notes.
func (r Report) Text(heading string) string {
	var b strings.Builder
	if len(r.Steps) > 0 {
		b.WriteString(heading + ":\n")
	}
	for _, s := range r.Steps {
		b.WriteString("  - " + s.String() + "\n")
	}
	for _, n := range r.Notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

func (in *Installer) root() string {
	if in.Root == "" {
		return "/"
	}
	return in.Root
}

// path is p (an absolute path on the running system) under Root.
func (in *Installer) path(p string) string { return filepath.Join(in.root(), p) }

func (in *Installer) run(ctx context.Context, argv []string) ([]byte, error) {
	if in.Run != nil {
		return in.Run(ctx, argv[0], argv[1:]...)
	}
	if in.root() != "/" {
		return nil, fmt.Errorf("not running %s: with a root other than / the installer needs a runner of its own", shellQuote(argv...))
	}
	return execRunner(ctx, argv[0], argv[1:]...)
}

func (in *Installer) euid() int {
	if in.Geteuid != nil {
		return in.Geteuid()
	}
	return os.Geteuid()
}

func (in *Installer) chown(path string, uid, gid int) error {
	if in.Chown != nil {
		return in.Chown(path, uid, gid)
	}
	return os.Lchown(path, uid, gid)
}

func (in *Installer) executable() (string, error) {
	if in.Executable != "" {
		return in.Executable, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding this program's file: %w", err)
	}
	return filepath.EvalSymlinks(exe)
}

// invoker is the person installing and their config directory (where the
// desktop app keeps config.json and state/).
func (in *Installer) invoker() (u *user.User, configDir string, err error) {
	if in.Invoker != nil {
		return in.Invoker, filepath.Join(in.Invoker.HomeDir, ".config", "gatehouse"), nil
	}
	for _, env := range []string{"PKEXEC_UID", "SUDO_UID"} {
		if uid := os.Getenv(env); uid != "" && os.Geteuid() == 0 {
			u, err := user.LookupId(uid)
			if err != nil {
				return nil, "", fmt.Errorf("finding the user who ran %s (%s=%s): %w", strings.ToLower(strings.TrimSuffix(env, "_UID")), env, uid, err)
			}
			return u, filepath.Join(u.HomeDir, ".config", "gatehouse"), nil
		}
	}
	u, err = user.Current()
	if err != nil {
		return nil, "", fmt.Errorf("finding the current user: %w", err)
	}
	dir, err := config.DefaultDir()
	return u, dir, err
}

// userPaths are the files of the invoker's user service.
func (in *Installer) userPaths(o Options) (UserPaths, *user.User, error) {
	u, configDir, err := in.invoker()
	if err != nil {
		return UserPaths{}, nil, err
	}
	p := UserPaths{
		Binary:   filepath.Join(u.HomeDir, ".local", "bin", "gatehouse"),
		Config:   o.ConfigPath,
		UnitPath: filepath.Join(filepath.Dir(configDir), "systemd", "user", UnitName),
	}
	if p.Config == "" {
		p.Config = filepath.Join(configDir, "config.json")
	}
	return p, u, checkProgramPath(p.Binary)
}

// Unit is the unit file Install writes for o.
func (in *Installer) Unit(o Options) (string, error) {
	if !o.User {
		return SystemUnit(), nil
	}
	p, _, err := in.userPaths(o)
	if err != nil {
		return "", err
	}
	return UserUnit(p), nil
}

// systemctl is systemctl's command line for the system or user manager.
func systemctl(o Options, args ...string) []string {
	if o.User {
		return append([]string{"systemctl", "--user"}, args...)
	}
	return append([]string{"systemctl"}, args...)
}

// exitCode is a failed command's exit status, or -1.
func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return -1
}

// commandError words a failed command: its last line of output, else err.
func commandError(argv []string, out []byte, err error) error {
	msg := err.Error()
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); lines[len(lines)-1] != "" {
		msg = lines[len(lines)-1]
	}
	return fmt.Errorf("%s: %s", shellQuote(argv...), msg)
}

// firstWord is the first word of a command's output, such as systemctl
// is-active's "active".
func firstWord(out []byte) string {
	if f := strings.Fields(string(out)); len(f) > 0 {
		return f[0]
	}
	return ""
}

func atoi(s string) (int, error) { return strconv.Atoi(strings.TrimSpace(s)) }
