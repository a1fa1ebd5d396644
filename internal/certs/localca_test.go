package certs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
)

// TestLocalCAFilesArePrivate: the CA key and the leaf's key are the
// secrets here; every file is 0600 in a 0700 directory.
func TestLocalCAFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	src := NewLocalCA("a.example", dir, testutil.Logger(t))
	if err := src.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{LocalCACertFile, localCAKeyFile, filepath.Base(src.leafPath())} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestSelfSignedLeafReplacedForNewHostnameButCAKept(t *testing.T) {
	dir := t.TempDir()
	a := NewLocalCA("a.example", dir, testutil.Logger(t))
	if err := a.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	b := NewLocalCA("b.example", dir, testutil.Logger(t))
	if err := b.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	if b.cert.Leaf.VerifyHostname("b.example") != nil {
		t.Error("leaf not reissued for the new hostname")
	}
	if !bytes.Equal(a.cert.Certificate[1], b.cert.Certificate[1]) {
		t.Error("the CA changed with the hostname")
	}
	// Near expiry, the leaf is renewed from the same CA.
	later := time.Now().Add(localLeafLifetime - localLeafRenewBefore + time.Hour)
	old := b.cert.Leaf.SerialNumber
	if err := b.refresh(later); err != nil {
		t.Fatal(err)
	}
	if b.cert.Leaf.SerialNumber.Cmp(old) == 0 {
		t.Error("a leaf within 30 days of expiry was not renewed")
	}
}

func TestSelfSignedRefusesBrokenCA(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, LocalCACertFile), []byte("garbage"), 0o600)
	s := NewLocalCA("a.example", dir, testutil.Logger(t))
	if err := s.refresh(time.Now()); err == nil {
		t.Fatal("a broken local-ca.crt was silently replaced; a user trusting it would be locked out without a word")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, LocalCACertFile)); string(data) != "garbage" {
		t.Error("the broken CA file was overwritten")
	}
}

// TestLocalCAIssuesALeafPerName: sites share the CA, each name has its own
// leaf, and neither replaces the other's.
func TestLocalCAIssuesALeafPerName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, b := NewLocalCA("a.example", dir, testutil.Logger(t)), NewLocalCA("B.example", dir, testutil.Logger(t))
	for _, src := range []*LocalCA{a, b} {
		if err := src.refresh(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if a.leafPath() == b.leafPath() {
		t.Fatalf("one leaf file for two names: %s", a.leafPath())
	}
	again := NewLocalCA("a.example", dir, testutil.Logger(t))
	if err := again.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	if again.Status().Fingerprint != a.Status().Fingerprint {
		t.Error("a.example's leaf was issued again after b.example's: the files collide")
	}
	if names := b.Status().Names; len(names) != 1 || names[0] != "B.example" {
		t.Errorf("b's leaf names %v", names)
	}
	if a.Status().Issuer != b.Status().Issuer {
		t.Errorf("different issuers %q and %q", a.Status().Issuer, b.Status().Issuer)
	}
}
