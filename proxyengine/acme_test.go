package proxyengine

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

const acmeTestHost = "sso.gatehouse.test"

// acmeRig is Pebble, its DNS, an upstream, and the settings to run the
// engine against them.
type acmeRig struct {
	pebble   *testPebble
	dns      *pebbleDNS
	upstream *httptest.Server
	stateDir string
	http     *reservedPort // where Pebble's validator sends HTTP-01
	tls      *reservedPort // where Pebble's validator sends TLS-ALPN-01
	logger   *slog.Logger
}

// newACMERig starts the rig for one test, which then runs in parallel with
// the other ACME tests: each has its own Pebble, DNS and ports.
func newACMERig(t *testing.T, opts pebbleOptions) *acmeRig {
	t.Helper()
	t.Parallel()
	r := &acmeRig{http: reservePort(t), tls: reservePort(t), stateDir: t.TempDir(), logger: quietLogger(t)}
	r.dns = startPebbleDNS(t, "127.0.0.1")
	r.pebble = startPebble(t, r.http.port, r.tls.port, r.dns.addr, opts)
	r.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello from upstream")
	}))
	t.Cleanup(r.upstream.Close)
	return r
}

// progressLog collects progress events.
type progressLog struct {
	mu     sync.Mutex
	events []ProgressEvent
}

func (p *progressLog) add(ev ProgressEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
}

func (p *progressLog) stages() []Stage {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Stage
	for _, ev := range p.events {
		if len(out) == 0 || out[len(out)-1] != ev.Stage {
			out = append(out, ev.Stage)
		}
	}
	return out
}

// anyPort puts an engine listener away from Pebble's validation ports.
const anyPort = "127.0.0.1:0"

// config runs the engine with its TLS listener on httpsAddr and its plain
// listener on httpAddr (Off for none): Pebble's ports (r.tls.addr,
// r.http.addr) or anyPort.
func (r *acmeRig) config(httpsAddr, httpAddr string, progress *progressLog) Config {
	c := Config{
		Hostname:      acmeTestHost,
		Upstream:      r.upstream.URL,
		TLS:           TLSACME,
		HTTPAddr:      httpAddr,
		HTTPSAddr:     httpsAddr,
		StateDir:      r.stateDir,
		ACMEDirectory: r.pebble.directory,
		ACMECARoots:   r.pebble.apiRoots,
		ACMEEmail:     "admin@gatehouse.test",
		StatusAddr:    Off,
		Logger:        r.logger,
	}
	if progress != nil {
		c.Progress = progress.add
	}
	return c
}

// start starts an engine for c, returning Start's error, and stops it when
// the test ends. The engine takes Pebble's ports from the rig.
func (r *acmeRig) start(t *testing.T, c Config, setup ...func(*Engine)) (*Engine, error) {
	t.Helper()
	e, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.handOver(e)
	for _, f := range setup {
		f(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e, nil
}

// handOver makes e listen on Pebble's ports through the rig, which holds
// them for the whole test, and bind any other address itself.
func (r *acmeRig) handOver(e *Engine) {
	e.bind = func(purpose, addr string) (net.Listener, error) {
		for _, p := range []*reservedPort{r.tls, r.http} {
			if addr == p.addr {
				return p.listener()
			}
		}
		return listen(purpose, addr)
	}
}

// visit makes a real TLS handshake to the engine, verifying the served
// chain against Pebble's root, and fetches a page through the proxy.
func (r *acmeRig) visit(t *testing.T, e *Engine) *tls.ConnectionState {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: acmeTestHost, RootCAs: r.pebble.roots},
			DialContext:     dialEngine(e),
		},
	}
	resp, err := client.Get("https://" + acmeTestHost + "/")
	if err != nil {
		t.Fatalf("visiting the proxy: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "hello from upstream" {
		t.Fatalf("visit: %s %q", resp.Status, body)
	}
	if len(resp.TLS.VerifiedChains) == 0 {
		t.Fatal("the served chain was not verified")
	}
	return resp.TLS
}

func TestACMEIssuesByTLSALPN01AloneAndReusesItAfterRestart(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	progress := &progressLog{}
	// Port 80 off: Pebble's HTTP-01 port has no listener at all.
	cfg := r.config(r.tls.addr, Off, progress)
	e, err := r.start(t, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	state := r.visit(t, e)
	leaf := state.PeerCertificates[0]
	if !slices.Equal(leaf.DNSNames, []string{acmeTestHost}) {
		t.Errorf("certificate names %v, want [%s]", leaf.DNSNames, acmeTestHost)
	}
	if got := r.pebble.orders.Load(); got != 1 {
		t.Errorf("Pebble received %d new orders, want 1", got)
	}

	want := []Stage{StageListen, StageCertificate, StageACMEAccount, StageACMEOrder, StageACMEChallenge, StageACMEValidating, StageACMEIssued, StageUpstream, StageReady}
	if got := progress.stages(); !slices.Equal(got, want) {
		t.Errorf("stages %v, want %v", got, want)
	}
	for _, ev := range progress.events {
		if ev.Stage == StageACMEChallenge && !strings.Contains(ev.Message, "tls-alpn-01") {
			t.Errorf("challenge event %q does not name tls-alpn-01", ev.Message)
		}
	}

	st := e.CertStatus()
	if st.Source != TLSACME || !strings.Contains(st.Issuer, "Pebble") || !slices.Equal(st.Names, []string{acmeTestHost}) ||
		!st.NotAfter.Equal(leaf.NotAfter) || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
	if !st.NextRenewal.After(time.Now()) || !st.NextRenewal.Before(st.NotAfter) {
		t.Errorf("next renewal %v is not between now and expiry %v", st.NextRenewal, st.NotAfter)
	}
	checkPrivateTree(t, filepath.Join(r.stateDir, acmeStateDir))

	// A restart on the same state dir serves the same certificate without
	// a new order.
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	progress2 := &progressLog{}
	e2, err := r.start(t, r.config(r.tls.addr, Off, progress2))
	if err != nil {
		t.Fatalf("Start after restart: %v", err)
	}
	again := r.visit(t, e2).PeerCertificates[0]
	if !again.Equal(leaf) {
		t.Error("the restarted engine serves a different certificate")
	}
	if got := r.pebble.orders.Load(); got != 1 {
		t.Errorf("Pebble received %d new orders after the restart, want still 1", got)
	}
	if slices.Contains(progress2.stages(), StageACMEOrder) {
		t.Errorf("restart reported an order: %v", progress2.stages())
	}
	// Cleanup requests after the success (autocert deactivating spare
	// authorizations) must not count as a failed attempt.
	if st := loadBackoffFile(t, r); st.Failures != 0 || !st.NextAttempt.IsZero() {
		t.Errorf("backoff state after success %+v", st)
	}
}

func TestACMEIssuesByHTTP01Alone(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	// Pebble's TLS-ALPN-01 port has no listener: the engine's TLS listener
	// is elsewhere, so only HTTP-01 on the plain listener can succeed.
	e, err := r.start(t, r.config(anyPort, r.http.addr, nil))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	leaf := r.visit(t, e).PeerCertificates[0]
	if !slices.Equal(leaf.DNSNames, []string{acmeTestHost}) {
		t.Errorf("certificate names %v", leaf.DNSNames)
	}
	// autocert tries TLS-ALPN-01 first, then HTTP-01 with a second order.
	if got := r.pebble.orders.Load(); got != 2 {
		t.Errorf("Pebble received %d new orders, want 2 (tls-alpn-01 failing, then http-01)", got)
	}
	if st := e.CertStatus(); st.LastError != "" {
		t.Errorf("last error after success: %q", st.LastError)
	}

	// The plain listener still redirects everything but challenges.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + e.HTTPAddr().String()
	resp, err := client.Get(base + "/some/page?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || !strings.HasSuffix(loc, "/some/page?x=1") {
		t.Errorf("redirect: %d %q", resp.StatusCode, loc)
	}
	for host, want := range map[string]int{
		acmeTestHost + ":80": http.StatusNotFound, // the host policy allows it; the token is unknown
		acmeTestHost:         http.StatusNotFound,
		"other.example.com":  http.StatusForbidden,
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/acme-challenge/unknown-token", nil)
		req.Host = host
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("challenge path with Host %s: %d, want %d (never a redirect)", host, resp.StatusCode, want)
		}
	}
}

func TestACMEValidationFailureIsExplainedAndBacksOff(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	// The name resolves to 127.0.0.1, but nothing listens on the ports
	// Pebble validates: the engine listens elsewhere.
	cfg := r.config(anyPort, anyPort, nil)
	_, err := r.start(t, cfg)
	var ae *ACMEError
	if !errors.As(err, &ae) {
		t.Fatalf("Start: %v, want an *ACMEError", err)
	}
	t.Logf("first failure: %v", ae)
	if ae.Kind != ACMEConnection || !strings.Contains(ae.Fix, "forward") || !strings.Contains(ae.Summary, acmeTestHost) {
		t.Errorf("explanation: kind %q, %q", ae.Kind, ae.Error())
	}
	if !strings.Contains(ae.Detail, "tls-alpn-01") || !strings.Contains(ae.Detail, "http-01") {
		t.Errorf("detail should name both challenges: %q", ae.Detail)
	}
	orders := r.pebble.orders.Load()
	if orders < 1 {
		t.Fatalf("no order reached Pebble")
	}
	backoffPath := filepath.Join(r.stateDir, acmeStateDir, acmeDirName(r.pebble.directory), acmeBackoffFile)
	checkMode(t, backoffPath, 0o600)

	// A second start within the backoff window does not contact the CA.
	var sent *atomic.Int64
	before := time.Now()
	_, err = r.start(t, cfg, func(e *Engine) { sent = sentToCA(e, nil) })
	if !errors.As(err, &ae) || ae.Kind != ACMEBackoff {
		t.Fatalf("second Start: %v, want a backoff ACMEError", err)
	}
	t.Logf("within the backoff window: %v", ae)
	if d := ae.RetryAt.Sub(before); d <= 0 || d > acmeBackoffFirst {
		t.Errorf("next attempt in %v, want within %v", d, acmeBackoffFirst)
	}
	if !strings.Contains(ae.Error(), "could not connect") {
		t.Errorf("the backoff error should repeat the last failure: %q", ae.Error())
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("the second engine sent %d requests to the CA during the backoff window", n)
	}
	if got := r.pebble.orders.Load(); got != orders {
		t.Errorf("orders went from %d to %d during the backoff window", orders, got)
	}
}

func TestACMEUnresolvableNameIsExplained(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	r.dns.setAnswer("")
	_, err := r.start(t, r.config(r.tls.addr, r.http.addr, nil))
	var ae *ACMEError
	if !errors.As(err, &ae) || ae.Kind != ACMEDNS {
		t.Fatalf("Start: %v, want a DNS ACMEError", err)
	}
	t.Logf("unresolvable: %v", ae)
	if !strings.Contains(ae.Fix, "A record") {
		t.Errorf("fix %q does not say to create an A record", ae.Fix)
	}
}

func TestACMEUntrustedCAIsExplained(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	cfg := r.config(r.tls.addr, Off, nil)
	cfg.ACMECARoots = "" // Pebble's API certificate is then unknown
	_, err := r.start(t, cfg)
	var ae *ACMEError
	if !errors.As(err, &ae) || ae.Kind != ACMECAUntrusted || !strings.Contains(ae.Fix, "--acme-ca-roots") {
		t.Fatalf("Start: %v, want an untrusted-CA ACMEError", err)
	}
	t.Logf("untrusted: %v", ae)
}

func TestOnlyHostPolicy(t *testing.T) {
	policy := onlyHost("sso.example.com")
	for _, host := range []string{"sso.example.com", "SSO.example.com", "sso.example.com:80", "sso.example.com:8080", "sso.example.com."} {
		if err := policy(context.Background(), host); err != nil {
			t.Errorf("%q refused: %v", host, err)
		}
	}
	for _, host := range []string{"example.com", "evil.example.com", "127.0.0.1", "sso.example.com.evil", ""} {
		if err := policy(context.Background(), host); err == nil {
			t.Errorf("%q accepted", host)
		}
	}
}

func TestACMECacheKeepsFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "acme")
	c := acmeCache(dir)
	ctx := context.Background()
	if _, err := c.Get(ctx, "missing"); err == nil || !strings.Contains(err.Error(), "cache miss") {
		t.Errorf("Get of a missing entry: %v", err)
	}
	if err := c.Put(ctx, "../../escape", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err != nil {
		t.Errorf("a name with .. was not kept inside the cache dir: %v", err)
	}
	if err := c.Put(ctx, "acme_account+key", []byte("key")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "acme_account+key"); err != nil || string(got) != "key" {
		t.Errorf("Get: %q, %v", got, err)
	}
	checkPrivateTree(t, dir)
	if err := c.Delete(ctx, "acme_account+key"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "acme_account+key"); err != nil {
		t.Errorf("deleting a missing entry: %v", err)
	}
}

func TestACMEDirName(t *testing.T) {
	for in, want := range map[string]string{
		LetsEncryptProduction:          "acme-v02.api.letsencrypt.org-directory",
		LetsEncryptStaging:             "acme-staging-v02.api.letsencrypt.org-directory",
		"https://127.0.0.1:14000/dir":  "127.0.0.1-14000-dir",
		"https://ca.lan/acme/acme/dir": "ca.lan-acme-acme-dir",
	} {
		if got := acmeDirName(in); got != want {
			t.Errorf("acmeDirName(%q) = %q, want %q", in, got, want)
		}
	}
}

// checkPrivateTree checks that dir and everything in it is private:
// directories 0700, files 0600.
func checkPrivateTree(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		checkMode(t, path, want)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}

// Pebble issues 12-second certificates here, so autocert's renewal (a third
// of the lifetime before expiry) starts about 8 s after issuance.
const shortValidity = 12 * time.Second

func TestACMERenewsBeforeExpiry(t *testing.T) {
	r := newACMERig(t, pebbleOptions{validity: shortValidity})
	e, err := r.start(t, r.config(r.tls.addr, Off, nil))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	first := r.visit(t, e).PeerCertificates[0]
	if renewal := e.CertStatus().NextRenewal; !renewal.Before(first.NotAfter) || renewal.Before(first.NotBefore) {
		t.Errorf("next renewal %v is outside the certificate's life %v..%v", renewal, first.NotBefore, first.NotAfter)
	}
	var renewed bool
	waitFor(t, "the renewed certificate", shortValidity, func() bool {
		renewed = !r.visit(t, e).PeerCertificates[0].Equal(first)
		return renewed || time.Now().After(first.NotAfter.Add(-time.Second))
	})
	if !renewed {
		t.Fatal("the certificate was not renewed before it expired")
	}
	second := r.visit(t, e).PeerCertificates[0]
	if !second.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after %v", second.NotAfter, first.NotAfter)
	}
	if got := r.pebble.orders.Load(); got != 2 {
		t.Errorf("Pebble received %d orders, want 2 (issuance and renewal)", got)
	}
	if st := e.CertStatus(); !st.NotAfter.Equal(second.NotAfter) || st.LastError != "" {
		t.Errorf("status after renewal %+v", st)
	}
}

func TestACMEFailedRenewalIsReportedAndBackedOff(t *testing.T) {
	// A minute's certificate that autocert renews 6 to 11 s after issuance:
	// the failure then has most of the minute to show, however loaded the
	// machine, while the old certificate stays valid for the checks below.
	const validity, renewBefore = time.Minute, 54 * time.Second
	r := newACMERig(t, pebbleOptions{validity: validity})
	var probed *atomic.Int64
	e, err := r.start(t, r.config(r.tls.addr, Off, nil), func(e *Engine) {
		e.certs.(*acmeSource).manager.RenewBefore = renewBefore
		probed = sentToCA(e, func(req *http.Request) bool { return req.Context().Value(probeKey{}) != nil })
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	const idle = 3 * time.Second // the renewal attempt ends after this much quiet
	backoff := e.certs.(*acmeSource).backoff
	backoff.mu.Lock()
	backoff.attemptIdle = idle
	backoff.mu.Unlock()
	first := r.visit(t, e).PeerCertificates[0]
	r.dns.setAnswer("") // the renewal's validation will not resolve the name
	waitFor(t, "the failed renewal in the status", 40*time.Second, func() bool {
		return strings.Contains(e.CertStatus().LastError, "DNS")
	})
	// autocert places one more order when it runs out of challenge types,
	// within the same attempt; the attempt ends once it falls quiet, and
	// no request after that may begin another before the schedule allows.
	waitFor(t, "the renewal attempt to end", 30*time.Second, func() bool { return !attemptOpen(backoff) })
	if got := r.visit(t, e).PeerCertificates[0]; !got.Equal(first) {
		t.Error("a different certificate is served after the failed renewal")
	}
	st := loadBackoffFile(t, r)
	if st.Failures != 1 || !st.NextAttempt.After(time.Now()) || !strings.Contains(st.LastError, "DNS") {
		t.Errorf("backoff state after the failed renewal %+v", st)
	}

	// Within the backoff window, nothing that speaks ACME for this source
	// reaches the CA: the next renewal try is refused before any request.
	// Only this order's requests are counted, as autocert may still be
	// deactivating the failed attempt's authorizations.
	client := e.certs.(*acmeSource).manager.Client
	_, err = client.AuthorizeOrder(context.WithValue(context.Background(), probeKey{}, true), acme.DomainIDs(acmeTestHost))
	var refused *acmeBackoffError
	if !errors.As(err, &refused) || !refused.Next.Equal(st.NextAttempt) {
		t.Errorf("an order within the backoff window: %v, want refusal until %v", err, st.NextAttempt)
	}
	if n := probed.Load(); n != 0 {
		t.Errorf("%d of the order's requests reached the CA within the backoff window", n)
	}
}

// probeKey marks the context of a test's own request to the CA.
type probeKey struct{}

// sentToCA counts the requests of e's ACME source that its backoff lets
// through to the CA, only those for which match is true unless it is nil;
// set it up before Start. Unlike Pebble's count of everything it receives,
// it leaves out an earlier engine's abandoned attempt and autocert's
// clean-up after a failure, which may still be on their way.
func sentToCA(e *Engine, match func(*http.Request) bool) *atomic.Int64 {
	tr := e.certs.(*acmeSource).transport
	base, n := tr.base, new(atomic.Int64)
	tr.base = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if match == nil || match(req) {
			n.Add(1)
		}
		return base.RoundTrip(req)
	})
	return n
}

// attemptOpen reports whether b would let a request through now as part
// of the attempt under way, rather than judge it by the schedule.
func attemptOpen(b *acmeBackoff) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openLocked(time.Now())
}

func loadBackoffFile(t *testing.T, r *acmeRig) acmeBackoffState {
	t.Helper()
	b, err := loadACMEBackoff(filepath.Join(r.stateDir, acmeStateDir, acmeDirName(r.pebble.directory), acmeBackoffFile), acmeTestHost)
	if err != nil {
		t.Fatal(err)
	}
	return b.snapshot()
}

func TestACMEExternalAccountBinding(t *testing.T) {
	const kid, hmacKey = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	r := newACMERig(t, pebbleOptions{eabKeys: map[string]string{kid: hmacKey}})

	// Without the binding the CA refuses the account, and says so.
	cfg := r.config(r.tls.addr, Off, nil)
	_, err := r.start(t, cfg)
	var ae *ACMEError
	if !errors.As(err, &ae) || ae.Kind != ACMEAccount || !strings.Contains(ae.Fix, "--acme-eab-kid") {
		t.Fatalf("Start without EAB: %v, want an account ACMEError", err)
	}
	t.Logf("without EAB: %v", ae)
	if got := r.pebble.orders.Load(); got != 0 {
		t.Errorf("%d orders without an account", got)
	}

	// With it (on a fresh state dir, so no backoff applies) issuance works.
	r.stateDir = t.TempDir()
	cfg = r.config(r.tls.addr, Off, nil)
	cfg.ACMEEABKeyID, cfg.ACMEEABHMAC = kid, hmacKey
	e, err := r.start(t, cfg)
	if err != nil {
		t.Fatalf("Start with EAB: %v", err)
	}
	r.visit(t, e)
}

func TestACMERateLimitIsExplainedAndRespected(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	r.pebble.rateLimited.Store(true)
	cfg := r.config(r.tls.addr, Off, nil)
	before := time.Now()
	_, err := r.start(t, cfg)
	var ae *ACMEError
	if !errors.As(err, &ae) || ae.Kind != ACMERateLimited {
		t.Fatalf("Start: %v, want a rate-limit ACMEError", err)
	}
	t.Logf("rate limited: %v", ae)
	if d := ae.RetryAt.Sub(before); d < time.Hour-time.Minute || d > time.Hour+time.Minute {
		t.Errorf("the limit lifts in %v, want about 1h", d)
	}
	if got := r.pebble.orders.Load(); got != 1 {
		t.Errorf("%d orders, want 1 (a rate-limited request is not repeated)", got)
	}
	// The CA's hour outweighs the schedule's first minute.
	if st := loadBackoffFile(t, r); st.NextAttempt.Sub(ae.RetryAt).Abs() > time.Second {
		t.Errorf("next attempt %v, want when the limit lifts, %v", st.NextAttempt, ae.RetryAt)
	}
	var sent *atomic.Int64
	_, err = r.start(t, cfg, func(e *Engine) { sent = sentToCA(e, nil) })
	if !errors.As(err, &ae) || ae.Kind != ACMEBackoff || !strings.Contains(ae.Summary, "rate limit") {
		t.Fatalf("second Start: %v, want a backoff ACMEError repeating the rate limit", err)
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("the second engine sent %d requests to the CA while rate limited", n)
	}
}

func TestACMEStartGivesUpOnAStuckValidation(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	// Pebble's validator connects to a port that accepts and never answers,
	// so validation hangs (until Pebble's own 15 s timeout).
	hole, err := r.tls.listener()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()

	e, err := New(r.config(anyPort, Off, nil))
	if err != nil {
		t.Fatal(err)
	}
	e.certs.(*acmeSource).startTimeout = 2 * time.Second
	began := time.Now()
	err = e.Start(context.Background())
	took := time.Since(began)
	var ae *ACMEError
	if !errors.As(err, &ae) || ae.Kind != ACMETimeout {
		t.Fatalf("Start: %v, want a timeout ACMEError", err)
	}
	if took > 5*time.Second {
		t.Errorf("Start took %v with a 2 s limit", took)
	}
	if st := loadBackoffFile(t, r); st.Failures != 1 || !strings.Contains(st.LastError, "did not finish in time") {
		t.Errorf("backoff state after the timeout %+v", st)
	}
}

func TestACMEVisitorsNeverCauseOrders(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	s, err := newACMESource(r.config(r.tls.addr, Off, nil).WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	// Handshakes before Start has obtained a certificate, as from browsers
	// and from a CA checking a challenge, are refused without asking the
	// CA: autocert alone would order a certificate for the first of them.
	for _, hello := range []*tls.ClientHelloInfo{
		{ServerName: acmeTestHost},
		{ServerName: acmeTestHost, SupportedProtos: []string{"h2", "http/1.1"}},
		{ServerName: "other.example.com"},
		{ServerName: acmeTestHost, SupportedProtos: []string{"acme-tls/1"}},
	} {
		if cert, err := s.GetCertificate(hello); err == nil {
			t.Errorf("handshake %+v got a certificate %v", hello, cert.Leaf)
		}
	}
	// GetCertificate refuses before it returns: nothing is left to arrive.
	if got := r.pebble.requests.Load(); got != 0 {
		t.Errorf("visitors' handshakes caused %d requests to the CA", got)
	}
	if st := s.Status(); st.Source != TLSACME || st.LastError != "" || !st.NotAfter.IsZero() {
		t.Errorf("status before Start %+v", st)
	}
}
