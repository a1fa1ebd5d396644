package preflight

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
)

func TestCheckConfig(t *testing.T) {
	var k Checker
	good := config.Config{Hostname: "sso.example.com", Upstream: "https://127.0.0.1:9443", StateDir: t.TempDir()}
	if r := k.CheckConfig(good); r.Status != Pass || r.Finding != "the settings are valid" {
		t.Errorf("valid config: %s", r)
	}

	// Problems a dedicated check reports are not repeated here.
	owned := good
	owned.Hostname, owned.HTTPSAddr = "", "443"
	if r := k.CheckConfig(owned); r.Status != Pass || !strings.Contains(r.Finding, "reported by their own checks") {
		t.Errorf("hostname and address problems: %s", r)
	}

	bad := good
	bad.ACMEEmail, bad.TrustedProxies = "not-an-address", []string{"10.0.0.0/33"}
	r := k.CheckConfig(bad)
	if r.Status != Fail || r.Field != "acme_email" || r.Fix == "" {
		t.Fatalf("bad config: %s (field %s)", r, r.Field)
	}
	wantContains(t, "finding", r.Finding, "2 setting(s) are invalid", "acme_email: ", "trusted_proxies: ")
}

// TestRunChecks runs every check against loopback servers and checks the
// order and names of the results.
func TestRunChecks(t *testing.T) {
	cert := selfSignedCert(t, []string{"authentik-default"})
	srv := startTLSUpstream(t, &fakeAuthentik{}, cert)
	resolver := testutil.StartDNS(t, testutil.Zone{Records: map[string][]netip.Addr{
		"sso.example.com": {netip.MustParseAddr("203.0.113.7")},
	}}).Resolver()
	k := Checker{Resolver: resolver, Timeout: 5 * time.Second}
	cfg := config.Config{
		Hostname:            "sso.example.com",
		Upstream:            srv.URL,
		UpstreamFingerprint: fingerprintOf(cert),
		HTTPSAddr:           "127.0.0.1:0",
		HTTPAddr:            "localhost:0",
		StatusAddr:          config.Off,
		StateDir:            t.TempDir(),
	}
	results := k.Run(context.Background(), cfg)
	want := []struct {
		name   Name
		status Status
	}{
		{NameConfig, Pass},
		{NameHostname, Pass},
		{NameDNS, Warn}, // a public address not on this machine: the router
		{NameHTTPSPort, Pass},
		{NameHTTPPort, Pass},
		{NameUpstreamConnect, Pass},
		{NameUpstreamTLS, Pass},
		{NameUpstreamHealth, Pass},
		{NameUpstreamWebSocket, Pass},
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
		if r.Name == NameUpstreamConnect && r.Status != Fail {
			t.Errorf("cancelled: %s", r)
		}
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("cancelled run took %s", elapsed)
	}
}

func TestCheckStatusWorse(t *testing.T) {
	if Pass.worse(Warn) != Warn || Fail.worse(Warn) != Fail || Skip.worse(Pass) != Skip || Pass.worse(Skip) != Pass {
		t.Error("worse orders statuses wrongly")
	}
}
