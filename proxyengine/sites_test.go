package proxyengine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gorilla/websocket"
)

// siteUpstream is a TLS upstream that answers every request with its
// name and the Host it received.
func siteUpstream(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebSocketUpgrade(r) {
			testutil.EchoWebSocket(w, r)
			return
		}
		fmt.Fprintf(w, "%s via %s", name, r.Host)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// twoSiteConfig serves a.gatehouse.test from a and b.gatehouse.test from b.
func twoSiteConfig(t *testing.T, a, b *httptest.Server) config.Config {
	cfg := testConfig(t, a)
	cfg.Hostname, cfg.Upstream, cfg.UpstreamInsecure = "", "", false
	cfg.Sites = []config.Site{
		{Hostname: "a.gatehouse.test", Upstream: a.URL, UpstreamInsecure: true},
		{Hostname: "b.gatehouse.test", Upstream: b.URL, UpstreamInsecure: true},
	}
	return cfg
}

// siteClient talks HTTP/1.1 to the engine with SNI sni, verifying the
// certificate for verifyName (none when empty), each client with its own
// keepalive connection.
func siteClient(t *testing.T, e *Engine, sni, verifyName string) *http.Client {
	tc := &tls.Config{RootCAs: localCAPool(t, e), ServerName: sni}
	if verifyName != sni {
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if verifyName == "" {
				return nil
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: tc.RootCAs, DNSName: verifyName})
			return err
		}
	}
	tr := &http.Transport{DialContext: dialEngine(e), TLSClientConfig: tc, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches https://host/path with c, returning the status and body.
func get(t *testing.T, c *http.Client, host, path string) (int, string) {
	t.Helper()
	resp, err := c.Get("https://" + host + path)
	if err != nil {
		t.Fatalf("GET https://%s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestSitesRoutedByHostAndSNI: one listener serves two sites, each from
// its own upstream with its own certificate; another name gets 421.
func TestSitesRoutedByHostAndSNI(t *testing.T) {
	a, b := siteUpstream(t, "A"), siteUpstream(t, "B")
	e := startEngine(t, twoSiteConfig(t, a, b))
	for _, tc := range []struct{ host, want string }{
		{"a.gatehouse.test", "A via a.gatehouse.test"},
		{"b.gatehouse.test", "B via b.gatehouse.test"},
		{"B.Gatehouse.Test.", "B via b.gatehouse.test"},
	} {
		// Verifying for the name proves the handshake got that site's
		// certificate.
		c := siteClient(t, e, config.SiteKey(tc.host), config.SiteKey(tc.host))
		if status, body := get(t, c, tc.host, "/"); status != 200 || body != tc.want {
			t.Errorf("%s: %d %q, want 200 %q", tc.host, status, body, tc.want)
		}
	}
	// Each site's leaf names it alone.
	for _, name := range []string{"a.gatehouse.test", "b.gatehouse.test"} {
		conn, err := tls.Dial("tcp", e.HTTPSAddr().String(), &tls.Config{ServerName: name, RootCAs: localCAPool(t, e)})
		if err != nil {
			t.Fatalf("handshake for %s: %v", name, err)
		}
		if got := conn.ConnectionState().PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != name {
			t.Errorf("SNI %s got a certificate for %v", name, got)
		}
		conn.Close()
	}
	// A name no site has: the default (first) site's certificate, then 421.
	unknown := siteClient(t, e, "c.gatehouse.test", "a.gatehouse.test")
	if status, _ := get(t, unknown, "c.gatehouse.test", "/"); status != http.StatusMisdirectedRequest {
		t.Errorf("unknown name: %d, want 421", status)
	}
	// An unknown Host on a configured site's connection is 421 too.
	onA := siteClient(t, e, "a.gatehouse.test", "a.gatehouse.test")
	req, _ := http.NewRequest("GET", "https://a.gatehouse.test/", nil)
	req.Host = "c.gatehouse.test"
	resp, err := onA.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("unknown Host on a's connection: %d, want 421", resp.StatusCode)
	}
	// No SNI at all (an IP address): the default certificate.
	conn, err := tls.Dial("tcp", e.HTTPSAddr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake without SNI: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "a.gatehouse.test" {
		t.Errorf("without SNI: a certificate for %v, want the first site's", got)
	}
	conn.Close()
}

// TestSitesRedirectToTheirOwnName: port 80 sends each site to its own
// https name; another name goes to the first site, as nginx's
// default_server would.
func TestSitesRedirectToTheirOwnName(t *testing.T) {
	a, b := siteUpstream(t, "A"), siteUpstream(t, "B")
	e := startEngine(t, twoSiteConfig(t, a, b))
	// The HTTPS address's port 0 leaves the public port at 443.
	for host, want := range map[string]string{
		"a.gatehouse.test":    "https://a.gatehouse.test/x?y=1",
		"B.gatehouse.test:80": "https://b.gatehouse.test/x?y=1",
		"other.test":          "https://a.gatehouse.test/x?y=1",
		"127.0.0.1":           "https://a.gatehouse.test/x?y=1",
	} {
		req, _ := http.NewRequest("GET", "http://"+e.HTTPAddr().String()+"/x?y=1", nil)
		req.Host = host
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Errorf("Host %s: %d to %q, want 301 to %q", host, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

// TestSiteStatusAndMetricsAreExact: each site counts its own requests,
// answers, upstream errors, connections and WebSockets; the top-level
// fields stay the totals.
func TestSiteStatusAndMetricsAreExact(t *testing.T) {
	a, b := siteUpstream(t, "A"), siteUpstream(t, "B")
	cfg := twoSiteConfig(t, a, b)
	cfg.StatusAddr = "127.0.0.1:0"
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	cfg.Sites = append(cfg.Sites, config.Site{Hostname: "down.gatehouse.test", Upstream: deadURL})
	e := startEngine(t, cfg)

	ca := siteClient(t, e, "a.gatehouse.test", "a.gatehouse.test")
	cb1 := siteClient(t, e, "b.gatehouse.test", "b.gatehouse.test")
	cb2 := siteClient(t, e, "b.gatehouse.test", "b.gatehouse.test")
	cd := siteClient(t, e, "down.gatehouse.test", "down.gatehouse.test")
	for range 3 {
		get(t, ca, "a.gatehouse.test", "/")
	}
	get(t, cb1, "b.gatehouse.test", "/")
	get(t, cb2, "b.gatehouse.test", "/")
	if status, _ := get(t, cd, "down.gatehouse.test", "/"); status != http.StatusBadGateway {
		t.Fatalf("dead upstream: %d, want 502", status)
	}
	ws, _, err := wsDialerFor(t, e, "b.gatehouse.test").Dial("wss://b.gatehouse.test/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	type want struct {
		requests, ok, bad, upErrs uint64
		conns, sockets            int
	}
	wants := map[string]want{
		"a.gatehouse.test":    {3, 3, 0, 0, 1, 0},
		"b.gatehouse.test":    {3, 2, 0, 0, 3, 1}, // two keepalive clients and the WebSocket's connection; its 101
		"down.gatehouse.test": {1, 0, 1, 1, 1, 0},
	}
	var st Status
	// The WebSocket's request is counted once its handler returns, the
	// total before the site's; a snapshot may fall between the two.
	testutil.Eventually(t, "the WebSocket's request is counted", func() bool {
		st = e.Status()
		return len(st.Sites) == 3 && st.Sites[1].RequestsTotal == 3 && st.RequestsTotal == 7
	})
	for i, name := range []string{"a.gatehouse.test", "b.gatehouse.test", "down.gatehouse.test"} {
		s, w := st.Sites[i], wants[name]
		got := want{s.RequestsTotal, s.ResponsesByClass["2xx"], s.ResponsesByClass["5xx"], s.UpstreamErrors, s.ActiveConnections, s.ActiveWebSockets}
		if s.Hostname != name || got != w {
			t.Errorf("site %d: %s %+v, want %s %+v", i, s.Hostname, got, name, w)
		}
		if s.Certificate.Fingerprint == "" || len(s.Certificate.Names) != 1 || s.Certificate.Names[0] != name {
			t.Errorf("%s's certificate: %+v", name, s.Certificate)
		}
	}
	if !st.Sites[0].Upstream.Healthy || st.Sites[2].Upstream.Healthy {
		t.Errorf("health: a %+v, down %+v", st.Sites[0].Upstream, st.Sites[2].Upstream)
	}
	if st.RequestsTotal != 7 || st.UpstreamErrors != 1 || st.ActiveConnections != 5 || st.ActiveWebSockets != 1 || st.Hostname != "a.gatehouse.test" {
		t.Errorf("totals: %d requests, %d upstream errors, %d connections, %d WebSockets, hostname %s",
			st.RequestsTotal, st.UpstreamErrors, st.ActiveConnections, st.ActiveWebSockets, st.Hostname)
	}
	bySite := map[string]int{}
	for _, c := range st.Connections {
		bySite[c.Site]++
		if c.Site != c.ServerName {
			t.Errorf("connection %d: site %q, SNI %q", c.ID, c.Site, c.ServerName)
		}
	}
	if bySite["a.gatehouse.test"] != 1 || bySite["b.gatehouse.test"] != 3 || bySite["down.gatehouse.test"] != 1 {
		t.Errorf("connections by site: %v", bySite)
	}
	if len(st.WebSockets) != 1 || st.WebSockets[0].Site != "b.gatehouse.test" {
		t.Errorf("WebSockets: %+v", st.WebSockets)
	}

	// A view of one site lists its connections and WebSockets alone (its
	// name in any case), at most Rows of them; the totals stay everyone's.
	for _, v := range []struct {
		view         View
		conns, socks int
	}{
		{View{Rows: AllRows, Site: "B.Gatehouse.Test"}, 3, 1},
		{View{Rows: 2, Site: "b.gatehouse.test"}, 2, 1},
		{View{Rows: AllRows, Site: "a.gatehouse.test"}, 1, 0},
		{View{Rows: AllRows, Site: "nobody.gatehouse.test"}, 0, 0},
		{View{Site: "b.gatehouse.test"}, 0, 0},
	} {
		got := e.Snapshot(v.view)
		for _, c := range got.Connections {
			if config.SiteKey(c.Site) != config.SiteKey(v.view.Site) {
				t.Errorf("%+v lists a connection of %q", v.view, c.Site)
			}
		}
		if len(got.Connections) != v.conns || len(got.WebSockets) != v.socks || got.ActiveConnections != 5 || got.ActiveWebSockets != 1 {
			t.Errorf("%+v: %d connections and %d WebSockets listed of %d and %d, want %d and %d of 5 and 1",
				v.view, len(got.Connections), len(got.WebSockets), got.ActiveConnections, got.ActiveWebSockets, v.conns, v.socks)
		}
	}

	m := metricsText(t, e)
	for _, line := range []string{
		`gatehouse_site_requests_total{class="2xx",site="a.gatehouse.test"} 3`,
		`gatehouse_site_requests_total{class="1xx",site="b.gatehouse.test"} 1`,
		`gatehouse_site_requests_total{class="5xx",site="down.gatehouse.test"} 1`,
		`gatehouse_site_upstream_errors_total{site="down.gatehouse.test"} 1`,
		`gatehouse_site_upstream_errors_total{site="a.gatehouse.test"} 0`,
		`gatehouse_site_active_connections{site="b.gatehouse.test"} 3`,
		`gatehouse_site_active_websockets{site="b.gatehouse.test"} 1`,
		`gatehouse_upstream_up{site="a.gatehouse.test"} 1`,
		`gatehouse_upstream_up{site="down.gatehouse.test"} 0`,
		`gatehouse_requests_total{class="2xx"} 5`,
		`gatehouse_upstream_errors_total 1`,
		`gatehouse_active_connections 5`,
	} {
		if !hasMetric(m, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	// Connections closing leave their site's count.
	ws.Close()
	cb1.Transport.(*http.Transport).CloseIdleConnections()
	testutil.Eventually(t, "b's closed connections leave its count", func() bool {
		s := e.Status().Sites[1]
		return s.ActiveConnections == 1 && s.ActiveWebSockets == 0
	})
}

// wsDialerFor opens WebSockets to the site named host.
func wsDialerFor(t *testing.T, e *Engine, host string) *websocket.Dialer {
	d := wsDialer(t, e)
	d.TLSClientConfig = &tls.Config{RootCAs: localCAPool(t, e), ServerName: host}
	return d
}

// TestApplyAddsAndRemovesASiteLive: a site added and removed while a
// visitor of the other keeps its keepalive connection, the other site's
// pool and certificate staying as they were.
func TestApplyAddsAndRemovesASiteLive(t *testing.T) {
	a, b := siteUpstream(t, "A"), siteUpstream(t, "B")
	two := twoSiteConfig(t, a, b)
	one := two
	one.Sites = two.Sites[:1]
	e := startEngine(t, one)
	ca := siteClient(t, e, "a.gatehouse.test", "a.gatehouse.test")
	var local []string
	trace := func() context.Context {
		return httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			local = append(local, i.Conn.LocalAddr().String())
		}})
	}
	fetchA := func() {
		t.Helper()
		req, _ := http.NewRequestWithContext(trace(), "GET", "https://a.gatehouse.test/", nil)
		resp, err := ca.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "A via a.gatehouse.test" {
			t.Fatalf("a: %q", body)
		}
	}
	fetchA()
	poolA, certA := e.current().sites[0].transport, e.CertStatus().Fingerprint
	cb := siteClient(t, e, "b.gatehouse.test", "")
	if status, _ := get(t, cb, "b.gatehouse.test", "/"); status != http.StatusMisdirectedRequest {
		t.Fatalf("b before it is added: %d, want 421", status)
	}
	cb.Transport.(*http.Transport).CloseIdleConnections()

	if err := e.Apply(t.Context(), two); err != nil {
		t.Fatalf("Apply adding b: %v", err)
	}
	cb = siteClient(t, e, "b.gatehouse.test", "b.gatehouse.test")
	if status, body := get(t, cb, "b.gatehouse.test", "/"); status != 200 || body != "B via b.gatehouse.test" {
		t.Errorf("b once added: %d %q", status, body)
	}
	fetchA()
	if g := e.current(); g.sites[0].transport != poolA || e.CertStatus().Fingerprint != certA {
		t.Error("adding b replaced a's upstream pool or certificate")
	}

	if err := e.Apply(t.Context(), one); err != nil {
		t.Fatalf("Apply removing b: %v", err)
	}
	if status, _ := get(t, cb, "b.gatehouse.test", "/"); status != http.StatusMisdirectedRequest {
		t.Errorf("b once removed: %d, want 421", status)
	}
	fetchA()
	if len(local) != 3 || local[0] != local[1] || local[1] != local[2] {
		t.Errorf("a's requests went over connections %v, want one kept throughout", local)
	}
	if g := e.current(); len(g.sites) != 1 || g.sites[0].transport != poolA || e.CertStatus().Fingerprint != certA {
		t.Error("removing b replaced a's upstream pool or certificate")
	}
	if st := e.Status(); len(st.Sites) != 1 || st.Sites[0].RequestsTotal != 3 {
		t.Errorf("a's requests across the applies: %+v", st.Sites)
	}
}

// TestLegacySingleSiteConfig: the top-level hostname and upstream are one
// site, as before sites existed.
func TestLegacySingleSiteConfig(t *testing.T) {
	up := siteUpstream(t, "U")
	e := startEngine(t, testConfig(t, up))
	if status, body := get(t, httpClient(t, e, false), testHostname, "/"); status != 200 || body != "U via "+testHostname {
		t.Errorf("%d %q", status, body)
	}
	st := e.Status()
	if len(st.Sites) != 1 || st.Sites[0].Hostname != testHostname || st.Sites[0].RequestsTotal != 1 || st.Hostname != testHostname || st.PublicURL != st.Sites[0].PublicURL {
		t.Errorf("status: %+v", st.Sites)
	}
}

// TestSitesWithACME: each site's name gets its own certificate from the
// CA; a name whose DNS points nowhere fails alone, shown in its status,
// while the others are served.
func TestSitesWithACME(t *testing.T) {
	// Pebble validates on ports fixed before the engine starts: reserved
	// for the whole test, so no other test takes them meanwhile.
	httpRes, tlsRes := testutil.ReservePort(t), testutil.ReservePort(t)
	httpPort, tlsPort := httpRes.Port, tlsRes.Port
	loopback := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	dns := testutil.StartDNS(t, testutil.Zone{Records: map[string][]netip.Addr{
		"a.gatehouse.test": loopback, "b.gatehouse.test": loopback,
	}})
	pebble := testutil.StartPebble(t, httpPort, tlsPort, dns.Addr)
	up := siteUpstream(t, "U")
	cfg := config.Config{
		HTTPSAddr: fmt.Sprintf("127.0.0.1:%d", tlsPort), HTTPAddr: fmt.Sprintf("127.0.0.1:%d", httpPort), StatusAddr: config.Off,
		TLS: config.TLSACME, ACMEDirectory: pebble.Directory, ACMECARoots: pebble.APIRoots,
		StateDir: filepath.Join(t.TempDir(), "state"),
		Sites: []config.Site{
			{Hostname: "a.gatehouse.test", Upstream: up.URL, UpstreamInsecure: true},
			{Hostname: "nowhere.gatehouse.test", Upstream: up.URL, UpstreamInsecure: true},
			{Hostname: "b.gatehouse.test", Upstream: up.URL, UpstreamInsecure: true},
		},
	}
	e, err := New(cfg, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	e.listen = func(purpose, addr string) (net.Listener, error) {
		switch addr {
		case httpRes.Addr:
			return httpRes.Listener()
		case tlsRes.Addr:
			return tlsRes.Listener()
		}
		return nil, fmt.Errorf("the test reserved no port %s for %s", addr, purpose)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start with one failing name of three: %v", err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })

	for _, name := range []string{"a.gatehouse.test", "b.gatehouse.test"} {
		tr := &http.Transport{DialContext: dialEngine(e), TLSClientConfig: &tls.Config{RootCAs: pebble.Roots, ServerName: name}}
		t.Cleanup(tr.CloseIdleConnections)
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("https://" + name + "/")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if cert := resp.TLS.PeerCertificates[0]; len(cert.DNSNames) != 1 || cert.DNSNames[0] != name || string(body) != fmt.Sprintf("U via %s:%d", name, tlsPort) {
			t.Errorf("%s: certificate for %v, body %q", name, cert.DNSNames, body)
		}
	}
	if _, err := tls.Dial("tcp", e.HTTPSAddr().String(), &tls.Config{RootCAs: pebble.Roots, ServerName: "nowhere.gatehouse.test"}); err == nil {
		t.Error("the name without a certificate completed a handshake")
	}
	st := e.Status()
	for i, s := range st.Sites {
		issued := s.Certificate.Fingerprint != ""
		if wantIssued := i != 1; issued != wantIssued || (s.Certificate.LastError != "") == wantIssued {
			t.Errorf("%s: issued %v, last error %q", s.Hostname, issued, s.Certificate.LastError)
		}
	}
	if !strings.Contains(st.Sites[1].Certificate.LastError, "nowhere.gatehouse.test") {
		t.Errorf("the failure does not name the site: %q", st.Sites[1].Certificate.LastError)
	}
}
