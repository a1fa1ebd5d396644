package ui

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// The bridge is the only place where the engine's goroutines reach widgets:
// everything it hands over runs on the Fyne goroutine through fyne.Do, so
// the screens never lock and never touch a widget from elsewhere.

// onFyne runs f on the Fyne goroutine and waits for it. Every hand-over
// below goes through it; tests replace it to serialise these callbacks with
// their own use of widgets, as the test driver runs f on the calling
// goroutine rather than on one UI goroutine.
var onFyne = fyne.DoAndWait

// errServiceGone is what the dashboard says when the stream of updates
// ends without being asked to: the service's process went away.
var errServiceGone = errors.New("the Gatehouse service stopped answering")

// A watch follows a backend for the dashboard (watchBackend).
type watch struct {
	stop func()
	// site is the site whose connections the dashboard lists ("" for
	// every site's); picked is nudged when it changes, for a snapshot now.
	site   atomic.Pointer[string]
	picked chan struct{}
}

// showSite lists only the connections and WebSockets of site ("" for
// every site's) from the next snapshot on, which is taken at once.
func (w *watch) showSite(site string) {
	w.site.Store(&site)
	select {
	case w.picked <- struct{}{}:
	default: // a snapshot is already due
	}
}

// view is what the dashboard lists: its rows, of the site it picked.
func (w *watch) view() proxyengine.View {
	v := proxyengine.View{Rows: dashboardRows}
	if site := w.site.Load(); site != nil {
		v.Site = *site
	}
	return v
}

// watchBackend follows b until stop is called: on the Fyne goroutine it
// calls setup with b's configuration first, then show with a snapshot of
// the rows the dashboard lists, now, on each update b sends, when the
// dashboard picks another site and at least once a second; if b cannot be
// reached or goes away, lost with why, once, and nothing after. Call stop
// on the Fyne goroutine: nothing is called after it returns.
func watchBackend(b backend, setup func(config.Config), show func(proxyengine.Status), lost func(error)) *watch {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w := &watch{picked: make(chan struct{}, 1)}
	go func() {
		deliver := func(f func()) {
			onFyne(func() {
				select {
				case <-done:
				default:
					f()
				}
			})
		}
		fail := func(err error) {
			if ctx.Err() == nil {
				deliver(func() { lost(err) })
			}
		}
		cfg, err := b.Config(ctx)
		if err != nil {
			fail(err)
			return
		}
		deliver(func() { setup(cfg) })
		updates, err := b.Updates(ctx)
		if err != nil {
			fail(err)
			return
		}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			st, err := b.Status(ctx, w.view())
			if err != nil {
				fail(err)
				return
			}
			deliver(func() { show(st) })
			select {
			case <-ctx.Done():
				return
			case _, ok := <-updates:
				if !ok {
					fail(errServiceGone)
					return
				}
			case <-w.picked:
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			close(done)
		})
	}
	return w
}

// progressTo returns a Config.Progress callback that hands each start-up
// event to show on the Fyne goroutine, in order.
func progressTo(show func(progress.Event)) func(progress.Event) {
	return func(ev progress.Event) {
		onFyne(func() { show(ev) })
	}
}

// inBackground runs work on its own goroutine (a pre-flight check, starting
// or stopping the engine) and hands its result to done on the Fyne goroutine.
func inBackground[T any](work func() T, done func(T)) {
	go func() {
		result := work()
		onFyne(func() { done(result) })
	}()
}

// A laterCheck runs a check in the background once its input has been still
// for delay (the DNS check while a name is typed), and shows only the result
// for the newest input. Its methods run on the Fyne goroutine.
type laterCheck[T any] struct {
	delay time.Duration
	show  func(T)
	seq   int
	shown int // the seq of the result on screen
	timer *time.Timer
}

// pending reports whether the newest check's result is still to come.
func (c *laterCheck[T]) pending() bool { return c.shown != c.seq }

// run schedules work, replacing any check not yet shown.
func (c *laterCheck[T]) run(work func() T) {
	c.seq++
	seq := c.seq
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(c.delay, func() {
		result := work()
		onFyne(func() {
			if seq == c.seq {
				c.shown = seq
				c.show(result)
			}
		})
	})
}

// cancel drops the scheduled or running check.
func (c *laterCheck[T]) cancel() {
	c.seq++
	if c.timer != nil {
		c.timer.Stop()
	}
}
