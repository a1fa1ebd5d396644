package ui

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"fyne.io/fyne/v2/test"
	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/trust"
)

// TestTrustPanelRunsOneTrustAtATime: while a Trust waits (as on the
// password dialog), showing the panel again (leaving the step and coming
// back) keeps its button disabled, so a second Trust cannot start; the
// button comes back with the result.
func TestTrustPanelRunsOneTrustAtATime(t *testing.T) {
	dir := t.TempDir()
	if err := certs.NewLocalCA("gatehouse.localhost", dir, testutil.Logger(t)).Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, certs.LocalCACertFile)
	release := make(chan struct{})
	var runs atomic.Int32
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/local/share/ca-certificates"), 0o755); err != nil {
		t.Fatal(err)
	}
	store := &trust.Store{Root: root, Home: t.TempDir(), Elevate: []string{},
		LookPath: func(name string) (string, error) { return "/usr/sbin/" + name, nil },
		Run: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			runs.Add(1)
			<-release
			return nil, nil
		}}
	var p *trustPanel
	onUI(func() {
		p = newTrustPanel(test.NewTempWindow(t, nil), store)
		p.show(caFile)
		if p.button.Disabled() {
			t.Fatal("the button is disabled with a CA file to trust")
		}
		test.Tap(p.button)
	})
	testutil.Eventually(t, "the Trust to start", func() bool { return runs.Load() > 0 })
	onUI(func() {
		p.show(caFile)
		if !p.button.Disabled() {
			t.Error("showing the panel again enabled the button while a Trust is running")
		}
	})
	close(release)
	eventually(t, "the result and the button back", func() bool { return !p.button.Disabled() && p.result.Text != "Trusting…" })
}
