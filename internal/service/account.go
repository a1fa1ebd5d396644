package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
)

// account is the gatehouse system user and group: whether they exist, and
// their IDs once they do.
type account struct {
	in                  *Installer
	haveUser, haveGroup bool
	uid, gid            int
}

// lookupAccount finds the gatehouse user and group (getent, so users from
// LDAP and the like count too).
func (in *Installer) lookupAccount(ctx context.Context) (*account, error) {
	a := &account{in: in}
	return a, a.lookup(ctx)
}

func (a *account) lookup(ctx context.Context) error {
	group, ok, err := a.in.getent(ctx, "group", Account)
	if err != nil {
		return err
	}
	if a.haveGroup = ok; ok {
		if a.gid, err = atoi(group[2]); err != nil {
			return fmt.Errorf("getent group %s: bad group ID %q", Account, group[2])
		}
	}
	passwd, ok, err := a.in.getent(ctx, "passwd", Account)
	if err != nil {
		return err
	}
	if a.haveUser = ok; ok {
		if a.uid, err = atoi(passwd[2]); err != nil {
			return fmt.Errorf("getent passwd %s: bad user ID %q", Account, passwd[2])
		}
	}
	return nil
}

// getent looks name up in an NSS database, returning its entry's fields.
func (in *Installer) getent(ctx context.Context, db, name string) ([]string, bool, error) {
	argv := []string{"getent", db, name}
	out, err := in.run(ctx, argv)
	if err != nil {
		if exitCode(err) == 2 { // not found
			return nil, false, nil
		}
		return nil, false, commandError(argv, out, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	fields := strings.Split(line, ":")
	if len(fields) < 3 || fields[0] != name {
		return nil, false, fmt.Errorf("%s: unexpected output %q", shellQuote(argv...), line)
	}
	return fields, true, nil
}

// plan creates what is missing: the group first, so the user joins it.
func (a *account) plan(p *plan) {
	if a.haveUser && a.haveGroup {
		p.report.note("The user and group %s exist already: the service runs as them.", Account)
		return
	}
	create := func(text string, argv ...string) {
		p.actions = append(p.actions, action{Step: Step{Text: text, Command: argv}, do: func(ctx context.Context) error {
			if out, err := a.in.run(ctx, argv); err != nil {
				return commandError(argv, out, err)
			}
			return a.lookup(ctx)
		}})
	}
	if !a.haveGroup {
		create("create the system group "+Account, "groupadd", "--system", Account)
	}
	if !a.haveUser {
		create("create the system user "+Account+" (no home, no login)", "useradd", "--system", "--gid", Account,
			"--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
			"--comment", "Gatehouse HTTPS gateway", Account)
	}
}

// ready fails when the user or group is still missing after creating them.
func (a *account) ready() error {
	if !a.haveUser || !a.haveGroup {
		return fmt.Errorf("the user or group %s is missing", Account)
	}
	return nil
}

// mkdir makes dir (on the running system) a directory of the account's,
// mode 0700, creating it if need be.
func (a *account) mkdir(in *Installer, dir string) error {
	if err := a.ready(); err != nil {
		return err
	}
	p := in.path(dir)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	return a.own(in, dir, 0o700)
}

// own gives path (on the running system) to the account with mode perm.
// It works on the file it opened, never through a symbolic link (the
// account may own the directory and put one there meanwhile), so no
// other file can get the account as owner or the mode.
func (a *account) own(in *Installer, path string, perm os.FileMode) error {
	if err := a.ready(); err != nil {
		return err
	}
	p := in.path(path)
	f, err := openNoFollow(p, path)
	if err != nil {
		return err
	}
	defer f.Close()
	if in.Chown != nil {
		err = in.Chown(p, a.uid, a.gid)
	} else {
		err = f.Chown(a.uid, a.gid)
	}
	if err != nil {
		return err
	}
	return f.Chmod(perm)
}

// openNoFollow opens p for reading, refusing a symbolic link at its last
// step (a FIFO opens without waiting for a writer); name is p as the user
// knows it, for the error.
func openNoFollow(p, name string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link; install wants a plain file or directory there", name)
	}
	return f, err
}

// copyForService copies the file from, which the person installing chose
// (a file their config names, or their state), to the service's path to,
// mode 0600, owned by the account. It copies a plain file only, opened
// without following a symbolic link at its last step, and only one that
// belongs to the person installing, root, the account or whoever runs
// install: so a link or a file swapped in meanwhile cannot hand the
// service a file of someone else's.
func (in *Installer) copyForService(from, to string, acct *account) error {
	f, err := openNoFollow(in.path(from), from)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a plain file; install copies plain files only", from)
	}
	owner := int(fi.Sys().(*syscall.Stat_t).Uid)
	allowed := []int{0, os.Geteuid(), acct.uid}
	if u, _, err := in.invoker(); err == nil {
		if uid, err := atoi(u.Uid); err == nil {
			allowed = append(allowed, uid)
		}
	}
	if !slices.Contains(allowed, owner) {
		return fmt.Errorf("%s belongs to user %d, neither you nor root nor %s, so install does not copy it for the service", from, owner, Account)
	}
	return writeFrom(in.path(to), f, 0o600, acct)
}

// writeFile writes data to path with mode perm through a temporary file
// in the same directory, given to owner (when not nil) before it is
// renamed into place, so nobody else ever sees it. Missing parent
// directories are created with mode 0755.
func writeFile(path string, data []byte, perm os.FileMode, owner *account) error {
	return writeFrom(path, bytes.NewReader(data), perm, owner)
}

// copyFile copies the file from to path as writeFile writes.
func copyFile(from, path string, perm os.FileMode, owner *account) error {
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeFrom(path, f, perm, owner)
}

func writeFrom(path string, data io.Reader, perm os.FileMode, owner *account) error {
	o := privatefile.Options{Perm: perm, DirPerm: 0o755}
	if owner != nil {
		o.BeforeRename = func(tmp string) error {
			if err := owner.ready(); err != nil {
				return err
			}
			return owner.in.chown(tmp, owner.uid, owner.gid)
		}
	}
	return privatefile.WriteFrom(path, data, o)
}
