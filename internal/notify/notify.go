// Package notify tells subscribers that something changed, without ever
// blocking the one who tells: each subscriber holds at most one pending
// notification, so a slow reader misses nothing but intermediate ones.
// The engine and the supervisor announce status changes with it.
package notify

import "sync"

// A Fanout is a set of subscribers. The zero value is ready to use.
type Fanout struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Subscribe returns a channel that receives a value after each Notify,
// until cancel is called.
func (f *Fanout) Subscribe() (updates <-chan struct{}, cancel func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[chan struct{}]struct{}{}
	}
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
		})
	}
}

// Notify tells every subscriber, leaving a value only where none is
// pending.
func (f *Fanout) Notify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default: // one is pending already
		}
	}
}
