package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
)

// unprivilegedPortStart is the sysctl below whose value binding a port
// needs CAP_NET_BIND_SERVICE.
const unprivilegedPortStart = "/proc/sys/net/ipv4/ip_unprivileged_port_start"

// installUser installs a user service: the binary in ~/.local/bin, the
// unit in ~/.config/systemd/user, lingering so it runs without a login.
func (in *Installer) installUser(ctx context.Context, o Options) (Report, error) {
	if !o.DryRun && in.euid() == 0 {
		return Report{}, errors.New("a user service belongs to the user who runs it: run install --user as that user, without sudo (root has the system service)")
	}
	exe, err := in.executable()
	if err != nil {
		return Report{}, err
	}
	paths, u, err := in.userPaths(o)
	if err != nil {
		return Report{}, err
	}
	cfg, err := readConfig(in.path(paths.Config))
	if errors.Is(err, fs.ErrNotExist) {
		return Report{}, fmt.Errorf("there is no config at %s for the service to run with: set Gatehouse up first (the desktop app, or gatehouse serve --save-config with your settings), or name the file with --config", paths.Config)
	}
	if err != nil {
		return Report{}, err
	}
	if err := in.validate(cfg); err != nil {
		return Report{}, fmt.Errorf("the service could not start with %s: %w", paths.Config, err)
	}

	p := &plan{in: in, report: Report{DryRun: o.DryRun}}
	in.planBinary(p, exe, paths.Binary)
	p.add("write "+paths.UnitPath+" (0644)", func() error {
		return writeFile(in.path(paths.UnitPath), []byte(UserUnit(paths)), 0o644, nil)
	})
	if _, err := os.Stat(in.path(filepath.Join("/var/lib/systemd/linger", u.Username))); err == nil {
		p.report.note("Lingering is on for %s already: the service runs without a login.", u.Username)
	} else {
		argv := []string{"loginctl", "enable-linger", u.Username}
		p.actions = append(p.actions, action{
			Step: Step{Text: "let the service run without a login (lingering)", Command: argv},
			do: func(ctx context.Context) error {
				if out, err := in.run(ctx, argv); err != nil {
					return commandError(argv, out, err)
				}
				return nil
			},
			optional: fmt.Sprintf("Lingering is off, so the service runs only while %s is logged in; turn it on with: sudo loginctl enable-linger %s", u.Username, u.Username),
		})
	}
	in.planStart(ctx, p, o)
	p.report.note("The service runs with %s and saves settings there. Status: gatehouse service status --user. Logs: journalctl --user -u gatehouse -f. After upgrading Gatehouse, run install --user again: the service runs the copy in %s.", paths.Config, paths.Binary)
	if n := in.lowPortsNote(cfg); n != "" {
		p.report.note("%s", n)
	}
	return p.execute(ctx)
}

// lowPortsNote explains what a user service needs to listen on the
// config's ports below 1024, or is "" when it needs nothing.
func (in *Installer) lowPortsNote(cfg config.Config) string {
	c := cfg.WithDefaults()
	var low []int
	for _, addr := range []string{c.HTTPAddr, c.HTTPSAddr, c.StatusAddr} {
		if addr == config.Off {
			continue
		}
		if _, port, err := ports.SplitAddr(addr); err == nil && port > 0 && !slices.Contains(low, port) {
			low = append(low, port)
		}
	}
	slices.Sort(low)
	start := 1024
	if b, err := os.ReadFile(in.path(unprivilegedPortStart)); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = n
		}
	}
	var need []string
	for _, p := range low {
		if p < start {
			need = append(need, strconv.Itoa(p))
		}
	}
	if len(need) == 0 {
		return ""
	}
	word := "port"
	if len(need) > 1 {
		word = "ports"
	}
	return fmt.Sprintf(`The config listens on %s %s, and this system lets only privileged programs listen below %d (net.ipv4.ip_unprivileged_port_start), so the service cannot start yet. Allow ports from %s up now and after reboots with:
  echo 'net.ipv4.ip_unprivileged_port_start=%s' | sudo tee /etc/sysctl.d/60-gatehouse.conf && sudo sysctl -p /etc/sysctl.d/60-gatehouse.conf
(This lets every user's programs listen on those ports. setcap on the binary would not help: the unit runs it with no_new_privs, which ignores file capabilities. The system service, sudo gatehouse service install, needs neither.)`,
		word, strings.Join(need, " and "), start, need[0], need[0])
}
