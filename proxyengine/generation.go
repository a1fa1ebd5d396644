package proxyengine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/acme"
	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// A generation is everything the engine serves from one configuration:
// its sites (each with its proxy, upstream pool, health check and
// certificate), the TLS settings and the plain port's handler. Start
// builds the first; Apply builds the next one beside it, makes it current
// in one step, and retires the old one. What does not depend on the
// configuration (the listeners' servers, connection tracking, WebSocket
// sessions, history, each site's counters) belongs to the Engine and
// carries over, so keepalive connections and WebSockets live through a
// reload; a WebSocket keeps the upstream it was opened to.
type generation struct {
	cfg    config.Config
	sites  []*siteRun          // in the order of cfg.AllSites(); the first is the default
	byName map[string]*siteRun // by config.SiteKey
	certs  []*certRun          // each distinct certificate once, in the order of the sites
	// visitors counts each visitor's upstream requests in flight, over
	// every site, for the per-visitor limit.
	visitors *visitorCounts
	// forwarding knows the trusted proxies (cfg.TrustedProxies).
	forwarding forwarding
	tlsConfig  *tls.Config // visitors' TLS: the sites' certificates, and ACME's ALPN protocol if any
}

// A siteRun is one site of a generation.
type siteRun struct {
	site      config.Site
	key       string        // config.SiteKey of its hostname
	cfg       config.Config // the generation's config as this site alone (config.Config.ForSite)
	upstream  *url.URL
	transport *http.Transport
	proxy     *proxyHandler
	auth      *forwardAuth // the site's forward auth, or nil
	health    *upstream.HealthChecker
	cert      *certRun
	plain     http.Handler // the plain port for this name: ACME HTTP-01, then the redirect
	stats     *siteStats   // the engine's, kept across generations
	// stopHealth ends this site's health checks in this generation.
	stopHealth context.CancelFunc
}

// A certRun is a certificate source and the context its upkeep (renewal,
// reloading files, retrying a failed first attempt) runs under.
// Generations whose sites ask for the same certificate share one, so a
// reload that changes only an upstream neither reissues nor reloads it;
// sites served from one shared chain (TLS files) share one too.
type certRun struct {
	key   string   // what it serves: certKey
	names []string // the sites' hostnames it serves
	// newSource makes its source; a retry after a failed start makes a
	// fresh one, as an ACME source starts only once.
	newSource func() (certs.Source, error)

	mu       sync.Mutex
	src      certs.Source
	started  bool  // start ran: its upkeep context exists
	retrying bool  // retryCertificate runs for it
	err      error // why the last start failed; nil once ready
	life     context.Context
	stop     context.CancelFunc
	ready    atomic.Bool // a certificate can be served
}

// source is the certificate source serving now.
func (c *certRun) source() certs.Source {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.src
}

// status describes the certificate, or why there is none yet.
func (c *certRun) status() certs.Status {
	src := c.source()
	st := src.Status()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil && st.LastError == "" {
		st.LastError = c.err.Error()
	}
	return st
}

// start obtains the certificate and keeps it fresh until stop. A failure
// leaves the run's upkeep context open (for retries) until stop.
func (c *certRun) start(ctx context.Context, bg context.Context) error {
	c.mu.Lock()
	c.life, c.stop = context.WithCancel(bg)
	c.started = true
	src, life := c.src, c.life
	c.mu.Unlock()
	// A source whose Start fails leaves nothing running; one that
	// succeeds keeps its certificate fresh until life ends.
	err := src.Start(life)
	if err == nil && ctx.Err() != nil {
		return ctx.Err() // the caller gave up: Apply abandons it, Start stops
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.ready.Store(true)
	return nil
}

// end stops the run's upkeep and retries, if it was started.
func (c *certRun) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		c.stop()
	}
}

// buildGeneration prepares what cfg (validated, with defaults) serves,
// reusing from prev (which may be nil) each site's upstream pool and each
// certificate whose settings did not change.
func (e *Engine) buildGeneration(cfg config.Config, prev *generation) (*generation, error) {
	g := &generation{cfg: cfg, byName: map[string]*siteRun{}, visitors: &visitorCounts{}}
	trusted, err := config.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	g.forwarding = forwarding{trusted: trusted}
	prevCerts := map[string]*certRun{}
	if prev != nil {
		for _, c := range prev.certs {
			prevCerts[c.key] = c
		}
	}
	newCerts := map[string]*certRun{}
	for _, site := range cfg.AllSites() {
		s := &siteRun{site: site, key: site.Key(), cfg: cfg.ForSite(site), stats: e.siteStats(site.Key())}
		s.stats.hostname.Store(&site.Hostname)
		switch {
		case site.Upstream == config.UpstreamDemo:
			// The demo's port is known once it serves: useDemo completes
			// the URL before any request can arrive.
			s.upstream = &url.URL{Scheme: "http", Host: "127.0.0.1"}
			if e.demo.serving() {
				s.upstream.Host = e.demo.addr()
			}
		default:
			if s.upstream, err = upstream.ParseURL(site.Upstream); err != nil {
				return nil, err
			}
		}
		if old := prev.site(s.key); old != nil && sameUpstream(old, s) {
			s.transport = old.transport
		} else if s.transport, err = upstream.NewTransport(s.upstream, site.UpstreamTrust(), cfg.UpstreamPool()); err != nil {
			return nil, err
		}
		key := certKey(s.cfg)
		switch c := newCerts[key]; {
		case c != nil:
			s.cert = c
		case prevCerts[key] != nil:
			s.cert = prevCerts[key]
		default:
			siteCfg := s.cfg
			c = &certRun{key: key, newSource: func() (certs.Source, error) { return e.newCertSource(siteCfg) }}
			if c.src, err = c.newSource(); err != nil {
				return nil, err
			}
			s.cert = c
		}
		if newCerts[key] == nil {
			newCerts[key] = s.cert
			g.certs = append(g.certs, s.cert)
		}
		s.proxy = newProxyHandler(s.cfg, e.logger, s.upstream, s.transport, g.forwarding, e.tracker, e.ws, &e.limits)
		s.proxy.stats, s.proxy.visitors = s.stats, g.visitors
		s.proxy.ws.site = s.stats
		if site.ForwardAuth != nil {
			fa, err := cfg.Outpost(*site.ForwardAuth)
			if err != nil {
				return nil, err
			}
			var prevAuth *forwardAuth
			if old := prev.site(s.key); old != nil {
				prevAuth = old.auth
			}
			if s.auth, err = s.proxy.protect(fa, prevAuth); err != nil {
				return nil, err
			}
		}
		s.health = e.newHealthChecker(s)
		g.sites = append(g.sites, s)
		g.byName[s.key] = s
	}
	for _, s := range g.sites {
		if !slices.Contains(s.cert.names, s.site.Hostname) {
			s.cert.names = append(s.cert.names, s.site.Hostname)
		}
	}
	g.prepareTLS()
	return g, nil
}

// newHealthChecker checks s's upstream, noting changes as the site's.
func (e *Engine) newHealthChecker(s *siteRun) *upstream.HealthChecker {
	host := s.site.Hostname
	return upstream.NewHealthChecker(s.upstream, s.cfg.HealthPath, host, s.transport, func(h upstream.Health) {
		e.noteUpstreamHealth(host, h)
	})
}

// site returns g's site for the name key, or nil (also for a nil g).
func (g *generation) site(key string) *siteRun {
	if g == nil {
		return nil
	}
	return g.byName[key]
}

// siteFor returns the site a Host header or SNI names, or nil.
func (g *generation) siteFor(host string) *siteRun {
	name, err := requestHostName(host)
	if err != nil {
		return nil
	}
	return g.byName[name]
}

// prepareTLS sets g's visitors' TLS and each site's plain-port handler
// for its certificate source.
func (g *generation) prepareTLS() {
	nextProtos := []string{"h2", "http/1.1"}
	for _, s := range g.sites {
		s.plain = redirectHandler(s.site.Hostname, s.cfg.PublicHTTPSPort)
		if solver, ok := s.cert.source().(certs.ChallengeSolver); ok {
			for _, p := range solver.ALPNProtos() {
				if !slices.Contains(nextProtos, p) {
					nextProtos = append(nextProtos, p)
				}
			}
			// Only a listening plain port can answer HTTP-01; offering it
			// otherwise would cost a failed validation at the CA.
			if g.cfg.HTTPAddr != config.Off {
				s.plain = solver.HTTPHandler(s.plain)
			}
		}
	}
	g.tlsConfig = serverTLSConfig(nextProtos, g.getCertificate)
}

// getCertificate answers a handshake with the certificate of the site its
// SNI names. A handshake naming no site (no SNI, an IP address, another
// name) gets the first site's certificate whose is ready, as a web
// server's default server would; its requests then get 421.
func (g *generation) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s := g.byName[config.SiteKey(hello.ServerName)]; s != nil {
		return s.cert.source().GetCertificate(hello)
	}
	if slices.Contains(hello.SupportedProtos, acmeALPN) {
		return nil, fmt.Errorf("no site is named %q", hello.ServerName)
	}
	for _, s := range g.sites {
		if s.cert.ready.Load() {
			return s.cert.source().GetCertificate(hello)
		}
	}
	return nil, errors.New("no certificate is ready yet")
}

// servePlain answers the plain port: the site the Host names, or for
// any other name the first site, as nginx's default_server would (and as
// a single-site Gatehouse always did): its ACME HTTP-01 answers, then
// the redirect to the first site's own name.
func (g *generation) servePlain(w http.ResponseWriter, r *http.Request) {
	s := g.siteFor(r.Host)
	if s == nil {
		s = g.sites[0]
	}
	s.plain.ServeHTTP(w, r)
}

// startCertificates starts every certificate of g not started yet, in
// order, reporting each. A site whose certificate fails is served
// without it (its handshakes fail) while its own schedule retries; the
// error is returned only when no site of g has a certificate then.
func (e *Engine) startCertificates(ctx context.Context, g *generation) error {
	var firstErr error
	for _, c := range g.certs {
		if c.started {
			continue
		}
		e.report.Report(progress.Certificate, "Preparing the %s certificate for %s", g.cfg.TLS, joinNames(c.names))
		err := e.rehearse(ctx, g, c)
		if err == nil {
			err = c.start(ctx, e.background)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if firstErr == nil {
				firstErr = err
			}
			if len(g.certs) > 1 {
				e.report.Report(progress.Certificate, "No certificate for %s yet (%v); its other sites are served, and Gatehouse tries again", joinNames(c.names), err)
			}
		}
	}
	for _, c := range g.certs {
		if c.ready.Load() {
			return nil
		}
	}
	return firstErr
}

// retryFailedCertificates keeps trying each certificate of g whose start
// failed, on its own schedule, until one is obtained or the run ends.
// Call it once g serves.
func (e *Engine) retryFailedCertificates(g *generation) {
	for _, c := range g.certs {
		c.mu.Lock()
		failed := c.started && c.err != nil && !c.ready.Load() && !c.retrying
		c.retrying = c.retrying || failed
		c.mu.Unlock()
		if failed {
			e.tracker.events.add(Event{Kind: EventCertificate, Time: time.Now(),
				Message: fmt.Sprintf("no certificate for %s: %v", joinNames(c.names), c.err)})
			go e.retryCertificate(c)
		}
	}
}

// The schedule of retrying a certificate whose first attempt failed.
const (
	certRetryFirst = time.Minute
	certRetryMax   = time.Hour
)

// retryCertificate tries c again after certRetryFirst, doubling the wait
// up to certRetryMax, and never before its source says it may (an ACME
// source also keeps the CA's backoff schedule on disk: an attempt it
// refuses costs nothing).
func (e *Engine) retryCertificate(c *certRun) {
	delay := e.certRetry
	for {
		c.mu.Lock()
		life, lastErr := c.life, c.err
		c.mu.Unlock()
		wait := delay
		var ae *acme.Error
		if errors.As(lastErr, &ae) && !ae.RetryAt.IsZero() {
			wait = max(wait, ae.RetryAt.Sub(time.Now()))
		}
		t := time.NewTimer(wait)
		select {
		case <-life.Done():
			t.Stop()
			return
		case <-t.C:
		}
		src, err := c.newSource()
		if err == nil {
			err = src.Start(life)
		}
		if life.Err() != nil {
			return
		}
		c.mu.Lock()
		c.err = err
		if err == nil {
			c.src = src
		}
		c.mu.Unlock()
		if err == nil {
			c.ready.Store(true)
			e.logger.Info("obtained the certificate after retrying", "names", c.names)
			e.tracker.events.add(Event{Kind: EventCertificate, Time: time.Now(), Message: "obtained the certificate for " + joinNames(c.names)})
			e.tracker.changed.Store(true)
			return
		}
		e.logger.Warn("still no certificate", "names", c.names, "err", err)
		delay = min(delay*2, certRetryMax)
	}
}

// rehearse obtains a certificate from the staging CA first when c's
// settings ask for it and production never issued one (see
// config.Config.ACMEStagingFirst), answering the staging CA's challenges
// on the running listeners. The staging certificate is only a check: it
// is never served.
func (e *Engine) rehearse(ctx context.Context, g *generation, c *certRun) error {
	var s *siteRun
	for _, site := range g.sites {
		if site.cert == c {
			s = site
			break
		}
	}
	cfg := s.cfg
	if cfg.TLS != config.TLSACME || !cfg.ACMEStagingFirst || cfg.ACMEDirectoryURL() == e.stagingDirectory || acme.HasCertificate(cfg) {
		return nil
	}
	e.report.Report(progress.ACMERehearsal, "First a test certificate from the staging service, to check that validation works")
	staging := cfg
	staging.ACMEDirectory, staging.ACMEStagingFirst = e.stagingDirectory, false
	src, err := e.newCertSource(staging)
	if err != nil {
		return err
	}
	rc := &certRun{key: certKey(staging), names: []string{s.site.Hostname}, src: src}
	rs := &siteRun{site: s.site, key: s.key, cfg: staging, cert: rc}
	rg := &generation{cfg: staging, sites: []*siteRun{rs}, byName: map[string]*siteRun{rs.key: rs}, certs: []*certRun{rc}}
	rg.prepareTLS()
	e.pending.Store(rg)
	defer e.pending.Store(nil)
	if err := rc.start(ctx, e.background); err != nil {
		rc.end()
		return fmt.Errorf("the staging check failed, so production was not asked: %w", err)
	}
	rc.end()
	e.report.Report(progress.ACMERehearsal, "The staging certificate was issued: validation works; now the real certificate")
	return nil
}

// useDemo starts the demo app if a site of g proxies to it and it is not
// serving yet, and points those sites at it. Call it with e.mu held.
func (e *Engine) useDemo(g *generation) error {
	for _, s := range g.sites {
		if s.site.Upstream != config.UpstreamDemo {
			continue
		}
		if !e.demo.serving() {
			if err := e.demo.start(); err != nil {
				return err
			}
		}
		s.upstream.Host = e.demo.addr()
		// The health checker copied the URL; the proxy reads it per request.
		s.health = e.newHealthChecker(s)
	}
	return nil
}

// newCertSource builds the source named by c.TLS for c's hostname (c is
// one site's config, config.Config.ForSite).
func (e *Engine) newCertSource(c config.Config) (certs.Source, error) {
	switch c.TLS {
	case config.TLSSelfSigned:
		return certs.NewLocalCA(c.Hostname, c.StateDir, e.logger), nil
	case config.TLSFiles:
		return certs.NewFiles(c.CertFile, c.KeyFile, e.logger), nil
	case config.TLSACME:
		return acme.New(c, e.report)
	}
	return nil, fmt.Errorf("certificate source %q is not available", c.TLS)
}

// sameUpstream reports whether b reaches the same upstream as a, the same
// way, so b can keep a's pool of open connections.
func sameUpstream(a, b *siteRun) bool {
	return *a.upstream == *b.upstream && a.site.UpstreamTrust() == b.site.UpstreamTrust() &&
		a.cfg.UpstreamPool() == b.cfg.UpstreamPool()
}

// certKey says which certificate a site's config (ForSite) asks for:
// sites with equal keys share one source, and a generation keeps its
// predecessor's source for an unchanged key. A chain from files is the
// same whatever site it serves; the other sources issue per name.
func certKey(c config.Config) string {
	pick := config.Config{
		Hostname: config.SiteKey(c.Hostname), TLS: c.TLS, StateDir: c.StateDir, CertFile: c.CertFile, KeyFile: c.KeyFile,
		ACMEEmail: c.ACMEEmail, ACMEDirectory: c.ACMEDirectoryURL(), ACMECARoots: c.ACMECARoots,
		ACMEEABKeyID: c.ACMEEABKeyID, ACMEEABHMAC: c.ACMEEABHMAC,
		// HTTP-01 is offered only with a plain port, so turning it on or
		// off changes how the certificate can be obtained.
		HTTPAddr: map[bool]string{true: config.Off}[c.HTTPAddr == config.Off],
	}
	if c.TLS == config.TLSFiles {
		pick.Hostname = ""
	}
	return fmt.Sprintf("%#v", pick)
}
