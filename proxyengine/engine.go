package proxyengine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/acme"
	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// shutdownGrace bounds how long in-flight requests may finish when the
// caller's context sets no deadline.
const shutdownGrace = 10 * time.Second

// Options are what an engine reports to, apart from its config.Config (which is
// what the config file holds). The zero value logs to slog.Default().
type Options struct {
	// Logger receives the engine's structured logs. Default: slog.Default().
	Logger *slog.Logger

	// Progress, if set, is called with each step of starting up (binding
	// ports, obtaining a certificate, checking the upstream) so a UI can
	// show it. It is called from the goroutine running Start.
	Progress func(progress.Event)
}

// Engine is Gatehouse's proxy: a plain-HTTP listener that redirects to
// HTTPS, a TLS listener that forwards to the upstream, and the certificate
// source behind it. Create one with New, then Start and Shutdown it once.
type Engine struct {
	cfg       config.Config
	logger    *slog.Logger
	report    progress.Reporter
	upstream  *url.URL
	demo      *demoApp // the built-in demo upstream, for Upstream "demo"
	certs     certs.Source
	transport *http.Transport
	proxy     *proxyHandler
	tracker   *tracker
	health    *upstream.HealthChecker
	history   historyRing
	subs      subscribers
	// untracked serves without connection and request tracking; it exists
	// so benchmarks can measure what tracking costs.
	untracked bool
	// limits bound what clients may hold; tests shorten them before Start.
	limits clientLimits

	mu             sync.Mutex
	started        bool
	state          State
	startedAt      time.Time
	httpsLn        net.Listener
	httpLn         net.Listener
	statusLn       net.Listener
	httpsSrv       *http.Server
	httpSrv        *http.Server
	statusSrv      *http.Server
	stopBackground context.CancelFunc // certificate upkeep, health checks, sampling
	serveErr       chan error
}

// New validates cfg and prepares an engine; nothing is bound until Start.
// A validation failure is a config.ValidationErrors naming each bad field.
// With Upstream "demo" the engine serves its built-in demo app, started and
// stopped with the engine.
func New(cfg config.Config, opts Options) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	e := &Engine{cfg: cfg, logger: logger, report: progress.Reporter{Logger: logger, Func: opts.Progress},
		tracker: newTracker(), limits: defaultClientLimits, state: StateStopped, serveErr: make(chan error, 3)}
	var err error
	if cfg.Upstream == config.UpstreamDemo {
		// Its port is known once Start has bound it; until then requests
		// cannot arrive, so the URL is completed there.
		e.demo = newDemoApp()
		e.upstream = &url.URL{Scheme: "http", Host: "127.0.0.1"}
	} else if e.upstream, err = upstream.ParseURL(cfg.Upstream); err != nil {
		return nil, err
	}
	trusted, err := config.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	if e.transport, err = upstream.NewTransport(e.upstream, cfg.UpstreamTrust(), cfg.UpstreamPool()); err != nil {
		return nil, err
	}
	if e.certs, err = e.newCertSource(); err != nil {
		return nil, err
	}
	e.proxy = newProxyHandler(cfg, logger, e.upstream, e.transport, forwarding{trusted: trusted}, e.tracker, &e.limits)
	e.health = upstream.NewHealthChecker(e.upstream, cfg.HealthPath, cfg.Hostname, e.transport, e.noteUpstreamHealth)
	return e, nil
}

// newCertSource builds the source named by the config's TLS.
func (e *Engine) newCertSource() (certs.Source, error) {
	c := e.cfg
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

// config.Config returns the engine's configuration, with defaults applied.
func (e *Engine) Config() config.Config { return e.cfg }

// Start binds the listeners, serves them, and prepares the certificate
// (obtaining it from an ACME CA if need be, which is why the listeners come
// first). It returns once the proxy serves visitors, or with the first
// failure, after which the engine is stopped again.
func (e *Engine) Start(ctx context.Context) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("engine already started")
	}
	e.started, e.state = true, StateStarting
	defer func() {
		if err != nil {
			e.closeLocked()
		}
	}()

	if e.demo != nil {
		if err = e.demo.start(); err != nil {
			return err
		}
		e.upstream.Host = e.demo.addr()
		e.health = upstream.NewHealthChecker(e.upstream, e.cfg.HealthPath, e.cfg.Hostname, e.transport, e.noteUpstreamHealth)
	}
	e.report.Report(progress.Listen, "Opening ports")
	if e.httpsLn, err = ports.Listen("HTTPS", e.cfg.HTTPSAddr); err != nil {
		return err
	}
	var handler http.Handler = e.proxy
	if !e.untracked {
		e.httpsLn = trackingListener{e.httpsLn, e.tracker}
		handler = e.tracker.middleware(e.proxy)
	}
	if e.cfg.HTTPAddr != config.Off {
		if e.httpLn, err = ports.Listen("HTTP", e.cfg.HTTPAddr); err != nil {
			return err
		}
	}
	if e.cfg.StatusAddr != config.Off {
		if e.statusLn, err = ports.Listen("status", e.cfg.StatusAddr); err != nil {
			return err
		}
	}

	nextProtos := []string{"h2", "http/1.1"}
	var plain http.Handler = redirectHandler(e.cfg.Hostname, e.cfg.PublicHTTPSPort)
	if solver, ok := e.certs.(certs.ChallengeSolver); ok {
		nextProtos = append(nextProtos, solver.ALPNProtos()...)
		// Only a listening plain port can answer HTTP-01; offering it
		// otherwise would cost a failed validation at the CA.
		if e.httpLn != nil {
			plain = solver.HTTPHandler(plain)
		}
	}
	errLog := slog.NewLogLogger(e.logger.Handler(), slog.LevelDebug)
	e.httpsSrv = e.limits.server(handler)
	e.httpsSrv.ConnContext = e.tracker.connContext
	e.httpsSrv.ConnState = e.tracker.connState
	e.httpsSrv.TLSConfig = serverTLSConfig(nextProtos, e.certs.GetCertificate)
	e.httpsSrv.ErrorLog = errLog
	e.serveInBackground(func() error { return e.httpsSrv.ServeTLS(e.httpsLn, "", "") })
	if e.httpLn != nil {
		e.httpSrv = e.limits.server(plain)
		e.httpSrv.ErrorLog = errLog
		e.serveInBackground(func() error { return e.httpSrv.Serve(e.httpLn) })
	}
	if e.statusLn != nil {
		e.statusSrv = e.limits.server(e.statusHandler())
		e.statusSrv.ErrorLog = errLog
		e.serveInBackground(func() error { return e.statusSrv.Serve(e.statusLn) })
		if !isLoopbackListen(e.statusLn.Addr()) {
			e.logger.Warn("the status endpoint is reachable from other machines: it shows visitors' addresses and paths", "addr", e.statusLn.Addr())
		}
	}

	e.report.Report(progress.Certificate, "Preparing the %s certificate for %s", e.cfg.TLS, e.cfg.Hostname)
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	e.stopBackground = stopBackground
	if err = e.certs.Start(bg); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if err = ctx.Err(); err != nil {
		return err
	}

	e.report.Report(progress.Upstream, "Checking the upstream at %s", e.health.URL())
	if h := e.health.Check(ctx); h.Healthy {
		e.report.Report(progress.Upstream, "The upstream answered in %s", h.Latency.Round(time.Millisecond))
	} else if ctx.Err() == nil {
		// Not fatal: the app may still be starting. The dashboard shows
		// when it comes up.
		e.report.Report(progress.Upstream, "The upstream is not answering yet (%s); Gatehouse keeps checking", h.LastError)
	}
	go e.health.Run(bg)
	go e.sample(bg)
	e.state, e.startedAt = StateRunning, time.Now()
	e.report.Report(progress.Ready, "Serving %s on %s", e.PublicURL(), e.httpsLn.Addr())
	return nil
}

// serverTLSConfig is the visitors' TLS: Mozilla's "intermediate" profile.
// TLS 1.3, and for TLS 1.2 only ECDHE key exchange with AEAD ciphers
// (forward secrecy, no CBC: Go would otherwise also offer the RSA-kex CBC
// suites AES128-SHA and AES256-SHA). Key exchange by the hybrid
// post-quantum X25519MLKEM768, X25519, P-256 or P-384; not P-521, which
// no browser needs and which is slow. TLS 1.3's suites are not
// configurable in Go and are all AEAD.
func serverTLSConfig(nextProtos []string, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384},
		NextProtos:       nextProtos,
		GetCertificate:   getCert,
	}
}

func isLoopbackListen(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// serveInBackground serves one listener and reports an unexpected end on Err.
func (e *Engine) serveInBackground(serve func() error) {
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.serveErr <- err
		}
	}()
}

// Err delivers an error if a listener stops serving on its own.
func (e *Engine) Err() <-chan error { return e.serveErr }

// HTTPSAddr is the bound TLS address (useful with port 0), or nil before Start.
func (e *Engine) HTTPSAddr() net.Addr { return e.boundAddr(&e.httpsLn) }

// HTTPAddr is the bound plain-HTTP address, or nil if off or not started.
func (e *Engine) HTTPAddr() net.Addr { return e.boundAddr(&e.httpLn) }

// StatusAddr is the bound status endpoint address, or nil if off or not started.
func (e *Engine) StatusAddr() net.Addr { return e.boundAddr(&e.statusLn) }

func (e *Engine) boundAddr(ln *net.Listener) net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	if *ln == nil {
		return nil
	}
	return (*ln).Addr()
}

// certs.Status describes the certificate being served.
func (e *Engine) CertStatus() certs.Status { return e.certs.Status() }

// Shutdown stops accepting, lets in-flight requests finish until ctx is
// done (10 s if ctx has no deadline), closes WebSockets with 1001 Going
// Away, then releases everything.
func (e *Engine) Shutdown(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, shutdownGrace)
		defer cancel()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	results := make(chan error, 4)
	pending := 1
	go func() { results <- e.proxy.ws.shutdown(ctx) }()
	for _, srv := range []*http.Server{e.httpsSrv, e.httpSrv, e.statusSrv} {
		if srv != nil {
			pending++
			go func() { results <- srv.Shutdown(ctx) }()
		}
	}
	// net/http waits up to 5 s for connections that never sent a request,
	// such as a browser's speculative preconnects; nothing is lost by
	// closing those at once.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var errs []error
	for pending > 0 {
		select {
		case err := <-results:
			pending--
			if err != nil {
				errs = append(errs, err)
			}
		case <-tick.C:
			e.tracker.closeUnused()
		}
	}
	e.closeLocked()
	return errors.Join(errs...)
}

// closeLocked releases whatever Start acquired.
func (e *Engine) closeLocked() {
	for _, srv := range []*http.Server{e.httpsSrv, e.httpSrv, e.statusSrv} {
		if srv != nil {
			srv.Close()
		}
	}
	for _, ln := range []net.Listener{e.httpsLn, e.httpLn, e.statusLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if e.stopBackground != nil {
		e.stopBackground()
	}
	e.transport.CloseIdleConnections()
	e.demo.close()
	e.state = StateStopped
}
