// Package acme obtains Gatehouse's certificate from an ACME CA such as
// Let's Encrypt, with autocert, at start rather than on a visitor's first
// handshake. Around autocert it keeps a backoff schedule on disk
// (backoff.go), so failures never exhaust the CA's limits; reads autocert's
// traffic to report progress and collect the CA's reasons (transport.go);
// and explains a failure in words that say what to do (errors.go).
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

const (
	// acmeStateDir is the state dir's subdirectory for ACME; each CA gets a
	// directory of its own inside, so a staging certificate is never served
	// after switching to production.
	acmeStateDir = "acme"
	// acmeBackoffFile held the backoff schedule of the one hostname in a
	// CA's directory before Gatehouse served several sites; each name now
	// has its own (acmeBackoffPath), and a schedule found here for the
	// same name is carried over.
	acmeBackoffFile = "backoff.json"
	// acmeStartTimeout bounds obtaining a certificate in Start; a CA that
	// validates at all does so within seconds.
	acmeStartTimeout = 3 * time.Minute
	// acmeRequestTimeout bounds each request to the CA.
	acmeRequestTimeout = 30 * time.Second
)

// A Source obtains the certificate of one hostname (one site) from an
// ACME CA with autocert, at start rather than on a visitor's first
// handshake, and lets autocert renew it. The engine runs one per site:
// each with its own backoff schedule, sharing the CA's state directory
// (the account key and autocert's cache, whose entries are per name). Visitors never cause an order: their handshakes are answered from the
// certificate obtained in Start (or its renewal), and every request to the
// CA passes the backoff schedule in acmeTransport.
type Source struct {
	cfg       config.Config
	report    progress.Reporter
	logger    *slog.Logger
	host      string // the hostname, lower case, without a trailing dot
	dir       string // this CA's state directory
	manager   *autocert.Manager
	transport *acmeTransport
	backoff   *acmeBackoff
	stop      context.CancelFunc // ends the transport's life
	ready     atomic.Bool        // Start obtained a certificate
	// startTimeout bounds Start's attempt; acmeStartTimeout when zero.
	startTimeout time.Duration
	startOnce    sync.Once
}

// New prepares the source for c (validated) without contacting the CA;
// Start obtains the certificate, reporting each step to report.
func New(c config.Config, report progress.Reporter) (*Source, error) {
	logger := report.Logger
	if logger == nil {
		logger = slog.Default()
	}
	directory := c.ACMEDirectoryURL()
	host := strings.ToLower(strings.TrimSuffix(c.Hostname, "."))
	dir := filepath.Join(c.StateDir, acmeStateDir, acmeDirName(directory))
	backoff, err := loadACMEBackoff(acmeBackoffPath(dir, host), host)
	if err == nil && backoff.state.Failures == 0 && backoff.state.LastAttempt.IsZero() {
		// No schedule of its own yet: one kept before sites, if for this name.
		if legacy, lerr := loadACMEBackoff(filepath.Join(dir, acmeBackoffFile), host); lerr == nil {
			legacy.path = backoff.path
			backoff = legacy
		}
	}
	if err != nil {
		return nil, err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	if c.ACMECARoots != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(c.ACMECARoots)
		if err != nil {
			return nil, fmt.Errorf("reading the ACME CA roots: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate; use a file with -----BEGIN CERTIFICATE----- blocks", c.ACMECARoots)
		}
		base.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	life, stop := context.WithCancel(context.Background())
	context.AfterFunc(life, base.CloseIdleConnections)
	transport := newACMETransport(base, directory, host, backoff, logger, life)
	s := &Source{cfg: c, report: report, logger: logger, host: host, dir: dir, transport: transport, backoff: backoff, stop: stop}
	s.manager = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      acmeCache(dir),
		HostPolicy: onlyHost(host),
		Email:      c.ACMEEmail,
		Client: &acme.Client{
			DirectoryURL: directory,
			UserAgent:    "gatehouse",
			HTTPClient:   &http.Client{Transport: transport, Timeout: acmeRequestTimeout},
			RetryBackoff: acmeRetryBackoff,
		},
	}
	if c.ACMEEABKeyID != "" {
		key, err := config.DecodeEABKey(c.ACMEEABHMAC)
		if err != nil {
			return nil, errors.New("the External Account Binding HMAC key is not base64url; paste it exactly as your CA shows it")
		}
		s.manager.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: c.ACMEEABKeyID, Key: key}
	}
	return s, nil
}

// acmeBackoffPath is the backoff schedule of host at the CA whose state
// directory is dir: each name has its own, so one failing name never
// delays another.
func acmeBackoffPath(dir, host string) string {
	return filepath.Join(dir, "backoff-"+host+".json")
}

// HasCertificate reports whether a certificate for c's hostname from c's
// CA was obtained before (it is in the state dir, valid or not): the
// staging rehearsal is then no longer needed.
func HasCertificate(c config.Config) bool {
	host := strings.ToLower(strings.TrimSuffix(c.Hostname, "."))
	_, err := os.Stat(filepath.Join(c.StateDir, acmeStateDir, acmeDirName(c.ACMEDirectoryURL()), host))
	return err == nil
}

// acmeDirName turns a directory URL into a directory name:
// acme-v02.api.letsencrypt.org-directory.
func acmeDirName(directory string) string {
	u, err := url.Parse(directory)
	name := directory
	if err == nil {
		name = u.Host + u.Path
	}
	return strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, name), "-.")
}

// acmeRetryBackoff retries a failed request to the CA (server errors, a
// stale nonce) at most three times, quickly, and never a rate-limited one:
// the acme package would otherwise sleep for the whole Retry-After.
func acmeRetryBackoff(n int, _ *http.Request, resp *http.Response) time.Duration {
	if n > 3 || resp.StatusCode == http.StatusTooManyRequests {
		return 0
	}
	return time.Duration(n) * 500 * time.Millisecond
}

// onlyHost is the host policy: certificates only for the source's
// hostname (a configured site's), whether or not the Host header carries
// a port; every other site has a source of its own.
func onlyHost(hostname string) autocert.HostPolicy {
	return func(_ context.Context, host string) error {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !strings.EqualFold(strings.TrimSuffix(host, "."), hostname) {
			return fmt.Errorf("gatehouse: no certificate for %q, only for %s", host, hostname)
		}
		return nil
	}
}

// hello is the ClientHelloInfo under which the certificate is requested
// and looked up. It always asks for ECDSA, so there is one certificate
// (and one order) whatever visitors' clients support.
func (s *Source) hello() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:       s.host,
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256},
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
}

// Start loads the certificate from the state dir, or obtains one now,
// reporting each step. On failure it returns an *Error; while the
// backoff schedule forbids a new attempt it returns one saying when,
// without contacting the CA.
func (s *Source) Start(ctx context.Context) error {
	started := false
	s.startOnce.Do(func() { started = true })
	if !started {
		return errors.New("the ACME certificate source was already started")
	}
	context.AfterFunc(ctx, s.stop)
	if err := privatefile.EnsureDir(s.dir); err != nil {
		return fmt.Errorf("creating the ACME state directory: %w", err)
	}

	// autocert works in its own goroutine, so that Start can give up on
	// time; its progress is handed over to report from Start's goroutine,
	// as progress.Reporter promises.
	ordersBefore := s.transport.orderCount()
	events, stopEvents := make(chan progress.Event), make(chan struct{})
	end := s.transport.beginReporting(func(stage progress.Stage, msg string) {
		select {
		case events <- progress.Event{Stage: stage, Message: msg}:
		case <-stopEvents:
			s.logger.Info(msg, "stage", string(stage))
		}
	})
	type result struct {
		cert *tls.Certificate
		err  error
	}
	done := make(chan result, 1)
	go func() {
		cert, err := s.manager.GetCertificate(s.hello())
		done <- result{cert, err}
	}()
	var res result
	timeout := s.startTimeout
	if timeout == 0 {
		timeout = acmeStartTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for res.cert == nil && res.err == nil {
		select {
		case ev := <-events:
			s.report.Report(ev.Stage, "%s", ev.Message)
		case res = <-done:
		case <-timer.C:
			res.err = context.DeadlineExceeded
		case <-ctx.Done():
			res.err = ctx.Err()
		}
	}
	close(stopEvents)
	failed := end()
	if res.err != nil {
		s.stop() // abandon the attempt: its next request to the CA fails
		ae := explainACMEError(res.err, failed, s.host, s.backoff.snapshot().LastError, time.Now())
		if ae.Kind != Backoff {
			if err := s.backoff.fail(ae.Error()); err != nil {
				s.logger.Error("recording the ACME failure", "err", err)
			}
		}
		return ae
	}
	s.ready.Store(true)
	leaf := res.cert.Leaf
	how := "Using the saved certificate"
	if s.transport.orderCount() != ordersBefore {
		how = "Obtained a certificate"
	}
	s.report.Report(progress.ACMEIssued, "%s for %s from %s, valid until %s",
		how, s.host, certs.DescribeLeaf(config.TLSACME, leaf).Issuer, leaf.NotAfter.Format("2 Jan 2006"))
	return nil
}

// GetCertificate answers TLS-ALPN-01 challenge handshakes through autocert
// and every other handshake with the certificate obtained in Start.
func (s *Source) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		return s.manager.GetCertificate(hello)
	}
	if !s.ready.Load() {
		return nil, errors.New("the ACME certificate has not been obtained yet")
	}
	// autocert holds the certificate (or its renewal) in memory by now, so
	// this neither touches the disk nor contacts the CA.
	return s.manager.GetCertificate(s.hello())
}

// HTTPHandler answers HTTP-01 challenges and hands every other request to
// fallback (Gatehouse's 301 redirect, never autocert's 302).
func (s *Source) HTTPHandler(fallback http.Handler) http.Handler {
	return s.manager.HTTPHandler(fallback)
}

// ALPNProtos enables the TLS-ALPN-01 challenge on the TLS listener.
func (s *Source) ALPNProtos() []string { return []string{acme.ALPNProto} }

func (s *Source) Status() certs.Status {
	st := certs.Status{Source: config.TLSACME}
	if s.ready.Load() {
		if cert, err := s.manager.GetCertificate(s.hello()); err == nil && cert.Leaf != nil {
			st = certs.DescribeLeaf(config.TLSACME, cert.Leaf)
			st.NextRenewal = acmeRenewalTime(cert.Leaf)
		}
	}
	st.LastError = s.backoff.snapshot().LastError
	return st
}

// acmeRenewalTime is when autocert starts renewing (its RenewBefore is left
// at zero): a third of the lifetime before expiry, at most 30 days before,
// give or take autocert's jitter of up to an hour.
func acmeRenewalTime(leaf *x509.Certificate) time.Time {
	before := min(leaf.NotAfter.Sub(leaf.NotBefore)/3, 30*24*time.Hour)
	return leaf.NotAfter.Add(-before).Truncate(time.Second)
}

// acmeCache is autocert's Cache in a state directory: files 0600 written
// atomically (autocert.DirCache neither syncs nor tightens an existing
// directory to 0700).
type acmeCache string

func (c acmeCache) path(name string) string {
	return filepath.Join(string(c), filepath.Clean("/"+name))
}

func (c acmeCache) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(c.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, autocert.ErrCacheMiss
	}
	return data, err
}

func (c acmeCache) Put(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return privatefile.Write(c.path(name), data)
}

func (c acmeCache) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(c.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
