package proxyengine

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckConfig(t *testing.T) {
	var k Checker
	good := Config{Hostname: "sso.example.com", Upstream: "https://127.0.0.1:9443", StateDir: t.TempDir()}
	if r := k.CheckConfig(good); r.Status != CheckPass || r.Finding != "the settings are valid" {
		t.Errorf("valid config: %s", r)
	}

	// Problems a dedicated check reports are not repeated here.
	owned := good
	owned.Hostname, owned.HTTPSAddr = "", "443"
	if r := k.CheckConfig(owned); r.Status != CheckPass || !strings.Contains(r.Finding, "reported by their own checks") {
		t.Errorf("hostname and address problems: %s", r)
	}

	bad := good
	bad.ACMEEmail, bad.TrustedProxies = "not-an-address", []string{"10.0.0.0/33"}
	r := k.CheckConfig(bad)
	if r.Status != CheckFail || r.Field != "acme_email" || r.Fix == "" {
		t.Fatalf("bad config: %s (field %s)", r, r.Field)
	}
	wantContains(t, "finding", r.Finding, "2 setting(s) are invalid", "acme_email: ", "trusted_proxies: ")
}

// TestRunChecks runs every check against loopback servers and checks the
// order and names of the results.
func TestRunChecks(t *testing.T) {
	cert := selfSignedCert(t, []string{"authentik-default"})
	srv := startTLSUpstream(t, &fakeAuthentik{}, cert)
	resolver := startTestDNS(t, testDNS{records: map[string][]netip.Addr{
		"sso.example.com": {netip.MustParseAddr("203.0.113.7")},
	}})
	k := Checker{Resolver: resolver, Timeout: 5 * time.Second}
	cfg := Config{
		Hostname:            "sso.example.com",
		Upstream:            srv.URL,
		UpstreamFingerprint: fingerprintOf(cert),
		HTTPSAddr:           "127.0.0.1:0",
		HTTPAddr:            "localhost:0",
		StatusAddr:          Off,
		StateDir:            t.TempDir(),
	}
	results := k.Run(context.Background(), cfg)
	want := []struct {
		name   string
		status CheckStatus
	}{
		{CheckNameConfig, CheckPass},
		{CheckNameHostname, CheckPass},
		{CheckNameDNS, CheckWarn}, // a public address not on this machine: the router
		{CheckNameHTTPSPort, CheckPass},
		{CheckNameHTTPPort, CheckPass},
		{CheckNameUpstreamConnect, CheckPass},
		{CheckNameUpstreamTLS, CheckPass},
		{CheckNameUpstreamHealth, CheckPass},
		{CheckNameUpstreamWebSocket, CheckPass},
	}
	if len(results) != len(want) {
		t.Fatalf("got %d results, want %d: %v", len(results), len(want), results)
	}
	for i, w := range want {
		r := results[i]
		if r.Name != w.name || r.Status != w.status {
			t.Errorf("result %d = %s; want %s %s", i, r, w.status, w.name)
		}
		if r.Title == "" || r.Finding == "" {
			t.Errorf("result %d (%s) lacks a title or finding", i, r.Name)
		}
	}

	// A cancelled context ends the checks at once rather than hanging.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	for _, r := range k.Run(ctx, cfg) {
		if r.Name == CheckNameUpstreamConnect && r.Status != CheckFail {
			t.Errorf("cancelled: %s", r)
		}
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("cancelled run took %s", elapsed)
	}
}

func TestCheckStatusWorse(t *testing.T) {
	if CheckPass.worse(CheckWarn) != CheckWarn || CheckFail.worse(CheckWarn) != CheckFail || CheckSkip.worse(CheckPass) != CheckSkip || CheckPass.worse(CheckSkip) != CheckPass {
		t.Error("worse orders statuses wrongly")
	}
}
