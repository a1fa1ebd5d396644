package acme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

func TestExplainACMEProblems(t *testing.T) {
	const host = "sso.example.com"
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	problem := func(typ, detail string) *acme.Error {
		return &acme.Error{StatusCode: 403, ProblemType: "urn:ietf:params:acme:error:" + typ, Detail: detail}
	}
	tests := []struct {
		name     string
		err      error
		failed   []challengeFailure
		kind     ErrorKind
		mentions []string // words the summary and fix must contain
	}{
		{"Boulder connection refused", errors.New("acme/autocert: no viable challenge"),
			[]challengeFailure{{"http-01", problem("connection", "203.0.113.7: Fetching http://sso.example.com/.well-known/acme-challenge/x: Connection refused")}},
			Connection, []string{"port 80", "router", "firewall"}},
		{"Boulder timeout", errors.New("no viable challenge"),
			[]challengeFailure{{"tls-alpn-01", problem("connection", "203.0.113.7: Timeout during connect (likely firewall problem)")}},
			Connection, []string{"port 443", "forward"}},
		{"Pebble refused TLS as unauthorized", errors.New("no viable challenge"),
			[]challengeFailure{{"tls-alpn-01", problem("unauthorized", "Failed to connect to 127.0.0.1:5001 for the tls-alpn-01 challenge")}},
			Connection, []string{"port 443"}},
		{"NXDOMAIN", errors.New("no viable challenge"),
			[]challengeFailure{{"http-01", problem("dns", "DNS problem: NXDOMAIN looking up A for sso.example.com")}},
			DNS, []string{"A record", host}},
		{"resolves elsewhere", errors.New("no viable challenge"),
			[]challengeFailure{{"http-01", problem("unauthorized", "Invalid response from http://sso.example.com/.well-known/acme-challenge/x: 404")}},
			Unauthorized, []string{"another machine", "public IP"}},
		{"CAA", problem("caa", "CAA record for example.com prevents issuance"), nil,
			CAA, []string{"CAA", "letsencrypt.org"}},
		{"rejected name", problem("rejectedIdentifier", "Domain name is a reserved name"), nil,
			Rejected, []string{host, "self-signed"}},
		{"EAB required", problem("externalAccountRequired", "no EAB"), nil,
			Account, []string{"--acme-eab-kid"}},
		{"DNS before connection", errors.New("no viable challenge"),
			[]challengeFailure{
				{"tls-alpn-01", problem("connection", "Connection refused")},
				{"http-01", problem("dns", "no valid A records found for sso.example.com")},
			},
			DNS, []string{"A record"}},
		{"CA unreachable", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, nil,
			CAUnreachable, []string{"internet connection", "--acme-directory"}},
		{"deadline", fmt.Errorf("waiting: %w", context.DeadlineExceeded), nil,
			Timeout, []string{"in time"}},
		{"unknown", errors.New("something odd"), nil,
			Other, []string{"staging"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := explainACMEError(tt.err, tt.failed, host, "", now)
			if e.Kind != tt.kind {
				t.Errorf("kind %q, want %q (%s)", e.Kind, tt.kind, e)
			}
			if e.Summary == "" || e.Fix == "" {
				t.Fatalf("empty summary or fix: %+v", e)
			}
			text := e.Summary + " " + e.Fix
			for _, w := range tt.mentions {
				if !strings.Contains(text, w) {
					t.Errorf("%q does not mention %q", text, w)
				}
			}
			if !errors.Is(e, tt.err) {
				t.Error("the explanation does not wrap the original error")
			}
		})
	}
}

func TestExplainRateLimitSaysWhenItLifts(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	withHeader := &acme.Error{StatusCode: 429, ProblemType: "urn:ietf:params:acme:error:rateLimited",
		Detail: "too many certificates", Header: http.Header{"Retry-After": {"3600"}}}
	e := explainACMEError(withHeader, nil, "sso.example.com", "", now)
	if e.Kind != RateLimited || !e.RetryAt.Equal(now.Add(time.Hour)) || !strings.Contains(e.Summary, "in 1h0m0s") {
		t.Errorf("Retry-After seconds: %+v", e)
	}
	if !strings.Contains(e.Fix, "staging") {
		t.Errorf("fix %q does not suggest staging", e.Fix)
	}

	inDetail := &acme.Error{StatusCode: 429, ProblemType: "urn:ietf:params:acme:error:rateLimited",
		Detail: "too many failed authorizations (5) for \"sso.example.com\" in the last 1h0m0s, retry after 2026-05-01 12:30:00 UTC: see https://letsencrypt.org/docs/rate-limits/"}
	e = explainACMEError(fmt.Errorf("ordering: %w", inDetail), nil, "sso.example.com", "", now)
	if want := now.Add(30 * time.Minute); !e.RetryAt.Equal(want) {
		t.Errorf("retry time from the detail: %v, want %v", e.RetryAt, want)
	}
}

func TestExplainBackoffRepeatsTheLastFailure(t *testing.T) {
	now := time.Now()
	e := explainACMEError(&acmeBackoffError{Next: now.Add(4 * time.Minute)}, nil, "sso.example.com", "The CA could not connect.", now)
	if e.Kind != Backoff || !e.RetryAt.Equal(now.Add(4*time.Minute)) {
		t.Errorf("%+v", e)
	}
	if !strings.Contains(e.Summary, "The CA could not connect.") || !strings.Contains(e.Fix, "in 4m0s") {
		t.Errorf("%q", e.Error())
	}
}
