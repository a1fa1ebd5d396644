package ui

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/acme"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

func TestDashboardFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{formatRate(0), "0.0"},
		{formatRate(9.94), "9.9"},
		{formatRate(12.6), "13"},
		{formatPercent(0), "0.0 %"},
		{formatPercent(0.1234), "12.3 %"},
		{formatLatency(0), "–"},
		{formatLatency(850 * time.Microsecond), "850 µs"},
		{formatLatency(4200 * time.Microsecond), "4.2 ms"},
		{formatLatency(250 * time.Millisecond), "250 ms"},
		{formatLatency(1500 * time.Millisecond), "1.5 s"},
		{formatAge(-time.Second), "0 s"},
		{formatAge(45 * time.Second), "45 s"},
		{formatAge(3*time.Minute + 59*time.Second), "3 min"},
		{formatAge(2 * time.Hour), "2 h"},
		{formatAge(2*time.Hour + 5*time.Minute), "2 h 5 min"},
		{formatAge(50 * time.Hour), "2 days"},
		{formatBytes(0), "0 B"},
		{formatBytes(1023), "1023 B"},
		{formatBytes(1536), "1.5 KiB"},
		{formatBytes(5 << 20), "5.0 MiB"},
		{formatBytes(3 << 40), "3.0 TiB"},
		{plural(1, "day"), "1 day"},
		{plural(0, "day"), "0 days"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestFormatClockAddsTheDateForAnotherDay(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.Local)
	if got := formatClock(now.Add(-90*time.Second), now); got != "11:58:30" {
		t.Errorf("today: %q", got)
	}
	if got := formatClock(now.Add(-24*time.Hour), now); got != "27 Nov 12:00" {
		t.Errorf("yesterday: %q", got)
	}
}

func TestDaysUntil(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]int{
		30*24*time.Hour + time.Minute: 30,
		24*time.Hour - time.Second:    0,
		0:                             0,
		-time.Hour:                    -1,
		-24 * time.Hour:               -1,
		-49 * time.Hour:               -3,
	} {
		if got := daysUntil(now.Add(d), now); got != want {
			t.Errorf("daysUntil(now%+v) = %d, want %d", d, got, want)
		}
	}
}

func TestPlainError(t *testing.T) {
	acmeErr := &acme.Error{Summary: "The CA could not reach this machine.", Fix: "Open port 80.", Detail: "urn:ietf:params:acme:error:connection"}
	if got := plainError(fmt.Errorf("starting: %w", acmeErr)); got != "The CA could not reach this machine. Open port 80." {
		t.Errorf("wrapped ACME error = %q", got)
	}
	if got := plainError(&acme.Error{Summary: "Rate limited."}); got != "Rate limited." {
		t.Errorf("ACME error without a fix = %q", got)
	}
	if got := plainError(errors.New("the upstream refused the connection")); got != "the upstream refused the connection" {
		t.Errorf("plain error = %q", got)
	}
}

func TestEventText(t *testing.T) {
	for _, tc := range []struct {
		ev   proxyengine.Event
		want string
	}{
		{proxyengine.Event{Kind: proxyengine.EventRequest, Method: "POST", Path: "/api/v3/flows/", Status: 200, Duration: 12 * time.Millisecond, Remote: "203.0.113.9"},
			"POST /api/v3/flows/ · 12 ms · 203.0.113.9"},
		{proxyengine.Event{Kind: proxyengine.EventWebSocket, Path: "/ws/client/", Message: "closed by the client (1000)", Duration: 3 * time.Second},
			"/ws/client/: closed by the client (1000) · 3.0 s"},
		{proxyengine.Event{Kind: proxyengine.EventCertificate, Message: "renewed; valid until 2027-02-26"},
			"renewed; valid until 2027-02-26"},
	} {
		if got := eventText(tc.ev); got != tc.want {
			t.Errorf("eventText(%+v) = %q, want %q", tc.ev, got, tc.want)
		}
	}
}
