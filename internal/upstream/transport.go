package upstream

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

// Bounds on reaching the upstream, for the pool and for WebSockets, which
// dial their own connections.
const (
	DialTimeout = 10 * time.Second // connecting
	TLSTimeout  = 10 * time.Second // the TLS handshake after connecting
)

const (
	upstreamTCPKeepAlive    = 30 * time.Second
	upstreamExpectContinue  = time.Second
	upstreamMaxConnsPerHost = 0 // no cap: a busy site must not queue behind the pool
	upstreamALPNHTTP11      = "http/1.1"
	// upstreamSessionCacheSize is the TLS sessions kept for resuming
	// upstream connections. There is one upstream, so a few are plenty.
	upstreamSessionCacheSize = 16
)

// MaxHeaderBytes caps the upstream's response headers, as nginx's
// proxy_buffer_size does (4-8 KiB there; too tight for the cookies an
// identity provider sets). It matches the cap on visitors' request
// headers; Go's default is 10 MiB per response. WebSocket handshakes,
// read by the engine itself, are held to it too.
const MaxHeaderBytes = 64 << 10

// Trust says how the upstream's certificate is checked: at most one field
// is set; with none, the system roots verify it.
type Trust struct {
	Insecure    bool   // no verification at all
	CAFile      string // a PEM bundle of CA certificates, in place of the system roots
	Fingerprint string // the SHA-256 of the one leaf certificate trusted, whoever issued it
}

// Pool sizes the keepalive pool to the upstream. Zero values mean no
// idle connections kept, no idle timeout, and no response-header timeout.
type Pool struct {
	Keepalive       int           // idle connections kept for reuse
	IdleTimeout     time.Duration // an idle connection is closed after this
	ResponseTimeout time.Duration // the wait for response headers
}

// TLSConfig returns the TLS client config for an https upstream:
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
func TLSConfig(u *url.URL, t Trust) (*tls.Config, error) {
	tc := &tls.Config{
		ServerName:         u.Hostname(),
		NextProtos:         []string{upstreamALPNHTTP11},
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(upstreamSessionCacheSize),
	}
	switch {
	case t.Insecure:
		tc.InsecureSkipVerify = true
	case t.CAFile != "":
		pool, err := LoadCertPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	case t.Fingerprint != "":
		pin, err := ParseFingerprint(t.Fingerprint)
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

// NewTransport builds the HTTP/1.1 keepalive pool to the upstream u.
func NewTransport(u *url.URL, t Trust, p Pool) (*http.Transport, error) {
	tc, err := TLSConfig(u, t)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: DialTimeout, KeepAlive: upstreamTCPKeepAlive}
	return &http.Transport{
		Proxy:                  nil, // the upstream is reached directly, never through $HTTP_PROXY
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    TLSTimeout,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{}, // never h2
		ForceAttemptHTTP2:      false,
		DisableCompression:     true, // pass Accept-Encoding and encoded bodies through untouched
		MaxIdleConns:           p.Keepalive,
		MaxIdleConnsPerHost:    p.Keepalive,
		MaxConnsPerHost:        upstreamMaxConnsPerHost,
		IdleConnTimeout:        p.IdleTimeout,
		ResponseHeaderTimeout:  p.ResponseTimeout,
		ExpectContinueTimeout:  upstreamExpectContinue,
		MaxResponseHeaderBytes: MaxHeaderBytes,
	}, nil
}
