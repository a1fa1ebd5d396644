package acme

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
)

const acmeTestHost = "sso.gatehouse.test"

// acmeRig is Pebble, its DNS, and the settings to run a Source against
// them.
type acmeRig struct {
	pebble   *testPebble
	dns      *testutil.DNS
	stateDir string
	http     *testutil.ReservedPort // where Pebble's validator sends HTTP-01
	tls      *testutil.ReservedPort // where Pebble's validator sends TLS-ALPN-01
	logger   *slog.Logger
}

// newACMERig starts the rig for one test, which then runs in parallel with
// the other ACME tests: each has its own Pebble, DNS and ports.
func newACMERig(t *testing.T, opts pebbleOptions) *acmeRig {
	t.Helper()
	t.Parallel()
	r := &acmeRig{http: testutil.ReservePort(t), tls: testutil.ReservePort(t), stateDir: t.TempDir(), logger: testutil.Logger(t)}
	r.dns = testutil.StartDNS(t, acmeZone("127.0.0.1"))
	r.pebble = startPebble(t, r.http.Port, r.tls.Port, r.dns.Addr, opts)
	return r
}

// progressLog collects progress events.
type progressLog struct {
	mu     sync.Mutex
	events []progress.Event
}

func (p *progressLog) add(ev progress.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
}

func (p *progressLog) stages() []progress.Stage {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []progress.Stage
	for _, ev := range p.events {
		if len(out) == 0 || out[len(out)-1] != ev.Stage {
			out = append(out, ev.Stage)
		}
	}
	return out
}

// anyPort puts a listener away from Pebble's validation ports.
const anyPort = "127.0.0.1:0"

// config serves the source with its TLS listener on httpsAddr and its
// plain listener on httpAddr (config.Off for none): Pebble's ports
// (r.tls.Addr, r.http.Addr) or anyPort.
func (r *acmeRig) config(httpsAddr, httpAddr string) config.Config {
	c := config.Config{
		Hostname:      acmeTestHost,
		Upstream:      "http://127.0.0.1:9",
		TLS:           config.TLSACME,
		HTTPAddr:      httpAddr,
		HTTPSAddr:     httpsAddr,
		StateDir:      r.stateDir,
		ACMEDirectory: r.pebble.directory,
		ACMECARoots:   r.pebble.apiRoots,
		ACMEEmail:     "admin@gatehouse.test",
		StatusAddr:    config.Off,
	}
	return c
}

// servedSource is a Source behind real listeners, as the engine serves it:
// the TLS listener offers its ALPN protocols and certificate and answers
// "hello from upstream"; the plain one answers HTTP-01 and redirects the
// rest with a 301.
type servedSource struct {
	certs             *Source
	httpsLn, httpLn   net.Listener
	httpsSrv, httpSrv *http.Server
}

// start serves a Source for c (with progress, if set) and starts
// it, returning Start's error; it stops when the test ends. Each setup
// function may adjust the source before Start.
func (r *acmeRig) start(t *testing.T, c config.Config, events *progressLog, setup ...func(*servedSource)) (*servedSource, error) {
	t.Helper()
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	report := progress.Reporter{Logger: testutil.Logger(t)}
	if events != nil {
		report.Func = events.add
	}
	src, err := New(c, report)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &servedSource{certs: src}
	for _, f := range setup {
		f(e)
	}
	if e.httpsLn, err = r.listen(c.HTTPSAddr); err != nil {
		t.Fatal(err)
	}
	e.httpsSrv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello from upstream") }),
		TLSConfig: &tls.Config{
			NextProtos:     append([]string{"h2", "http/1.1"}, src.ALPNProtos()...),
			GetCertificate: src.GetCertificate,
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go e.httpsSrv.ServeTLS(e.httpsLn, "", "")
	if c.HTTPAddr != config.Off {
		if e.httpLn, err = r.listen(c.HTTPAddr); err != nil {
			e.httpsSrv.Close()
			t.Fatal(err)
		}
		redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://"+acmeTestHost+r.URL.RequestURI(), http.StatusMovedPermanently)
		})
		e.httpSrv = &http.Server{Handler: src.HTTPHandler(redirect)}
		go e.httpSrv.Serve(e.httpLn)
	}
	// As the engine does, Start gets a context that lasts until shutdown:
	// renewals run under it.
	if err := src.Start(context.Background()); err != nil {
		e.Shutdown(context.Background())
		return nil, err
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e, nil
}

// listen listens on Pebble's ports through the rig, which holds them for
// the whole test, and binds any other address itself.
func (r *acmeRig) listen(addr string) (net.Listener, error) {
	for _, p := range []*testutil.ReservedPort{r.tls, r.http} {
		if addr == p.Addr {
			return p.Listener()
		}
	}
	return net.Listen("tcp", addr)
}

func (e *servedSource) CertStatus() certs.Status { return e.certs.Status() }
func (e *servedSource) HTTPAddr() net.Addr       { return e.httpLn.Addr() }

// Shutdown closes the listeners and ends the source's background work.
func (e *servedSource) Shutdown(context.Context) error {
	e.certs.stop()
	for _, srv := range []*http.Server{e.httpsSrv, e.httpSrv} {
		if srv != nil {
			srv.Close()
		}
	}
	return nil
}

// visit makes a real TLS handshake to the served source, verifying the
// chain against Pebble's root, and fetches a page.
func (r *acmeRig) visit(t *testing.T, e *servedSource) *tls.ConnectionState {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: acmeTestHost, RootCAs: r.pebble.roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, e.httpsLn.Addr().String())
			},
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
	events := &progressLog{}
	// Port 80 off: Pebble's HTTP-01 port has no listener at all.
	cfg := r.config(r.tls.Addr, config.Off)
	e, err := r.start(t, cfg, events)
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

	want := []progress.Stage{progress.ACMEAccount, progress.ACMEOrder, progress.ACMEChallenge, progress.ACMEValidating, progress.ACMEIssued}
	if got := events.stages(); !slices.Equal(got, want) {
		t.Errorf("stages %v, want %v", got, want)
	}
	for _, ev := range events.events {
		if ev.Stage == progress.ACMEChallenge && !strings.Contains(ev.Message, "tls-alpn-01") {
			t.Errorf("challenge event %q does not name tls-alpn-01", ev.Message)
		}
	}

	st := e.CertStatus()
	if st.Source != config.TLSACME || !strings.Contains(st.Issuer, "Pebble") || !slices.Equal(st.Names, []string{acmeTestHost}) ||
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
	events2 := &progressLog{}
	e2, err := r.start(t, r.config(r.tls.Addr, config.Off), events2)
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
	if slices.Contains(events2.stages(), progress.ACMEOrder) {
		t.Errorf("restart reported an order: %v", events2.stages())
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
	e, err := r.start(t, r.config(anyPort, r.http.Addr), nil)
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
	cfg := r.config(anyPort, anyPort)
	_, err := r.start(t, cfg, nil)
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("Start: %v, want an *Error", err)
	}
	t.Logf("first failure: %v", ae)
	if ae.Kind != Connection || !strings.Contains(ae.Fix, "forward") || !strings.Contains(ae.Summary, acmeTestHost) {
		t.Errorf("explanation: kind %q, %q", ae.Kind, ae.Error())
	}
	if !strings.Contains(ae.Detail, "tls-alpn-01") || !strings.Contains(ae.Detail, "http-01") {
		t.Errorf("detail should name both challenges: %q", ae.Detail)
	}
	orders := r.pebble.orders.Load()
	if orders < 1 {
		t.Fatalf("no order reached Pebble")
	}
	backoffPath := acmeBackoffPath(filepath.Join(r.stateDir, acmeStateDir, acmeDirName(r.pebble.directory)), acmeTestHost)
	checkMode(t, backoffPath, 0o600)

	// A second start within the backoff window does not contact the CA.
	var second *servedSource
	before := time.Now()
	_, err = r.start(t, cfg, nil, func(e *servedSource) { second = e })
	if !errors.As(err, &ae) || ae.Kind != Backoff {
		t.Fatalf("second Start: %v, want a backoff Error", err)
	}
	t.Logf("within the backoff window: %v", ae)
	if d := ae.RetryAt.Sub(before); d <= 0 || d > acmeBackoffFirst {
		t.Errorf("next attempt in %v, want within %v", d, acmeBackoffFirst)
	}
	if !strings.Contains(ae.Error(), "could not connect") {
		t.Errorf("the backoff error should repeat the last failure: %q", ae.Error())
	}
	if got := second.certs.transport.sent.Load(); got != 0 {
		t.Errorf("the second start sent %d requests to the CA during the backoff window", got)
	}
	if got := r.pebble.orders.Load(); got != orders {
		t.Errorf("orders went from %d to %d during the backoff window", orders, got)
	}
}

func TestACMEUnresolvableNameIsExplained(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	r.dns.SetZone(acmeZone(""))
	_, err := r.start(t, r.config(r.tls.Addr, r.http.Addr), nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != DNS {
		t.Fatalf("Start: %v, want a DNS Error", err)
	}
	t.Logf("unresolvable: %v", ae)
	if !strings.Contains(ae.Fix, "A record") {
		t.Errorf("fix %q does not say to create an A record", ae.Fix)
	}
}

func TestACMEUntrustedCAIsExplained(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	cfg := r.config(r.tls.Addr, config.Off)
	cfg.ACMECARoots = "" // Pebble's API certificate is then unknown
	_, err := r.start(t, cfg, nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != CAUntrusted || !strings.Contains(ae.Fix, "--acme-ca-roots") {
		t.Fatalf("Start: %v, want an untrusted-CA Error", err)
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
		config.LetsEncryptProduction:   "acme-v02.api.letsencrypt.org-directory",
		config.LetsEncryptStaging:      "acme-staging-v02.api.letsencrypt.org-directory",
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
	e, err := r.start(t, r.config(r.tls.Addr, config.Off), nil)
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
	e, err := r.start(t, r.config(r.tls.Addr, config.Off), nil, func(e *servedSource) {
		e.certs.manager.RenewBefore = renewBefore
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	const idle = 3 * time.Second // the renewal attempt ends after this much quiet
	backoff := e.certs.backoff
	backoff.mu.Lock()
	backoff.attemptIdle = idle
	backoff.mu.Unlock()
	first := r.visit(t, e).PeerCertificates[0]
	r.dns.SetZone(acmeZone("")) // the renewal's validation will not resolve the name
	waitFor(t, "the failed renewal in the status", 40*time.Second, func() bool {
		return strings.Contains(e.CertStatus().LastError, "DNS")
	})
	// autocert's attempt may still be closing (it places one more order
	// when it runs out of challenge types): wait until the backoff has
	// seen it fall quiet and closed it.
	waitFor(t, "the renewal attempt to close", 40*time.Second, func() bool { return !attemptOpen(backoff) })
	if got := r.visit(t, e).PeerCertificates[0]; !got.Equal(first) {
		t.Error("a different certificate is served after the failed renewal")
	}
	st := loadBackoffFile(t, r)
	if st.Failures != 1 || !st.NextAttempt.After(time.Now()) || !strings.Contains(st.LastError, "DNS") {
		t.Errorf("backoff state after the failed renewal %+v", st)
	}

	// Within the backoff window, nothing that speaks ACME for this source
	// reaches the CA: the next renewal try is refused before any request.
	requests := r.pebble.requests.Load()
	client := e.certs.manager.Client
	_, err = client.AuthorizeOrder(context.Background(), acme.DomainIDs(acmeTestHost))
	var refused *acmeBackoffError
	if !errors.As(err, &refused) || !refused.Next.Equal(st.NextAttempt) {
		t.Errorf("an order within the backoff window: %v, want refusal until %v", err, st.NextAttempt)
	}
	if got := r.pebble.requests.Load(); got != requests {
		t.Errorf("Pebble received %d requests within the backoff window", got-requests)
	}
}

// attemptOpen reports whether b still admits requests of an attempt
// under way, which end it only once they fall quiet.
func attemptOpen(b *acmeBackoff) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openLocked(time.Now())
}

func loadBackoffFile(t *testing.T, r *acmeRig) acmeBackoffState {
	t.Helper()
	b, err := loadACMEBackoff(acmeBackoffPath(filepath.Join(r.stateDir, acmeStateDir, acmeDirName(r.pebble.directory)), acmeTestHost), acmeTestHost)
	if err != nil {
		t.Fatal(err)
	}
	return b.snapshot()
}

func TestACMEExternalAccountBinding(t *testing.T) {
	const kid, hmacKey = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	r := newACMERig(t, pebbleOptions{eabKeys: map[string]string{kid: hmacKey}})

	// Without the binding the CA refuses the account, and says so.
	cfg := r.config(r.tls.Addr, config.Off)
	_, err := r.start(t, cfg, nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != Account || !strings.Contains(ae.Fix, "--acme-eab-kid") {
		t.Fatalf("Start without EAB: %v, want an account Error", err)
	}
	t.Logf("without EAB: %v", ae)
	if got := r.pebble.orders.Load(); got != 0 {
		t.Errorf("%d orders without an account", got)
	}

	// With it (on a fresh state dir, so no backoff applies) issuance works.
	r.stateDir = t.TempDir()
	cfg = r.config(r.tls.Addr, config.Off)
	cfg.ACMEEABKeyID, cfg.ACMEEABHMAC = kid, hmacKey
	e, err := r.start(t, cfg, nil)
	if err != nil {
		t.Fatalf("Start with EAB: %v", err)
	}
	r.visit(t, e)
}

func TestACMERateLimitIsExplainedAndRespected(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	r.pebble.rateLimited.Store(true)
	cfg := r.config(r.tls.Addr, config.Off)
	before := time.Now()
	_, err := r.start(t, cfg, nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != RateLimited {
		t.Fatalf("Start: %v, want a rate-limit Error", err)
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
	var second *servedSource
	_, err = r.start(t, cfg, nil, func(e *servedSource) { second = e })
	if !errors.As(err, &ae) || ae.Kind != Backoff || !strings.Contains(ae.Summary, "rate limit") {
		t.Fatalf("second Start: %v, want a backoff Error repeating the rate limit", err)
	}
	if got := second.certs.transport.sent.Load(); got != 0 {
		t.Errorf("the second start sent %d requests to the CA while rate limited", got)
	}
}

func TestACMEStartGivesUpOnAStuckValidation(t *testing.T) {
	r := newACMERig(t, pebbleOptions{})
	// Pebble's validator connects to a port that accepts and never answers,
	// so validation hangs (until Pebble's own 15 s timeout).
	hole, err := r.tls.Listener()
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

	began := time.Now()
	_, err = r.start(t, r.config(anyPort, config.Off), nil, func(e *servedSource) { e.certs.startTimeout = 2 * time.Second })
	took := time.Since(began)
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != Timeout {
		t.Fatalf("Start: %v, want a timeout Error", err)
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
	s, err := New(r.config(r.tls.Addr, config.Off).WithDefaults(), progress.Reporter{Logger: testutil.Logger(t)})
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
	if got := s.transport.sent.Load(); got != 0 {
		t.Errorf("visitors' handshakes caused %d requests to the CA", got)
	}
	if st := s.Status(); st.Source != config.TLSACME || st.LastError != "" || !st.NotAfter.IsZero() {
		t.Errorf("status before Start %+v", st)
	}
}
