// Package proxyengine is Gatehouse's proxy: what authentik's reverse-proxy
// guide asks of nginx, as a library. An Engine listens on a plain-HTTP
// port (301 to HTTPS, ACME HTTP-01) and a TLS port, forwards each request
// for the configured hostname to the upstream over an HTTP/1.1 keepalive
// pool, passes WebSocket upgrades through, and tracks every connection for
// the status endpoint and the dashboard. New takes a config.Config and
// Options; Start and Shutdown run it once.
//
// One concern per file, as Caddy's reverseproxy module:
//
//	engine.go         New, Start, Shutdown: listeners, certificate, health, lifecycle
//	generation.go     one configuration's sites, pools and certificates
//	apply.go          Apply: a new generation without dropping visitors
//	sites.go          routing by Host to a site (CONNECT 405, bad Host 400, unknown 421)
//	proxy.go          a site's request handler: Rewrite, upstream errors
//	upstreamqueue.go  requests wait briefly for a pooled upstream connection
//	forwardauth.go    authentik forward auth in front of a site
//	forwarded.go      X-Forwarded-* for trusted and untrusted clients
//	redirect.go       the plain-HTTP port's 301 to HTTPS
//	limits.go         client-side timeouts and sizes, and the per-write send deadline
//	websocket.go      WebSocket upgrades and the two-way splice
//	wspark_unix.go    an idle direction waits on its socket without a buffer
//	wsframe.go        reading frame boundaries so the proxy can close cleanly
//	buffers.go        the pool of copy buffers shared by responses and WebSockets
//	tracking.go       connections, requests and WebSockets as they happen
//	history.go        latency buckets, recent events, the per-second history
//	status.go         the Status snapshot and its subscribers
//	statusserver.go   GET /status and /metrics on the status listener
//	statusstream.go   /status written a row at a time
//	errorpage.go      the pages Gatehouse itself answers with
//	demoapp.go        the built-in demo upstream (config.UpstreamDemo)
//
// What the engine shares with the pre-flight checks lives under internal/:
// config (settings and validation), certs and acme (the certificate),
// upstream (URL, trust, transport, health), ports (listening) and progress
// (start-up steps). docs/ARCHITECTURE.md draws the whole map.
package proxyengine
