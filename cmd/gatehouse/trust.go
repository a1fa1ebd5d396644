package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/trust"
)

const trustSummary = `Trusts Gatehouse's local certificate authority on this computer, as
` + "`caddy trust`" + ` does for Caddy's: the system store (update-ca-certificates, through
pkexec when not root, which asks for a password) and the NSS databases of
Chrome, Chromium and Firefox (with certutil, from Debian's libnss3-tools).
` + "`gatehouse untrust`" + ` removes it again. Phones and other computers need the
file itself: the command prints its path and fingerprint.

Exit status: 0 when every place that exists was done, 1 when one failed, 2
for a usage error or no local CA yet.`

// runTrust is `gatehouse trust` (untrust false) and `gatehouse untrust`.
func runTrust(args []string, untrust bool, store *trust.Store, stdout, stderr io.Writer) int {
	name := "trust"
	if untrust {
		name = "untrust"
	}
	fset := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	defPath, _ := config.DefaultPath()
	configPath := fset.String("config", defPath, "config file whose state directory holds the local CA")
	stateDir := fset.String("state-dir", "", "the state directory itself (default: the config file's)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: gatehouse %s [flags]\n\n%s\n\nFlags:\n", name, trustSummary)
			fset.SetOutput(stdout)
			fset.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "gatehouse %s: %v (see gatehouse %s -h)\n", name, err, name)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var results []trust.Result
	if untrust {
		if store.NeedsPassword() {
			fmt.Fprintln(stdout, "Removing the local CA from the system store: the system asks for your password.")
		}
		results = store.Untrust(ctx)
	} else {
		certFile := localCAFile(*configPath, *stateDir)
		data, err := os.ReadFile(certFile)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "gatehouse trust: there is no local CA at %s yet: start Gatehouse once with the local certificate authority, which creates it\n", certFile)
			return 2
		}
		fp, err := trust.Fingerprint(data)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse trust: %s: %v\n", certFile, err)
			return 2
		}
		if store.NeedsPassword() {
			fmt.Fprintln(stdout, "Adding the local CA to the system store: the system asks for your password.")
		}
		results = store.Trust(ctx, data) // the certificate whose fingerprint is shown

		defer fmt.Fprintf(stdout, "\nOn phones and other computers, import %s\n(SHA-256 fingerprint %s: compare it on the device before trusting).\n", certFile, fp)
	}
	fmt.Fprintln(stdout, trust.Summary(results))
	for _, r := range results {
		if r.Outcome == trust.Failed {
			return 1
		}
	}
	return 0
}

// localCAFile is where the local CA's certificate is: in the state
// directory given, else the config file's, else beside the config file, as
// the desktop app puts it.
func localCAFile(configPath, stateDir string) string {
	if stateDir == "" {
		if cfg, err := config.Load(configPath); err == nil && cfg.StateDir != "" {
			stateDir = cfg.StateDir
		} else {
			stateDir = filepath.Join(filepath.Dir(configPath), "state")
		}
	}
	return filepath.Join(stateDir, certs.LocalCACertFile)
}
