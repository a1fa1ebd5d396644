package proxyengine

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

const (
	upstreamDialTimeout     = 10 * time.Second
	upstreamTLSTimeout      = 10 * time.Second
	upstreamTCPKeepAlive    = 30 * time.Second
	upstreamExpectContinue  = time.Second
	upstreamMaxConnsPerHost = 0 // no cap: a busy site must not queue behind the pool
	upstreamALPNHTTP11      = "http/1.1"
	// upstreamSessionCacheSize is the TLS sessions kept for resuming
	// upstream connections. There is one upstream, so a few are plenty.
	upstreamSessionCacheSize = 16
	// upstreamMaxHeaderBytes caps the upstream's response headers, as
	// nginx's proxy_buffer_size does (4-8 KiB there; too tight for the
	// cookies an identity provider sets). It matches the cap on visitors'
	// request headers; Go's default is 10 MiB per response.
	upstreamMaxHeaderBytes = 64 << 10
)

// upstreamTLSConfig returns the TLS client config for an https upstream:
// system roots by default, or the configured CA file, pinned fingerprint or
// no verification. It offers only HTTP/1.1 in ALPN: authentik's WebSockets
// need HTTP/1.1 upgrades, which an h2 connection cannot carry.
//
// Sessions are resumed, as nginx's proxy_ssl_session_reuse does by default:
// every WebSocket and every connection the pool adds under load is a new
// upstream connection, and a resumed handshake skips the certificate (its
// verification, and the buffers crypto/tls grows to read it and keeps for
// the connection's life). A resumed session was verified when it was made;
// a pin is checked again on each one, as VerifyConnection runs for all.
func upstreamTLSConfig(c Config, u *url.URL) (*tls.Config, error) {
	tc := &tls.Config{
		ServerName:         u.Hostname(),
		NextProtos:         []string{upstreamALPNHTTP11},
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(upstreamSessionCacheSize),
	}
	switch {
	case c.UpstreamInsecure:
		tc.InsecureSkipVerify = true
	case c.UpstreamCA != "":
		pool, err := loadCertPool(c.UpstreamCA)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	case c.UpstreamFingerprint != "":
		pin, err := ParseFingerprint(c.UpstreamFingerprint)
		if err != nil {
			return nil, err
		}
		// The pin replaces chain verification: the one certificate the user
		// saw and approved is trusted, whoever signed it.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("upstream sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
				return fmt.Errorf("upstream certificate fingerprint %s does not match the pinned %s", FormatFingerprint(sum[:]), FormatFingerprint(pin))
			}
			return nil
		}
	}
	return tc, nil
}

// newUpstreamTransport builds the HTTP/1.1 keepalive pool to the upstream.
func newUpstreamTransport(c Config, u *url.URL) (*http.Transport, error) {
	tc, err := upstreamTLSConfig(c, u)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: upstreamTCPKeepAlive}
	return &http.Transport{
		Proxy:                  nil, // the upstream is reached directly, never through $HTTP_PROXY
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    upstreamTLSTimeout,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{}, // never h2
		ForceAttemptHTTP2:      false,
		DisableCompression:     true, // pass Accept-Encoding and encoded bodies through untouched
		MaxIdleConns:           c.UpstreamKeepalive,
		MaxIdleConnsPerHost:    c.UpstreamKeepalive,
		MaxConnsPerHost:        upstreamMaxConnsPerHost,
		IdleConnTimeout:        time.Duration(c.UpstreamIdleTimeout),
		ResponseHeaderTimeout:  time.Duration(c.UpstreamTimeout),
		ExpectContinueTimeout:  upstreamExpectContinue,
		MaxResponseHeaderBytes: upstreamMaxHeaderBytes,
	}, nil
}
