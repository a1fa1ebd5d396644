package certs

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
)

// issueFiles writes a chain and key for host, issued by a fresh local CA in
// dir, and returns the leaf's DER.
func issueFiles(t *testing.T, dir, host, certFile, keyFile string) []byte {
	t.Helper()
	src := NewLocalCA(host, dir, testutil.Logger(t))
	if err := src.refresh(time.Now()); err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(src.leafPath())
	ca, _ := os.ReadFile(filepath.Join(dir, LocalCACertFile))
	// The leaf file holds certificate then key; split them into two files
	// as certbot would write fullchain.pem and privkey.pem.
	i := bytes.Index(pem, []byte("-----BEGIN PRIVATE KEY"))
	privatefile.Write(certFile, append(append([]byte{}, pem[:i]...), ca...))
	privatefile.Write(keyFile, pem[i:])
	return src.cert.Certificate[0]
}

func TestFileSourceLoadsAndReloads(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	first := issueFiles(t, filepath.Join(dir, "ca1"), "files.example", certFile, keyFile)
	s := NewFiles(certFile, keyFile, testutil.Logger(t))
	s.pollInterval = 20 * time.Millisecond
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetCertificate(&tls.ClientHelloInfo{})
	if !bytes.Equal(got.Certificate[0], first) || len(got.Certificate) != 2 {
		t.Fatal("the files' chain is not what is served")
	}

	// A broken replacement keeps the old pair serving and is reported.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	testutil.Eventually(t, "the broken key is reported", func() bool { return s.Status().LastError != "" })
	if got, _ := s.GetCertificate(nil); !bytes.Equal(got.Certificate[0], first) {
		t.Error("a broken key replaced the working certificate")
	}

	second := issueFiles(t, filepath.Join(dir, "ca2"), "files.example", certFile, keyFile)
	testutil.Eventually(t, "the new pair is served", func() bool {
		got, _ := s.GetCertificate(nil)
		return bytes.Equal(got.Certificate[0], second)
	})
	if st := s.Status(); st.LastError != "" || st.Source != config.TLSFiles || st.Names[0] != "files.example" {
		t.Errorf("status after reload: %+v", st)
	}
}
