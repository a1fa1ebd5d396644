package ui

import (
	"context"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/control"
	"github.com/gatehouse-proxy/gatehouse/internal/supervisor"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// dashboardRows is how many connections and WebSockets the dashboard asks
// for: what its table shows, so a crowd does not cost a snapshot per
// visitor.
const dashboardRows = 50

// A backend is the proxy the dashboard watches and controls: the Gatehouse
// service over its control socket, or the proxy running inside this window
// (try-out mode). The dashboard, Edit setup and the tray use only these
// calls, so they work the same against both. The exported method set is
// control.Client's.
type backend interface {
	// Status is a snapshot listing the connections and WebSockets v
	// chooses.
	Status(ctx context.Context, v proxyengine.View) (proxyengine.Status, error)
	// Updates streams the totals (a status without its lists) as they
	// change, until ctx is done or the proxy's process goes away; then the
	// channel closes.
	Updates(ctx context.Context) (<-chan proxyengine.Status, error)
	// Config is the configuration served, as saved.
	Config(ctx context.Context) (config.Config, error)
	// Apply validates cfg (a config.ValidationErrors names each refused
	// field), serves it live and saves it; if it cannot, nothing changes.
	Apply(ctx context.Context, cfg config.Config) error
	// Pause stops serving; Resume serves again.
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error

	// describe says, on the dashboard, which proxy it watches.
	describe() string
}

// serviceBackend is the Gatehouse service, through its control socket.
type serviceBackend struct{ *control.Client }

func (b serviceBackend) describe() string {
	return "Watching the Gatehouse service (" + b.Socket + ")"
}

// localBackend is the proxy running inside this window: try-out mode. It
// stops when the app quits.
type localBackend struct{ sup *supervisor.Supervisor }

func (b localBackend) describe() string { return "Running inside this window" }

func (b localBackend) Status(_ context.Context, v proxyengine.View) (proxyengine.Status, error) {
	return b.sup.Snapshot(v), nil
}

func (b localBackend) Updates(ctx context.Context) (<-chan proxyengine.Status, error) {
	return updatesFrom(ctx, b.sup.Subscribe, func() proxyengine.Status { return control.Totals(b.sup.Snapshot(proxyengine.View{})) }), nil
}

// updatesFrom sends a status from snapshot after each change subscribe
// announces, until ctx is done: an in-process proxy's updates, as the
// service's control socket streams them.
func updatesFrom(ctx context.Context, subscribe func() (<-chan struct{}, func()), snapshot func() proxyengine.Status) <-chan proxyengine.Status {
	changed, cancel := subscribe()
	out := make(chan proxyengine.Status)
	go func() {
		defer close(out)
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			select {
			case out <- snapshot():
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (b localBackend) Config(context.Context) (config.Config, error) { return b.sup.Config(), nil }

func (b localBackend) Apply(ctx context.Context, cfg config.Config) error {
	return b.sup.Apply(ctx, cfg)
}

func (b localBackend) Pause(ctx context.Context) error  { return b.sup.Pause(ctx) }
func (b localBackend) Resume(ctx context.Context) error { return b.sup.Resume(ctx) }
