package supervisor

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// started runs a supervisor for a loopback setup saved in a temporary
// directory, with overrides applied on reload as serve's flags are.
func started(t *testing.T, upstream string, overrides func(*config.Config)) (*Supervisor, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Config{Hostname: "gatehouse.test", Upstream: upstream, TLS: config.TLSSelfSigned,
		HTTPAddr: config.Off, HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off, StateDir: filepath.Join(dir, "state")}
	path := filepath.Join(dir, "config.json")
	if err := config.Save(path, cfg); err != nil {
		t.Fatal(err)
	}
	s := New(cfg, path, Options{Logger: testutil.Logger(t), Overrides: overrides})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, path
}

// fetch gets / from the supervisor's proxy, or fails the test.
func fetch(t *testing.T, s *Supervisor) string {
	t.Helper()
	body, err := testutil.GetVia(s.Snapshot(proxyengine.View{}).HTTPSAddr, "https://gatehouse.test/")
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestReloadKeepsTheOverrides: a reload reads the file with the command
// line's overrides over it, so a flag given to serve still wins.
func TestReloadKeepsTheOverrides(t *testing.T) {
	a, b, c := testutil.NamedUpstream(t, "A", false), testutil.NamedUpstream(t, "B", false), testutil.NamedUpstream(t, "C", false)
	s, path := started(t, a.URL, func(cfg *config.Config) { cfg.Upstream = c.URL })
	cfg, _ := config.Load(path)
	cfg.Upstream = b.URL
	config.Save(path, cfg)
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := fetch(t, s); got != "C" {
		t.Errorf("after reload the proxy answers %q, want C (the override over the file's B)", got)
	}
}

// TestApplyKeepsTheOverrides: applied settings serve with the command
// line's overrides over them, and are saved as given.
func TestApplyKeepsTheOverrides(t *testing.T) {
	a, b, c := testutil.NamedUpstream(t, "A", false), testutil.NamedUpstream(t, "B", false), testutil.NamedUpstream(t, "C", false)
	s, path := started(t, a.URL, func(cfg *config.Config) { cfg.Upstream = c.URL })
	cfg, _ := config.Load(path)
	cfg.Upstream = b.URL
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := fetch(t, s); got != "C" {
		t.Errorf("after Apply the proxy answers %q, want C (the override over the applied B)", got)
	}
	if saved, _ := config.Load(path); saved.Upstream != b.URL {
		t.Errorf("saved upstream %q, want the applied %q", saved.Upstream, b.URL)
	}
}

// TestApplySavesOnlyWhatServes: applied settings are saved; refused ones
// neither serve nor reach the file; while paused an edit is kept for the
// resume.
func TestApplySavesOnlyWhatServes(t *testing.T) {
	a, b := testutil.NamedUpstream(t, "A", false), testutil.NamedUpstream(t, "B", false)
	s, path := started(t, a.URL, nil)
	updates, cancel := s.Subscribe()
	defer cancel()

	bad := s.Config()
	bad.Upstream = "no scheme"
	if err := s.Apply(t.Context(), bad); config.FieldErrors(err).For(config.FieldUpstream) == nil {
		t.Fatalf("Apply(bad) = %v, want the upstream's field error", err)
	}
	if saved, _ := config.Load(path); saved.Upstream != a.URL {
		t.Errorf("a refused config was saved: %q", saved.Upstream)
	}

	if err := s.Pause(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := s.Snapshot(proxyengine.View{}); st.State != proxyengine.StatePaused {
		t.Errorf("state %q while paused", st.State)
	}
	next := s.Config()
	next.Upstream = b.URL
	if err := s.Apply(t.Context(), next); err != nil {
		t.Fatalf("Apply while paused: %v", err)
	}
	if saved, _ := config.Load(path); saved.Upstream != b.URL {
		t.Errorf("the edit made while paused was not saved: %q", saved.Upstream)
	}
	if err := s.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := fetch(t, s); got != "B" {
		t.Errorf("after resume the proxy answers %q, want B", got)
	}
	select {
	case <-updates:
	case <-time.After(10 * time.Second):
		t.Error("a subscriber heard nothing across pause, apply and resume")
	}
}
