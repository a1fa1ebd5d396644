// Package certs supplies the certificate Gatehouse serves. A Source loads,
// creates or obtains it and keeps it fresh; this package holds the local
// CA (localca.go) and the PEM files on disk (files.go), and internal/acme
// the ACME source. Status describes the certificate for the dashboard.
package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// A Source supplies the certificate served for the public hostname.
// Sources may also implement ChallengeSolver to take part in ACME.
type Source interface {
	// Start loads, creates or obtains the certificate and returns once one can
	// be served. It keeps the certificate fresh in the background (reloading
	// or renewing) until ctx is done.
	Start(ctx context.Context) error

	// GetCertificate is used as tls.Config.GetCertificate.
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)

	// Status describes the certificate now being served.
	Status() Status
}

// A ChallengeSolver is a Source that answers ACME challenges: HTTP-01 on
// the plain listener, TLS-ALPN-01 through extra ALPN protocols.
type ChallengeSolver interface {
	HTTPHandler(fallback http.Handler) http.Handler
	ALPNProtos() []string
}

// Status describes a certificate for the status API and the dashboard.
type Status struct {
	Source      config.TLSSource `json:"source"`
	Issuer      string           `json:"issuer,omitempty"`
	Names       []string         `json:"names,omitempty"`
	NotBefore   time.Time        `json:"not_before,omitzero"`
	NotAfter    time.Time        `json:"not_after,omitzero"`
	NextRenewal time.Time        `json:"next_renewal,omitzero"`
	Fingerprint string           `json:"fingerprint,omitempty"` // SHA-256 of the leaf, colon hex
	LastError   string           `json:"last_error,omitempty"`
}

// DescribeLeaf fills the certificate fields of a Status from a leaf.
func DescribeLeaf(source config.TLSSource, leaf *x509.Certificate) Status {
	sum := sha256.Sum256(leaf.Raw)
	issuer := leaf.Issuer.CommonName
	if len(leaf.Issuer.Organization) > 0 {
		issuer = fmt.Sprintf("%s (%s)", leaf.Issuer.CommonName, leaf.Issuer.Organization[0])
	}
	return Status{
		Source:      source,
		Issuer:      issuer,
		Names:       leaf.DNSNames,
		NotBefore:   leaf.NotBefore,
		NotAfter:    leaf.NotAfter,
		Fingerprint: upstream.FormatFingerprint(sum[:]),
	}
}

// Every calls f at each tick of interval until ctx is done; certificate
// sources use it to keep their certificate fresh.
func Every(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}

// current holds what a source serves now: the certificate, its Status,
// and the last error met keeping it fresh (while the previous certificate
// still serves). It gives a source its GetCertificate and Status.
type current struct {
	mu     sync.RWMutex
	cert   *tls.Certificate
	status Status
	empty  string // GetCertificate's error before the first certificate
}

// set serves cert from now on, described by st (which clears any error).
func (c *current) set(cert *tls.Certificate, st Status) {
	c.mu.Lock()
	c.cert, c.status = cert, st
	c.mu.Unlock()
}

// failed records err; the certificate served, if any, stays.
func (c *current) failed(err error) {
	c.mu.Lock()
	c.status.LastError = err.Error()
	c.mu.Unlock()
}

// serving returns the certificate served now, or nil.
func (c *current) serving() *tls.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert
}

func (c *current) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.serving(); cert != nil {
		return cert, nil
	}
	return nil, errors.New(c.empty)
}

func (c *current) Status() Status {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.status
}
