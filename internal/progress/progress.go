// Package progress names the steps of starting Gatehouse's engine and
// carries them, in plain words, to whoever shows them: the desktop app's
// progress screen, `gatehouse serve`'s log. It is a leaf: the engine and
// the certificate sources both report through it.
package progress

import (
	"fmt"
	"log/slog"
)

// Stage names a step of starting the engine.
type Stage string

// Stages of a start, in order. An ACME certificate source adds its own
// after Certificate.
const (
	Listen      Stage = "listen"
	Certificate Stage = "certificate"

	ACMERehearsal  Stage = "acme-rehearsal"  // a staging certificate first, to check validation
	ACMEAccount    Stage = "acme-account"    // registering (or finding) the ACME account
	ACMEOrder      Stage = "acme-order"      // ordering a certificate for the hostname
	ACMEChallenge  Stage = "acme-challenge"  // answering a tls-alpn-01 or http-01 challenge
	ACMEValidating Stage = "acme-validating" // waiting for the CA to check the answer
	ACMEIssued     Stage = "acme-issued"     // the CA issued the certificate

	Upstream Stage = "upstream"
	Ready    Stage = "ready"
)

// An Event is one step of starting up, in plain words.
type Event struct {
	Stage   Stage
	Message string
}

// A Reporter logs each step and hands it to Func. The zero value logs to
// slog.Default() and hands nothing on.
type Reporter struct {
	// Logger receives each step at Info level. Default: slog.Default().
	Logger *slog.Logger
	// Func, if set, is called with each step, on the goroutine reporting it.
	Func func(Event)
}

// Report logs one step and passes it on.
func (r Reporter) Report(stage Stage, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.Info(msg, "stage", string(stage))
	if r.Func != nil {
		r.Func(Event{Stage: stage, Message: msg})
	}
}
