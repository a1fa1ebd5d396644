// Package privatefile writes the files that hold what Gatehouse must not
// lose or leak (its config, keys, certificates, ACME state): atomically,
// mode 0600, in a 0700 directory.
package privatefile

import (
	"fmt"
	"os"
	"path/filepath"
)

// EnsureDir creates dir (and its parents) with mode 0700 and tightens
// an existing dir to 0700, since it holds keys.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// Write writes data to path with mode 0600 through a temporary
// file in the same directory, synced and renamed over the old file, so a
// crash leaves either the old contents or the new, never a torn file.
func Write(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := EnsureDir(dir); err != nil {
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
