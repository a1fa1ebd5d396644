package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
)

// Files of the self-signed source, in the state dir.
const (
	LocalCACertFile = "local-ca.crt" // the CA certificate a user installs to trust Gatehouse
	localCAKeyFile  = "local-ca.key"
	// Each name's leaf and key are in local-leaf-<name>.pem (leafPath),
	// reused across restarts. (A single-site Gatehouse kept its one leaf
	// in local-leaf.pem; it is issued again, once, from the same CA.)
)

const (
	localCALifetime   = 10 * 365 * 24 * time.Hour
	localLeafLifetime = 365 * 24 * time.Hour
	// localLeafRenewBefore is how close to expiry a leaf is replaced.
	localLeafRenewBefore = 30 * 24 * time.Hour
	localRenewCheck      = 12 * time.Hour
)

// A LocalCA is the source for TLS "self-signed": it issues the leaf from a
// local CA kept in the state dir.
// The CA is created once, so a user who trusted local-ca.crt keeps trusting
// every leaf it issues.
type LocalCA struct {
	hostname string
	dir      string
	logger   *slog.Logger
	current
}

// NewLocalCA serves a leaf for hostname from a local CA, both kept in dir.
func NewLocalCA(hostname, dir string, logger *slog.Logger) *LocalCA {
	return &LocalCA{hostname: hostname, dir: dir, logger: logger,
		current: current{status: Status{Source: config.TLSSelfSigned}, empty: "self-signed certificate not ready"}}
}

func (s *LocalCA) Start(ctx context.Context) error {
	if err := s.refresh(time.Now()); err != nil {
		return err
	}
	go Every(ctx, localRenewCheck, func(now time.Time) {
		if err := s.refresh(now); err != nil {
			s.logger.Error("renewing the self-signed certificate", "err", err)
			s.failed(err)
		}
	})
	return nil
}

// refresh loads the CA and the leaf, creating either when missing and
// replacing the leaf when it is near expiry or for another name.
func (s *LocalCA) refresh(now time.Time) error {
	if cert := s.serving(); cert != nil && cert.Leaf.NotAfter.Sub(now) > localLeafRenewBefore {
		return nil
	}
	if err := privatefile.EnsureDir(s.dir); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	ca, caKey, err := s.loadOrCreateCA(now)
	if err != nil {
		return err
	}
	leaf, err := s.loadLeaf(ca, now)
	if err != nil {
		if leaf, err = s.issueLeaf(ca, caKey, now); err != nil {
			return err
		}
		s.logger.Info("issued a certificate from the local CA", "host", s.hostname, "not_after", leaf.Leaf.NotAfter)
	}
	st := DescribeLeaf(config.TLSSelfSigned, leaf.Leaf)
	st.NextRenewal = leaf.Leaf.NotAfter.Add(-localLeafRenewBefore)
	s.set(leaf, st)
	return nil
}

func (s *LocalCA) loadOrCreateCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(s.dir, LocalCACertFile), filepath.Join(s.dir, localCAKeyFile)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if ok && pair.Leaf.IsCA && now.Before(pair.Leaf.NotAfter) {
			return pair.Leaf, key, nil
		}
		return nil, nil, fmt.Errorf("%s is not a usable CA (expired or of another kind); move it and %s away to create a new one", certPath, keyPath)
	}
	if _, statErr := os.Stat(certPath); !errors.Is(statErr, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("loading the local CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Gatehouse local CA", Organization: []string{"Gatehouse"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(localCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	// Key first: a CA certificate without its key would be unusable.
	if err := privatefile.Write(keyPath, encodeKey(key)); err != nil {
		return nil, nil, fmt.Errorf("saving the local CA key: %w", err)
	}
	if err := privatefile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return nil, nil, fmt.Errorf("saving the local CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	s.logger.Info("created a local CA; install it to trust Gatehouse", "file", certPath)
	return ca, key, err
}

// leafPath is the file of the leaf for s's hostname, with its key: one
// per name, as each site has its own leaf from the one CA.
func (s *LocalCA) leafPath() string {
	return filepath.Join(s.dir, "local-leaf-"+strings.TrimSuffix(strings.ToLower(s.hostname), ".")+".pem")
}

// loadLeaf returns the saved leaf if it is for this host, issued by ca and
// not near expiry.
func (s *LocalCA) loadLeaf(ca *x509.Certificate, now time.Time) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(s.leafPath(), s.leafPath())
	if err != nil {
		return nil, err
	}
	if err := pair.Leaf.VerifyHostname(s.hostname); err != nil {
		return nil, err
	}
	if err := pair.Leaf.CheckSignatureFrom(ca); err != nil {
		return nil, err
	}
	if pair.Leaf.NotAfter.Sub(now) <= localLeafRenewBefore {
		return nil, errors.New("near expiry")
	}
	pair.Certificate = append(pair.Certificate, ca.Raw)
	return &pair, nil
}

func (s *LocalCA) issueLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: s.hostname},
		DNSNames:     []string{s.hostname},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(localLeafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), encodeKey(key)...)
	if err := privatefile.Write(s.leafPath(), data); err != nil {
		return nil, fmt.Errorf("saving the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func encodeKey(key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err) // a freshly generated P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}
