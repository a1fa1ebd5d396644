package trust

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newCA writes a fresh CA certificate to dir and returns its path and PEM.
func newCA(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "Gatehouse test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	path := filepath.Join(dir, "local-ca.crt")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// debianRoot makes an empty Debian-style system store under a temporary root.
func debianRoot(t *testing.T) string {
	t.Helper()
	if _, err := (&Store{}).findTool("update-ca-certificates"); err != nil {
		t.Skip("update-ca-certificates (Debian's ca-certificates) is not installed")
	}
	root := t.TempDir()
	for _, d := range []string{"usr/local/share/ca-certificates", "usr/share/ca-certificates", "etc/ssl/certs", "etc/ca-certificates/update.d"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Another CA the administrator trusts already, as every real system has
	// some: the bundle is rebuilt only from what remains.
	other, _ := newCA(t, t.TempDir())
	data, _ := os.ReadFile(other)
	os.WriteFile(filepath.Join(root, "usr/local/share/ca-certificates/other.crt"), data, 0o644)
	return root
}

// newNSSDB makes a real NSS database with certutil, as a browser would.
func newNSSDB(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("certutil", "-N", "--empty-password", "-d", "sql:"+dir).CombinedOutput(); err != nil {
		t.Fatalf("certutil -N: %v %s", err, out)
	}
}

func nssHas(t *testing.T, dir string) bool {
	t.Helper()
	return exec.Command("certutil", "-L", "-d", "sql:"+dir, "-n", Nickname).Run() == nil
}

func byPlace(results []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range results {
		m[r.Place] = r
	}
	return m
}

func TestTrustAndUntrustWithRealTools(t *testing.T) {
	if _, err := exec.LookPath("certutil"); err != nil {
		t.Skip("certutil (libnss3-tools) is not installed: make deps installs it")
	}
	root, home := debianRoot(t), t.TempDir()
	chrome := filepath.Join(home, ".pki", "nssdb")
	firefox := filepath.Join(home, ".mozilla", "firefox", "abc123.default-release")
	newNSSDB(t, chrome)
	newNSSDB(t, firefox)
	os.MkdirAll(filepath.Join(home, ".mozilla", "firefox", "Crash Reports"), 0o755) // not a profile
	certFile, data := newCA(t, t.TempDir())
	// The file changes after it was read and shown (another CA, or a link
	// to a secret of root's): the certificate shown is what is trusted.
	os.Remove(certFile)
	if err := os.Symlink(filepath.Join(root, "usr/local/share/ca-certificates/other.crt"), certFile); err != nil {
		t.Fatal(err)
	}
	// Elevate through env, a real program that runs the rest, as pkexec does.
	s := &Store{Root: root, Home: home, Elevate: []string{"env"}}
	ctx := context.Background()

	results := s.Trust(ctx, data)
	t.Logf("trust:\n%s", Summary(results))
	got := byPlace(results)
	if len(results) != 3 {
		t.Errorf("want the system store and two browser databases, got %d results", len(results))
	}
	if r := got[systemPlace]; r.Outcome != Done {
		t.Fatalf("system store: %v", r)
	}
	installed, err := os.ReadFile(filepath.Join(root, "usr/local/share/ca-certificates", SystemFileName))
	if err != nil || !bytes.Equal(installed, data) {
		t.Errorf("system store file: %v", err)
	}
	bundle, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil || !bytes.Contains(bundle, bytes.TrimSpace(data)) {
		t.Errorf("update-ca-certificates did not put the CA into the bundle: %v", err)
	}
	for _, dir := range []string{chrome, firefox} {
		out, err := exec.Command("certutil", "-L", "-d", "sql:"+dir, "-n", Nickname, "-a").Output()
		if err != nil || !bytes.Contains(bytes.ReplaceAll(out, []byte("\r"), nil), bytes.TrimSpace(data)) {
			t.Errorf("%s does not hold the certificate shown as %q: %v %s", dir, Nickname, err, out)
		}
	}
	if r := got["Firefox (profile abc123.default-release)"]; r.Outcome != Done {
		t.Errorf("Firefox: %v", r)
	}
	// Again: nothing breaks, the system store says it is already there.
	if r := byPlace(s.Trust(ctx, data))[systemPlace]; r.Outcome != Done || !strings.Contains(r.Detail, "already") {
		t.Errorf("second trust: %v", r)
	}

	results = s.Untrust(ctx)
	t.Logf("untrust:\n%s", Summary(results))
	for _, r := range results {
		if r.Outcome != Done {
			t.Errorf("untrust: %v", r)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/share/ca-certificates", SystemFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("system store file left: %v", err)
	}
	bundle, _ = os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if bytes.Contains(bundle, bytes.TrimSpace(data)) {
		t.Error("the bundle still holds the CA")
	}
	for _, dir := range []string{chrome, firefox} {
		if nssHas(t, dir) {
			t.Errorf("%s still lists %q", dir, Nickname)
		}
	}
	if r := byPlace(s.Untrust(ctx))[systemPlace]; r.Outcome != Skipped {
		t.Errorf("untrust twice: %v", r)
	}
}

func TestTrustSaysWhatItCouldNotDo(t *testing.T) {
	root, home := debianRoot(t), t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, ".pki", "nssdb", "cert9.db"), nil, 0o600)
	_, data := newCA(t, t.TempDir())
	noCertutil := func(name string) (string, error) {
		if name == "certutil" {
			return "", exec.ErrNotFound
		}
		return exec.LookPath(name)
	}
	// The password dialog dismissed: pkexec exits 126. `sh -c "exit 126"`
	// stands in for pkexec, run for real.
	s := &Store{Root: root, Home: home, LookPath: noCertutil, Elevate: []string{"/bin/sh", "-c", "exit 126"}}
	got := byPlace(s.Trust(context.Background(), data))
	if r := got[systemPlace]; r.Outcome != Failed || !strings.Contains(r.Detail, "password dialog was closed") {
		t.Errorf("system store with the dialog closed: %v", r)
	}
	if r := got["Chrome/Chromium (~/.pki/nssdb)"]; r.Outcome != Failed || !strings.Contains(r.Detail, "libnss3-tools") {
		t.Errorf("browser without certutil: %v", r)
	}
	if !s.NeedsPassword() {
		t.Error("NeedsPassword false with an elevating command")
	}

	// No browser at all, and a file that is not a certificate.
	s = &Store{Root: root, Home: t.TempDir(), Elevate: []string{}}
	if r := byPlace(s.Trust(context.Background(), data))["Browsers"]; r.Outcome != Skipped {
		t.Errorf("no browsers: %v", r)
	}
	if r := s.Trust(context.Background(), []byte("hello")); len(r) != 1 || r[0].Outcome != Failed {
		t.Errorf("not a certificate: %v", r)
	}
}

func TestFingerprintMatchesOpenSSL(t *testing.T) {
	certFile, data := newCA(t, t.TempDir())
	fp, err := Fingerprint(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", certFile).Output()
	if err != nil {
		t.Skip("openssl is not installed")
	}
	if want := strings.TrimSpace(strings.SplitN(string(out), "=", 2)[1]); fp != want {
		t.Errorf("Fingerprint = %s, openssl says %s", fp, want)
	}
}
