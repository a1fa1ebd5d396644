package proxyengine

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// filesPollInterval is how often the certificate files are checked for
// changes; certbot and similar tools replace them in place or by rename.
const filesPollInterval = 5 * time.Second

// fileSource serves a PEM chain and key from disk and reloads them when
// either file changes. A broken replacement keeps the old pair serving and
// is reported in Status.
type fileSource struct {
	certFile, keyFile string
	logger            *slog.Logger
	pollInterval      time.Duration // filesPollInterval when zero

	mu      sync.RWMutex
	cert    *tls.Certificate
	stamp   fileStamp
	lastErr string
}

// fileStamp identifies a version of the two files by their contents, so a
// replacement is seen whatever the file system's timestamp resolution.
type fileStamp [sha256.Size]byte

func (s *fileSource) stampFiles() (fileStamp, error) {
	h := sha256.New()
	for _, name := range []string{s.certFile, s.keyFile} {
		data, err := os.ReadFile(name)
		if err != nil {
			return fileStamp{}, err
		}
		h.Write(data)
	}
	return fileStamp(h.Sum(nil)), nil
}

func (s *fileSource) Start(ctx context.Context) error {
	if err := s.reload(); err != nil {
		return err
	}
	interval := s.pollInterval
	if interval == 0 {
		interval = filesPollInterval
	}
	go every(ctx, interval, func(time.Time) {
		before := s.Status().LastError
		// Log a broken pair once, not at every poll while it stays broken.
		if err := s.reload(); err != nil && err.Error() != before {
			s.logger.Error("reloading the certificate files; still serving the previous certificate", "err", err)
		}
	})
	return nil
}

// reload loads the pair if the files changed since the last load.
func (s *fileSource) reload() error {
	stamp, err := s.stampFiles()
	if err == nil {
		s.mu.RLock()
		same := s.cert != nil && stamp == s.stamp
		s.mu.RUnlock()
		if same {
			return nil
		}
		var pair tls.Certificate
		if pair, err = tls.LoadX509KeyPair(s.certFile, s.keyFile); err == nil {
			s.mu.Lock()
			first := s.cert == nil
			s.cert, s.stamp, s.lastErr = &pair, stamp, ""
			s.mu.Unlock()
			if !first {
				s.logger.Info("reloaded the certificate files", "cert", s.certFile, "not_after", pair.Leaf.NotAfter)
			}
			return nil
		}
	}
	err = fmt.Errorf("loading %s and %s: %w", s.certFile, s.keyFile, err)
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
	return err
}

func (s *fileSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cert == nil {
		return nil, errors.New("certificate files not loaded")
	}
	return s.cert, nil
}

func (s *fileSource) Status() CertStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := CertStatus{Source: TLSFiles}
	if s.cert != nil {
		st = describeLeaf(TLSFiles, s.cert.Leaf)
	}
	st.LastError = s.lastErr
	return st
}
