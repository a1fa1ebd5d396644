package acme

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// acmeZone is the DNS zone Pebble's validator asks: acmeTestHost at ip
// (AAAA queries get no answer, so the validator uses IPv4), or NXDOMAIN
// when ip is "".
func acmeZone(ip string) testutil.Zone {
	zone := testutil.Zone{Records: map[string][]netip.Addr{}}
	if ip != "" {
		zone.Records[acmeTestHost] = []netip.Addr{netip.MustParseAddr(ip)}
	}
	return zone
}

// testPebble is Let's Encrypt's test CA, in process, validating on the given
// ports of whatever address testDNS gives.
type testPebble struct {
	directory string         // ACME directory URL
	apiRoots  string         // PEM file of the roots trusted for the ACME API (for ACMECARoots)
	roots     *x509.CertPool // Pebble's root, which issued certificates chain to

	newOrderPath string
	orders       atomic.Int64 // new-order requests received
	// rateLimited makes new orders fail as Let's Encrypt does when a rate
	// limit is hit (Pebble has none): 429, rateLimited, Retry-After 1 hour.
	rateLimited atomic.Bool
	requests    atomic.Int64 // requests of any kind received
}

// pebbleOptions vary the test CA.
type pebbleOptions struct {
	validity time.Duration     // of issued certificates; Pebble's 90 days if zero
	eabKeys  map[string]string // if set, External Account Binding is required: key ID -> base64url HMAC key
}

var pebbleEnvOnce sync.Once

func startPebble(t *testing.T, httpPort, tlsPort int, dnsAddr string, opts pebbleOptions) *testPebble {
	t.Helper()
	pebbleEnvOnce.Do(func() {
		// Pebble reads these when its parts are constructed: no random
		// sleeps before validation, no injected bad nonces, no reuse of valid
		// authorizations (so each order proves control again). Set for the
		// whole process, which nothing else reads, so tests can run in
		// parallel (t.Setenv forbids that).
		for k, v := range map[string]string{"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"} {
			os.Setenv(k, v)
		}
	})

	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() && os.Getenv("PEBBLE_LOG") != "" {
		logger = log.New(os.Stderr, "pebble ", log.Lmicroseconds)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "default profile", ValidityPeriod: uint64(opts.validity / time.Second)},
	})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	for kid, key := range opts.eabKeys {
		if err := store.AddExternalAccountKeyByID(kid, key); err != nil {
			t.Fatal(err)
		}
	}
	frontend := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, len(opts.eabKeys) > 0, 0, 0)

	p := &testPebble{newOrderPath: "/order-plz"}
	handler := frontend.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if r.Method == http.MethodPost && r.URL.Path == p.newOrderPath {
			p.orders.Add(1)
			if p.rateLimited.Load() {
				w.Header().Set("Content-Type", "application/problem+json")
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s","status":429}`)
				return
			}
		}
		handler.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = logger // a client that does not trust the API is tested on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.directory = srv.URL + wfe.DirectoryPath

	p.apiRoots = filepath.Join(t.TempDir(), "pebble-api-root.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p.apiRoots, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(authority.GetRootCert(0).Cert)

	// Check the assumption that new orders go to /order-plz.
	resp, err := srv.Client().Get(p.directory)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), p.newOrderPath) {
		t.Fatalf("Pebble's directory does not name %s for new orders: %s", p.newOrderPath, body)
	}
	p.requests.Store(0)
	return p
}

// waitFor polls cond until it holds, for at most timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
