package proxyengine

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"reflect"

	"github.com/gatehouse-proxy/gatehouse/internal/acme"
	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// A generation is everything the engine serves from one configuration:
// the proxy with its upstream pool, the certificate, the TLS settings and
// the plain port's handler. Start builds the first; Apply builds the next
// one beside it, makes it current in one step, and retires the old one.
// What does not depend on the configuration (the listeners' servers,
// connection tracking, WebSocket sessions, history) belongs to the Engine
// and carries over, so keepalive connections and WebSockets live through a
// reload; a WebSocket keeps the upstream it was opened to.
type generation struct {
	cfg       config.Config
	upstream  *url.URL
	transport *http.Transport
	proxy     *proxyHandler
	auth      *forwardAuth // the site's forward auth, or nil
	health    *upstream.HealthChecker
	cert      *certRun
	tlsConfig *tls.Config  // visitors' TLS: this certificate, and ACME's ALPN protocol if any
	plain     http.Handler // the plain port: ACME HTTP-01, then the redirect
	// stopHealth ends this generation's health checks.
	stopHealth context.CancelFunc
}

// A certRun is a certificate source and the context its upkeep (renewal,
// reloading files) runs under. Generations whose certificate settings are
// the same share one, so a reload that changes only the upstream neither
// reissues nor reloads the certificate.
type certRun struct {
	source  certs.Source
	started bool
	stop    context.CancelFunc
}

// start obtains the certificate and keeps it fresh until stop.
func (c *certRun) start(ctx context.Context, bg context.Context) error {
	bg, c.stop = context.WithCancel(bg)
	if err := c.source.Start(bg); err != nil {
		c.stop()
		return err
	}
	c.started = true
	return ctx.Err()
}

// buildGeneration prepares what cfg (validated, with defaults) serves,
// reusing from prev (which may be nil) the upstream pool and the
// certificate when their settings did not change.
func (e *Engine) buildGeneration(cfg config.Config, prev *generation) (*generation, error) {
	g := &generation{cfg: cfg}
	var err error
	switch {
	case cfg.Upstream == config.UpstreamDemo:
		// The demo's port is known once it serves: useDemo completes the
		// URL before any request can arrive.
		g.upstream = &url.URL{Scheme: "http", Host: "127.0.0.1"}
		if e.demo.serving() {
			g.upstream.Host = e.demo.addr()
		}
	default:
		if g.upstream, err = upstream.ParseURL(cfg.Upstream); err != nil {
			return nil, err
		}
	}
	trusted, err := config.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	if prev != nil && sameUpstream(prev, g) {
		g.transport = prev.transport
	} else if g.transport, err = upstream.NewTransport(g.upstream, cfg.UpstreamTrust(), cfg.UpstreamPool()); err != nil {
		return nil, err
	}
	if prev != nil && sameCertificate(prev.cfg, cfg) {
		g.cert = prev.cert
	} else {
		src, err := e.newCertSource(cfg)
		if err != nil {
			return nil, err
		}
		g.cert = &certRun{source: src}
	}
	g.prepareTLS()
	g.proxy = newProxyHandler(cfg, e.logger, g.upstream, g.transport, forwarding{trusted: trusted}, e.tracker, e.ws, &e.limits)
	if cfg.ForwardAuth != nil {
		if g.auth, err = g.proxy.protect(*cfg.ForwardAuth); err != nil {
			return nil, err
		}
	}
	g.health = upstream.NewHealthChecker(g.upstream, cfg.HealthPath, cfg.Hostname, g.transport, e.noteUpstreamHealth)
	return g, nil
}

// prepareTLS sets g's visitors' TLS and plain-port handler for its
// certificate source.
func (g *generation) prepareTLS() {
	nextProtos := []string{"h2", "http/1.1"}
	g.plain = redirectHandler(g.cfg.Hostname, g.cfg.PublicHTTPSPort)
	if solver, ok := g.cert.source.(certs.ChallengeSolver); ok {
		nextProtos = append(nextProtos, solver.ALPNProtos()...)
		// Only a listening plain port can answer HTTP-01; offering it
		// otherwise would cost a failed validation at the CA.
		if g.cfg.HTTPAddr != config.Off {
			g.plain = solver.HTTPHandler(g.plain)
		}
	}
	g.tlsConfig = serverTLSConfig(nextProtos, g.cert.source.GetCertificate)
}

// rehearse obtains a certificate from the staging CA first when g's
// settings ask for it and production never issued one (see
// config.Config.ACMEStagingFirst), answering the staging CA's challenges
// on the running listeners. The staging certificate is only a check: it
// is never served.
func (e *Engine) rehearse(ctx context.Context, g *generation) error {
	cfg := g.cfg
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
	rg := &generation{cfg: staging, cert: &certRun{source: src}}
	rg.prepareTLS()
	e.pending.Store(rg)
	defer e.pending.Store(nil)
	if err := rg.cert.start(ctx, e.background); err != nil {
		return fmt.Errorf("the staging check failed, so production was not asked: %w", err)
	}
	rg.cert.stop()
	e.report.Report(progress.ACMERehearsal, "The staging certificate was issued: validation works; now the real certificate")
	return nil
}

// useDemo starts the demo app if g proxies to it and it is not serving
// yet, and points g at it. Call it with e.mu held.
func (e *Engine) useDemo(g *generation) error {
	if g.cfg.Upstream != config.UpstreamDemo {
		return nil
	}
	if !e.demo.serving() {
		if err := e.demo.start(); err != nil {
			return err
		}
	}
	g.upstream.Host = e.demo.addr()
	// The health checker copied the URL; the proxy reads it per request.
	g.health = upstream.NewHealthChecker(g.upstream, g.cfg.HealthPath, g.cfg.Hostname, g.transport, e.noteUpstreamHealth)
	return nil
}

// newCertSource builds the source named by cfg.TLS.
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
func sameUpstream(a, b *generation) bool {
	return *a.upstream == *b.upstream && a.cfg.UpstreamTrust() == b.cfg.UpstreamTrust() &&
		a.cfg.UpstreamPool() == b.cfg.UpstreamPool()
}

// sameCertificate reports whether a and b ask for the same certificate.
func sameCertificate(a, b config.Config) bool {
	pick := func(c config.Config) config.Config {
		return config.Config{
			Hostname: c.Hostname, TLS: c.TLS, StateDir: c.StateDir, CertFile: c.CertFile, KeyFile: c.KeyFile,
			ACMEEmail: c.ACMEEmail, ACMEDirectory: c.ACMEDirectoryURL(), ACMECARoots: c.ACMECARoots,
			ACMEEABKeyID: c.ACMEEABKeyID, ACMEEABHMAC: c.ACMEEABHMAC,
			// HTTP-01 is offered only with a plain port, so turning it on or
			// off changes how the certificate can be obtained.
			HTTPAddr: map[bool]string{true: config.Off}[c.HTTPAddr == config.Off],
		}
	}
	return reflect.DeepEqual(pick(a), pick(b))
}
