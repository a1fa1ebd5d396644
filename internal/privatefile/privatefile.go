// Package privatefile writes the files that hold what Gatehouse must not
// lose or leak (its config, keys, certificates, ACME state): atomically,
// mode 0600, creating a missing directory with mode 0700 and refusing a
// state directory that other users could change. WriteFrom writes the
// service installer's other files (unit, binary, owned copies) the same
// atomic way, with the modes and owner they need.
package privatefile

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// EnsureDir makes sure the state dir exists and is fit for keys.
// What is missing (dir and its parents) is created with mode 0700; an
// existing directory is left as it is (chmod-ing it would take the sticky
// bit off /tmp, lock up /etc, or change a symlink's target) but refused,
// as sshd's StrictModes does, when another user owns it or others may
// write to it: they could replace the keys and certificates in it.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return CheckNotShared(dir, "state directory")
}

// CheckNotShared refuses path (followed through symlinks) if others may
// write to it or a user other than this one or root owns it.
func CheckNotShared(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if mode := fi.Mode(); mode.Perm()&0o022 != 0 {
		perm := uint32(mode.Perm())
		if mode&os.ModeSticky != 0 {
			perm |= 0o1000
		}
		return fmt.Errorf("the %s %s can be written by other users (mode %04o), who could replace what Gatehouse keeps there; use one only this user can write, or remove their write permission (chmod go-w %s)",
			what, path, perm, path)
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("the %s %s belongs to another user (uid %d, this program runs as uid %d), who could change it; use one this user owns",
			what, path, uid, os.Geteuid())
	}
	return nil
}

// Write writes data to path with mode 0600 through a temporary
// file in the same directory, synced and renamed over the old file, so a
// crash leaves either the old contents or the new, never a torn file. A
// missing directory is created with mode 0700; an existing one is never
// changed (it may be /etc, or a folder the user picked for an export).
func Write(path string, data []byte) error {
	return WriteFrom(path, bytes.NewReader(data), Options{})
}

// Options are how WriteFrom writes a file that is not Write's private one.
type Options struct {
	// Perm is the file's mode; 0 means 0600.
	Perm os.FileMode
	// DirPerm is the mode of a missing directory; 0 means 0700.
	DirPerm os.FileMode
	// BeforeRename, when set, is called with the temporary file's path
	// once its contents are on disk and before it takes path's place, to
	// give it to its owner so nobody else ever sees it as theirs.
	BeforeRename func(tmp string) error
}

// WriteFrom writes what r holds to path atomically, as Write does, with
// the modes and owner o asks for.
func WriteFrom(path string, r io.Reader, o Options) (err error) {
	perm, dirPerm := cmp.Or(o.Perm, 0o600), cmp.Or(o.DirPerm, 0o700)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp uses 0600 whatever the umask; Chmod sets the mode asked.
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if o.BeforeRename != nil {
		if err := o.BeforeRename(f.Name()); err != nil {
			return err
		}
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
