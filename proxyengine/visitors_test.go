package proxyengine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gorilla/websocket"
)

// tcpAddr is a connection address for admit.
func tcpAddr(ip string) net.Addr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 40000))
}

// TestVisitorConnsCountsEachVisitor: one IPv4 address or IPv6 /64 holds at
// most the limit, others are counted apart, exempt addresses are not
// counted, a release makes room once however often it runs, and refusals
// are noted once per refusalNoteEvery with the count since the last note.
func TestVisitorConnsCountsEachVisitor(t *testing.T) {
	type note struct {
		visitor  netip.Prefix
		refusals uint64
	}
	var notes []note
	v := &visitorConns{
		limit:       2,
		exempt:      func(ip netip.Addr) bool { return ip == netip.MustParseAddr("192.0.2.99") },
		refusedNote: func(visitor netip.Prefix, refusals uint64) { notes = append(notes, note{visitor, refusals}) },
	}
	admit := func(ip string) (func(), bool) { return v.admit(tcpAddr(ip)) }
	mustAdmit := func(ip string) func() {
		t.Helper()
		release, ok := admit(ip)
		if !ok {
			t.Fatalf("a connection from %s was refused", ip)
		}
		return release
	}
	mustRefuse := func(ip string) {
		t.Helper()
		if _, ok := admit(ip); ok {
			t.Fatalf("a connection from %s was admitted past the limit", ip)
		}
	}

	first := mustAdmit("2001:db8:1:2::1")
	mustAdmit("2001:db8:1:2::ffff") // the same /64
	mustRefuse("2001:db8:1:2::3")
	mustAdmit("2001:db8:1:3::1") // the next /64
	mustAdmit("198.51.100.1")
	mustAdmit("::ffff:198.51.100.1") // the same address, IPv4-mapped
	mustRefuse("198.51.100.1")
	mustAdmit("198.51.100.2")
	for range 5 {
		mustAdmit("192.0.2.99") // exempt, never counted
	}

	first()
	first() // a second release must not make a second place
	mustAdmit("2001:db8:1:2::4")
	mustRefuse("2001:db8:1:2::5")

	if got := v.refused.Load(); got != 3 {
		t.Errorf("refused %d, want 3", got)
	}
	// Three refusals within refusalNoteEvery: one note, for the first.
	if len(notes) != 1 || notes[0] != (note{netip.MustParsePrefix("2001:db8:1:2::/64"), 1}) {
		t.Fatalf("notes %v, want one for 2001:db8:1:2::/64 and 1 refusal", notes)
	}
	mustAdmit("198.51.100.2")
	v.noteMu.Lock()
	v.lastNote = v.lastNote.Add(-refusalNoteEvery)
	v.noteMu.Unlock()
	mustRefuse("198.51.100.2")
	if len(notes) != 2 || notes[1] != (note{netip.MustParsePrefix("198.51.100.2/32"), 3}) {
		t.Fatalf("notes %v, want a second for 198.51.100.2 with the 3 refusals since the first", notes)
	}

	none := &visitorConns{}
	for range 1000 {
		if _, ok := none.admit(tcpAddr("198.51.100.1")); !ok {
			t.Fatal("a limit of 0 refused a connection")
		}
	}
}

// TestVisitorConnsLimitOnlyWhenBusy: below busyAt open connections in all
// one visitor may hold more than the limit; from then on a visitor at the
// limit is refused while the others still come in, and exempt connections
// count toward busyAt.
func TestVisitorConnsLimitOnlyWhenBusy(t *testing.T) {
	v := &visitorConns{limit: 2, busyAt: 4, exempt: func(ip netip.Addr) bool { return ip.IsLoopback() }}
	var held []func()
	try := func(ip string, want bool) {
		t.Helper()
		release, ok := v.admit(tcpAddr(ip))
		if ok != want {
			t.Fatalf("a connection from %s with %d open: admitted %v, want %v", ip, v.total.Load(), ok, want)
		}
		if ok {
			held = append(held, release)
		}
	}
	for range 4 {
		try("198.51.100.1", true) // not busy: past the limit of 2
	}
	try("198.51.100.1", false) // busy, and it holds 4
	try("198.51.100.2", true)  // busy, but it holds none
	try("198.51.100.2", true)
	try("198.51.100.2", false)
	try("127.0.0.1", true) // exempt, but counted in all
	if n := v.total.Load(); n != 7 {
		t.Fatalf("%d open in all, want 7", n)
	}
	for _, release := range held[:3] { // three of the first visitor's
		release()
		release()
	}
	try("198.51.100.1", true) // busy again (5 open), and it holds 1
	try("198.51.100.1", false)
	for _, release := range held {
		release()
	}
	if n := v.total.Load(); n != 0 {
		t.Errorf("%d open after every release, want 0", n)
	}
	v.open.mu.Lock()
	defer v.open.mu.Unlock()
	if len(v.open.n) != 0 {
		t.Errorf("counts left after every release: %v", v.open.n)
	}
}

// TestExemptFromVisitorLimitsFollowsTrustedProxies: loopback is exempt,
// and the trusted proxies of the configuration being served.
func TestExemptFromVisitorLimitsFollowsTrustedProxies(t *testing.T) {
	cfg := testConfig(t, newEchoUpstream(t))
	cfg.TrustedProxies = []string{"192.0.2.0/24"}
	e := startEngine(t, cfg)
	for ip, want := range map[string]bool{"127.0.0.1": true, "::1": true, "192.0.2.7": true, "198.51.100.7": false, "2001:db8::1": false} {
		if got := e.exemptFromVisitorLimits(netip.MustParseAddr(ip)); got != want {
			t.Errorf("%s exempt: %v, want %v", ip, got, want)
		}
	}
	next := e.Config()
	next.TrustedProxies = []string{"198.51.100.0/24"}
	if err := e.Apply(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	if e.exemptFromVisitorLimits(netip.MustParseAddr("192.0.2.7")) || !e.exemptFromVisitorLimits(netip.MustParseAddr("198.51.100.7")) {
		t.Error("the exemption did not follow the trusted proxies of the new configuration")
	}
}

// TestConnectionsPerVisitorLimited: with loopback counted for the test,
// a visitor holding the limit in TLS connections is reset on both ports
// before any handshake, the refusals show in the status, the metrics and
// one event, and a closed connection makes room again.
func TestConnectionsPerVisitorLimited(t *testing.T) {
	const limit = 3
	cfg := testConfig(t, newEchoUpstream(t))
	cfg.StatusAddr = "127.0.0.1:0"
	e := startEngine(t, cfg, func(e *Engine) {
		e.limits.connsPerVisitor, e.limits.connsBusy = limit, 0 // always busy
		e.visitors.exempt = func(netip.Addr) bool { return false }
	})
	var held []net.Conn
	for range limit {
		held = append(held, dialRawTLS(t, e))
	}
	testutil.Eventually(t, "the engine tracks the held connections", func() bool { return e.tracker.count() == limit })

	d := &net.Dialer{Timeout: 5 * time.Second}
	if c, err := tlsDial(d, e.HTTPSAddr().String(), clientTLS(t, e, "http/1.1")); err == nil {
		c.Close()
		t.Fatal("a TLS connection past the limit completed its handshake")
	}
	// The reset may come before connect returns.
	if c, err := d.Dial("tcp", e.HTTPAddr().String()); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	} else if err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+testHostname+"\r\n\r\n")
		if b, _ := io.ReadAll(c); len(b) != 0 {
			t.Errorf("the plain port past the limit answered %.40q; want a reset", b)
		}
		c.Close()
	}
	if n := e.Status().ConnectionsRefused; n != 2 {
		t.Errorf("status: %d connections refused, want 2", n)
	}
	if m := metricsText(t, e); !hasMetric(m, "gatehouse_connections_refused_total 2") {
		t.Error("/metrics lacks gatehouse_connections_refused_total 2")
	}
	var notes []string
	for _, ev := range e.Status().Events {
		if ev.Kind == EventError && strings.Contains(ev.Message, "refused") {
			notes = append(notes, ev.Message)
		}
	}
	if want := fmt.Sprintf("refused 1 connection from 127.0.0.1: 0 or more connections are open, and that address already holds %d, the most one may then", limit); len(notes) != 1 || notes[0] != want {
		t.Errorf("events %q, want one starting %q", notes, want)
	}

	// One held connection goes: the engine sees its end and a new one is
	// served, over TLS and on the plain port.
	held[0].Close()
	testutil.Eventually(t, "the engine counts the closed connection out", func() bool {
		e.visitors.open.mu.Lock()
		defer e.visitors.open.mu.Unlock()
		return e.visitors.open.n[netip.MustParsePrefix("127.0.0.1/32")] == limit-1
	})
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Get("http://" + e.HTTPAddr().String() + "/")
	if err != nil {
		t.Fatalf("the plain port after a connection closed: %v", err)
	}
	resp.Body.Close()
	plain.CloseIdleConnections()
	if resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("the plain port answered %d, want 301", resp.StatusCode)
	}
	testutil.Eventually(t, "the plain connection is counted out", func() bool {
		e.visitors.open.mu.Lock()
		defer e.visitors.open.mu.Unlock()
		return e.visitors.open.n[netip.MustParsePrefix("127.0.0.1/32")] == limit-1
	})
	c := dialRawTLS(t, e)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+testHostname+"\r\nConnection: close\r\n\r\n")
	if b, _ := io.ReadAll(c); !strings.HasPrefix(string(b), "HTTP/1.1 200") {
		t.Errorf("a TLS connection after one closed got %.40q, want 200", b)
	}
}

// TestLoopbackVisitorsUnlimited: without the test's override, loopback
// connections (a local tunnel's) are not counted at all.
func TestLoopbackVisitorsUnlimited(t *testing.T) {
	e := startEngine(t, testConfig(t, newEchoUpstream(t)), func(e *Engine) {
		e.limits.connsPerVisitor, e.limits.connsBusy = 1, 0
	})
	for range 3 {
		dialRawTLS(t, e)
	}
	if n := e.Status().ConnectionsRefused; n != 0 {
		t.Errorf("%d loopback connections refused", n)
	}
	if e.Config().HTTPAddr == config.Off {
		t.Fatal("the test config has no plain port")
	}
	c, err := net.DialTimeout("tcp", e.HTTPAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+testHostname+"\r\nConnection: close\r\n\r\n")
	if b, _ := io.ReadAll(c); !strings.HasPrefix(string(b), "HTTP/1.1 301") {
		t.Errorf("the plain port answered %.40q, want 301", b)
	}
}

// TestWebSocketsCountTowardTheVisitorLimit: an open WebSocket, carried by
// the relay once open, holds its place until it closes.
func TestWebSocketsCountTowardTheVisitorLimit(t *testing.T) {
	const limit = 2
	up := newWSUpstream(t)
	e := startEngine(t, testConfig(t, up.Server), func(e *Engine) {
		e.limits.connsPerVisitor, e.limits.connsBusy = limit, 0 // always busy
		e.visitors.exempt = func(netip.Addr) bool { return false }
	})
	first, second := openWS(t, e), openWS(t, e)
	for _, c := range []*websocket.Conn{first, second} {
		c.WriteMessage(websocket.TextMessage, []byte("hello"))
		if _, m, err := c.ReadMessage(); err != nil || string(m) != "hello" {
			t.Fatalf("echo %q, %v", m, err)
		}
	}
	if c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil); err == nil {
		c.Close()
		t.Fatal("a third WebSocket opened past the limit of 2")
	}
	first.Close()
	testutil.Eventually(t, "the closed WebSocket is counted out", func() bool {
		e.visitors.open.mu.Lock()
		defer e.visitors.open.mu.Unlock()
		return e.visitors.open.n[netip.MustParsePrefix("127.0.0.1/32")] == limit-1
	})
	third := openWS(t, e)
	third.WriteMessage(websocket.TextMessage, []byte("again"))
	if _, m, err := third.ReadMessage(); err != nil || string(m) != "again" {
		t.Fatalf("echo after a place freed: %q, %v", m, err)
	}
}

// TestAdmittedConnsHalfClose: the plain port's connections still let
// net/http half-close them (it sends an answer's end with a FIN and reads
// on for a moment), as bare TCP connections did before they were counted.
func TestAdmittedConnsHalfClose(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitingListener{Listener: raw, v: &visitorConns{limit: 1}}
	defer ln.Close()
	client, err := net.DialTimeout("tcp", raw.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cw, ok := server.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("the admitted connection cannot half-close")
	}
	io.WriteString(server, "answer")
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(client); string(b) != "answer" || err != nil {
		t.Fatalf("the client read %q, %v; want the answer, then the end", b, err)
	}
	io.WriteString(client, "still sending")
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	if n, err := server.Read(buf); string(buf[:n]) != "still sending" {
		t.Fatalf("after the half-close the server read %q, %v", buf[:n], err)
	}
}
