package proxyengine

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gorilla/websocket"
)

// statusJSON fetches GET /status from the engine's status endpoint.
func statusJSON(t *testing.T, e *Engine) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + e.StatusAddr().String() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// metricsText fetches GET /metrics.
func metricsText(t *testing.T, e *Engine) string {
	t.Helper()
	resp, err := http.Get("http://" + e.StatusAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// hasMetric reports whether the exposition has the sample line exactly.
func hasMetric(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func startStatusEngine(t *testing.T) (*Engine, *wsUpstream) {
	up := newWSUpstream(t)
	cfg := testConfig(t, up.Server)
	cfg.StatusAddr = "127.0.0.1:0"
	return startEngine(t, cfg), up
}

// TestStatusShowsExactlyTheOpenConnections holds 3 keepalive connections
// (one of them HTTP/2) and 2 WebSockets and checks the snapshot, /status
// and /metrics agree, then that all fall to zero when the clients leave,
// one WebSocket vanishing without a close frame.
func TestStatusShowsExactlyTheOpenConnections(t *testing.T) {
	e, up := startStatusEngine(t)
	const keepalive, sockets = 3, 2

	var clients []*http.Client
	for range keepalive {
		c := httpClient(t, e, len(clients) == 0) // each client has its own connection
		resp, err := c.Get(engineURL("/if/admin/"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		clients = append(clients, c)
	}
	var conns []*websocket.Conn
	for i := range sockets {
		c, _, err := wsDialer(t, e).Dial(wsURL(fmt.Sprintf("/ws/outpost/%d/", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteMessage(websocket.TextMessage, []byte("hello"))
		c.ReadMessage()
		conns = append(conns, c)
	}
	// The echoes came back through open sessions, so each WebSocket's
	// connection shows its 101 already, though its handler may not have
	// returned yet.
	st := e.Status()
	if st.ActiveConnections != keepalive+sockets || st.ActiveWebSockets != sockets || len(st.WebSockets) != sockets {
		t.Fatalf("snapshot: %d connections, %d websockets; want %d and %d", st.ActiveConnections, st.ActiveWebSockets, keepalive+sockets, sockets)
	}
	var wsFlagged int
	protocols := map[string]int{}
	for _, c := range st.Connections {
		protocols[c.Protocol]++
		if c.WebSocket {
			wsFlagged++
			if c.Protocol != "WebSocket" || !strings.HasPrefix(c.Path, "/ws/outpost/") || c.Status != 101 || !c.Active {
				t.Errorf("websocket connection %+v", c)
			}
		} else if c.Path != "/if/admin/" || c.Status != 200 || c.Active || c.ServerName != testHostname {
			t.Errorf("keepalive connection %+v", c)
		}
		if c.BytesIn == 0 || c.BytesOut == 0 || !strings.HasPrefix(c.Remote, "127.0.0.1:") || c.OpenedAt.IsZero() {
			t.Errorf("connection facts %+v", c)
		}
	}
	if wsFlagged != sockets {
		t.Errorf("%d connections marked WebSocket, want %d", wsFlagged, sockets)
	}
	if protocols["HTTP/1.1"] != keepalive-1 || protocols["HTTP/2"] != 1 || protocols["WebSocket"] != sockets {
		t.Errorf("protocols %v; want %d HTTP/1.1, 1 HTTP/2, %d WebSocket", protocols, keepalive-1, sockets)
	}
	for _, w := range st.WebSockets {
		if w.MessagesIn != 1 || w.MessagesOut != 1 || w.BytesIn == 0 {
			t.Errorf("websocket %+v: want 1 message each way", w)
		}
	}

	// A WebSocket's request is counted when its handler returns, which
	// may be just after the relay has carried the first echo.
	testutil.Eventually(t, "the WebSocket handlers return", func() bool {
		return e.tracker.requests.Load() == keepalive+sockets
	})
	js := statusJSON(t, e)
	if js["active_connections"] != float64(keepalive+sockets) || js["active_websockets"] != float64(sockets) ||
		js["requests_total"] != float64(keepalive+sockets) || len(js["connections"].([]any)) != keepalive+sockets {
		t.Errorf("/status: %v", js)
	}
	for _, key := range []string{"id", "remote", "protocol", "websocket", "path", "opened_at", "bytes_in", "bytes_out"} {
		if _, ok := js["connections"].([]any)[0].(map[string]any)[key]; !ok {
			t.Errorf("/status connections lack %q", key)
		}
	}
	for _, key := range []string{"healthy", "latency_ms", "checked_at"} {
		if _, ok := js["upstream"].(map[string]any)[key]; !ok {
			t.Errorf("/status upstream lacks %q", key)
		}
	}
	for _, key := range []string{"issuer", "not_after", "next_renewal"} {
		if _, ok := js["certificate"].(map[string]any)[key]; !ok {
			t.Errorf("/status certificate lacks %q", key)
		}
	}
	m := metricsText(t, e)
	for _, line := range []string{
		fmt.Sprintf("gatehouse_active_connections %d", keepalive+sockets),
		fmt.Sprintf("gatehouse_active_websockets %d", sockets),
		fmt.Sprintf(`gatehouse_requests_total{class="2xx"} %d`, keepalive),
		fmt.Sprintf(`gatehouse_requests_total{class="1xx"} %d`, sockets),
		`gatehouse_upstream_up{site="gatehouse.test"} 1`,
	} {
		if !hasMetric(m, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if !strings.Contains(m, `gatehouse_certificate_expiry_seconds{site="gatehouse.test",source="self-signed"} `) {
		t.Error("/metrics lacks the certificate expiry")
	}

	// The clients leave: one WebSocket politely, one vanishing.
	conns[0].WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"))
	conns[0].ReadMessage()
	conns[0].Close()
	conns[1].UnderlyingConn().Close()
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	up.waitClose(t)
	up.waitClose(t)
	testutil.Eventually(t, "the snapshot falls to zero", func() bool {
		st := e.Status()
		return st.ActiveConnections == 0 && st.ActiveWebSockets == 0 && len(st.Connections) == 0
	})
	m = metricsText(t, e)
	if !hasMetric(m, "gatehouse_active_connections 0") || !hasMetric(m, "gatehouse_active_websockets 0") {
		t.Error("/metrics did not fall back to zero")
	}
	var endings []string
	for _, ev := range e.Status().Events {
		if ev.Kind == EventWebSocket {
			endings = append(endings, ev.Message)
		}
	}
	if len(endings) != 2 || !strings.Contains(strings.Join(endings, "|"), "closed by the client with 1000 (bye)") ||
		!strings.Contains(strings.Join(endings, "|"), "dropped by the client without a close frame") {
		t.Errorf("websocket endings %q", endings)
	}
}

// TestStatusCountsUnderConcurrentLoad checks the counters with the race
// detector while 8 clients each send 50 requests over HTTP/1.1 and HTTP/2.
func TestStatusCountsUnderConcurrentLoad(t *testing.T) {
	e, _ := startStatusEngine(t)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := httpClient(t, e, w%2 == 0)
			for i := range each {
				path := "/ok"
				if i%10 == 0 {
					path = "/missing" // the upstream answers 404
				}
				resp, err := c.Get(engineURL(path))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				_ = e.Status() // snapshots while the counters move
			}
		}()
	}
	wg.Wait()
	st := e.Status()
	if st.RequestsTotal != workers*each || st.ResponsesByClass["2xx"] != workers*each*9/10 || st.ResponsesByClass["4xx"] != workers*each/10 {
		t.Errorf("requests %d, classes %v; want %d with a tenth 4xx", st.RequestsTotal, st.ResponsesByClass, workers*each)
	}
	if st.UpstreamLatency.Count != workers*each || st.UpstreamLatency.P99 < st.UpstreamLatency.P50 || st.UpstreamLatency.P50 == 0 {
		t.Errorf("latency %+v", st.UpstreamLatency)
	}
	testutil.Eventually(t, "history records the requests", func() bool {
		var sum uint64
		for _, p := range e.Status().History {
			sum += p.Requests
		}
		return sum == workers*each
	})
	if n := len(st.Events); n == 0 || st.Events[0].Kind != EventRequest {
		t.Errorf("events: %d, first %+v", n, st.Events)
	}
}

// TestUpstreamHealthFlips stops the upstream and starts it again on the
// same port, checking the health, the events and the metric follow.
func TestUpstreamHealthFlips(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) *httptest.Server {
		s := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}}
		s.Start()
		return s
	}
	up := serve(ln)
	cfg := testConfig(t, up)
	cfg.StatusAddr = "127.0.0.1:0"
	e, err := New(cfg, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	e.current().sites[0].health.Interval = 50 * time.Millisecond
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(t.Context())
	updates, cancel := e.Subscribe()
	defer cancel()
	if h := e.Status().Upstream; !h.Healthy || !h.Checked || h.CheckedAt.IsZero() {
		t.Fatalf("upstream health after start: %+v", h)
	}

	up.Close()
	testutil.Eventually(t, "the upstream is seen down", func() bool { return !e.Status().Upstream.Healthy })
	if !hasMetric(metricsText(t, e), `gatehouse_upstream_up{site="gatehouse.test"} 0`) {
		t.Error("metric still says up")
	}
	select {
	case <-updates:
	case <-time.After(2 * time.Second):
		t.Error("no change notification for the health change")
	}
	var ln2 net.Listener
	testutil.Eventually(t, "the port can be bound again", func() bool {
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	})
	up2 := serve(ln2)
	defer up2.Close()
	testutil.Eventually(t, "the upstream is seen up again", func() bool { return e.Status().Upstream.Healthy })
	var msgs []string
	for _, ev := range e.Status().Events {
		if ev.Kind == EventUpstream {
			msgs = append(msgs, ev.Message)
		}
	}
	if len(msgs) != 3 || !strings.HasPrefix(msgs[0], "upstream is up") || !strings.HasPrefix(msgs[1], "upstream is down") {
		t.Errorf("upstream events (newest first) %q; want up, down, up", msgs)
	}
}

func TestSubscribeIsRateLimited(t *testing.T) {
	e, _ := startStatusEngine(t)
	updates, cancel := e.Subscribe()
	defer cancel()
	c := httpClient(t, e, false)
	stop := time.Now().Add(1500 * time.Millisecond)
	got := 0
	for time.Now().Before(stop) {
		resp, err := c.Get(engineURL("/"))
		if err == nil {
			resp.Body.Close()
		}
		select {
		case <-updates:
			got++
		default:
		}
	}
	// 1.5 s at four a second at most, plus one pending at the start.
	if got == 0 || got > 7 {
		t.Errorf("%d notifications in 1.5 s of constant traffic; want between 1 and 7", got)
	}
}

func TestLatencyWindowPercentiles(t *testing.T) {
	var w latencyWindow
	for i := range 100 {
		w.observe(time.Duration(i+1) * time.Millisecond)
	}
	s := w.summary()
	within := func(got, want time.Duration) bool { return got >= want && got <= want*5/4+time.Millisecond }
	if s.Count != 100 || !within(s.P50, 50*time.Millisecond) || !within(s.P95, 95*time.Millisecond) || !within(s.P99, 99*time.Millisecond) {
		t.Errorf("summary %+v", s)
	}
	for range latencyWindowSeconds {
		w.rotate()
	}
	if s := w.summary(); s.Count != 0 {
		t.Errorf("observations older than a minute remain: %+v", s)
	}
}

func TestEventRingKeepsNewest(t *testing.T) {
	var r eventRing
	for i := range eventRingSize + 5 {
		r.add(Event{Status: i})
	}
	l := r.list()
	if len(l) != eventRingSize || l[0].Status != eventRingSize+4 || l[len(l)-1].Status != 5 {
		t.Errorf("ring: %d events, newest %d, oldest %d", len(l), l[0].Status, l[len(l)-1].Status)
	}
}

// TestSnapshotRowsAndJSONRoundTrip: Snapshot lists at most the rows asked
// for while counting everything, and a Status read back from its JSON (as
// the control socket's clients do) writes the same JSON again.
func TestSnapshotRowsAndJSONRoundTrip(t *testing.T) {
	up := newWSUpstream(t)
	e := startEngine(t, testConfig(t, up.Server))
	var conns []*websocket.Conn
	for range 3 {
		c, _, err := wsDialer(t, e).Dial(wsURL("/ws/client/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	testutil.Eventually(t, "three WebSockets", func() bool { return e.Status().ActiveWebSockets == 3 })
	st := e.Snapshot(View{Rows: 1})
	if len(st.Connections) != 1 || len(st.WebSockets) != 1 || st.ActiveConnections != 3 || st.ActiveWebSockets != 3 {
		t.Errorf("Snapshot(View{Rows: 1}): %d connections, %d WebSockets listed, %d and %d counted; want 1, 1, 3, 3",
			len(st.Connections), len(st.WebSockets), st.ActiveConnections, st.ActiveWebSockets)
	}
	if st.Connections[0].ID != e.Status().Connections[0].ID {
		t.Error("Snapshot(View{Rows: 1}) does not list the oldest connection")
	}
	if st := e.Snapshot(View{}); len(st.Connections) != 0 || len(st.WebSockets) != 0 || st.ActiveConnections != 3 {
		t.Errorf("Snapshot(0) listed %d connections (counted %d)", len(st.Connections), st.ActiveConnections)
	}

	full := e.Status()
	first, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var back Status
	if err := json.Unmarshal(first, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(back)
	if string(first) != string(again) {
		t.Errorf("a Status read back from JSON writes different JSON:\n%s\n%s", first, again)
	}
	if back.Upstream.Latency != full.Upstream.Latency.Round(time.Nanosecond) || back.UpstreamLatency.Count != full.UpstreamLatency.Count {
		t.Errorf("latencies read back as %v / %+v, want %v / %+v", back.Upstream.Latency, back.UpstreamLatency, full.Upstream.Latency, full.UpstreamLatency)
	}
}

// TestStatusCountsTheFinalStatusAfterEarlyHints: an upstream answering
// 103 Early Hints before its 200 has answered 200; the informational
// response passes through to the client but is not the request's status.
func TestStatusCountsTheFinalStatusAfterEarlyHints(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == config.DefaultHealthPath {
			return
		}
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "the page")
	}))
	defer up.Close()
	e := startEngine(t, testConfig(t, up))
	for _, h2 := range []bool{false, true} {
		var hints []int
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { hints = append(hints, code); return nil },
		})
		req, _ := http.NewRequestWithContext(ctx, "GET", engineURL("/hinted"), nil)
		resp, err := httpClient(t, e, h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "the page" || len(hints) != 1 || hints[0] != http.StatusEarlyHints {
			t.Fatalf("h2=%v: status %d, body %q, informational %v; want 200 after one 103", h2, resp.StatusCode, body, hints)
		}
	}
	st := e.Status()
	if st.RequestsTotal != 2 || st.ResponsesByClass["2xx"] != 2 || st.ResponsesByClass["1xx"] != 0 {
		t.Errorf("requests %d, classes %v; want 2, both 2xx", st.RequestsTotal, st.ResponsesByClass)
	}
	for _, c := range st.Connections {
		if c.Path == "/hinted" && c.Status != 200 {
			t.Errorf("connection %d shows status %d for its last request, want 200", c.ID, c.Status)
		}
	}
	for _, ev := range st.Events {
		if ev.Kind == EventRequest && ev.Status != 200 {
			t.Errorf("request event %+v, want status 200", ev)
		}
	}
}

// TestStatusCountsUpstreamErrors gets a 502 (the upstream hangs up) and a
// 504 (it does not answer in time) and checks the snapshot, /status and
// /metrics each count both, and nothing for a request that succeeded.
func TestStatusCountsUpstreamErrors(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang-up":
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer up.Close()
	defer close(release)
	cfg := testConfig(t, up)
	cfg.StatusAddr = "127.0.0.1:0"
	// Long enough for a loaded machine to answer the health check and /ok.
	cfg.UpstreamTimeout = config.Duration(2 * time.Second)
	e := startEngine(t, cfg)
	c := httpClient(t, e, false)
	for path, want := range map[string]int{"/ok": 200, "/hang-up": 502, "/slow": 504} {
		resp, err := c.Get(engineURL(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d", path, resp.StatusCode, want)
		}
	}

	st := e.Status()
	if st.UpstreamErrors != 2 || st.ResponsesByClass["5xx"] != 2 || st.ResponsesByClass["2xx"] != 1 {
		t.Errorf("snapshot: %d upstream errors, classes %v; want 2, with two 5xx and one 2xx", st.UpstreamErrors, st.ResponsesByClass)
	}
	var failed []int
	for _, ev := range st.Events {
		if ev.Kind == EventError && strings.HasPrefix(ev.Message, "upstream: ") {
			failed = append(failed, ev.Status)
		}
	}
	slices.Sort(failed)
	if !slices.Equal(failed, []int{502, 504}) {
		t.Errorf("upstream error events with statuses %v, want 502 and 504", failed)
	}
	if js := statusJSON(t, e); js["upstream_errors"] != float64(2) {
		t.Errorf("/status upstream_errors = %v, want 2", js["upstream_errors"])
	}
	if m := metricsText(t, e); !hasMetric(m, "gatehouse_upstream_errors_total 2") {
		t.Errorf("/metrics lacks gatehouse_upstream_errors_total 2:\n%s", grepLines(m, "gatehouse_upstream_errors"))
	}
}

// grepLines returns the lines of text containing s, for failure messages.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
