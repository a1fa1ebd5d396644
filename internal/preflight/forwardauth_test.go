package preflight

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// checkOutpost answers the forward auth check as status, redirecting to
// location for a 3xx, and keeps the request it got.
type checkOutpost struct {
	status   int
	location string
	mu       sync.Mutex
	got      *http.Request
}

func (o *checkOutpost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.got = r.Clone(context.Background())
	o.mu.Unlock()
	if r.URL.Path != forwardAuthCheckPath {
		http.NotFound(w, r)
		return
	}
	if o.location != "" {
		w.Header().Set("Location", o.location)
	}
	w.WriteHeader(o.status)
}

func forwardAuthConfig(url string) config.Config {
	return config.Config{
		Hostname: "app.example.com", Upstream: "http://app.lan:8080", TLS: config.TLSSelfSigned,
		StateDir: "/nonexistent/state", ForwardAuth: &config.ForwardAuth{URL: url},
	}
}

func TestCheckForwardAuth(t *testing.T) {
	k := Checker{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		name    string
		outpost *checkOutpost
		status  Status
		finding string
	}{
		{"works", &checkOutpost{status: http.StatusFound, location: "https://app.example.com/outpost.goauthentik.io/start?rd=https%3A%2F%2Fapp.example.com%2F"}, Pass, "forward auth works"},
		{"newer outpost", &checkOutpost{status: http.StatusFound, location: "https://authentik.example.com/application/o/authorize/?client_id=x"}, Pass, "forward auth works"},
		{"not forward auth mode", &checkOutpost{status: http.StatusNotFound}, Fail, "no provider in forward auth mode serves app.example.com"},
		{"no app for the host", &checkOutpost{status: http.StatusBadRequest}, Fail, "no application for app.example.com"},
		{"lets everyone in", &checkOutpost{status: http.StatusOK}, Fail, "every visitor would reach the app"},
		{"redirects elsewhere", &checkOutpost{status: http.StatusFound, location: "https://elsewhere.example/login"}, Warn, "rather than to authentik's sign-in"},
		{"outpost error", &checkOutpost{status: http.StatusInternalServerError}, Fail, "reports a problem"},
	} {
		srv := httptest.NewServer(tc.outpost)
		r := k.CheckForwardAuth(context.Background(), forwardAuthConfig(srv.URL))
		srv.Close()
		if r.Status != tc.status || !strings.Contains(r.Finding, tc.finding) || r.Field != config.FieldForwardAuth {
			t.Errorf("%s: %s; want %s mentioning %q", tc.name, r, tc.status, tc.finding)
		}
		if tc.status != Pass && r.Fix == "" {
			t.Errorf("%s: no fix offered", tc.name)
		}
		got := tc.outpost.got
		if got == nil || got.Host != "app.example.com" || got.Header.Get("X-Forwarded-Host") != "app.example.com" ||
			got.Header.Get("X-Forwarded-Proto") != "https" || got.Header.Get("X-Forwarded-Uri") != "/" || got.Header.Get("Cookie") != "" {
			t.Errorf("%s: the outpost got %+v, want a check for app.example.com without cookies", tc.name, got)
		}
	}
}

func TestCheckForwardAuthUnreachableOrUntrusted(t *testing.T) {
	k := Checker{Timeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if r := k.CheckForwardAuth(context.Background(), forwardAuthConfig("http://"+addr)); r.Status != Fail || !strings.Contains(r.Finding, "refused the connection") {
		t.Errorf("nothing listening: %s", r)
	}

	o := &checkOutpost{status: http.StatusFound, location: "/outpost.goauthentik.io/start"}
	srv := httptest.NewTLSServer(o)
	defer srv.Close()
	if r := k.CheckForwardAuth(context.Background(), forwardAuthConfig(srv.URL)); r.Status != Fail || !strings.Contains(r.Finding, "certificate Gatehouse does not trust") {
		t.Errorf("untrusted certificate: %s", r)
	}
	cfg := forwardAuthConfig(srv.URL)
	sum := sha256.Sum256(srv.Certificate().Raw)
	cfg.ForwardAuth.Fingerprint = upstream.FormatFingerprint(sum[:])
	if r := k.CheckForwardAuth(context.Background(), cfg); r.Status != Pass {
		t.Errorf("pinned certificate: %s", r)
	}
	if r := k.CheckForwardAuth(context.Background(), forwardAuthConfig("http://"+srv.Listener.Addr().String())); r.Status != Fail || !strings.Contains(r.Finding, "answered 400: that port expects HTTPS") {
		t.Errorf("http:// to a TLS port: %s", r)
	}
}

func TestCheckForwardAuthOffOrInvalid(t *testing.T) {
	var k Checker
	cfg := forwardAuthConfig("")
	cfg.ForwardAuth = nil
	if r := k.CheckForwardAuth(context.Background(), cfg); r.Status != Skip {
		t.Errorf("off: %s, want skipped", r)
	}
	cfg.ForwardAuth = &config.ForwardAuth{Site: "sso.example.com"}
	if r := k.CheckForwardAuth(context.Background(), cfg); r.Status != Fail || !strings.Contains(r.Finding, "serves one site") {
		t.Errorf("invalid: %s", r)
	}
}

// With several sites each protected site's outpost is checked once, as
// that site: an outpost named by site is that site's upstream.
func TestRunChecksForwardAuthPerSite(t *testing.T) {
	o := &checkOutpost{status: http.StatusFound, location: "/outpost.goauthentik.io/start?rd=x"}
	// authentik: the outpost's check, and its pages for the upstream checks.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == forwardAuthCheckPath {
			o.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	resolver := testutil.StartDNS(t, testutil.Zone{Records: map[string][]netip.Addr{
		"sso.example.com":  {netip.MustParseAddr("203.0.113.7")},
		"app.example.com":  {netip.MustParseAddr("203.0.113.7")},
		"wiki.example.com": {netip.MustParseAddr("203.0.113.7")},
	}}).Resolver()
	k := Checker{Resolver: resolver, Timeout: 5 * time.Second}
	cfg := config.Config{
		Hostname: "sso.example.com", Upstream: srv.URL, TLS: config.TLSSelfSigned,
		HTTPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", StatusAddr: config.Off, StateDir: t.TempDir(),
		Sites: []config.Site{
			{Hostname: "app.example.com", Upstream: srv.URL + "/app", ForwardAuth: &config.ForwardAuth{Site: "sso.example.com"}},
			{Hostname: "wiki.example.com", Upstream: srv.URL + "/wiki"},
		},
	}
	var auth []Result
	for _, r := range k.Run(context.Background(), cfg) {
		if r.Name == NameForwardAuth {
			auth = append(auth, r)
		}
	}
	if len(auth) != 1 {
		t.Fatalf("%d forward auth results, want 1 (app.example.com's): %v", len(auth), auth)
	}
	r := auth[0]
	if r.Status != Pass || r.Site != "app.example.com" || r.Field != config.SiteField(0, config.FieldForwardAuth) {
		t.Errorf("app's forward auth: %s (site %q, field %s), want a pass for app.example.com at sites[0].forward_auth", r, r.Site, r.Field)
	}
	if got := o.got; got == nil || got.Host != "app.example.com" || got.URL.Path != forwardAuthCheckPath {
		t.Errorf("the outpost got %+v, want a check for app.example.com", got)
	}

	// CheckSite runs one site's checks alone.
	one := k.CheckSite(context.Background(), cfg, "App.Example.com")
	if len(one) == 0 || one[len(one)-1].Name != NameForwardAuth || one[len(one)-1].Status != Pass {
		t.Errorf("CheckSite(app): %v, want its checks ending with a forward auth pass", one)
	}
	for _, r := range one {
		if r.Site != "app.example.com" {
			t.Errorf("CheckSite(app) reports %s for %q", r.Name, r.Site)
		}
	}
	if rs := k.CheckSite(context.Background(), cfg, "nobody.example.com"); len(rs) != 1 || rs[0].Status != Fail {
		t.Errorf("CheckSite of a name not served: %v", rs)
	}

	// A site whose outpost is the demo app is told so, not checked.
	cfg.Upstream = config.UpstreamDemo
	for _, r := range k.Run(context.Background(), cfg) {
		if r.Name == NameForwardAuth && (r.Status != Fail || !strings.Contains(r.Finding, "serves the demo app")) {
			t.Errorf("outpost site serving the demo: %s", r)
		}
	}
}
