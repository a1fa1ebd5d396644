package acme

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
)

// The schedule of attempts after failures: one minute after the first,
// doubling with each further failure, never more than a day apart.
const (
	acmeBackoffFirst = time.Minute
	acmeBackoffMax   = 24 * time.Hour
	// acmeAttemptWindow is how long one attempt (account, orders for each
	// challenge type, finalization) may keep starting orders once admitted;
	// autocert bounds a renewal by 10 minutes. acmeAttemptIdle ends it
	// sooner once it falls quiet: within an attempt, requests follow each
	// other within seconds (authorization polls are a second apart).
	acmeAttemptWindow = 10 * time.Minute
	acmeAttemptIdle   = time.Minute
)

// acmeBackoffDelay is the wait after the nth consecutive failure (n >= 1).
func acmeBackoffDelay(n int) time.Duration {
	if n < 1 {
		return 0
	}
	d := acmeBackoffFirst
	for i := 1; i < n && d < acmeBackoffMax; i++ {
		d *= 2
	}
	return min(d, acmeBackoffMax)
}

// acmeBackoffState is the persisted part of the backoff, for one hostname at
// one CA (the file lives in that CA's state directory).
type acmeBackoffState struct {
	Hostname    string    `json:"hostname"`
	Failures    int       `json:"failures"`              // consecutive attempts without a certificate
	NextAttempt time.Time `json:"next_attempt,omitzero"` // no attempt begins before this
	LastError   string    `json:"last_error,omitempty"`  // plain-language, for the status API
	LastAttempt time.Time `json:"last_attempt,omitzero"` // when the last attempt began
}

// acmeBackoff admits attempts to talk to the CA. Every attempt is recorded
// as a failure when it begins, and cleared only when a certificate arrives,
// so a crash or hang in the middle of an attempt still counts, and no
// restart can bypass the schedule.
type acmeBackoff struct {
	path     string
	hostname string

	mu           sync.Mutex
	state        acmeBackoffState
	attemptStart time.Time     // when the admitted attempt began; zero if none is open
	lastRequest  time.Time     // the attempt's latest request
	attemptIdle  time.Duration // acmeAttemptIdle; shorter in tests
}

// loadACMEBackoff reads the backoff file, if any. A file for another
// hostname is ignored: a new name starts with a clean schedule.
func loadACMEBackoff(path, hostname string) (*acmeBackoff, error) {
	b := &acmeBackoff{path: path, hostname: hostname, state: acmeBackoffState{Hostname: hostname}, attemptIdle: acmeAttemptIdle}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the ACME backoff state: %w", err)
	}
	var st acmeBackoffState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("the ACME backoff state %s is damaged (%v); delete it to start a fresh schedule", path, err)
	}
	if st.Hostname == hostname {
		b.state = st
	}
	return b, nil
}

// admit reports whether a request that could begin an attempt (the
// directory, a nonce, an account or an order) may be sent now. Outside an
// open attempt it begins a new one if the schedule allows, counting it as a
// failure until succeed is called. When refused, it returns when the next
// attempt is allowed.
func (b *acmeBackoff) admit(now time.Time) (next time.Time, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openLocked(now) {
		b.lastRequest = now
		return time.Time{}, true, nil
	}
	b.attemptStart = time.Time{}
	if now.Before(b.state.NextAttempt) {
		return b.state.NextAttempt, false, nil
	}
	b.state.Failures++
	b.state.LastAttempt = now
	b.state.NextAttempt = now.Add(acmeBackoffDelay(b.state.Failures))
	b.attemptStart, b.lastRequest = now, now
	return time.Time{}, true, b.saveLocked()
}

// openLocked reports whether the admitted attempt is still open at now:
// it began within acmeAttemptWindow and its latest request was within
// attemptIdle.
func (b *acmeBackoff) openLocked(now time.Time) bool {
	return !b.attemptStart.IsZero() && now.Before(b.attemptStart.Add(acmeAttemptWindow)) && now.Before(b.lastRequest.Add(b.attemptIdle))
}

// succeed records that a certificate arrived at now, clearing the
// schedule. The attempt stays open until it falls quiet: autocert's last
// requests (it deactivates the authorizations it no longer needs) follow
// the certificate, and must not begin an attempt that would never end in a
// certificate and so count as a failure.
func (b *acmeBackoff) succeed(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state = acmeBackoffState{Hostname: b.hostname}
	if !b.attemptStart.IsZero() {
		b.lastRequest = now
	}
	return b.saveLocked()
}

// postpone moves the next attempt to t at the earliest, as when the CA's
// rate limit lifts later than the schedule would allow.
func (b *acmeBackoff) postpone(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !t.After(b.state.NextAttempt) {
		return nil
	}
	b.state.NextAttempt = t
	return b.saveLocked()
}

// fail ends the current attempt (if any) and records why it failed.
func (b *acmeBackoff) fail(reason string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attemptStart = time.Time{}
	b.state.LastError = reason
	return b.saveLocked()
}

// setLastError records a failure seen without ending the attempt.
func (b *acmeBackoff) setLastError(reason string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.LastError = reason
	return b.saveLocked()
}

func (b *acmeBackoff) snapshot() acmeBackoffState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *acmeBackoff) saveLocked() error {
	data, err := json.MarshalIndent(b.state, "", "  ")
	if err != nil {
		return err
	}
	if err := privatefile.Write(b.path, append(data, '\n')); err != nil {
		return fmt.Errorf("saving the ACME backoff state: %w", err)
	}
	return nil
}
