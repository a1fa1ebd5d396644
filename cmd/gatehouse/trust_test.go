package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/trust"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// TestTrustCommand trusts a real local CA, made by the engine's own
// certificate source, in an empty home (no browsers) and a temporary
// system root, then removes it.
func TestTrustCommand(t *testing.T) {
	if _, err := exec.LookPath("update-ca-certificates"); err != nil {
		if _, err := os.Stat("/usr/sbin/update-ca-certificates"); err != nil {
			t.Skip("update-ca-certificates is not installed")
		}
	}
	root := t.TempDir()
	for _, d := range []string{"usr/local/share/ca-certificates", "usr/share/ca-certificates", "etc/ssl/certs", "etc/ca-certificates/update.d"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	store := &trust.Store{Root: root, Home: t.TempDir(), Elevate: []string{}}

	var out, errOut bytes.Buffer
	if code := runTrust([]string{"--config", path}, false, store, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "no local CA") {
		t.Fatalf("trust before any CA: %d %q", code, errOut.String())
	}

	// The engine's local CA, as the first start makes it.
	if err := config.Save(path, config.Config{Hostname: "gatehouse.localhost", Upstream: config.UpstreamDemo,
		TLS: config.TLSSelfSigned, StateDir: filepath.Join(dir, "state"), HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off}); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "state", certs.LocalCACertFile)
	startAndStop(t, path)
	out.Reset()
	errOut.Reset()
	if code := runTrust([]string{"--config", path}, false, store, &out, &errOut); code != 0 {
		t.Fatalf("trust: %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"✓ System store: installed", "– Browsers: no Chrome", ca, "SHA-256 fingerprint"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("trust output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := runTrust(nil, true, store, &out, &errOut); code != 0 || !strings.Contains(out.String(), "✓ System store: removed") {
		t.Errorf("untrust: %d\n%s", code, out.String())
	}
}

// startAndStop starts the engine with the config file once, which creates
// the local CA, and stops it.
func startAndStop(t *testing.T, path string) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := proxyengine.New(cfg, proxyengine.Options{Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
