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
)

// shutdownGrace bounds how long in-flight requests may finish when the
// caller's context sets no deadline.
const shutdownGrace = 10 * time.Second

// Stage names a step of starting the engine, reported through
// Config.Progress.
type Stage string

// Stages of Start, in order. An ACME source adds its own after
// StageCertificate.
const (
	StageListen      Stage = "listen"
	StageCertificate Stage = "certificate"

	StageACMEAccount    Stage = "acme-account"    // registering (or finding) the ACME account
	StageACMEOrder      Stage = "acme-order"      // ordering a certificate for the hostname
	StageACMEChallenge  Stage = "acme-challenge"  // answering a tls-alpn-01 or http-01 challenge
	StageACMEValidating Stage = "acme-validating" // waiting for the CA to check the answer
	StageACMEIssued     Stage = "acme-issued"     // the CA issued the certificate

	StageUpstream Stage = "upstream"
	StageReady    Stage = "ready"
)

// A ProgressEvent is one step of starting up, in plain words.
type ProgressEvent struct {
	Stage   Stage
	Message string
}

// Engine is Gatehouse's proxy: a plain-HTTP listener that redirects to
// HTTPS, a TLS listener that forwards to the upstream, and the certificate
// source behind it. Create one with New, then Start and Shutdown it once.
type Engine struct {
	cfg       Config
	upstream  *url.URL
	certs     CertSource
	transport *http.Transport
	proxy     *proxyHandler
	tracker   *tracker
	health    *healthChecker
	history   historyRing
	subs      subscribers
	// untracked serves without connection and request tracking; it exists
	// so benchmarks can measure what tracking costs.
	untracked bool
	// limits bound what clients may hold; tests shorten them before Start.
	limits clientLimits
	// bind opens each listen address: listen, unless a test hands over a
	// port it holds (Pebble validates on ports fixed before Start).
	bind func(purpose, addr string) (net.Listener, error)

	mu             sync.Mutex
	started        bool
	state          string
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
// A validation failure is a ValidationErrors naming each bad field.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Upstream == UpstreamDemo {
		return nil, errors.New(`upstream "demo": start the demo app with WithDemoApp before New`)
	}
	upstream, err := ParseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	trusted, err := ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	transport, err := newUpstreamTransport(cfg, upstream)
	if err != nil {
		return nil, err
	}
	certs, err := newCertSource(cfg)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, upstream: upstream, certs: certs, transport: transport, tracker: newTracker(),
		limits: defaultClientLimits, bind: listen, state: StateStopped, serveErr: make(chan error, 3)}
	e.proxy = newProxyHandler(cfg, upstream, transport, forwarding{trusted: trusted}, e.tracker, &e.limits)
	e.health = newHealthChecker(cfg, upstream, transport, e.noteUpstreamHealth)
	return e, nil
}

// Config returns the engine's configuration, with defaults applied.
func (e *Engine) Config() Config { return e.cfg }

func (e *Engine) progress(stage Stage, format string, args ...any) {
	e.cfg.progress(stage, fmt.Sprintf(format, args...))
}

// progress logs one step of starting up and passes it to c.Progress.
func (c Config) progress(stage Stage, msg string) {
	c.Logger.Info(msg, "stage", string(stage))
	if c.Progress != nil {
		c.Progress(ProgressEvent{Stage: stage, Message: msg})
	}
}

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

	e.progress(StageListen, "Opening ports")
	if e.httpsLn, err = e.bind("HTTPS", e.cfg.HTTPSAddr); err != nil {
		return err
	}
	var handler http.Handler = e.proxy
	if !e.untracked {
		e.httpsLn = trackingListener{e.httpsLn, e.tracker}
		handler = e.tracker.middleware(e.proxy)
	}
	if e.cfg.HTTPAddr != Off {
		if e.httpLn, err = e.bind("HTTP", e.cfg.HTTPAddr); err != nil {
			return err
		}
	}
	if e.cfg.StatusAddr != Off {
		if e.statusLn, err = e.bind("status", e.cfg.StatusAddr); err != nil {
			return err
		}
	}

	nextProtos := []string{"h2", "http/1.1"}
	var plain http.Handler = redirectHandler(e.cfg.Hostname, e.cfg.PublicHTTPSPort)
	if solver, ok := e.certs.(challengeSolver); ok {
		nextProtos = append(nextProtos, solver.ALPNProtos()...)
		// Only a listening plain port can answer HTTP-01; offering it
		// otherwise would cost a failed validation at the CA.
		if e.httpLn != nil {
			plain = solver.HTTPHandler(plain)
		}
	}
	errLog := slog.NewLogLogger(e.cfg.Logger.Handler(), slog.LevelDebug)
	e.httpsSrv = e.limits.server(handler)
	e.httpsSrv.ConnContext = e.tracker.connContext
	e.httpsSrv.ConnState = e.tracker.connState
	e.httpsSrv.TLSConfig = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     nextProtos,
		GetCertificate: e.certs.GetCertificate,
	}
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
			e.cfg.Logger.Warn("the status endpoint is reachable from other machines: it shows visitors' addresses and paths", "addr", e.statusLn.Addr())
		}
	}

	e.progress(StageCertificate, "Preparing the %s certificate for %s", e.cfg.TLS, e.cfg.Hostname)
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	e.stopBackground = stopBackground
	if err = e.certs.Start(bg); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if err = ctx.Err(); err != nil {
		return err
	}

	e.progress(StageUpstream, "Checking the upstream at %s", e.health.url)
	if h := e.health.check(ctx); h.Healthy {
		e.progress(StageUpstream, "The upstream answered in %s", h.Latency.Round(time.Millisecond))
	} else if ctx.Err() == nil {
		// Not fatal: the app may still be starting. The dashboard shows
		// when it comes up.
		e.progress(StageUpstream, "The upstream is not answering yet (%s); Gatehouse keeps checking", h.LastError)
	}
	go e.health.run(bg)
	go e.sample(bg)
	e.state, e.startedAt = StateRunning, time.Now()
	e.progress(StageReady, "Serving %s on %s", e.PublicURL(), e.httpsLn.Addr())
	return nil
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

// CertStatus describes the certificate being served.
func (e *Engine) CertStatus() CertStatus { return e.certs.Status() }

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
	e.state = StateStopped
}
