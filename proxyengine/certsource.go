package proxyengine

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"
)

// A CertSource supplies the certificate served for the public hostname.
// Sources may also implement challengeSolver to take part in ACME.
type CertSource interface {
	// Start loads, creates or obtains the certificate and returns once one can
	// be served. It keeps the certificate fresh in the background (reloading
	// or renewing) until ctx is done.
	Start(ctx context.Context) error

	// GetCertificate is used as tls.Config.GetCertificate.
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)

	// Status describes the certificate now being served.
	Status() CertStatus
}

// challengeSolver is implemented by sources that answer ACME challenges:
// HTTP-01 on the plain listener, TLS-ALPN-01 through extra ALPN protocols.
type challengeSolver interface {
	HTTPHandler(fallback http.Handler) http.Handler
	ALPNProtos() []string
}

// CertStatus describes a certificate for the status API and the dashboard.
type CertStatus struct {
	Source      string    `json:"source"` // "acme", "files" or "self-signed"
	Issuer      string    `json:"issuer,omitempty"`
	Names       []string  `json:"names,omitempty"`
	NotBefore   time.Time `json:"not_before,omitzero"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	NextRenewal time.Time `json:"next_renewal,omitzero"`
	Fingerprint string    `json:"fingerprint,omitempty"` // SHA-256 of the leaf, colon hex
	LastError   string    `json:"last_error,omitempty"`
}

// describeLeaf fills the certificate fields of a CertStatus from a leaf.
func describeLeaf(source string, leaf *x509.Certificate) CertStatus {
	sum := sha256.Sum256(leaf.Raw)
	issuer := leaf.Issuer.CommonName
	if len(leaf.Issuer.Organization) > 0 {
		issuer = fmt.Sprintf("%s (%s)", leaf.Issuer.CommonName, leaf.Issuer.Organization[0])
	}
	return CertStatus{
		Source:      source,
		Issuer:      issuer,
		Names:       leaf.DNSNames,
		NotBefore:   leaf.NotBefore,
		NotAfter:    leaf.NotAfter,
		Fingerprint: FormatFingerprint(sum[:]),
	}
}

// newCertSource builds the source named by c.TLS.
func newCertSource(c Config) (CertSource, error) {
	switch c.TLS {
	case TLSSelfSigned:
		return &selfSignedSource{hostname: c.Hostname, dir: c.StateDir, logger: c.Logger}, nil
	case TLSFiles:
		return &fileSource{certFile: c.CertFile, keyFile: c.KeyFile, logger: c.Logger}, nil
	case TLSACME:
		return newACMESource(c)
	}
	return nil, fmt.Errorf("certificate source %q is not available", c.TLS)
}

// every calls f at each tick of interval until ctx is done; certificate
// sources use it to keep their certificate fresh.
func every(ctx context.Context, interval time.Duration, f func(now time.Time)) {
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
