package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// startTestEngine runs a real engine on loopback in front of a plain HTTP
// upstream, with a self-signed certificate, and stops it when the test ends.
func startTestEngine(t *testing.T, cfg config.Config) *proxyengine.Engine {
	t.Helper()
	if cfg.Upstream == "" {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("ok"))
		}))
		t.Cleanup(up.Close)
		cfg.Upstream = up.URL
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "gatehouse.test"
	}
	cfg.TLS = config.TLSSelfSigned
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.HTTPSAddr = "127.0.0.1:0"
	cfg.StatusAddr = config.Off
	cfg.StateDir = t.TempDir()
	e, err := proxyengine.New(cfg, proxyengine.Options{Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	return e
}

func TestWatchBackendDeliversUntilStopped(t *testing.T) {
	test.NewTempApp(t)
	e := startTestEngine(t, config.Config{})

	var calls atomic.Int32
	var state atomic.Value
	var w *watch
	fyne.DoAndWait(func() {
		w = watchBackend(engineBackend{e}, func(config.Config) {}, func(st proxyengine.Status) {
			calls.Add(1)
			state.Store(st.State)
		}, func(err error) { t.Errorf("lost the engine: %v", err) })
	})
	// The engine ticks at least once a second: wait for a few deliveries.
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if calls.Load() < 2 {
		t.Fatalf("show called %d times in 10s, want at least 2", calls.Load())
	}
	if got := state.Load(); got != proxyengine.StateRunning {
		t.Errorf("state shown = %v, want %q", got, proxyengine.StateRunning)
	}

	fyne.DoAndWait(w.stop)
	after := calls.Load()
	time.Sleep(2500 * time.Millisecond) // more than two engine ticks
	if n := calls.Load(); n != after {
		t.Errorf("show called %d more times after stop", n-after)
	}
}

func TestProgressToDeliversInOrder(t *testing.T) {
	test.NewTempApp(t)
	var got []progress.Stage
	report := progressTo(func(ev progress.Event) { got = append(got, ev.Stage) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, s := range []progress.Stage{progress.Listen, progress.Certificate, progress.Ready} {
			report(progress.Event{Stage: s})
		}
	}()
	<-done
	want := []progress.Stage{progress.Listen, progress.Certificate, progress.Ready}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
