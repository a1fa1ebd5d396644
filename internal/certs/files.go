package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// filesPollInterval is how often the certificate files are checked for
// changes; certbot and similar tools replace them in place or by rename.
const filesPollInterval = 5 * time.Second

// Files is the source for TLS "files": it serves a PEM chain and key from
// disk and reloads them when either file changes. A broken replacement
// keeps the old pair serving and is reported in Status.
type Files struct {
	certFile, keyFile string
	logger            *slog.Logger
	pollInterval      time.Duration // filesPollInterval when zero
	stamp             fileStamp     // of the pair served; used by Start's goroutine only
	current
}

// NewFiles serves the PEM chain in certFile with its key in keyFile.
func NewFiles(certFile, keyFile string, logger *slog.Logger) *Files {
	return &Files{certFile: certFile, keyFile: keyFile, logger: logger,
		current: current{status: Status{Source: config.TLSFiles}, empty: "certificate files not loaded"}}
}

// fileStamp identifies a version of the two files by their contents, so a
// replacement is seen whatever the file system's timestamp resolution.
type fileStamp [sha256.Size]byte

func (s *Files) stampFiles() (fileStamp, error) {
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

func (s *Files) Start(ctx context.Context) error {
	if err := s.reload(); err != nil {
		return err
	}
	interval := s.pollInterval
	if interval == 0 {
		interval = filesPollInterval
	}
	go Every(ctx, interval, func(time.Time) {
		before := s.Status().LastError
		// Log a broken pair once, not at every poll while it stays broken.
		if err := s.reload(); err != nil && err.Error() != before {
			s.logger.Error("reloading the certificate files; still serving the previous certificate", "err", err)
		}
	})
	return nil
}

// reload loads the pair if the files changed since the last load.
func (s *Files) reload() error {
	stamp, err := s.stampFiles()
	if err == nil {
		served := s.serving()
		if served != nil && stamp == s.stamp {
			return nil
		}
		var pair tls.Certificate
		if pair, err = tls.LoadX509KeyPair(s.certFile, s.keyFile); err == nil {
			s.stamp = stamp
			s.set(&pair, DescribeLeaf(config.TLSFiles, pair.Leaf))
			if served != nil {
				s.logger.Info("reloaded the certificate files", "cert", s.certFile, "not_after", pair.Leaf.NotAfter)
			}
			return nil
		}
	}
	err = fmt.Errorf("loading %s and %s: %w", s.certFile, s.keyFile, err)
	s.failed(err)
	return err
}
