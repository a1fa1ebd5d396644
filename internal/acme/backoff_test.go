package acme

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestACMEBackoffDelayDoublesUpToADay(t *testing.T) {
	want := []time.Duration{0, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute}
	for n, d := range want {
		if got := acmeBackoffDelay(n); got != d {
			t.Errorf("delay after %d failures = %v, want %v", n, got, d)
		}
	}
	if got := acmeBackoffDelay(11); got != 1024*time.Minute {
		t.Errorf("delay after 11 failures = %v, want 1024m", got)
	}
	for _, n := range []int{12, 13, 40, 1000} {
		if got := acmeBackoffDelay(n); got != 24*time.Hour {
			t.Errorf("delay after %d failures = %v, want 24h", n, got)
		}
	}
}

func TestACMEBackoffScheduleSurvivesRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acme", "ca", acmeBackoffFile)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	b, err := loadACMEBackoff(path, "sso.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.admit(now); !ok || err != nil {
		t.Fatalf("first attempt refused: %v", err)
	}
	// Requests within the admitted attempt pass (autocert's second order
	// for the other challenge type).
	if _, ok, _ := b.admit(now.Add(5 * time.Second)); !ok {
		t.Fatal("a request within the attempt was refused")
	}
	if err := b.fail("it failed"); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path, 0o600)
	checkMode(t, filepath.Dir(path), 0o700)

	// A restart: the schedule and the reason come back from disk.
	b, err = loadACMEBackoff(path, "sso.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if st := b.snapshot(); st.Failures != 1 || st.LastError != "it failed" {
		t.Errorf("reloaded state %+v", st)
	}
	next, ok, _ := b.admit(now.Add(30 * time.Second))
	if ok || !next.Equal(now.Add(time.Minute)) {
		t.Errorf("admit 30 s after a failure: ok=%v next=%v, want refused until %v", ok, next, now.Add(time.Minute))
	}
	// The second attempt is allowed after a minute; its failure doubles the wait.
	if _, ok, _ := b.admit(now.Add(time.Minute)); !ok {
		t.Fatal("attempt after a minute refused")
	}
	b.fail("again")
	if next, ok, _ := b.admit(now.Add(2*time.Minute + time.Second)); ok || !next.Equal(now.Add(3*time.Minute)) {
		t.Errorf("after the second failure: ok=%v next=%v, want refused until %v", ok, next, now.Add(3*time.Minute))
	}

	// A crash mid-attempt counts as a failure: the attempt was recorded
	// before any request was sent.
	if _, ok, _ := b.admit(now.Add(3 * time.Minute)); !ok {
		t.Fatal("third attempt refused")
	}
	b, _ = loadACMEBackoff(path, "sso.example.com")
	if st := b.snapshot(); st.Failures != 3 {
		t.Errorf("failures after a crash mid-attempt = %d, want 3", st.Failures)
	}

	// Success clears everything.
	if err := b.succeed(now.Add(3 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	b, _ = loadACMEBackoff(path, "sso.example.com")
	if st := b.snapshot(); st.Failures != 0 || st.LastError != "" || !st.NextAttempt.IsZero() {
		t.Errorf("state after success %+v", st)
	}
}

// TestACMEBackoffRequestsAfterSuccessEndTheSameAttempt: autocert sends a
// nonce request and authorization updates after downloading the
// certificate; they belong to the attempt that succeeded, so they neither
// count as a failure nor delay the next renewal. Once the attempt has
// fallen quiet, a request begins a new attempt as before.
func TestACMEBackoffRequestsAfterSuccessEndTheSameAttempt(t *testing.T) {
	b, _ := loadACMEBackoff(filepath.Join(t.TempDir(), acmeBackoffFile), "sso.example.com")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b.admit(now)
	b.succeed(now.Add(time.Second))
	if _, ok, _ := b.admit(now.Add(2 * time.Second)); !ok {
		t.Fatal("autocert's request right after the certificate was refused")
	}
	if st := b.snapshot(); st.Failures != 0 || !st.NextAttempt.IsZero() {
		t.Errorf("after the certificate and one more request: %+v, want a clean schedule", st)
	}
	later := now.Add(2*time.Second + acmeAttemptIdle)
	if _, ok, _ := b.admit(later); !ok {
		t.Fatal("the renewal's first request was refused")
	}
	if st := b.snapshot(); st.Failures != 1 || !st.LastAttempt.Equal(later) {
		t.Errorf("a renewal after the quiet: %+v, want it counted as an attempt begun at %v", st, later)
	}
}

func TestACMEBackoffPostponeForRateLimit(t *testing.T) {
	b, _ := loadACMEBackoff(filepath.Join(t.TempDir(), acmeBackoffFile), "sso.example.com")
	now := time.Now()
	b.admit(now)
	b.postpone(now.Add(3 * time.Hour))
	b.fail("rate limited")
	if next, ok, _ := b.admit(now.Add(2 * time.Hour)); ok || !next.Equal(now.Add(3*time.Hour)) {
		t.Errorf("admit before the rate limit lifts: ok=%v next=%v", ok, next)
	}
}

func TestACMEBackoffIgnoresAnotherHostname(t *testing.T) {
	path := filepath.Join(t.TempDir(), acmeBackoffFile)
	b, _ := loadACMEBackoff(path, "old.example.com")
	b.admit(time.Now())
	b.fail("old name failed")
	b, err := loadACMEBackoff(path, "new.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.admit(time.Now()); !ok {
		t.Error("a new hostname inherited the old one's backoff")
	}
}

func TestACMEBackoffDamagedFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), acmeBackoffFile)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadACMEBackoff(path, "sso.example.com")
	if err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("damaged file: %v", err)
	}
}
