// Package supervisor runs Gatehouse's proxy from its config file as a
// service does: it starts the engine, applies edits (validated, saved
// atomically, then applied live), re-reads the file on reload, and pauses
// and resumes serving while the process stays. `gatehouse serve` runs one
// and serves it on the control socket; the desktop app's try-out mode runs
// one in its own process. Both dashboards read it through the same calls.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/notify"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// Options are what a Supervisor reports to. The zero value logs to
// slog.Default().
type Options struct {
	// Logger receives the engine's logs. Default: slog.Default().
	Logger *slog.Logger
	// Progress, if set, is called with each step of a start.
	Progress func(progress.Event)
	// Overrides, if set, changes the settings Reload reads from the file
	// and those Apply is given before they serve, as `gatehouse serve`'s
	// flags override the file at every start. Apply saves what it was
	// given, without them.
	Overrides func(*config.Config)
}

// A Supervisor runs one proxy from a config file. Its methods are safe
// for concurrent use; a change of state (start, pause, apply) is made one
// at a time.
type Supervisor struct {
	path string
	opts Options

	change sync.Mutex // held by Start, Apply, Reload, Pause, Resume, Shutdown

	mu     sync.Mutex
	engine *proxyengine.Engine // nil while paused or stopped
	cfg    config.Config       // as saved (Upstream "demo" stays "demo")
	paused bool
	subs   notify.Fanout
	errs   chan error
	unsub  func() // ends the relay of the current engine's notifications
}

// New prepares a supervisor for cfg, which is saved at path when edits are
// applied. Nothing runs until Start.
func New(cfg config.Config, path string, opts Options) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Supervisor{path: path, opts: opts, cfg: cfg, errs: make(chan error, 1)}
}

// Start starts the proxy. It fails as the engine's Start does.
func (s *Supervisor) Start(ctx context.Context) error {
	s.change.Lock()
	defer s.change.Unlock()
	return s.startLocked(ctx, s.Config())
}

func (s *Supervisor) startLocked(ctx context.Context, cfg config.Config) error {
	e, err := proxyengine.New(cfg, proxyengine.Options{Logger: s.opts.Logger, Progress: s.opts.Progress})
	if err != nil {
		return err
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	updates, cancel := e.Subscribe()
	done := make(chan struct{})
	go s.relay(e, updates, done)
	s.mu.Lock()
	s.engine, s.paused = e, false
	s.unsub = func() { cancel(); close(done) }
	s.mu.Unlock()
	s.notify()
	return nil
}

// relay passes e's notifications and a listener failure on until done.
func (s *Supervisor) relay(e *proxyengine.Engine, updates <-chan struct{}, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case _, ok := <-updates:
			if !ok {
				return
			}
			s.notify()
		case err := <-e.Err():
			select {
			case s.errs <- err:
			default:
			}
			return
		}
	}
}

// Err delivers an error when a listener of the running proxy fails.
func (s *Supervisor) Err() <-chan error { return s.errs }

// Config is the configuration served, or to be served on resume, as it is
// saved.
func (s *Supervisor) Config() config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Snapshot is the proxy's status listing the connections and WebSockets
// v chooses. While paused it says so, with the configuration's name and
// address.
func (s *Supervisor) Snapshot(v proxyengine.View) proxyengine.Status {
	s.mu.Lock()
	e, paused, cfg := s.engine, s.paused, s.cfg
	s.mu.Unlock()
	if e != nil {
		return e.Snapshot(v)
	}
	st := proxyengine.Status{State: proxyengine.StateStopped, Hostname: cfg.Hostname}
	if paused {
		st.State = proxyengine.StatePaused
	}
	return st
}

// Subscribe returns a channel that receives a value when the status has
// changed (at most four times a second while serving), across pauses and
// resumes, until cancel is called.
func (s *Supervisor) Subscribe() (updates <-chan struct{}, cancel func()) { return s.subs.Subscribe() }

func (s *Supervisor) notify() { s.subs.Notify() }

// Apply serves cfg from now on and saves it: validated first (a
// config.ValidationErrors names each bad field), then applied live (see
// proxyengine.Engine.Apply; while paused it is only checked and kept for
// the resume), then written to the config file atomically. If it cannot
// be applied, nothing changes: the running proxy and the file keep the old
// settings. Options.Overrides win over cfg in what serves, so a client of
// the control socket cannot move, say, the state directory the service
// was started with.
func (s *Supervisor) Apply(ctx context.Context, cfg config.Config) error {
	s.change.Lock()
	defer s.change.Unlock()
	if err := s.applyLocked(ctx, s.overridden(cfg)); err != nil {
		return err
	}
	if err := config.Save(s.path, cfg); err != nil {
		return fmt.Errorf("the new settings are serving but could not be saved, so a restart would lose them: %w", err)
	}
	return nil
}

// Reload reads the config file again (with Options.Overrides) and applies
// it as Apply does, without writing it back.
func (s *Supervisor) Reload(ctx context.Context) error {
	cfg, err := config.Load(s.path)
	if err != nil {
		return err
	}
	s.change.Lock()
	defer s.change.Unlock()
	return s.applyLocked(ctx, s.overridden(cfg))
}

// overridden is cfg with Options.Overrides over it.
func (s *Supervisor) overridden(cfg config.Config) config.Config {
	if s.opts.Overrides != nil {
		s.opts.Overrides(&cfg)
	}
	return cfg
}

func (s *Supervisor) applyLocked(ctx context.Context, cfg config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	e := s.engine
	s.mu.Unlock()
	if e != nil {
		if err := e.Apply(ctx, cfg); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	s.notify()
	return nil
}

// Pause stops serving: the listeners close, in-flight requests finish
// (until ctx is done) and WebSockets close with 1001. The process, and
// with it the control socket, stays.
func (s *Supervisor) Pause(ctx context.Context) error {
	s.change.Lock()
	defer s.change.Unlock()
	s.mu.Lock()
	if s.engine == nil {
		s.mu.Unlock()
		return errors.New("the proxy is not running")
	}
	s.mu.Unlock()
	err := s.stopLocked(ctx)
	s.mu.Lock()
	s.paused = true
	s.mu.Unlock()
	s.notify()
	return err
}

// Resume starts serving again with the current configuration.
func (s *Supervisor) Resume(ctx context.Context) error {
	s.change.Lock()
	defer s.change.Unlock()
	s.mu.Lock()
	running := s.engine != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	return s.startLocked(ctx, s.Config())
}

// Shutdown stops the proxy for good, as Pause does.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.change.Lock()
	defer s.change.Unlock()
	return s.stopLocked(ctx)
}

func (s *Supervisor) stopLocked(ctx context.Context) error {
	s.mu.Lock()
	e, unsub := s.engine, s.unsub
	s.engine, s.unsub = nil, nil
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	unsub()
	return e.Shutdown(ctx)
}
