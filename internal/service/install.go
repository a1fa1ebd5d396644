package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// action is a step of a plan and what carries it out.
type action struct {
	Step
	do func(context.Context) error
	// optional failures become a note starting with this text, and the
	// plan goes on.
	optional string
}

// plan collects the actions of Install or Uninstall, so that a dry run and
// a real one report the same steps.
type plan struct {
	in      *Installer
	actions []action
	report  Report
}

func (p *plan) add(text string, do func() error) {
	p.actions = append(p.actions, action{Step: Step{Text: text}, do: func(context.Context) error { return do() }})
}

func (p *plan) command(text string, argv ...string) {
	p.actions = append(p.actions, action{Step: Step{Text: text, Command: argv}, do: func(ctx context.Context) error {
		if out, err := p.in.run(ctx, argv); err != nil {
			return commandError(argv, out, err)
		}
		return nil
	}})
}

// execute carries out the actions in order, stopping at the first failure
// (which the returned report does not list among its steps).
func (p *plan) execute(ctx context.Context) (Report, error) {
	r := &p.report // actions may add notes
	for _, a := range p.actions {
		if r.DryRun {
			r.Steps = append(r.Steps, a.Step)
			continue
		}
		if err := a.do(ctx); err != nil {
			if a.optional != "" {
				r.note("%s (%v)", a.optional, err)
				continue
			}
			return *r, err
		}
		r.Steps = append(r.Steps, a.Step)
	}
	return *r, nil
}

// Install installs the service described by o, enables it and starts it
// (restarts it when it was running, so a new binary or unit takes effect).
// With o.DryRun it changes nothing and reports what it would do. The
// system service needs root (ErrNeedRoot), except for a dry run; a user
// service must not be installed as root.
func (in *Installer) Install(ctx context.Context, o Options) (Report, error) {
	if o.User {
		return in.installUser(ctx, o)
	}
	return in.installSystem(ctx, o)
}

func (in *Installer) installSystem(ctx context.Context, o Options) (Report, error) {
	if !o.DryRun && in.euid() != 0 {
		return Report{}, ErrNeedRoot
	}
	exe, err := in.executable()
	if err != nil {
		return Report{}, err
	}
	p := &plan{in: in, report: Report{DryRun: o.DryRun}}
	acct, err := in.lookupAccount(ctx)
	if err != nil {
		return Report{}, err
	}
	acct.plan(p)
	in.planBinary(p, exe, SystemBinary)
	if err := in.planSystemConfig(p, o, acct); err != nil {
		return Report{}, err
	}
	p.add("write "+SystemUnitPath+" (0644)", func() error {
		return writeFile(in.path(SystemUnitPath), []byte(SystemUnit()), 0o644, nil)
	})
	// The person installing watches the service from the desktop app: the
	// control socket admits the group's members as soon as they are listed
	// (it reads the group database again within seconds), so no new login
	// is needed.
	if u, _, err := in.invoker(); err == nil && u.Uid != "0" {
		p.command("let "+u.Username+" use the control socket (group "+Account+")", "usermod", "-aG", Account, u.Username)
	}
	in.planStart(ctx, p, o)
	p.report.note("Status: gatehouse service status. Logs: journalctl -u gatehouse -f. After upgrading Gatehouse, run install again: the service runs the copy in %s.", SystemBinary)
	p.report.note("The control socket is %s; other desktop users may use it once in the group %s (sudo usermod -aG %s NAME).", SystemControlSocket, Account, Account)
	return p.execute(ctx)
}

// planBinary copies the running program to dst (on the running system),
// unless it is that file already.
func (in *Installer) planBinary(p *plan, exe, dst string) {
	if a, err := os.Stat(exe); err == nil {
		if b, err := os.Stat(in.path(dst)); err == nil && os.SameFile(a, b) {
			p.report.note("%s is this program already, so it stays as it is.", dst)
			return
		}
	}
	p.add(fmt.Sprintf("copy %s to %s (0755)", exe, dst), func() error {
		return copyFile(exe, in.path(dst), 0o755, nil)
	})
}

// planStart reloads the manager, then enables and starts the unit, or
// restarts it if it was running.
func (in *Installer) planStart(ctx context.Context, p *plan, o Options) {
	active, _ := in.run(ctx, systemctl(o, "is-active", UnitName))
	p.command("reload systemd's units", systemctl(o, "daemon-reload")...)
	p.command("enable the service at boot and start it", systemctl(o, "enable", "--now", UnitName)...)
	if firstWord(active) == "active" {
		p.command("restart it, as it was running", systemctl(o, "restart", UnitName)...)
	}
}

// planSystemConfig keeps /etc/gatehouse/config.json or copies the
// invoker's config there, with their state (certificates, keys, ACME
// account) into /var/lib/gatehouse.
func (in *Installer) planSystemConfig(p *plan, o Options, acct *account) error {
	dst := in.path(SystemConfig)
	_, err := os.Stat(dst)
	switch {
	case err == nil:
		cfg, err := readConfig(dst)
		if err != nil {
			return fmt.Errorf("%s, which install keeps: %w; fix it, or move it away to install your own config", SystemConfig, err)
		}
		if err := in.validate(cfg); err != nil {
			return fmt.Errorf("the service could not start with %s, which install keeps: %w; fix it, or move it away to install your own config", SystemConfig, err)
		}
		p.report.note("%s exists, so install keeps it as it is (it never overwrites it): the service runs with it and the certificates in %s.", SystemConfig, SystemStateDir)
		if o.ConfigPath != "" {
			p.report.note("So %s is not installed: to install it, move %s away first.", o.ConfigPath, SystemConfig)
		}
		for _, f := range fileSettings(&cfg) {
			if hiddenFromService(*f.value) {
				p.report.note("%s is %s, which the service cannot read (home directories are hidden from it): move the file, to %s for instance, and change %s in %s.", f.field, *f.value, SystemConfigDir, f.field, SystemConfig)
			}
		}
		p.add(fmt.Sprintf("make %s (0700) and %s (0600) belong to %s", SystemConfigDir, SystemConfig, Account), func() error {
			if err := acct.own(in, SystemConfigDir, 0o700); err != nil {
				return err
			}
			return acct.own(in, SystemConfig, 0o600)
		})
		if cfg.StateDir != "" {
			// The unit's --state-dir wins over the file's state_dir.
			in.planStateCopy(p, cfg.StateDir, acct)
		}
		return nil
	case errors.Is(err, fs.ErrPermission):
		// A dry run as another user: the directory is the service's.
		p.report.note("%s exists (this user may not read it) and would be kept as it is.", SystemConfig)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}

	_, configDir, err := in.invoker()
	if err != nil {
		return err
	}
	src := o.ConfigPath
	if src == "" {
		src = filepath.Join(configDir, "config.json")
	}
	cfg, err := readConfig(in.path(src))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("there is no config at %s to install: set Gatehouse up first (the desktop app, or gatehouse serve --save-config with your settings), or name the file with --config", src)
	}
	if err != nil {
		return err
	}
	if err := in.validate(cfg); err != nil {
		return fmt.Errorf("the service could not start with %s: %w", src, err)
	}
	oldState := cfg.StateDir
	if oldState == "" {
		oldState = filepath.Join(configDir, "state")
	}
	cfg.StateDir = SystemStateDir
	copies := in.relocateFiles(p, &cfg, oldState)

	p.add(fmt.Sprintf("create %s (0700, owner %s)", SystemConfigDir, Account), func() error {
		return acct.mkdir(in, SystemConfigDir)
	})
	for _, c := range copies {
		p.add(fmt.Sprintf("copy %s to %s (0600, owner %s)", c.from, c.to, Account), func() error {
			return in.copyForService(c.from, c.to, acct)
		})
	}
	data, err := config.Encode(cfg)
	if err != nil {
		return err
	}
	p.add(fmt.Sprintf("write %s (0600, owner %s): %s with state_dir %s", SystemConfig, Account, src, SystemStateDir), func() error {
		return writeFile(dst, data, 0o600, acct)
	})
	p.report.note("The service runs with its own copy of %s, %s: change settings there (or through the desktop app).", src, SystemConfig)

	in.planStateCopy(p, oldState, acct)
	return nil
}

// planStateCopy copies the certificates and keys in the state dir from to
// the service's, when there is such a directory.
func (in *Installer) planStateCopy(p *plan, from string, acct *account) {
	if filepath.Clean(from) == SystemStateDir {
		return // there already; systemd gives it to the service at start (StateDirectory=)
	}
	if fi, err := os.Stat(in.path(from)); err == nil && fi.IsDir() {
		p.add(fmt.Sprintf("copy the certificates and keys in %s to %s (files 0600, directories 0700, owner %s)", from, SystemStateDir, Account), func() error {
			return in.copyState(p, from, SystemStateDir, acct)
		})
	}
}

// fileCopy is a file the config names that install copies beside it.
type fileCopy struct{ from, to string }

// fileSetting is a setting of the config that names a file.
type fileSetting struct {
	field config.Field
	name  string // of its copy in /etc/gatehouse
	value *string
}

func fileSettings(cfg *config.Config) []fileSetting {
	return []fileSetting{
		{config.FieldUpstreamCA, "upstream-ca.pem", &cfg.UpstreamCA},
		{config.FieldCertFile, "cert.pem", &cfg.CertFile},
		{config.FieldKeyFile, "key.pem", &cfg.KeyFile},
		{config.FieldACMECARoots, "acme-ca-roots.pem", &cfg.ACMECARoots},
	}
}

// hiddenFromService reports whether path is where the unit's ProtectHome=
// hides everything.
func hiddenFromService(path string) bool {
	for _, dir := range []string{"/home", "/root", "/run/user"} {
		if within(path, dir) {
			return true
		}
	}
	return false
}

// relocateFiles points the config's file settings (CA bundles, the
// certificate and key) at places the service can read: into the new state
// dir when they were in the old one (copied with it), into /etc/gatehouse
// when they were in a home directory, which the sandbox hides.
func (in *Installer) relocateFiles(p *plan, cfg *config.Config, oldState string) []fileCopy {
	var copies []fileCopy
	for _, f := range fileSettings(cfg) {
		path := *f.value
		switch {
		case path == "":
		case !filepath.IsAbs(path):
			p.report.note("%s is the relative path %s: the service runs in /, so make it absolute in %s.", f.field, path, SystemConfig)
		case within(path, oldState):
			rel, _ := filepath.Rel(oldState, path)
			*f.value = filepath.Join(SystemStateDir, rel)
		case hiddenFromService(path):
			to := filepath.Join(SystemConfigDir, f.name)
			copies = append(copies, fileCopy{path, to})
			*f.value = to
			p.report.note("%s: the service cannot read home directories, so it reads the copy %s; copy the file again when it changes.", f.field, to)
		}
	}
	return copies
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// validate checks a config as the service would, reading the files it
// names under Root.
func (in *Installer) validate(cfg config.Config) error {
	for _, f := range fileSettings(&cfg) {
		if filepath.IsAbs(*f.value) {
			*f.value = in.path(*f.value)
		}
	}
	if err := cfg.Validate(); err != nil {
		if fields := config.FieldErrors(err); fields != nil {
			parts := make([]string, len(fields))
			for i, fe := range fields {
				parts[i] = fe.Error()
			}
			return errors.New(strings.Join(parts, "; "))
		}
		return err
	}
	return nil
}

// copyState copies the old state dir's files into the new one, keeping
// files already there, owned by the service with modes for keys.
func (in *Installer) copyState(p *plan, from, to string, acct *account) error {
	if err := acct.mkdir(in, to); err != nil {
		return err
	}
	var kept, skipped []string
	root := in.path(from)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return acct.mkdir(in, dst)
		case !d.Type().IsRegular():
			skipped = append(skipped, rel)
			return nil
		}
		if _, err := os.Lstat(in.path(dst)); err == nil {
			kept = append(kept, rel)
			return nil
		}
		return in.copyForService(filepath.Join(from, rel), dst, acct)
	})
	if len(kept) > 0 {
		p.report.note("Kept %d file(s) already in %s rather than copying over them: %s.", len(kept), to, strings.Join(kept, ", "))
	}
	if len(skipped) > 0 {
		p.report.note("Did not copy what is not a plain file in %s: %s.", from, strings.Join(skipped, ", "))
	}
	return err
}
