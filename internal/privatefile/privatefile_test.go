package privatefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// assertOnly checks dir holds exactly the named entries: no temporary
// file of a failed write is left behind.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, "\n") != strings.Join(names, "\n") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

func TestWriteFileAtomicReplacesPrivately(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "local-ca.key")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(data) != "new" || fi.Mode().Perm() != 0o600 {
		t.Errorf("after replacing: %q with mode %v, want new with 0600", data, fi.Mode().Perm())
	}
	assertOnly(t, dir, "local-ca.key")
}

// TestWriteFileAtomicFailureKeepsThePreviousFile makes writes fail at each
// step a root user cannot bypass: the previous contents must stay whole and
// no temporary file may remain.
func TestWriteFileAtomicFailureKeepsThePreviousFile(t *testing.T) {
	t.Run("rename onto a directory", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "config.json")
		if err := os.MkdirAll(filepath.Join(target, "inside"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := Write(target, []byte(`{"hostname": "sso.example.com"}`)); err == nil {
			t.Fatal("replacing a directory succeeded")
		}
		if fi, err := os.Stat(filepath.Join(target, "inside")); err != nil || !fi.IsDir() {
			t.Errorf("the directory in the way was changed: %v", err)
		}
		assertOnly(t, dir, "config.json")
	})
	t.Run("temporary name too long", func(t *testing.T) {
		// The temporary file's name adds a prefix and suffix to the
		// target's, so a target name near the 255-byte limit cannot get one.
		dir := t.TempDir()
		name := strings.Repeat("k", 250)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("previous key"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Write(path, []byte("new key")); err == nil {
			t.Fatal("the write succeeded; the test no longer makes it fail")
		}
		if data, _ := os.ReadFile(path); string(data) != "previous key" {
			t.Errorf("previous file now holds %q", data)
		}
		assertOnly(t, dir, name)
	})
	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes into read-only directories")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "config.json")
		os.WriteFile(path, []byte("previous"), 0o600)
		os.Chmod(dir, 0o500)
		defer os.Chmod(dir, 0o700)
		if err := Write(path, []byte(`{"hostname": "sso.example.com"}`)); err == nil {
			t.Fatal("saving into a read-only directory succeeded")
		}
		if data, _ := os.ReadFile(path); string(data) != "previous" {
			t.Errorf("previous file now holds %q", data)
		}
		assertOnly(t, dir, "config.json")
	})
}
