// Package privatefile writes the files that hold what Gatehouse must not
// lose or leak (its config, keys, certificates, ACME state): atomically,
// mode 0600, creating a missing directory with mode 0700 and refusing a
// state directory that other users could change.
package privatefile

import (
	"fmt"
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
func Write(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
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
	// CreateTemp already uses 0600; Chmod guards against an odd umask-free FS.
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
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
