package proxyengine

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
)

// seenRequest is what the upstream received, echoed back as JSON.
type seenRequest struct {
	Proto  string
	Host   string
	Method string
	URI    string
	Header http.Header
}

// newEchoUpstream is an authentik stand-in: TLS with a self-signed
// certificate, answering each request with what it saw.
func newEchoUpstream(t testing.TB) *httptest.Server {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		json.NewEncoder(w).Encode(seenRequest{r.Proto, r.Host, r.Method, r.RequestURI, r.Header})
	}))
	t.Cleanup(up.Close)
	return up
}

func getSeen(t *testing.T, c *http.Client, req *http.Request) seenRequest {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var seen seenRequest
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	return seen
}

func TestProxyForwardsHostAndForwardingHeaders(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)))
	for _, h2 := range []bool{false, true} {
		c := httpClient(t, e, h2)
		req, _ := http.NewRequest("GET", engineURL("/if/flow/default/?next=%2Fa%20b&x=1"), nil)
		req.Host = "GATEHOUSE.test:443"
		// A visitor trying to choose its own IP address in authentik's eyes.
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		req.Header.Set("X-Real-Ip", "6.6.6.6")
		req.Header.Set("Cookie", "authentik_session=abc")
		seen := getSeen(t, c, req)

		if seen.Proto != "HTTP/1.1" {
			t.Errorf("h2=%v: upstream saw %s, want HTTP/1.1 always", h2, seen.Proto)
		}
		if seen.Host != testHostname {
			t.Errorf("h2=%v: Host = %q, want the configured %q", h2, seen.Host, testHostname)
		}
		if seen.URI != "/if/flow/default/?next=%2Fa%20b&x=1" {
			t.Errorf("URI = %q", seen.URI)
		}
		want := map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "https",
			"X-Forwarded-Host":  testHostname,
			"Forwarded":         "",
			"X-Real-Ip":         "",
			"Cookie":            "authentik_session=abc",
		}
		for k, v := range want {
			if got := strings.Join(seen.Header.Values(k), ","); got != v {
				t.Errorf("h2=%v: upstream %s = %q, want %q", h2, k, got, v)
			}
		}
	}
}

func TestProxyAppendsForwardedForOnlyForTrustedProxies(t *testing.T) {
	cfg := testConfig(t, newEchoUpstream(t))
	cfg.TrustedProxies = []string{"127.0.0.0/8"}
	e := startEngine(t, cfg)
	req, _ := http.NewRequest("GET", engineURL("/"), nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Real-Ip", "203.0.113.7")
	seen := getSeen(t, httpClient(t, e, false), req)
	if got := seen.Header.Get("X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the trusted proxy's list with the peer appended", got)
	}
	if got := seen.Header.Get("X-Real-Ip"); got != "203.0.113.7" {
		t.Errorf("X-Real-Ip from a trusted proxy = %q, want kept", got)
	}
}

func TestForwardingUntrustedPeerOutsideRange(t *testing.T) {
	trusted, _ := config.ParseTrustedProxies([]string{"10.0.0.0/8"})
	f := forwarding{trusted: trusted}
	in := httptest.NewRequest("GET", "/", nil)
	in.RemoteAddr = "[::ffff:192.0.2.1]:5555"
	in.Header.Set("X-Forwarded-For", "1.2.3.4")
	out := in.Clone(in.Context())
	f.apply(out, in)
	if got := out.Header.Get("X-Forwarded-For"); got != "192.0.2.1" {
		t.Errorf("X-Forwarded-For = %q, want only the peer (IPv4-mapped unmapped)", got)
	}
	in.RemoteAddr = "10.1.2.3:5555"
	out = in.Clone(in.Context())
	f.apply(out, in)
	if got := out.Header.Get("X-Forwarded-For"); got != "1.2.3.4, 10.1.2.3" {
		t.Errorf("trusted X-Forwarded-For = %q", got)
	}
}

func TestProxyRemovesHopByHopHeaders(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)))
	req, _ := http.NewRequest("GET", engineURL("/"), nil)
	req.Header.Set("Connection", "X-Private-Hop")
	req.Header.Set("X-Private-Hop", "secret")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Connection", "keep-alive")
	seen := getSeen(t, httpClient(t, e, false), req)
	for _, h := range []string{"X-Private-Hop", "Keep-Alive", "Proxy-Connection"} {
		if v := seen.Header.Get(h); v != "" {
			t.Errorf("hop-by-hop %s reached the upstream: %q", h, v)
		}
	}
}

// countVisitors is an upstream counting requests other than health checks.
func countVisitors(n *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != config.DefaultHealthPath {
			n.Add(1)
		}
	})
}

// TestProxyMisdirectedHostGets421 sends names that only resemble the
// served one, over HTTP/1.1 and HTTP/2: a match by suffix, prefix or
// substring would let each through to the upstream.
func TestProxyMisdirectedHostGets421(t *testing.T) {
	var reached atomic.Int32
	up := httptest.NewTLSServer(countVisitors(&reached))
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	for _, h2 := range []bool{false, true} {
		c := httpClient(t, e, h2)
		for _, host := range []string{
			"other.example",
			"x." + testHostname,                   // a subdomain
			"evil" + testHostname,                 // the name as a suffix
			testHostname + ".evil",                // the name as a prefix
			testHostname + "x:443",                // the name as a prefix, with a port
			strings.TrimSuffix(testHostname, "t"), // a prefix of the name
		} {
			req, _ := http.NewRequest("GET", engineURL("/"), nil)
			req.Host = host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("h2=%v Host %q: %v", h2, host, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("h2=%v Host %q: status %d, want 421", h2, host, resp.StatusCode)
			}
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("requests for other names reached the upstream %d times", n)
	}
	// The served name itself still passes, so the 421s above are about
	// the names alone.
	resp, err := httpClient(t, e, false).Get(engineURL("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || reached.Load() != 1 {
		t.Errorf("the served name: status %d, upstream reached %d times; want 200 and once", resp.StatusCode, reached.Load())
	}
}

func TestProxyUsesKeepalivePool(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.StartTLS()
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	c := httpClient(t, e, false)
	for i := range 50 {
		resp, err := c.Get(engineURL("/"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 sequential requests opened %d upstream connections, want 1 reused", n)
	}
	if e.current().sites[0].transport.MaxIdleConnsPerHost != 256 || e.current().sites[0].transport.IdleConnTimeout != 90*time.Second {
		t.Errorf("pool: %d idle, %v idle timeout; want 256 and 90s (below authentik's 120 s)", e.current().sites[0].transport.MaxIdleConnsPerHost, e.current().sites[0].transport.IdleConnTimeout)
	}
}

// TestProxyStreamsLargeBodies sends a body larger than nginx's 1 MiB
// default limit and checks it arrives whole, and that the response streams
// to the client before the upstream has finished writing it.
func TestProxyStreamsLargeBodies(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			w.Header().Set("X-Length", strconv.FormatInt(n, 10))
			w.Write(h.Sum(nil))
			return
		}
		io.WriteString(w, "first chunk\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second chunk\n")
	}))
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	c := httpClient(t, e, false)

	body := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16) // 20 MiB
	resp, err := c.Post(engineURL("/upload"), "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := sha256.Sum256(body)
	if resp.StatusCode != 200 || !bytes.Equal(got, want[:]) || resp.Header.Get("X-Length") != strconv.Itoa(len(body)) {
		t.Fatalf("upload: status %d, length %s: the 20 MiB body did not arrive whole", resp.StatusCode, resp.Header.Get("X-Length"))
	}

	resp, err = c.Get(engineURL("/stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make([]byte, len("first chunk\n"))
	if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "first chunk\n" {
		t.Fatalf("first chunk did not stream before the response ended: %q %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second chunk\n" {
		t.Errorf("rest = %q", rest)
	}
}

func TestProxyUpstreamUnreachableGets502(t *testing.T) {
	closed := testutil.ReservePort(t) // bound, never listening: connections are refused
	cfg := testConfig(t, newEchoUpstream(t))
	cfg.Upstream, cfg.UpstreamInsecure = "http://"+closed.Addr, false
	e := startEngine(t, cfg)
	resp, err := httpClient(t, e, false).Get(engineURL("/"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(page), "not reachable") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("status %d, page %q; want 502 with an HTML page saying the app is not reachable", resp.StatusCode, page)
	}
}

func TestProxySlowUpstreamGets504(t *testing.T) {
	done := make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(done)
	cfg := testConfig(t, up)
	cfg.UpstreamTimeout = config.Duration(200 * time.Millisecond)
	e := startEngine(t, cfg)
	resp, err := httpClient(t, e, false).Get(engineURL("/slow"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(page), "too long") {
		t.Errorf("status %d, page %q; want 504 saying the app took too long", resp.StatusCode, page)
	}
}

func TestProxyOversizedHeadersRejected(t *testing.T) {
	var reached atomic.Int32
	up := httptest.NewTLSServer(countVisitors(&reached))
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	req, _ := http.NewRequest("GET", engineURL("/"), nil)
	req.Header.Set("X-Big", strings.Repeat("a", 200<<10))
	resp, err := httpClient(t, e, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || reached.Load() != 0 {
		t.Errorf("status %d, upstream reached %d times; want 431 and never", resp.StatusCode, reached.Load())
	}
}
