package proxyengine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/notify"
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
	logger  *slog.Logger
	report  progress.Reporter
	demo    *demoApp // the built-in demo upstream, started when a configuration asks for it
	tracker *tracker
	// visitors counts each visitor's open connections to the HTTPS and
	// plain ports, for the per-visitor connection limit.
	visitors *visitorConns
	ws       *wsSessions // open WebSockets, whichever configuration opened them
	history  historyRing
	subs     notify.Fanout
	// untracked serves without connection and request tracking; it exists
	// so benchmarks can measure what tracking costs.
	untracked bool
	// limits bound what clients may hold; tests shorten them before Start.
	limits clientLimits
	// stagingDirectory is the CA that config.Config.ACMEStagingFirst
	// rehearses with: Let's Encrypt's staging, or a test's Pebble.
	stagingDirectory string
	// siteCounters are each site's counters, by name, over every
	// generation.
	siteCounters siteStatsSet
	// certRetry is the first wait before a failed certificate is tried
	// again (certRetryFirst); tests shorten it.
	certRetry time.Duration
	// listen binds a listener (ports.Listen); tests hand out ports they
	// reserved beforehand, such as those an ACME CA validates on.
	listen func(purpose, addr string) (net.Listener, error)

	// gen is what the engine serves now; pending, while Apply obtains a
	// new certificate, is the generation whose ACME challenges the
	// listeners answer meanwhile.
	gen     atomic.Pointer[generation]
	pending atomic.Pointer[generation]
	// applyMu makes Apply calls take turns.
	applyMu sync.Mutex

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
	retired        map[net.Listener]bool // closed by Apply: their Serve's end is no failure
	background     context.Context       // outlives Start's context: certificate upkeep, health checks, sampling
	stopBackground context.CancelFunc    // ends it, at Shutdown
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
	e := &Engine{logger: logger, report: progress.Reporter{Logger: logger, Func: opts.Progress}, demo: newDemoApp(),
		stagingDirectory: config.LetsEncryptStaging, certRetry: certRetryFirst, listen: ports.Listen,
		tracker: newTracker(), limits: defaultClientLimits, state: StateStopped, serveErr: make(chan error, 3),
		retired: map[net.Listener]bool{}}
	e.ws = newWSSessions(e.tracker)
	e.visitors = &visitorConns{exempt: e.exemptFromVisitorLimits, refusedNote: e.noteRefusedConnections}
	g, err := e.buildGeneration(cfg, nil)
	if err != nil {
		return nil, err
	}
	e.gen.Store(g)
	return e, nil
}

// current is the generation serving now.
func (e *Engine) current() *generation { return e.gen.Load() }

// Config returns the configuration the engine serves, with defaults applied.
func (e *Engine) Config() config.Config { return e.current().cfg }

// Start binds the listeners, serves them, and prepares each site's
// certificate (obtaining it from an ACME CA if need be, which is why the
// listeners come first). It returns once the proxy serves visitors, or
// with the first failure, after which the engine is stopped again. With
// several sites, Start fails only if no site got a certificate: a site
// whose certificate failed is served without one (its handshakes fail),
// shows the failure in its SiteStatus, and is tried again on its own
// schedule (and, for ACME, the CA's backoff for that name).
func (e *Engine) Start(ctx context.Context) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("engine already started")
	}
	e.started, e.state = true, StateStarting
	e.background, e.stopBackground = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			e.closeLocked()
		}
	}()
	g := e.current()
	if err = e.useDemo(g); err != nil {
		return err
	}
	cfg := g.cfg

	e.report.Report(progress.Listen, "Opening ports")
	e.visitors.limit, e.visitors.busyAt = e.limits.connsPerVisitor, e.limits.connsBusy
	if e.httpsLn, err = e.listenHTTPS(cfg.HTTPSAddr); err != nil {
		return err
	}
	if cfg.HTTPAddr != config.Off {
		if e.httpLn, err = e.listenPlain(cfg.HTTPAddr); err != nil {
			return err
		}
	}
	if cfg.StatusAddr != config.Off {
		if e.statusLn, err = e.listen("status", cfg.StatusAddr); err != nil {
			return err
		}
	}

	// The servers hand each request to the generation current when it
	// arrives, so Apply changes what is served without touching them.
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.current().ServeHTTP(w, r)
	})
	if !e.untracked {
		handler = e.tracker.middleware(handler, e.limits.sendTimeout)
	}
	errLog := slog.NewLogLogger(e.logger.Handler(), slog.LevelDebug)
	e.httpsSrv = e.limits.server(handler)
	e.httpsSrv.ConnContext = e.tracker.connContext
	e.httpsSrv.ConnState = e.tracker.connState
	e.httpsSrv.TLSConfig = &tls.Config{NextProtos: []string{"h2", "http/1.1"}, GetConfigForClient: e.tlsConfigFor}
	e.httpsSrv.ErrorLog = errLog
	e.serveHTTPS(e.httpsLn)
	e.httpSrv = e.limits.server(http.HandlerFunc(e.servePlain))
	e.httpSrv.ErrorLog = errLog
	if e.httpLn != nil {
		e.serve(e.httpSrv, e.httpLn)
	}
	e.statusSrv = e.limits.server(e.statusHandler())
	e.statusSrv.ErrorLog = errLog
	if e.statusLn != nil {
		e.serve(e.statusSrv, e.statusLn)
		e.warnIfStatusPublic()
	}

	if err = e.startCertificates(ctx, g); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	e.retryFailedCertificates(g)
	e.checkUpstream(ctx, g)
	go e.sample(e.background)
	e.state, e.startedAt = StateRunning, time.Now()
	e.report.Report(progress.Ready, "Serving %s on %s", g.publicURLs(), e.httpsLn.Addr())
	return nil
}

// listenHTTPS binds the TLS listener, tracked unless tracking is off.
func (e *Engine) listenHTTPS(addr string) (net.Listener, error) {
	ln, err := e.listen("HTTPS", addr)
	if err != nil || e.untracked {
		return ln, err
	}
	return trackingListener{Listener: ln, t: e.tracker, visitors: e.visitors}, nil
}

// listenPlain binds the plain HTTP listener, whose connections count
// toward their visitors' limit as the TLS listener's do.
func (e *Engine) listenPlain(addr string) (net.Listener, error) {
	ln, err := e.listen("HTTP", addr)
	if err != nil {
		return nil, err
	}
	return limitingListener{Listener: ln, v: e.visitors}, nil
}

// exemptFromVisitorLimits reports whether connections from ip are left out
// of the per-visitor connection limit: loopback (a local tunnel) and the
// configured trusted proxies carry many visitors each.
func (e *Engine) exemptFromVisitorLimits(ip netip.Addr) bool {
	return ip.IsLoopback() || e.current().forwarding.isTrusted(ip)
}

// noteRefusedConnections logs refused connections and shows them among the
// events.
func (e *Engine) noteRefusedConnections(visitor netip.Prefix, refusals uint64) {
	name := visitor.String() // an IPv6 /64
	if visitor.IsSingleIP() {
		name = visitor.Addr().String()
	}
	conns := "1 connection"
	if refusals != 1 {
		conns = fmt.Sprintf("%d connections", refusals)
	}
	msg := fmt.Sprintf("refused %s from %s: %d or more connections are open, and that address already holds %d, the most one may then",
		conns, name, e.visitors.busyAt, e.visitors.limit)
	e.logger.Warn("too many connections from one visitor; if it is a proxy in front of Gatehouse, list it in trusted_proxies",
		"visitor", name, "refused", refusals, "limit", e.visitors.limit, "busy_at", e.visitors.busyAt)
	e.tracker.events.add(Event{Time: time.Now(), Kind: EventError, Remote: name, Message: msg})
	e.tracker.changed.Store(true)
}

// serveHTTPS serves visitors' TLS connections from ln.
func (e *Engine) serveHTTPS(ln net.Listener) {
	e.serveInBackground(ln, func() error { return e.httpsSrv.ServeTLS(ln, "", "") })
}

// serve serves srv's connections from ln.
func (e *Engine) serve(srv *http.Server, ln net.Listener) {
	e.serveInBackground(ln, func() error { return srv.Serve(ln) })
}

// tlsConfigFor picks the TLS settings of a visitor's handshake: the
// current generation's, or the pending one's for the CA's TLS-ALPN-01
// validation while Apply obtains a new certificate.
func (e *Engine) tlsConfigFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if p := e.pending.Load(); p != nil && slices.Equal(hello.SupportedProtos, []string{acmeALPN}) && p.byName[config.SiteKey(hello.ServerName)] != nil {
		return p.tlsConfig, nil
	}
	return e.current().tlsConfig, nil
}

// servePlain answers the plain port: the pending generation's HTTP-01
// challenges while Apply obtains a certificate, then the current one's.
func (e *Engine) servePlain(w http.ResponseWriter, r *http.Request) {
	cur := e.current()
	if p := e.pending.Load(); p != nil && strings.HasPrefix(r.URL.Path, acmeHTTPChallengePath) {
		if ps := p.siteFor(r.Host); ps != nil {
			if solver, ok := ps.cert.source().(certs.ChallengeSolver); ok {
				solver.HTTPHandler(http.HandlerFunc(cur.servePlain)).ServeHTTP(w, r)
				return
			}
		}
	}
	cur.servePlain(w, r)
}

// checkUpstream checks each site's upstream of g once, at the same time,
// reporting the results, and keeps checking them in the background until
// g is retired or the engine stops.
func (e *Engine) checkUpstream(ctx context.Context, g *generation) {
	results := make([]upstream.Health, len(g.sites))
	var wg sync.WaitGroup
	for i, s := range g.sites {
		e.report.Report(progress.Upstream, "Checking the upstream at %s", s.health.URL())
		wg.Go(func() { results[i] = s.health.Check(ctx) })
	}
	wg.Wait()
	for i, s := range g.sites {
		of := ""
		if len(g.sites) > 1 {
			of = " of " + s.site.Hostname
		}
		if h := results[i]; h.Healthy {
			e.report.Report(progress.Upstream, "The upstream%s answered in %s", of, h.Latency.Round(time.Millisecond))
		} else if ctx.Err() == nil {
			// Not fatal: the app may still be starting. The dashboard
			// shows when it comes up.
			e.report.Report(progress.Upstream, "The upstream%s is not answering yet (%s); Gatehouse keeps checking", of, h.LastError)
		}
		var bg context.Context
		bg, s.stopHealth = context.WithCancel(e.background)
		go s.health.Run(bg)
	}
}

func (e *Engine) warnIfStatusPublic() {
	if !isLoopbackListen(e.statusLn.Addr()) {
		e.logger.Warn("the status endpoint is reachable from other machines: it shows visitors' addresses and paths", "addr", e.statusLn.Addr())
	}
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

// serveInBackground serves ln and reports an unexpected end on Err: not
// the server's shutdown, nor Apply closing a listener it replaced.
func (e *Engine) serveInBackground(ln net.Listener, serve func() error) {
	go func() {
		err := serve()
		e.mu.Lock()
		retired := e.retired[ln]
		delete(e.retired, ln)
		e.mu.Unlock()
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !retired {
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

// CertStatus describes the certificate served for the first site; each
// site's is in Status().Sites.
func (e *Engine) CertStatus() certs.Status { return e.current().firstSite().cert.status() }

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
	go func() { results <- e.ws.shutdown(ctx) }()
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
		e.stopBackground() // certificate upkeep and health checks of every generation
	}
	for _, s := range e.current().sites {
		s.transport.CloseIdleConnections()
		if s.auth != nil {
			s.auth.transport.CloseIdleConnections()
		}
	}
	e.demo.close()
	e.state = StateStopped
}
