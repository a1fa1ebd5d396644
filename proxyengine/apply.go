package proxyengine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

const (
	// acmeALPN is the protocol a CA's TLS-ALPN-01 validation offers alone.
	acmeALPN = "acme-tls/1"
	// acmeHTTPChallengePath is where a CA's HTTP-01 validation asks.
	acmeHTTPChallengePath = "/.well-known/acme-challenge/"
)

// ErrNotRunning is returned by Apply on an engine that is not serving.
var ErrNotRunning = errors.New("the proxy is not running")

// Apply serves cfg from now on without dropping anyone: open keepalive
// connections and WebSockets carry on (a WebSocket keeps the upstream it
// was opened to), and new requests go by cfg. What cfg needs is made ready
// beside what serves now: a listen address that changed is bound before
// the old one closes, a new certificate is obtained (answering the CA's
// challenges on the running listeners) before it is served. If cfg is
// invalid (a config.ValidationErrors naming each field), or a port cannot
// be bound, or its certificate cannot be had, Apply returns the error and
// the engine keeps serving as before.
func (e *Engine) Apply(ctx context.Context, cfg config.Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	e.applyMu.Lock()
	defer e.applyMu.Unlock()

	e.mu.Lock()
	if e.state != StateRunning {
		e.mu.Unlock()
		return ErrNotRunning
	}
	cur := e.current()
	next, err := e.buildGeneration(cfg, cur)
	if err == nil {
		err = e.useDemo(next)
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}

	binds, err := e.bindChanged(cur.cfg, cfg)
	if err != nil {
		return err
	}
	e.pending.Store(next)
	err = e.startCertificates(ctx, next)
	e.pending.Store(nil)
	if err != nil {
		binds.abandon()
		next.endCertificates(cur)
		return fmt.Errorf("certificate: %w", err)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != StateRunning { // Shutdown came first
		binds.abandon()
		next.retire(cur)
		return ErrNotRunning
	}
	e.gen.Store(next)
	binds.commit()
	cur.retire(next)
	e.retryFailedCertificates(next)
	e.checkUpstream(ctx, next)
	e.tracker.events.add(Event{Time: time.Now(), Kind: EventConfig, Message: "new settings applied"})
	e.tracker.changed.Store(true)
	e.logger.Info("applied new settings", "sites", next.sitesSummary())
	return nil
}

// retire ends what g alone used once next serves: its health checks, the
// upkeep of certificates next does not serve and the idle connections of
// the upstream and outpost pools next does not use (requests in flight
// finish on theirs).
func (g *generation) retire(next *generation) {
	g.endCertificates(next)
	kept := map[*http.Transport]bool{}
	for _, s := range next.sites {
		kept[s.transport] = true
		if s.auth != nil {
			kept[s.auth.transport] = true
		}
	}
	for _, s := range g.sites {
		if s.stopHealth != nil {
			s.stopHealth()
		}
		if !kept[s.transport] {
			s.transport.CloseIdleConnections()
		}
		if s.auth != nil && !kept[s.auth.transport] {
			s.auth.transport.CloseIdleConnections()
		}
	}
}

// endCertificates ends the upkeep of g's certificates that other does not
// serve.
func (g *generation) endCertificates(other *generation) {
	for _, c := range g.certs {
		if !slices.Contains(other.certs, c) {
			c.end()
		}
	}
}

// rebinding is the listeners Apply has bound for addresses that changed,
// not yet serving.
type rebinding struct {
	e                      *Engine
	https, http, status    net.Listener
	closeHTTP, closeStatus bool // the address became off
}

// bindChanged binds the listen addresses of next that differ from cur's.
// Nothing serves them until commit; on an error nothing stays bound.
func (e *Engine) bindChanged(cur, next config.Config) (*rebinding, error) {
	b := &rebinding{e: e}
	var err error
	if next.HTTPSAddr != cur.HTTPSAddr {
		b.https, err = e.listenHTTPS(next.HTTPSAddr)
	}
	if err == nil && next.HTTPAddr != cur.HTTPAddr {
		if next.HTTPAddr == config.Off {
			b.closeHTTP = true
		} else {
			b.http, err = e.listenPlain(next.HTTPAddr)
		}
	}
	if err == nil && next.StatusAddr != cur.StatusAddr {
		if next.StatusAddr == config.Off {
			b.closeStatus = true
		} else {
			b.status, err = e.listen("status", next.StatusAddr)
		}
	}
	if err != nil {
		b.abandon()
		return nil, err
	}
	return b, nil
}

// abandon closes the listeners bound for a configuration not applied.
func (b *rebinding) abandon() {
	for _, ln := range []net.Listener{b.https, b.http, b.status} {
		if ln != nil {
			ln.Close()
		}
	}
}

// commit serves the new listeners and then closes the ones they replace;
// connections the old ones accepted carry on. Call it with e.mu held.
func (b *rebinding) commit() {
	e := b.e
	swap := func(old *net.Listener, ln net.Listener, serve func(net.Listener)) {
		if ln != nil {
			serve(ln)
		}
		if *old != nil {
			e.retired[*old] = true // its server's Serve ends: no failure
			(*old).Close()
		}
		*old = ln
	}
	if b.https != nil {
		swap(&e.httpsLn, b.https, e.serveHTTPS)
	}
	if b.http != nil || b.closeHTTP {
		swap(&e.httpLn, b.http, func(ln net.Listener) { e.serve(e.httpSrv, ln) })
	}
	if b.status != nil || b.closeStatus {
		swap(&e.statusLn, b.status, func(ln net.Listener) { e.serve(e.statusSrv, ln) })
		if b.status != nil {
			e.warnIfStatusPublic()
		}
	}
}
