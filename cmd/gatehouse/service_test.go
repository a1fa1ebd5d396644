package main

import (
	"bytes"
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/service"
)

// exitStatus is a failed command's status, as *exec.ExitError reports it.
type exitStatus int

func (e exitStatus) Error() string { return "exit status" }
func (e exitStatus) ExitCode() int { return int(e) }

// serviceBed is an Installer on a temporary root for alice, whose config
// names a self-signed setup, with a runner that knows of no gatehouse user
// until useradd made one and answers systemctl's queries with "inactive".
func serviceBed(t *testing.T) (*service.Installer, string, *[]string) {
	t.Helper()
	root := t.TempDir()
	exe := filepath.Join(t.TempDir(), "gatehouse")
	os.WriteFile(exe, []byte("program"), 0o755)
	cfgPath := filepath.Join(root, "home/alice/.config/gatehouse/config.json")
	if err := config.Save(cfgPath, config.Config{Hostname: "gatehouse.localhost", Upstream: config.UpstreamDemo, TLS: config.TLSSelfSigned}); err != nil {
		t.Fatal(err)
	}
	var calls []string
	made := map[string]string{}
	run := func(_ context.Context, name string, args ...string) ([]byte, error) {
		calls = append(calls, strings.Join(append([]string{name}, args...), " "))
		switch name {
		case "getent":
			if line, ok := made[args[0]]; ok {
				return []byte(line), nil
			}
			return nil, exitStatus(2)
		case "groupadd":
			made["group"] = "gatehouse:x:997:\n"
		case "useradd":
			made["passwd"] = "gatehouse:x:998:997::/nonexistent:/usr/sbin/nologin\n"
		case "systemctl":
			if args[0] == "is-active" || args[0] == "is-enabled" {
				return []byte("inactive\n"), exitStatus(3)
			}
		}
		return nil, nil
	}
	in := &service.Installer{Root: root, Run: run, Executable: exe,
		Invoker: &user.User{Username: "alice", Uid: "1000", HomeDir: "/home/alice"},
		Geteuid: func() int { return 0 },
		Chown:   func(string, int, int) error { return nil }}
	return in, root, &calls
}

func TestServiceCommand(t *testing.T) {
	run := func(in *service.Installer, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runService(args, "gatehouse", in, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	// Not root: one line saying what to run, with the config made absolute.
	in, root, calls := serviceBed(t)
	in.Geteuid = func() int { return 1000 }
	t.Chdir(t.TempDir())
	code, out, errOut := run(in, "install", "--config", "my config.json")
	want := "gatehouse service install: the system service needs root; run: sudo gatehouse service install --config '" +
		filepath.Join(mustGetwd(t), "my config.json") + "'\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("install as a user: %d %q\n%q, want\n%q", code, out, errOut, want)
	}
	if len(*calls) != 0 {
		t.Errorf("commands ran: %q", *calls)
	}

	// A dry run changes nothing, as any user.
	code, out, errOut = run(in, "install", "--dry-run")
	if code != 0 || !strings.HasPrefix(out, "Dry run, nothing changed. install would:\n") ||
		!strings.Contains(out, "  - write /etc/systemd/system/gatehouse.service (0644)\n") || errOut != "" {
		t.Errorf("install --dry-run: %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(root, "etc")); err == nil {
		t.Error("the dry run wrote to /etc")
	}

	// The desktop app's pkexec command line is one this command takes.
	argv := service.PkexecArgv("/usr/local/bin/gatehouse", "install", service.Options{DryRun: true, ConfigPath: "/home/alice/.config/gatehouse/config.json"})
	if code, out, errOut := run(in, argv[3:]...); code != 0 || !strings.Contains(out, "/home/alice/.config/gatehouse/config.json with state_dir") {
		t.Errorf("%q: %d\n%s%s", argv, code, out, errOut)
	}

	in.Geteuid = func() int { return 0 }
	code, out, errOut = run(in, "install")
	if code != 0 || !strings.HasPrefix(out, "Installed the Gatehouse system service:\n") || errOut != "" {
		t.Errorf("install: %d\n%s%s", code, out, errOut)
	}
	if got := (*calls)[len(*calls)-1]; got != "systemctl enable --now gatehouse.service" {
		t.Errorf("the last command was %q", got)
	}

	// Installed but not running: status says so and exits 3.
	code, out, _ = run(in, "status")
	if code != 3 || !strings.Contains(out, "installed (/etc/systemd/system/gatehouse.service)") || !strings.Contains(out, "active:         inactive") {
		t.Errorf("status: %d\n%s", code, out)
	}
	code, out, _ = run(in, "unit")
	if code != 0 || out != service.SystemUnit() {
		t.Errorf("unit: %d\n%s", code, out)
	}
	code, out, _ = run(in, "uninstall")
	if code != 0 || !strings.HasPrefix(out, "Uninstalled the Gatehouse system service:\n") || !strings.Contains(out, "Kept /etc/gatehouse (config)") {
		t.Errorf("uninstall: %d\n%s", code, out)
	}

	for _, args := range [][]string{nil, {"frob"}, {"status", "--dry-run"}, {"unit", "extra"}} {
		if code, _, errOut := run(in, args...); code != 2 || errOut == "" {
			t.Errorf("gatehouse service %q: %d %q, want a usage error", args, code, errOut)
		}
	}
	if code, out, _ := run(in, "-h"); code != 0 || !strings.Contains(out, "install [--user] [--dry-run] [--config FILE]") {
		t.Errorf("service -h: %d\n%s", code, out)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
