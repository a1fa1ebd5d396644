package preflight

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gorilla/websocket"
)

// selfSignedCert makes a self-signed leaf like authentik's default one,
// valid for the given names and addresses.
func selfSignedCert(t *testing.T, dnsNames []string, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "authentik default certificate", Organization: []string{"authentik"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func fingerprintOf(cert tls.Certificate) string {
	sum := sha256.Sum256(cert.Leaf.Raw)
	return upstream.FormatFingerprint(sum[:])
}

// fakeAuthentik answers like authentik: 204 on its liveness path, a
// redirect on /, and WebSockets at /ws/client/ unless noWebSocket is set
// (as when something in between drops the Upgrade header). It records the
// Host and X-Forwarded-Proto of the requests it saw.
type fakeAuthentik struct {
	noWebSocket bool
	healthCode  int // default 204

	mu    sync.Mutex
	hosts []string
	proto []string
}

func (f *fakeAuthentik) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hosts = append(f.hosts, r.Host)
	f.proto = append(f.proto, r.Header.Get("X-Forwarded-Proto"))
	f.mu.Unlock()
	switch r.URL.Path {
	case "/-/health/live/":
		code := f.healthCode
		if code == 0 {
			code = http.StatusNoContent
		}
		w.WriteHeader(code)
	case "/ws/client/":
		if f.noWebSocket {
			http.Error(w, "expected a WebSocket", http.StatusBadRequest)
			return
		}
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	case "/":
		http.Redirect(w, r, "/if/flow/default-authentication-flow/", http.StatusFound)
	default:
		http.NotFound(w, r)
	}
}

// plainApp is an app other than authentik: a page at / and nothing else.
var plainApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Write([]byte("hello"))
})

// startTLSUpstream serves h over TLS with cert on 127.0.0.1.
func startTLSUpstream(t *testing.T, h http.Handler, cert tls.Certificate) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the checks provoke handshake errors on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func startPlainUpstream(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func upstreamResults(t *testing.T, k *Checker, cfg config.Config) map[Name]Result {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "sso.example.com"
	}
	out := map[Name]Result{}
	results := k.CheckUpstream(context.Background(), cfg)
	want := []Name{NameUpstreamConnect, NameUpstreamTLS, NameUpstreamHealth, NameUpstreamWebSocket}
	if len(results) != len(want) {
		t.Fatalf("got %d results, want %d", len(results), len(want))
	}
	for i, r := range results {
		if r.Name != want[i] {
			t.Fatalf("result %d is %q, want %q", i, r.Name, want[i])
		}
		if (r.Status == Fail || r.Status == Warn) && r.Fix == "" {
			t.Errorf("%s: %s without a fix: %s", r.Name, r.Status, r.Finding)
		}
		out[r.Name] = r
	}
	return out
}

func wantStatus(t *testing.T, results map[Name]Result, want map[Name]Status) {
	t.Helper()
	for name, status := range want {
		if r := results[name]; r.Status != status {
			t.Errorf("%s: status %s, want %s: %s", name, r.Status, status, r)
		}
	}
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q lacks %q", what, s, sub)
		}
	}
}

func TestCheckUpstreamSelfSignedUntrusted(t *testing.T) {
	cert := selfSignedCert(t, []string{"authentik-default"})
	srv := startTLSUpstream(t, &fakeAuthentik{}, cert)
	var k Checker
	res := upstreamResults(t, &k, config.Config{Upstream: srv.URL})
	wantStatus(t, res, map[Name]Status{
		NameUpstreamConnect: Pass, NameUpstreamTLS: Fail,
		NameUpstreamHealth: Skip, NameUpstreamWebSocket: Skip,
	})
	r := res[NameUpstreamTLS]
	c := r.Certificate
	if c == nil {
		t.Fatal("no certificate facts")
	}
	fp := fingerprintOf(cert)
	sum := sha256.Sum256(cert.Certificate[0])
	if c.Fingerprint != fp || c.Fingerprint != strings.ToUpper(hexColons(sum[:])) {
		t.Errorf("fingerprint %s, want %s", c.Fingerprint, fp)
	}
	if c.Subject != "CN=authentik default certificate,O=authentik" || c.Issuer != c.Subject || !c.SelfSigned ||
		c.Verified || c.Trust != TrustSystemRoots || len(c.DNSNames) != 1 || c.DNSNames[0] != "authentik-default" {
		t.Errorf("certificate facts %+v", c)
	}
	if !c.NotAfter.Equal(cert.Leaf.NotAfter) {
		t.Errorf("not after %s, want %s", c.NotAfter, cert.Leaf.NotAfter)
	}
	wantContains(t, "verify error", c.VerifyError, "self-signed", "valid for authentik-default, not for 127.0.0.1")
	wantContains(t, "finding", r.Finding, "self-signed certificate for authentik-default", fp, "is not trusted")
	wantContains(t, "fix", r.Fix, "--upstream-fingerprint "+fp)
	if r.Field != "upstream" {
		t.Errorf("field %q", r.Field)
	}
}

// hexColons writes bytes as lower-case colon hex, independently of
// FormatFingerprint.
func hexColons(b []byte) string {
	h := hex.EncodeToString(b)
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestCheckUpstreamPinnedFingerprint(t *testing.T) {
	cert := selfSignedCert(t, []string{"authentik-default"})
	app := &fakeAuthentik{}
	srv := startTLSUpstream(t, app, cert)
	var k Checker

	// The right pin, written as hex without colons, as people paste it.
	sum := sha256.Sum256(cert.Leaf.Raw)
	res := upstreamResults(t, &k, config.Config{Upstream: srv.URL, UpstreamFingerprint: hex.EncodeToString(sum[:])})
	wantStatus(t, res, map[Name]Status{
		NameUpstreamConnect: Pass, NameUpstreamTLS: Pass,
		NameUpstreamHealth: Pass, NameUpstreamWebSocket: Pass,
	})
	r := res[NameUpstreamTLS]
	if c := r.Certificate; c == nil || !c.Verified || c.Trust != TrustPinned || c.Fingerprint != fingerprintOf(cert) || r.Field != "upstream_fingerprint" {
		t.Errorf("pinned result %s, field %s, certificate %+v", r, r.Field, r.Certificate)
	}
	wantContains(t, "finding", r.Finding, "matches the pinned fingerprint")
	wantContains(t, "health", res[NameUpstreamHealth].Finding, "GET /-/health/live/ answered 204 No Content", "authentik is alive")
	if res[NameUpstreamWebSocket].HTTPStatus != http.StatusSwitchingProtocols {
		t.Errorf("websocket status %d", res[NameUpstreamWebSocket].HTTPStatus)
	}
	// The checks asked as the proxy will: the public Host, forwarded as https.
	app.mu.Lock()
	for i, h := range app.hosts {
		if h != "sso.example.com" || app.proto[i] != "https" {
			t.Errorf("request %d: Host %q, X-Forwarded-Proto %q", i, h, app.proto[i])
		}
	}
	app.mu.Unlock()

	// A wrong pin: another certificate's.
	other := fingerprintOf(selfSignedCert(t, []string{"authentik-default"}))
	res = upstreamResults(t, &k, config.Config{Upstream: srv.URL, UpstreamFingerprint: other})
	wantStatus(t, res, map[Name]Status{
		NameUpstreamConnect: Pass, NameUpstreamTLS: Fail,
		NameUpstreamHealth: Skip, NameUpstreamWebSocket: Skip,
	})
	r = res[NameUpstreamTLS]
	if c := r.Certificate; c == nil || c.Verified || c.Fingerprint != fingerprintOf(cert) {
		t.Errorf("wrong pin: certificate %+v", r.Certificate)
	}
	wantContains(t, "finding", r.Finding, "does not match the pinned "+other, fingerprintOf(cert))
	wantContains(t, "fix", r.Fix, "pin the new one: --upstream-fingerprint "+fingerprintOf(cert))
}

func TestCheckUpstreamCAFile(t *testing.T) {
	dir := t.TempDir()
	writePEM := func(cert tls.Certificate) string {
		path := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var k Checker

	// Trusted, but issued for another name than the upstream's 127.0.0.1.
	cert := selfSignedCert(t, []string{"authentik-default"})
	srv := startTLSUpstream(t, &fakeAuthentik{}, cert)
	res := upstreamResults(t, &k, config.Config{Upstream: srv.URL, UpstreamCA: writePEM(cert)})
	r := res[NameUpstreamTLS]
	if r.Status != Fail || r.Field != "upstream_ca" || r.Certificate == nil || r.Certificate.Trust != TrustCAFile {
		t.Fatalf("name mismatch: %s, field %s, certificate %+v", r, r.Field, r.Certificate)
	}
	wantContains(t, "finding", r.Finding, "it is valid for authentik-default, not for 127.0.0.1")
	wantContains(t, "fix", r.Fix, "--upstream-fingerprint "+fingerprintOf(cert))

	// Trusted and valid for 127.0.0.1.
	cert = selfSignedCert(t, []string{"authentik-default"}, net.ParseIP("127.0.0.1"))
	srv = startTLSUpstream(t, &fakeAuthentik{}, cert)
	ca := writePEM(cert)
	res = upstreamResults(t, &k, config.Config{Upstream: srv.URL, UpstreamCA: ca})
	wantStatus(t, res, map[Name]Status{NameUpstreamTLS: Pass, NameUpstreamHealth: Pass, NameUpstreamWebSocket: Pass})
	wantContains(t, "finding", res[NameUpstreamTLS].Finding, "verifies against "+ca)

	// Another CA file: an unknown authority, and the certificate is not self-signed.
	res = upstreamResults(t, &k, config.Config{Upstream: startTLSUpstream(t, &fakeAuthentik{}, issuedCert(t)).URL, UpstreamCA: ca})
	r = res[NameUpstreamTLS]
	if r.Status != Fail || r.Certificate == nil || r.Certificate.SelfSigned {
		t.Fatalf("other CA: %s, certificate %+v", r, r.Certificate)
	}
	wantContains(t, "finding", r.Finding, "issued by CN=Test Private CA", "which is not among the CAs in "+ca)
	wantContains(t, "fix", r.Fix, "--upstream-ca")
}

// issuedCert makes a leaf for 127.0.0.1 signed by a throwaway CA.
func issuedCert(t *testing.T) tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Private CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "authentik.lan"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: leaf}
}

func TestCheckUpstreamInsecure(t *testing.T) {
	cert := selfSignedCert(t, []string{"authentik-default"})
	srv := startTLSUpstream(t, &fakeAuthentik{}, cert)
	var k Checker
	res := upstreamResults(t, &k, config.Config{Upstream: srv.URL, UpstreamInsecure: true})
	wantStatus(t, res, map[Name]Status{
		NameUpstreamTLS: Warn, NameUpstreamHealth: Pass, NameUpstreamWebSocket: Pass,
	})
	r := res[NameUpstreamTLS]
	if r.Certificate == nil || r.Certificate.Verified || r.Certificate.Trust != TrustInsecure || r.Field != "upstream_insecure" {
		t.Errorf("insecure: %s, certificate %+v", r, r.Certificate)
	}
	wantContains(t, "fix", r.Fix, "--upstream-fingerprint "+fingerprintOf(cert))
}

func TestCheckUpstreamRefusesWebSocket(t *testing.T) {
	var k Checker

	// An app other than authentik: no health path, no WebSocket: warnings.
	res := upstreamResults(t, &k, config.Config{Upstream: startPlainUpstream(t, plainApp).URL})
	wantStatus(t, res, map[Name]Status{
		NameUpstreamConnect: Pass, NameUpstreamTLS: Skip,
		NameUpstreamHealth: Warn, NameUpstreamWebSocket: Warn,
	})
	wantContains(t, "health", res[NameUpstreamHealth].Finding, "answered 404 Not Found, so this is probably not authentik", "GET / answered 200 OK")
	wantContains(t, "health fix", res[NameUpstreamHealth].Fix, "--health-path")
	ws := res[NameUpstreamWebSocket]
	if ws.HTTPStatus != http.StatusNotFound {
		t.Errorf("websocket status %d, want 404", ws.HTTPStatus)
	}
	wantContains(t, "websocket", ws.Finding, "answered the WebSocket upgrade at /ws/client/ with 404 Not Found instead of 101 Switching Protocols")
	wantContains(t, "websocket fix", ws.Fix, "fine if this app does not use WebSockets")

	// authentik behind something that refuses upgrades: a failure.
	res = upstreamResults(t, &k, config.Config{Upstream: startPlainUpstream(t, &fakeAuthentik{noWebSocket: true}).URL})
	wantStatus(t, res, map[Name]Status{NameUpstreamHealth: Pass, NameUpstreamWebSocket: Fail})
	ws = res[NameUpstreamWebSocket]
	wantContains(t, "websocket", ws.Finding, "400 Bad Request", "authentik's interface and outposts need WebSockets")
	if ws.HTTPStatus != http.StatusBadRequest {
		t.Errorf("websocket status %d, want 400", ws.HTTPStatus)
	}
}

func TestCheckUpstreamUnhealthy(t *testing.T) {
	var k Checker
	res := upstreamResults(t, &k, config.Config{Upstream: startPlainUpstream(t, &fakeAuthentik{healthCode: http.StatusServiceUnavailable}).URL})
	r := res[NameUpstreamHealth]
	if r.Status != Fail || r.HTTPStatus != http.StatusServiceUnavailable {
		t.Errorf("result %s, status %d", r, r.HTTPStatus)
	}
	wantContains(t, "finding", r.Finding, "503 Service Unavailable")
	wantContains(t, "fix", r.Fix, "logs")
	// A custom health path that 404s falls back to GET /, which redirects.
	res = upstreamResults(t, &k, config.Config{Upstream: startPlainUpstream(t, &fakeAuthentik{}).URL, HealthPath: "/healthz"})
	wantStatus(t, res, map[Name]Status{NameUpstreamHealth: Warn, NameUpstreamWebSocket: Pass})
	wantContains(t, "finding", res[NameUpstreamHealth].Finding, "GET /healthz answered 404", "GET / answered 302 Found")
	// A health path that redirects answers, but not as a health path should.
	res = upstreamResults(t, &k, config.Config{Upstream: startPlainUpstream(t, &fakeAuthentik{}).URL, HealthPath: "/"})
	wantStatus(t, res, map[Name]Status{NameUpstreamHealth: Warn})
	wantContains(t, "finding", res[NameUpstreamHealth].Finding, "GET / answered 302 Found, redirecting to /if/flow/default-authentication-flow/")
}

func TestCheckUpstreamUnreachable(t *testing.T) {
	addr := testutil.ReservePort(t).Addr // bound, never listening: connections are refused
	k := Checker{Timeout: 2 * time.Second}
	start := time.Now()
	res := upstreamResults(t, &k, config.Config{Upstream: "https://" + addr})
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %s", elapsed)
	}
	wantStatus(t, res, map[Name]Status{
		NameUpstreamConnect: Fail, NameUpstreamTLS: Skip,
		NameUpstreamHealth: Skip, NameUpstreamWebSocket: Skip,
	})
	r := res[NameUpstreamConnect]
	wantContains(t, "finding", r.Finding, addr+" refused the connection: nothing is listening on port")
	wantContains(t, "fix", r.Fix, "9443")
	wantContains(t, "skip", res[NameUpstreamTLS].Finding, "no connection to the upstream")
}

func TestCheckUpstreamUnresolvable(t *testing.T) {
	resolver := testutil.StartDNS(t, testutil.Zone{Records: map[string][]netip.Addr{}}).Resolver()
	k := Checker{Resolver: resolver, Timeout: 2 * time.Second}
	res := upstreamResults(t, &k, config.Config{Upstream: "https://authentik.example.com:9443"})
	r := res[NameUpstreamConnect]
	if r.Status != Fail {
		t.Fatalf("result %s", r)
	}
	wantContains(t, "finding", r.Finding, "host name authentik.example.com does not resolve")
	wantContains(t, "fix", r.Fix, "IP address")

	// UpstreamResolver takes Resolver's place for the upstream, as
	// `gatehouse check --dns-server` needs.
	upstreamDNS := testutil.StartDNS(t, testutil.Zone{Records: map[string][]netip.Addr{"authentik.example.com": {netip.MustParseAddr("127.0.0.1")}}}).Resolver()
	srv := startPlainUpstream(t, &fakeAuthentik{})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	k.UpstreamResolver = upstreamDNS
	res = upstreamResults(t, &k, config.Config{Upstream: "http://authentik.example.com:" + port})
	wantStatus(t, res, map[Name]Status{NameUpstreamConnect: Pass, NameUpstreamHealth: Pass, NameUpstreamWebSocket: Pass})
	wantContains(t, "finding", res[NameUpstreamConnect].Finding, "connected to authentik.example.com:"+port+" (127.0.0.1:"+port+")")
}

// TestDescribeDialError covers failures loopback cannot produce for real
// without asking a DNS server or a router beyond this machine.
func TestDescribeDialError(t *testing.T) {
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	tests := []struct {
		err          error
		finding, fix string
	}{
		{&net.DNSError{Err: "no such host", Name: "authentik.lan", IsNotFound: true}, "host name authentik.lan does not resolve on this machine", "use the upstream's IP address"},
		{&net.DNSError{Err: "server misbehaving", Name: "authentik.lan", Server: "10.0.0.1:53"}, "looking up the upstream's host name authentik.lan failed: server misbehaving", "DNS server"},
		{dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)), "authentik.lan:9443 refused the connection: nothing is listening on port 9443", "9443"},
		{dial(context.DeadlineExceeded), "authentik.lan:9443 did not answer within 10s", "no firewall drops connections to port 9443"},
		{dial(os.NewSyscallError("connect", syscall.EHOSTUNREACH)), "there is no route to authentik.lan", "off or on another network"},
		{dial(os.NewSyscallError("connect", syscall.ENETUNREACH)), "there is no route to authentik.lan", "off or on another network"},
	}
	for _, tt := range tests {
		finding, fix := describeDialError("authentik.lan:9443", tt.err, 10*time.Second)
		if !strings.Contains(finding, tt.finding) || !strings.Contains(fix, tt.fix) {
			t.Errorf("%v: %q / %q; want %q / %q", tt.err, finding, fix, tt.finding, tt.fix)
		}
	}
}

func TestCheckUpstreamWrongScheme(t *testing.T) {
	var k Checker
	// https:// to a plain HTTP port.
	plain := startPlainUpstream(t, &fakeAuthentik{})
	res := upstreamResults(t, &k, config.Config{Upstream: strings.Replace(plain.URL, "http://", "https://", 1)})
	r := res[NameUpstreamTLS]
	if r.Status != Fail || r.Certificate != nil {
		t.Fatalf("https to http: %s", r)
	}
	wantContains(t, "finding", r.Finding, "answered in plain HTTP, not TLS")
	wantContains(t, "fix", r.Fix, "use http://")

	// http:// to a TLS port.
	tlsSrv := startTLSUpstream(t, &fakeAuthentik{}, selfSignedCert(t, []string{"authentik-default"}))
	res = upstreamResults(t, &k, config.Config{Upstream: strings.Replace(tlsSrv.URL, "https://", "http://", 1)})
	r = res[NameUpstreamHealth]
	if r.Status != Fail {
		t.Fatalf("http to https: %s", r)
	}
	wantContains(t, "finding", r.Finding, "expects HTTPS")
	wantContains(t, "fix", r.Fix, "use https://")
}

// TestCheckUpstreamSilentTLS: a port that accepts but never answers the
// handshake fails within the check's timeout.
func TestCheckUpstreamSilentTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	k := Checker{Timeout: 300 * time.Millisecond}
	start := time.Now()
	res := upstreamResults(t, &k, config.Config{Upstream: "https://" + ln.Addr().String()})
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %s for a 300ms timeout", elapsed)
	}
	r := res[NameUpstreamTLS]
	if r.Status != Fail {
		t.Fatalf("result %s", r)
	}
	wantContains(t, "finding", r.Finding, "got no answer within 300ms")
}

func TestCheckUpstreamBadConfig(t *testing.T) {
	var k Checker
	res := upstreamResults(t, &k, config.Config{Upstream: "authentik.lan:9443"})
	wantStatus(t, res, map[Name]Status{
		NameUpstreamConnect: Fail, NameUpstreamTLS: Skip,
		NameUpstreamHealth: Skip, NameUpstreamWebSocket: Skip,
	})
	wantContains(t, "finding", res[NameUpstreamConnect].Finding, "has no scheme")

	srv := startTLSUpstream(t, &fakeAuthentik{}, selfSignedCert(t, []string{"authentik-default"}))
	res = upstreamResults(t, &k, config.Config{Upstream: srv.URL, UpstreamInsecure: true, UpstreamFingerprint: fingerprintOf(selfSignedCert(t, nil))})
	r := res[NameUpstreamTLS]
	if r.Status != Fail || r.Field != "upstream_ca" {
		t.Errorf("two trust options: %s, field %s", r, r.Field)
	}
	wantContains(t, "finding", r.Finding, "choose one way to trust the upstream")
}
