package testutil

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// A Pebble is Let's Encrypt's test CA, in process, validating challenges
// on fixed loopback ports of the addresses a fake DNS server gives.
// (internal/acme's own tests use a richer harness with rate limits and
// External Account Binding.)
type Pebble struct {
	Directory string         // the ACME directory URL
	APIRoots  string         // a PEM file of the roots trusted for the ACME API (config's acme_ca_roots)
	Roots     *x509.CertPool // Pebble's root, to which issued certificates chain
}

var pebbleEnvOnce sync.Once

// StartPebble serves a Pebble until the test ends. Its validator asks the
// DNS server at dnsAddr and connects to httpPort (HTTP-01) and tlsPort
// (TLS-ALPN-01).
func StartPebble(t testing.TB, httpPort, tlsPort int, dnsAddr string) *Pebble {
	t.Helper()
	pebbleEnvOnce.Do(func() {
		// Read when Pebble's parts are constructed: no random sleeps
		// before validation, no injected bad nonces, no reused
		// authorizations. Set for the whole process, which nothing else
		// reads, so tests may run in parallel.
		for k, v := range map[string]string{"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"} {
			os.Setenv(k, v)
		}
	})
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default profile"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	frontend := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewUnstartedServer(frontend.Handler())
	srv.Config.ErrorLog = logger
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p := &Pebble{Directory: srv.URL + wfe.DirectoryPath, APIRoots: filepath.Join(t.TempDir(), "pebble-api-root.pem"), Roots: x509.NewCertPool()}
	if err := os.WriteFile(p.APIRoots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Roots.AddCert(authority.GetRootCert(0).Cert)
	return p
}
