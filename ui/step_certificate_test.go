package ui

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
)

// writeCertFiles writes a self-signed certificate and key for host.
func writeCertFiles(t *testing.T, dir, host string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile
}

// TestCertificateFilesAreCheckedOnTheSpot: a key that does not match is
// the engine's error beside the fields; the right pair clears it.
func TestCertificateFilesAreCheckedOnTheSpot(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCertFiles(t, dir, defaultHostname)
	_, otherKey := writeCertFiles(t, t.TempDir(), defaultHostname)

	g := newTestApp(t, test.NewTempApp(t), testOptions(t.TempDir()))
	_, _, cert, _ := wizardSteps(g)
	onUI(func() {
		test.Tap(g.wizard.next)
		test.Tap(g.wizard.next)
		cert.choice.SetSelected(certChoices[3].label)
		test.Type(cert.certFile, certFile)
		test.Type(cert.keyFile, otherKey)
		if !cert.certErr.Visible() || !g.wizard.next.Disabled() {
			t.Errorf("a key of another certificate: error %q (shown %v), Next disabled %v", cert.certErr.Text, cert.certErr.Visible(), g.wizard.next.Disabled())
		}
		retype(cert.keyFile, keyFile)
		expectError(t, g, cert.certErr, "")
		if got := g.wizard.d.config(); got.CertFile != certFile || got.KeyFile != keyFile {
			t.Errorf("config files %q %q", got.CertFile, got.KeyFile)
		}
	})
}
