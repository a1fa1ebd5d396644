package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/internal/service"
)

const serviceUsage = `Usage: gatehouse service <command> [flags]

Runs Gatehouse as a systemd service, so the proxy starts at boot and keeps
running without a window or a login.

Commands:
  install [--user] [--dry-run] [--config FILE]
        install the service, enable it at boot and start it (restart it if it
        was running). The system service (the default, for servers; needs root)
        runs /usr/local/bin/gatehouse as the user gatehouse with the config in
        /etc/gatehouse/config.json and certificates in /var/lib/gatehouse; when
        /etc/gatehouse/config.json does not exist yet, your config (FILE, default
        ~/.config/gatehouse/config.json) and its certificates are copied there.
        --user installs a service of your own instead (~/.config/systemd/user).
        --dry-run prints the files and commands without changing anything.
  uninstall [--user] [--dry-run]
        stop, disable and remove the service; config and certificates stay
  status [--user]
        installed or not, enabled, active, the control socket; exits 0 when the
        service is running and 3 when it is not
  unit [--user] [--config FILE]
        print the unit file install writes

Logs: journalctl -u gatehouse (with --user: journalctl --user -u gatehouse).
`

// runService is `gatehouse service`. self is the program as the user ran
// it (os.Args[0]), for the sudo command it suggests.
func runService(args []string, self string, inst *service.Installer, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, serviceUsage)
		return 2
	}
	command := args[0]
	switch command {
	case "install", "uninstall", "status", "unit":
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, serviceUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "gatehouse service: unknown command %q; use install, uninstall, status or unit (see gatehouse service -h)\n", command)
		return 2
	}
	name := "gatehouse service " + command
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	var o service.Options
	fset.BoolVar(&o.User, "user", false, "a user service of your own rather than the system service")
	if command == "install" || command == "uninstall" {
		fset.BoolVar(&o.DryRun, "dry-run", false, "print the files and commands without changing anything")
	}
	if command == "install" || command == "unit" {
		fset.StringVar(&o.ConfigPath, "config", "", "config file to install (default ~/.config/gatehouse/config.json)")
	}
	if err := fset.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, serviceUsage)
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v (see gatehouse service -h)\n", name, err)
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see gatehouse service -h)\n", name, fset.Arg(0))
		return 2
	}
	if o.ConfigPath != "" {
		abs, err := filepath.Abs(o.ConfigPath)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 2
		}
		o.ConfigPath = abs
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch command {
	case "unit":
		unit, err := inst.Unit(o)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		fmt.Fprint(stdout, unit)
		return 0
	case "status":
		s, err := inst.Status(ctx, o)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		fmt.Fprint(stdout, s.Text())
		if !s.Running() {
			return 3
		}
		return 0
	}

	do, heading := inst.Install, "Installed the Gatehouse "
	if command == "uninstall" {
		do, heading = inst.Uninstall, "Uninstalled the Gatehouse "
	}
	if o.User {
		heading += "user service"
	} else {
		heading += "system service"
	}
	if o.DryRun {
		heading = "Dry run, nothing changed. " + command + " would"
	}
	r, err := do(ctx, o)
	if errors.Is(err, service.ErrNeedRoot) {
		fmt.Fprintf(stderr, "%s: %v; run: %s\n", name, err, sudoCommand(self, command, o))
		return 1
	}
	if err != nil {
		if len(r.Steps) > 0 {
			fmt.Fprint(stdout, r.Text("Done before the failure"))
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	fmt.Fprint(stdout, r.Text(heading))
	return 0
}

// sudoCommand is the command line that runs `gatehouse service command`
// as root, for a terminal.
func sudoCommand(self, command string, o service.Options) string {
	argv := append([]string{"sudo", self, "service", command}, o.Args()...)
	for i, a := range argv {
		if strings.ContainsAny(a, " '\"\\$`!*?;&|<>(){}[]#~") {
			argv[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(argv, " ")
}
