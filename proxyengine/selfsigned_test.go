package proxyengine

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// servedLeaf makes a handshake with the engine and returns its leaf.
func servedLeaf(t *testing.T, e *Engine) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", e.HTTPSAddr().String(), clientTLS(t, e))
	if err != nil {
		t.Fatalf("handshake verified against local-ca.crt: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func TestSelfSignedCAIsCreatedOnceAndLeafReused(t *testing.T) {
	cfg := testConfig(t, newEchoUpstream(t))
	e := startEngine(t, cfg)
	first := servedLeaf(t, e)
	if got := e.CertStatus(); got.Source != TLSSelfSigned || got.Issuer != "Gatehouse local CA (Gatehouse)" || got.NotAfter.IsZero() || got.NextRenewal.After(got.NotAfter) {
		t.Errorf("status %+v", got)
	}
	ca, _ := os.ReadFile(filepath.Join(cfg.StateDir, LocalCACertFile))
	e.Shutdown(t.Context())

	for _, name := range []string{LocalCACertFile, localCAKeyFile, localLeafFile} {
		fi, err := os.Stat(filepath.Join(cfg.StateDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(cfg.StateDir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
	}

	e2 := startEngine(t, cfg)
	second := servedLeaf(t, e2)
	if !bytes.Equal(first.Raw, second.Raw) {
		t.Error("a restart issued a new leaf instead of reusing the saved one")
	}
	ca2, _ := os.ReadFile(filepath.Join(cfg.StateDir, LocalCACertFile))
	if !bytes.Equal(ca, ca2) {
		t.Error("a restart replaced the local CA a user may already trust")
	}
}

func TestSelfSignedLeafReplacedForNewHostnameButCAKept(t *testing.T) {
	dir := t.TempDir()
	a := &selfSignedSource{hostname: "a.example", dir: dir, logger: quietLogger(t)}
	if err := a.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	b := &selfSignedSource{hostname: "b.example", dir: dir, logger: quietLogger(t)}
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
	s := &selfSignedSource{hostname: "a.example", dir: dir, logger: quietLogger(t)}
	if err := s.refresh(time.Now()); err == nil {
		t.Fatal("a broken local-ca.crt was silently replaced; a user trusting it would be locked out without a word")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, LocalCACertFile)); string(data) != "garbage" {
		t.Error("the broken CA file was overwritten")
	}
}
