package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Uninstall stops and disables the service and removes its unit. It keeps
// the config, the certificates and keys, the binary and (for the system
// service) the gatehouse user, and says how to remove them. The system
// service needs root (ErrNeedRoot), except for a dry run.
func (in *Installer) Uninstall(ctx context.Context, o Options) (Report, error) {
	if !o.User && !o.DryRun && in.euid() != 0 {
		return Report{}, ErrNeedRoot
	}
	unit, kept, removeKept := SystemUnitPath, []string{SystemConfigDir + " (config)", SystemStateDir + " (certificates and keys)", "the user and group " + Account, SystemBinary},
		"sudo rm -r "+SystemConfigDir+" "+SystemStateDir+" && sudo userdel "+Account+" && sudo rm "+SystemBinary
	if o.User {
		paths, u, err := in.userPaths(o)
		if err != nil {
			return Report{}, err
		}
		unit, kept, removeKept = paths.UnitPath, []string{paths.Config + " and its state (certificates and keys)", paths.Binary, "lingering (loginctl disable-linger " + u.Username + " turns it off if nothing else needs it)"},
			"rm "+shellQuote(paths.Binary)
	}
	p := &plan{in: in, report: Report{DryRun: o.DryRun}}
	if _, err := os.Lstat(in.path(unit)); errors.Is(err, fs.ErrNotExist) {
		p.report.note("The service is not installed (there is no %s): nothing to do.", unit)
		return p.report, nil
	}
	p.command("stop the service and disable it at boot", systemctl(o, "disable", "--now", UnitName)...)
	p.add("remove "+unit, func() error { return os.Remove(in.path(unit)) })
	p.command("reload systemd's units", systemctl(o, "daemon-reload")...)
	p.report.note("Kept %s. To remove them too: %s", strings.Join(kept, ", "), removeKept)
	return p.execute(ctx)
}

// Status is the state of the service.
type Status struct {
	User      bool   // a user service rather than the system one
	Installed bool   // its unit file exists
	UnitPath  string // where the unit file is, or would be
	// Enabled is systemctl is-enabled's answer (enabled, disabled, masked,
	// not-found, ...); Active is systemctl is-active's (active, inactive,
	// failed, activating, ...). Either is "unknown: <why>" when systemctl
	// could not say, as where systemd is not running.
	Enabled, Active string
	ConfigPath      string // the config the service runs with
	ControlSocket   string // where the desktop app reaches it
	Logs            string // the command that shows its logs
}

// Running reports whether the service is installed and active.
func (s Status) Running() bool { return s.Installed && s.Active == "active" }

// Status says whether the service is installed, enabled and running. It
// needs no root.
func (in *Installer) Status(ctx context.Context, o Options) (Status, error) {
	s := Status{User: o.User, UnitPath: SystemUnitPath, ConfigPath: SystemConfig, ControlSocket: SystemControlSocket, Logs: "journalctl -u gatehouse"}
	if o.User {
		paths, u, err := in.userPaths(o)
		if err != nil {
			return s, err
		}
		s.UnitPath, s.ConfigPath, s.Logs = paths.UnitPath, paths.Config, "journalctl --user -u gatehouse"
		s.ControlSocket = filepath.Join("/run/user", u.Uid, "gatehouse", "control.sock")
	}
	_, err := os.Lstat(in.path(s.UnitPath))
	s.Installed = err == nil
	s.Enabled = in.query(ctx, systemctl(o, "is-enabled", UnitName))
	s.Active = in.query(ctx, systemctl(o, "is-active", UnitName))
	return s, nil
}

// query runs a systemctl is-* command, which answers with one word and
// says no through its exit status.
func (in *Installer) query(ctx context.Context, argv []string) string {
	out, err := in.run(ctx, argv)
	answer := strings.TrimSpace(string(out))
	if answer != "" && !strings.ContainsAny(answer, " \n") {
		return answer
	}
	if answer == "" && err != nil {
		return "unknown: " + err.Error()
	}
	lines := strings.Split(answer, "\n")
	return "unknown: " + lines[len(lines)-1]
}

// Text is the status for a terminal.
func (s Status) Text() string {
	kind := "system service"
	if s.User {
		kind = "user service"
	}
	if !s.Installed {
		install := "sudo gatehouse service install"
		if s.User {
			install = "gatehouse service install --user"
		}
		return fmt.Sprintf("Gatehouse %s: not installed (no %s). Install it with: %s\n", kind, s.UnitPath, install)
	}
	return fmt.Sprintf(`Gatehouse %s: installed (%s)
  enabled:        %s
  active:         %s
  config:         %s
  control socket: %s
  logs:           %s
`, kind, s.UnitPath, s.Enabled, s.Active, s.ConfigPath, s.ControlSocket, s.Logs)
}
