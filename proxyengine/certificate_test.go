package proxyengine

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
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
	if got := e.CertStatus(); got.Source != config.TLSSelfSigned || got.Issuer != "Gatehouse local CA (Gatehouse)" || got.NotAfter.IsZero() || got.NextRenewal.After(got.NotAfter) {
		t.Errorf("status %+v", got)
	}
	ca, _ := os.ReadFile(filepath.Join(cfg.StateDir, certs.LocalCACertFile))
	e.Shutdown(t.Context())

	e2 := startEngine(t, cfg)
	second := servedLeaf(t, e2)
	if !bytes.Equal(first.Raw, second.Raw) {
		t.Error("a restart issued a new leaf instead of reusing the saved one")
	}
	ca2, _ := os.ReadFile(filepath.Join(cfg.StateDir, certs.LocalCACertFile))
	if !bytes.Equal(ca, ca2) {
		t.Error("a restart replaced the local CA a user may already trust")
	}
}
