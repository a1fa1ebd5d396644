package proxyengine

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// pausingUpstream serves the exchanges that wait longer than the send
// timeout without writing: /slow answers after pause, /events sends an
// event, pauses, then another, and /upload reads the whole body and
// reports its length.
func pausingUpstream(t *testing.T, pause time.Duration) *httptest.Server {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(pause)
			io.WriteString(w, "late")
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(pause)
			io.WriteString(w, "data: two\n\n")
		case "/upload":
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			io.WriteString(w, strings.Repeat("x", int(n)))
		}
	}))
	t.Cleanup(up.Close)
	return up
}

// trickleBody yields n chunks of "chunk" with pause between them.
type trickleBody struct {
	n     int
	pause time.Duration
}

func (b *trickleBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.pause)
	b.n--
	return copy(p, "chunk"), nil
}

// TestSendTimeoutTimesOnlyWrites checks that a response that writes nothing
// for longer than the send timeout is not cut off, on HTTP/1.1 and HTTP/2:
// a slow upstream answer, an event stream with a gap, and an upload that
// lasts several send timeouts. On HTTP/2 an expired stream write deadline
// resets the stream even with no write pending.
func TestSendTimeoutTimesOnlyWrites(t *testing.T) {
	const send = 300 * time.Millisecond
	pause := 4 * send
	e := startEngine(t, testConfig(t, pausingUpstream(t, pause)), func(e *Engine) {
		e.limits.sendTimeout = send
		e.limits.bodyTimeout = send
	})
	for _, h2 := range []bool{false, true} {
		c := httpClient(t, e, h2)
		proto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
		t.Run(proto+" slow answer", func(t *testing.T) {
			resp, err := c.Get(engineURL("/slow"))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "late" || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
				t.Errorf("%s %d %q, %v; want the late answer", resp.Proto, resp.StatusCode, body, err)
			}
		})
		t.Run(proto+" event stream with a gap", func(t *testing.T) {
			resp, err := c.Get(engineURL("/events"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var events []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if line := sc.Text(); line != "" {
					events = append(events, line)
				}
			}
			if strings.Join(events, ",") != "data: one,data: two" || sc.Err() != nil {
				t.Errorf("events %q, %v; want both", events, sc.Err())
			}
		})
		t.Run(proto+" long upload", func(t *testing.T) {
			req, _ := http.NewRequest("POST", engineURL("/upload"), &trickleBody{n: 10, pause: send / 2})
			req.ContentLength = -1
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || len(body) != 10*len("chunk") {
				t.Errorf("status %d, %d bytes, %v; want the 50 bytes uploaded", resp.StatusCode, len(body), err)
			}
			if took := time.Since(start); took < 3*send {
				t.Errorf("upload took only %v, not several send timeouts", took)
			}
		})
	}
}

// stallingUpstream reads each request's body to the end and reports how
// many requests it is handling at the moment.
type stallingUpstream struct {
	*httptest.Server
	active, peak atomic.Int32
}

func newStallingUpstream(t *testing.T) *stallingUpstream {
	u := &stallingUpstream{}
	u.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == config.DefaultHealthPath {
			return
		}
		n := u.active.Add(1)
		defer u.active.Add(-1)
		for p := u.peak.Load(); n > p && !u.peak.CompareAndSwap(p, n); p = u.peak.Load() {
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			// The body never came whole: an app answers nothing then. (A
			// 200 written after the proxy gave up on the body could race
			// its 408 to the visitor, and a test would see either.)
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ok")
	}))
	u.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(u.Close)
	return u
}

// TestBodyTimeout checks that a visitor that announces a body and stops
// sending it is answered 408 after the body timeout, over HTTP/1.1 and
// HTTP/2, and that neither that nor a malformed chunked body counts as an
// upstream failure.
func TestBodyTimeout(t *testing.T) {
	up := newStallingUpstream(t)
	const bodyTimeout = 500 * time.Millisecond
	e := startEngine(t, testConfig(t, up.Server), func(e *Engine) { e.limits.bodyTimeout = bodyTimeout })
	const host = "Host: " + testHostname + "\r\n"

	t.Run("HTTP/1.1 stalled body", func(t *testing.T) {
		start := time.Now()
		resp := rawExchange(t, e, "POST /upload HTTP/1.1\r\n"+host+"Content-Length: 1000000\r\n\r\nabc")
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("status %d, want 408", resp.StatusCode)
		}
		if took := time.Since(start); took < bodyTimeout {
			t.Errorf("answered after %v, before the body timeout", took)
		}
	})
	t.Run("HTTP/1.1 malformed chunk", func(t *testing.T) {
		resp := rawExchange(t, e, "POST /upload HTTP/1.1\r\n"+host+"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
	t.Run("HTTP/2 stalled body", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go pw.Write([]byte("abc"))
		req, _ := http.NewRequest("POST", engineURL("/upload"), pr)
		req.ContentLength = 1000000
		resp, err := httpClient(t, e, true).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("%s %d, want HTTP/2 408", resp.Proto, resp.StatusCode)
		}
	})
	if n := e.tracker.upstreamErrors.Load(); n != 0 {
		t.Errorf("%d upstream errors counted for the visitors' faults", n)
	}
	testutil.Eventually(t, "the upstream has no request left", func() bool { return up.active.Load() == 0 })
}

// TestUpstreamRequestsPerVisitor has one visitor open more stalled uploads
// than it may have in flight: the surplus is refused at once with 429,
// other visitors are served meanwhile, and the body timeout frees the
// upstream connections the stalled ones held. Every test client is on
// loopback, which is not limited; the visitors here come through a
// trusted proxy on 127.0.0.1, which names them in X-Forwarded-For.
func TestUpstreamRequestsPerVisitor(t *testing.T) {
	up := newStallingUpstream(t)
	const perVisitor, attackers = 4, 7
	cfg := testConfig(t, up.Server)
	cfg.TrustedProxies = []string{"127.0.0.0/8"}
	e := startEngine(t, cfg, func(e *Engine) {
		e.limits.perVisitor = perVisitor
		e.limits.bodyTimeout = 2 * time.Second
	})
	statuses := make(chan int, attackers)
	for i := range attackers {
		c := dialRawTLS(t, e)
		// One IPv6 host, however it varies the address within its /64.
		xff := fmt.Sprintf("2001:db8:1:2::%x", i+1)
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: "+testHostname+"\r\nX-Forwarded-For: "+xff+"\r\nContent-Length: 1000000\r\n\r\n")
		go func() {
			c.SetReadDeadline(time.Now().Add(cutOffBound))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	refused := 0
	for range attackers - perVisitor {
		if s := <-statuses; s == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != attackers-perVisitor {
		t.Fatalf("%d of the first %d answers were 429", refused, attackers-perVisitor)
	}
	if n := up.active.Load(); n != perVisitor {
		t.Errorf("the upstream handles %d requests, want %d", n, perVisitor)
	}

	// Another visitor, and a loopback one, are served while the first
	// holds its share.
	for _, xff := range []string{"2001:db8:1:3::1", "198.51.100.9", ""} {
		req, _ := http.NewRequest("POST", engineURL("/other"), strings.NewReader("hi"))
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := httpClient(t, e, false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("visitor %q got %d", xff, resp.StatusCode)
		}
	}
	for range perVisitor {
		if s := <-statuses; s != http.StatusRequestTimeout {
			t.Errorf("a stalled upload got %d, want 408", s)
		}
	}
	testutil.Eventually(t, "the upstream has no request left", func() bool { return up.active.Load() == 0 })
	if p := up.peak.Load(); p > perVisitor+3 {
		t.Errorf("the upstream handled %d requests at once, want at most %d", p, perVisitor+3)
	}
}

// dialH2 opens an HTTP/2 connection to e and sends the client preface
// with an empty SETTINGS frame, for tests that speak frames themselves.
func dialH2(t *testing.T, e *Engine) *http2.Framer {
	t.Helper()
	c, err := tlsDial(&net.Dialer{Timeout: 5 * time.Second}, e.HTTPSAddr().String(), clientTLS(t, e, "h2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	return fr
}

// TestHTTP2MaxConcurrentStreams reads the SETTINGS the engine sends an
// HTTP/2 client and checks the stream limit, and that WebSockets over
// HTTP/2 are not offered.
func TestHTTP2MaxConcurrentStreams(t *testing.T) {
	fr := dialH2(t, startEngine(t, testConfig(t, newEchoUpstream(t))))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	settings, ok := f.(*http2.SettingsFrame)
	if !ok || settings.IsAck() {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if streams, _ := settings.Value(http2.SettingMaxConcurrentStreams); streams != http2MaxStreams || http2MaxStreams > 128 {
		t.Errorf("MAX_CONCURRENT_STREAMS %d, want %d (at most 128, as nginx)", streams, http2MaxStreams)
	}
	// ENABLE_CONNECT_PROTOCOL (RFC 8441) would have browsers open
	// WebSockets over HTTP/2, which the proxy refuses (CONNECT); Go keeps
	// it off unless GODEBUG=http2xconnect=1.
	if v, _ := settings.Value(http2.SettingEnableConnectProtocol); v != 0 {
		t.Errorf("the engine offers WebSockets over HTTP/2 (ENABLE_CONNECT_PROTOCOL %d), which it does not relay", v)
	}
}

// TestHTTP2FramesOver16KiBRefused: the engine announces a 16 KiB frame
// limit, takes a header block of exactly 16 KiB in one frame, and hangs up
// with FRAME_SIZE_ERROR on one a byte larger instead of reading it.
func TestHTTP2FramesOver16KiBRefused(t *testing.T) {
	fr := dialH2(t, startEngine(t, testConfig(t, newEchoUpstream(t))))

	// headerBlock encodes a GET with a padding field that makes the
	// block exactly size bytes. HPACK's Huffman code spends 5 bits on an
	// "a", so the search starts a little below size*8/5 letters.
	headerBlock := func(size int) []byte {
		for pad := size*8/5 - 256; pad < size*8/5+256; pad++ {
			var b bytes.Buffer
			enc := hpack.NewEncoder(&b)
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", testHostname}, {":path", "/"},
				{"x-pad", strings.Repeat("a", pad)}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			if b.Len() == size {
				return b.Bytes()
			}
		}
		t.Fatalf("no padding makes a %d-byte header block", size)
		return nil
	}
	// next reads frames until one for stream 0 or id that is not SETTINGS.
	next := func(id uint32) http2.Frame {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("reading frames: %v", err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					if v, ok := f.Value(http2.SettingMaxFrameSize); !ok || v != 16<<10 {
						t.Errorf("SETTINGS_MAX_FRAME_SIZE %d (sent: %v), want 16384", v, ok)
					}
					fr.WriteSettingsAck()
				}
				continue
			case *http2.WindowUpdateFrame:
				continue
			}
			if h := f.Header(); h.StreamID == id || h.StreamID == 0 {
				return f
			}
		}
	}

	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(16 << 10), EndStream: true, EndHeaders: true})
	if f, ok := next(1).(*http2.HeadersFrame); !ok {
		t.Fatalf("a 16 KiB header block: got %v, want the answer's HEADERS", f)
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: headerBlock(16<<10 + 1), EndStream: true, EndHeaders: true})
	for {
		switch f := next(3).(type) {
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeFrameSize {
				t.Fatalf("GOAWAY %v, want FRAME_SIZE_ERROR", f.ErrCode)
			}
			return
		case *http2.HeadersFrame:
			t.Fatal("a header block over 16 KiB in one frame was answered")
		}
	}
}

// TestHostCanonical sends the public name spelled in different ways: the
// upstream always receives the configured name and public port in Host and
// X-Forwarded-Host, and a malformed Host is refused with 400.
func TestHostCanonical(t *testing.T) {
	up := newRecordingUpstream(t)
	cfg := testConfig(t, up.Server)
	cfg.PublicHTTPSPort = 8443
	e := startEngine(t, cfg)
	const canonical = testHostname + ":8443"
	for _, tc := range []struct {
		host   string
		status int
	}{
		{testHostname, 200},
		{"GATEHOUSE.Test", 200},
		{testHostname + ".", 200},
		{testHostname + ":443", 200},
		{testHostname + ":", 200},
		{"Gatehouse.test.:8443", 200},
		{testHostname + ":abc", 400},
		{testHostname + ":99999", 400},
		{testHostname + ":-1", 400},
		{testHostname + ":+443", 400},
		{testHostname + ":443:443", 400},
		{"[" + testHostname + "]:443", 400},
		{"[" + testHostname + "]", 400},
		{"[::1]:443", 421},
		{"::1", 400},
		{"other.example:443", 421},
		{testHostname + "..", 421},
	} {
		resp := rawExchange(t, e, "GET /x HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n")
		hits := up.take()
		if resp.StatusCode != tc.status {
			t.Errorf("Host %q: status %d, want %d", tc.host, resp.StatusCode, tc.status)
		}
		if tc.status != 200 {
			if len(hits) != 0 {
				t.Errorf("Host %q reached the upstream", tc.host)
			}
			continue
		}
		if len(hits) != 1 || hits[0].host != canonical || hits[0].header.Get("X-Forwarded-Host") != canonical {
			t.Errorf("Host %q: upstream saw %+v, want Host and X-Forwarded-Host %q", tc.host, hits, canonical)
		}
	}
	// HTTP/2's :authority, through a browser-like client.
	req, _ := http.NewRequest("GET", engineURL("/x"), nil)
	req.Host = "GATEHOUSE.TEST.:443"
	resp, err := httpClient(t, e, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits := up.take(); resp.ProtoMajor != 2 || len(hits) != 1 || hits[0].host != canonical {
		t.Errorf("HTTP/2 %d: upstream saw %+v, want Host %q", resp.StatusCode, hits, canonical)
	}
}

// FuzzRequestHost sends a request with any Host through the engine's router:
// it is either refused or reaches the upstream with the configured Host and
// X-Forwarded-Host, never the visitor's spelling. requestHostName must
// accept exactly what names the configured host, case and a trailing dot
// aside, with a port of at most 65535 digits-only.
func FuzzRequestHost(f *testing.F) {
	for _, s := range []string{"sso.example.com", "SSO.example.COM.:443", "sso.example.com:abc", "sso.example.com:99999",
		"[sso.example.com]:443", "[::1]:8443", "sso.example.com:", "\u212aey.example.com", "sso.example.com:0443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		p := fuzzProxyHandler(forwarding{})
		p.limits.perVisitor = 1
		var proxied *http.Request
		p.rp.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			proxied = r
			return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
		})
		in := httptest.NewRequest("GET", "https://sso.example.com/", nil)
		in.Host = host
		rec := httptest.NewRecorder()
		g := &generation{byName: map[string]*siteRun{"sso.example.com": {proxy: p}}}
		g.ServeHTTP(rec, in)

		name, err := requestHostName(host)
		matches := err == nil && name == "sso.example.com"
		if proxied == nil {
			if matches {
				t.Fatalf("Host %q names this host but was refused with %d", host, rec.Code)
			}
			return
		}
		if !matches {
			t.Fatalf("Host %q (parsed %q, %v) reached the upstream", host, name, err)
		}
		if proxied.Host != "sso.example.com" || proxied.Header.Get("X-Forwarded-Host") != "sso.example.com" {
			t.Fatalf("Host %q reached the upstream as %q, X-Forwarded-Host %q", host, proxied.Host, proxied.Header.Get("X-Forwarded-Host"))
		}
		// The oracle: the name part equals the configured one ignoring ASCII
		// case and one trailing dot, and any port is 0-65535 in digits.
		h, port, found := strings.Cut(host, ":")
		if !strings.EqualFold(strings.TrimSuffix(h, "."), "sso.example.com") || strings.ContainsFunc(h, func(r rune) bool { return r >= 0x80 }) {
			t.Fatalf("Host %q was taken for sso.example.com", host)
		}
		if found && port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || strings.Trim(port, "0123456789") != "" {
				t.Fatalf("Host %q with port %q was accepted", host, port)
			}
		}
	})
}

// TestQueryPassesByteForByte checks that queries Go's url.ParseQuery
// refuses reach the upstream exactly as sent, over HTTP/1.1 and HTTP/2.
func TestQueryPassesByteForByte(t *testing.T) {
	up := newRecordingUpstream(t)
	e := startEngine(t, testConfig(t, up.Server))
	for _, target := range []string{
		"/q?state=abc;def&code=1",
		"/q?%zz",
		"/q?a=%20+b&&x=%2F;y",
		"/q?",
		"/q?next=/if/flow/%3Fa%3Db;c&x",
	} {
		resp := rawExchange(t, e, "GET "+target+" HTTP/1.1\r\nHost: "+testHostname+"\r\n\r\n")
		if hits := up.take(); resp.StatusCode != 200 || len(hits) != 1 || hits[0].uri != target {
			t.Errorf("HTTP/1.1 %q: status %d, upstream saw %+v", target, resp.StatusCode, hits)
		}
		req, _ := http.NewRequest("GET", engineURL("/"), nil)
		req.URL.Opaque = "//" + testHostname + target // sent as written
		resp, err := httpClient(t, e, true).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if hits := up.take(); resp.StatusCode != 200 || len(hits) != 1 || hits[0].uri != target {
			t.Errorf("HTTP/2 %q: status %d, upstream saw %+v", target, resp.StatusCode, hits)
		}
	}
}

// TestUnderscoreHeadersDropped checks that header names with "_" do not
// reach the upstream, on proxied requests over HTTP/1.1 and HTTP/2 and on
// WebSocket upgrades.
func TestUnderscoreHeadersDropped(t *testing.T) {
	up := newRecordingUpstream(t)
	e := startEngine(t, testConfig(t, up.Server))
	resp := rawExchange(t, e, "GET / HTTP/1.1\r\nHost: "+testHostname+"\r\nX_Forwarded_For: 7.7.7.7\r\nx_real_ip: 7.7.7.7\r\nX-Kept: 1\r\n\r\n")
	hits := up.take()
	if resp.StatusCode != 200 || len(hits) != 1 {
		t.Fatalf("status %d, %d hits", resp.StatusCode, len(hits))
	}
	checkNoUnderscores := func(what string, h http.Header) {
		t.Helper()
		for k, v := range h {
			if strings.Contains(k, "_") {
				t.Errorf("%s: %s %q reached the upstream", what, k, v)
			}
		}
		if h.Get("X-Kept") != "1" || h.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Errorf("%s: upstream headers %v", what, h)
		}
	}
	checkNoUnderscores("HTTP/1.1", hits[0].header)

	req, _ := http.NewRequest("GET", engineURL("/"), nil)
	req.Header["x_forwarded_for"] = []string{"7.7.7.7"}
	req.Header.Set("X-Kept", "1")
	resp, err := httpClient(t, e, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hits = up.take()
	if resp.ProtoMajor != 2 || len(hits) != 1 {
		t.Fatalf("%s, %d hits", resp.Proto, len(hits))
	}
	checkNoUnderscores("HTTP/2", hits[0].header)

	// The WebSocket path builds its upgrade request itself.
	p := fuzzProxyHandler(forwarding{})
	in := httptest.NewRequest("GET", "https://sso.example.com/ws", nil)
	in.RemoteAddr = "127.0.0.1:5555"
	in.Header.Set("Connection", "Upgrade")
	in.Header.Set("Upgrade", "websocket")
	in.Header["X_Forwarded_For"] = []string{"7.7.7.7"}
	in.Header.Set("X-Kept", "1")
	checkNoUnderscores("WebSocket upgrade", p.ws.upgradeRequest(in).Header)
}

// TestRedirectNeverNamesAnotherHost sends request targets in absolute and
// opaque form to the plain-HTTP port: every Location continues the
// configured host with "/", and a target without a path is refused.
func TestRedirectNeverNamesAnotherHost(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)))
	base := "https://" + testHostname + "/"
	for _, tc := range []struct {
		method, target string
		location       string // "" when the answer must be no redirect
	}{
		{"GET", "http:@evil.com/x", ""},
		{"GET", "http:evil.com", ""},
		{"GET", "https:@evil.com", ""},
		{"OPTIONS", "*", ""}, // net/http answers it itself
		{"GET", "http://evil.com@" + testHostname + "/x?y=1;2", base + "x?y=1;2"},
		{"GET", "http://" + testHostname, base},
		{"GET", "http://" + testHostname + "?q", base + "?q"},
		{"GET", "//evil.com/x", base + "/evil.com/x"},
		{"GET", "/a%2Fb?%zz", base + "a%2Fb?%zz"},
	} {
		c, err := net.DialTimeout("tcp", e.HTTPAddr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, tc.method+" "+tc.target+" HTTP/1.1\r\nHost: "+testHostname+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.target, err)
		}
		loc := resp.Header.Get("Location")
		switch {
		case tc.location == "" && (resp.StatusCode != 400 && tc.method != "OPTIONS" || loc != ""):
			t.Errorf("%s %s: %d Location %q, want 400", tc.method, tc.target, resp.StatusCode, loc)
		case tc.location != "" && (resp.StatusCode != 301 || loc != tc.location):
			t.Errorf("%s %s: %d Location %q, want 301 to %q", tc.method, tc.target, resp.StatusCode, loc, tc.location)
		}
		if loc != "" && !strings.HasPrefix(loc, base) {
			t.Errorf("%s %s: Location %q leaves %s", tc.method, tc.target, loc, base)
		}
	}
}

// TestStatusRefusesOtherHostsAndSites reads the status endpoint as a DNS
// rebinding page would (its own name as Host) and as a cross-site page
// would (Sec-Fetch-Site): both are refused, direct clients are served.
func TestStatusRefusesOtherHostsAndSites(t *testing.T) {
	cfg := testConfig(t, newEchoUpstream(t))
	cfg.StatusAddr = "127.0.0.1:0"
	e := startEngine(t, cfg)
	_, port, _ := net.SplitHostPort(e.StatusAddr().String())
	for _, tc := range []struct {
		host, site string
		status     int
	}{
		{"127.0.0.1:" + port, "", 200},
		{"localhost:" + port, "", 200},
		{"LOCALHOST.:" + port, "none", 200},
		{"[::1]:" + port, "same-origin", 200},
		{"127.0.0.1:" + port, "cross-site", 403},
		{"127.0.0.1:" + port, "same-site", 403},
		{"rebind.attacker.example:" + port, "", 421},
		{"localhost.attacker.example:" + port, "same-origin", 421},
		{"127.0.0.1.nip.io:" + port, "", 421},
		{"[localhost]:" + port, "", 421},
	} {
		for _, path := range []string{"/status", "/metrics"} {
			c, err := net.DialTimeout("tcp", e.StatusAddr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			req := "GET " + path + " HTTP/1.1\r\nHost: " + tc.host + "\r\n"
			if tc.site != "" {
				req += "Sec-Fetch-Site: " + tc.site + "\r\n"
			}
			io.WriteString(c, req+"\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("%s with Host %q, Sec-Fetch-Site %q: status %d, want %d", path, tc.host, tc.site, resp.StatusCode, tc.status)
			}
		}
	}
	// A status address given by name also answers to that name.
	h := statusGuard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), "Monitor.LAN")
	for host, want := range map[string]int{"monitor.lan:9180": 200, "other.lan:9180": 421} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/status", nil)
		r.Host = host
		h.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("status address monitor.lan, Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}

// TestTLSOffersOnlyModernParameters handshakes with single cipher suites
// and curves: only ECDHE with AEAD suites in TLS 1.2 and the curves
// X25519MLKEM768, X25519, P-256 and P-384 are accepted.
func TestTLSOffersOnlyModernParameters(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)))
	handshake := func(cfg *tls.Config) (tls.ConnectionState, error) {
		raw, err := net.DialTimeout("tcp", e.HTTPSAddr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Client(raw, cfg)
		err = c.Handshake()
		return c.ConnectionState(), err
	}
	tls12 := func(suite uint16) *tls.Config {
		c := clientTLS(t, e)
		c.MinVersion, c.MaxVersion, c.CipherSuites = tls.VersionTLS12, tls.VersionTLS12, []uint16{suite}
		return c
	}
	good := map[uint16]bool{}
	for _, s := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	} {
		good[s] = true
	}
	// An RSA certificate (files, ACME) would allow the RSA suites: the
	// configured list must hold no others than the good ones.
	suites := serverTLSConfig(nil, nil).CipherSuites
	if len(suites) == 0 {
		t.Error("no cipher suites configured: Go's defaults include CBC and RSA key exchange")
	}
	for _, id := range suites {
		if !good[id] {
			t.Errorf("%s is configured", tls.CipherSuiteName(id))
		}
	}
	all := append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
	for _, s := range all {
		if slices.Contains(s.SupportedVersions, tls.VersionTLS13) {
			continue
		}
		_, err := handshake(tls12(s.ID))
		switch {
		case good[s.ID] && strings.Contains(s.Name, "ECDSA") && err != nil:
			// The local CA's leaf is ECDSA, so only the ECDSA suites can
			// complete; the RSA ones are checked by the absence of others.
			t.Errorf("TLS 1.2 with %s: %v", s.Name, err)
		case !good[s.ID] && err == nil:
			t.Errorf("TLS 1.2 with %s was accepted", s.Name)
		}
	}
	for _, tc := range []struct {
		curve tls.CurveID
		ok    bool
	}{{tls.X25519MLKEM768, true}, {tls.X25519, true}, {tls.CurveP256, true}, {tls.CurveP384, true}, {tls.CurveP521, false}} {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			if tc.curve == tls.X25519MLKEM768 && v == tls.VersionTLS12 {
				continue // a TLS 1.3 group only
			}
			c := clientTLS(t, e)
			c.MinVersion, c.MaxVersion, c.CurvePreferences = v, v, []tls.CurveID{tc.curve}
			st, err := handshake(c)
			if (err == nil) != tc.ok {
				t.Errorf("%v over TLS %x: accepted %v, want %v (%v)", tc.curve, v, err == nil, tc.ok, err)
			}
			if err == nil && st.CurveID != tc.curve {
				t.Errorf("%v over TLS %x: negotiated %v", tc.curve, v, st.CurveID)
			}
		}
	}
}

// TestHSTS checks the Strict-Transport-Security defaults per certificate
// source, the accepted values, and the header on the wire: set for the
// configured name only, replacing the upstream's own.
func TestHSTS(t *testing.T) {
	for _, tc := range []struct {
		tls        config.TLSSource
		hsts, want string
		bad        bool
	}{
		{config.TLSACME, "", "max-age=63072000", false},
		{config.TLSFiles, "", "max-age=63072000", false},
		{config.TLSSelfSigned, "", "", false},
		{config.TLSSelfSigned, "on", "max-age=63072000", false},
		{config.TLSACME, "off", "", false},
		{config.TLSACME, "OFF", "", false},
		{config.TLSACME, "730d", "max-age=63072000", false},
		{config.TLSACME, "8760h", "max-age=31536000", false},
		{config.TLSACME, "300", "max-age=300", false},
		{config.TLSACME, "sometimes", "", true},
		{config.TLSACME, "-5d", "", true},
		{config.TLSACME, "0", "", true},
		{config.TLSACME, "0d", "", true},
		{config.TLSACME, "1e9d", "", true},
		{config.TLSACME, "max-age=1; includeSubDomains", "", true},
	} {
		cfg := config.Config{TLS: tc.tls, HSTS: tc.hsts}
		got, err := cfg.HSTSHeader()
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("tls %s, hsts %q: %q, %v; want %q (error %v)", tc.tls, tc.hsts, got, err, tc.want, tc.bad)
		}
		if fe := config.FieldErrors(cfg.Validate()).For("hsts"); (fe != nil) != tc.bad {
			t.Errorf("tls %s, hsts %q: validation error %v", tc.tls, tc.hsts, fe)
		}
	}

	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=5; includeSubDomains; preload")
	}))
	t.Cleanup(up.Close)
	get := func(e *Engine, host string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", engineURL("/"), nil)
		req.Host = host
		resp, err := httpClient(t, e, true).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	selfSigned := startEngine(t, testConfig(t, up))
	if v := get(selfSigned, testHostname).Header.Values("Strict-Transport-Security"); len(v) != 1 || v[0] != "max-age=5; includeSubDomains; preload" {
		t.Errorf("self-signed default: %q, want the upstream's own header alone", v)
	}
	cfg := testConfig(t, up)
	cfg.HSTS = "on"
	on := startEngine(t, cfg)
	if v := get(on, testHostname).Header.Values("Strict-Transport-Security"); len(v) != 1 || v[0] != "max-age=63072000" {
		t.Errorf("hsts on: %q, want max-age=63072000 alone", v)
	}
	if resp := get(on, "other.example"); resp.StatusCode != 421 || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("another name: %d with HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	// A WebSocket upgrade the upstream refuses: its answer is relayed,
	// with Gatehouse's HSTS in place of its own.
	_, resp, err := wsDialer(t, on).Dial(wsURL("/ws/"), nil)
	if err == nil || resp == nil {
		t.Fatalf("an upgrade the upstream answered 200: %v", err)
	}
	if v := resp.Header.Values("Strict-Transport-Security"); len(v) != 1 || v[0] != "max-age=63072000" {
		t.Errorf("relayed refusal of an upgrade, hsts on: %q, want max-age=63072000 alone", v)
	}
}

// TestStateAndConfigDirsKeepTheirModes checks that Gatehouse sets modes
// only on what it creates: existing directories (a shared /tmp-like one, an
// /etc-like one holding the config, a folder picked for an export, a
// symlinked state dir's target) keep theirs, and a state dir or config file
// others can write or another user owns is refused.
func TestStateAndConfigDirsKeepTheirModes(t *testing.T) {
	root := t.TempDir()
	mkdir := func(name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	modeOf := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode() & (os.ModePerm | os.ModeSticky)
	}

	// A missing state dir and its parents are created 0700.
	fresh := filepath.Join(root, "new", "state")
	if err := privatefile.EnsureDir(fresh); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fresh, filepath.Dir(fresh)} {
		if m := modeOf(p); m != 0o700 {
			t.Errorf("created %s with mode %v, want 0700", p, m)
		}
	}

	// An existing state dir of this user, readable by others, is used as is.
	shared := mkdir("readable", 0o755)
	if err := privatefile.EnsureDir(shared); err != nil {
		t.Errorf("state dir 0755: %v", err)
	}
	if m := modeOf(shared); m != 0o755 {
		t.Errorf("state dir 0755 became %v", m)
	}

	// A symlinked state dir: its target keeps its mode.
	target := mkdir("target", 0o750)
	link := filepath.Join(root, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := privatefile.EnsureDir(link); err != nil {
		t.Errorf("symlinked state dir: %v", err)
	}
	if m := modeOf(target); m != 0o750 {
		t.Errorf("the symlink's target became %v", m)
	}

	// A /tmp-like dir is refused and keeps its sticky bit.
	tmp := mkdir("tmp", 0o777|os.ModeSticky)
	err := privatefile.EnsureDir(tmp)
	if err == nil || !strings.Contains(err.Error(), "written by other users") || !strings.Contains(err.Error(), "1777") {
		t.Errorf("state dir 1777: %v, want a refusal naming the mode", err)
	}
	if m := modeOf(tmp); m != 0o777|os.ModeSticky {
		t.Errorf("state dir 1777 became %v", m)
	}
	if err := privatefile.EnsureDir(mkdir("groupwritable", 0o770)); err == nil {
		t.Error("a group-writable state dir was accepted")
	}

	// Writing a config file into /etc-like dir or an export into a folder
	// the user picked leaves the folder alone.
	etc := mkdir("etc", 0o755)
	if err := config.Save(filepath.Join(etc, "gatehouse.json"), config.Config{Hostname: "sso.example.com"}); err != nil {
		t.Fatal(err)
	}
	downloads := mkdir("downloads", 0o775)
	if err := privatefile.Write(filepath.Join(downloads, "nginx.conf"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m := modeOf(etc); m != 0o755 {
		t.Errorf("saving the config changed its directory to %v", m)
	}
	if m := modeOf(downloads); m != 0o775 {
		t.Errorf("exporting changed the folder to %v", m)
	}
	cfgPath := filepath.Join(etc, "gatehouse.json")
	if m := modeOf(cfgPath); m != 0o600 {
		t.Errorf("config written with mode %v", m)
	}
	if _, err := config.Load(cfgPath); err != nil {
		t.Errorf("loading the config: %v", err)
	}
	// A config file others can write is refused.
	os.Chmod(cfgPath, 0o666)
	if _, err := config.Load(cfgPath); err == nil || !strings.Contains(err.Error(), "written by other users") {
		t.Errorf("config 0666 loaded: %v", err)
	}
	os.Chmod(cfgPath, 0o644)

	// Another user's state dir or config file is refused (needs root to
	// give them away).
	if os.Geteuid() != 0 {
		t.Log("not root: the other-owner cases are skipped")
		return
	}
	theirs := mkdir("theirs", 0o700)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := privatefile.EnsureDir(theirs); err == nil || !strings.Contains(err.Error(), "another user") {
		t.Errorf("another user's state dir: %v", err)
	}
	if err := os.Chown(cfgPath, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(cfgPath); err == nil || !strings.Contains(err.Error(), "another user") {
		t.Errorf("another user's config: %v", err)
	}
}

// TestWebSocketHandshakeChecked sends malformed upgrade requests (no key, a
// short key, another version, a body): none reaches the upstream. An
// upstream that answers 101 without the right Sec-WebSocket-Accept gets
// no tunnel.
func TestWebSocketHandshakeChecked(t *testing.T) {
	up := newRecordingUpstream(t)
	e := startEngine(t, testConfig(t, up.Server))
	const head = "GET /ws/client/ HTTP/1.1\r\nHost: " + testHostname + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
	const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	const v13 = "Sec-WebSocket-Version: 13\r\n"
	for _, tc := range []struct {
		name, request string
		status        int
	}{
		{"no key", head + v13 + "\r\n", 400},
		{"short key", head + "Sec-WebSocket-Key: c2hvcnQ=\r\n" + v13 + "\r\n", 400},
		{"two keys", head + key + key + v13 + "\r\n", 400},
		{"no version", head + key + "\r\n", 426},
		{"version 8", head + key + "Sec-WebSocket-Version: 8\r\n\r\n", 426},
		{"a body", head + key + v13 + "Content-Length: 5\r\n\r\nhello", 400},
		{"a chunked body", head + key + v13 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
	} {
		resp := rawExchange(t, e, tc.request)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if hits := up.take(); len(hits) != 0 {
			t.Errorf("%s: reached the upstream as %+v", tc.name, hits)
		}
	}

	// An upstream that answers 101 to anything, with a wrong Accept, and
	// then streams bytes of its own.
	liar := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == config.DefaultHealthPath {
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\nraw tunnel bytes")
		brw.Flush()
		time.Sleep(time.Second)
	}))
	t.Cleanup(liar.Close)
	e2 := startEngine(t, testConfig(t, liar))
	conn, resp, err := wsDialer(t, e2).Dial(wsURL("/ws/client/"), nil)
	if err == nil {
		conn.Close()
		t.Fatal("the WebSocket opened through an upstream with a wrong Sec-WebSocket-Accept")
	}
	if resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("handshake answer %v, want 502", resp)
	}
}

// TestUpstreamResponseHeadersCapped has the upstream answer with 100 KiB of
// headers, to a request and to a WebSocket upgrade: the visitor gets 502.
func TestUpstreamResponseHeadersCapped(t *testing.T) {
	big := strings.Repeat("a", 100<<10)
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == config.DefaultHealthPath {
			return
		}
		if r.Header.Get("Upgrade") != "" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Big: " + big + "\r\n")
			brw.WriteString("Sec-WebSocket-Accept: " + wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
			brw.Flush()
			return
		}
		w.Header().Set("X-Big", big)
	}))
	t.Cleanup(up.Close)
	e := startEngine(t, testConfig(t, up))
	resp, err := httpClient(t, e, false).Get(engineURL("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("100 KiB of upstream headers: status %d, want 502", resp.StatusCode)
	}
	conn, wsResp, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
	if err == nil {
		conn.Close()
		t.Fatal("a WebSocket opened behind 100 KiB of upstream headers")
	}
	if wsResp == nil || wsResp.StatusCode != http.StatusBadGateway {
		t.Errorf("WebSocket handshake answer %v, want 502", wsResp)
	}
}
