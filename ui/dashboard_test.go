package ui

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/gorilla/websocket"

	"github.com/gatehouse-proxy/gatehouse/internal/acme"
	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// dashboardSize is the window size the dashboard is designed for.
var dashboardSize = fyne.NewSize(960, 700)

// recordedActions counts the dashboard's calls to the shell.
type recordedActions struct {
	stops, starts, edits, quits atomic.Int32
}

func (r *recordedActions) actions() dashboardActions {
	return dashboardActions{
		onStop:      func() { r.stops.Add(1) },
		onStart:     func() { r.starts.Add(1) },
		onEditSetup: func() { r.edits.Add(1) },
		onQuit:      func() { r.quits.Add(1) },
	}
}

// newTestDashboard builds a dashboard in a test window of the designed size.
func newTestDashboard(t *testing.T, a fyne.App) (*dashboard, *recordedActions, fyne.Window) {
	t.Helper()
	rec := &recordedActions{}
	w := a.NewWindow("Gatehouse")
	t.Cleanup(w.Close)
	var d *dashboard
	onUI(func() {
		d = newDashboard(a, w, rec.actions(), true)
		w.SetContent(d.content())
		w.Resize(dashboardSize)
	})
	// Stop following the engine before the next test: its goroutine would
	// otherwise keep touching Fyne's caches while that test runs.
	t.Cleanup(func() { onUI(func() { d.stopped(nil) }) })
	return d, rec, w
}

// waitFor polls cond (as if on the Fyne goroutine) until it holds or the
// deadline passes, then fails the test with what was last seen.
func waitFor(t *testing.T, d *dashboard, within time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var ok bool
	var seen string
	for {
		onUI(func() { ok, seen = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, within, seen)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// echoUpstream is an upstream answering "ok" to plain requests, 503 to its
// health path while down is set, and echoing WebSocket messages at /ws/.
func echoUpstream(t *testing.T, down *atomic.Bool) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/ws/"):
			testutil.EchoWebSocket(w, r)
		case r.URL.Path == config.DefaultHealthPath && down != nil && down.Load():
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(up.Close)
	return up
}

// proxyClient reaches the engine's TLS listener as a visitor of its public
// name would, trusting the engine's local CA.
type proxyClient struct {
	addr string
	tls  *tls.Config
}

func newProxyClient(t *testing.T, e *proxyengine.Engine) *proxyClient {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(e.Config().StateDir, certs.LocalCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the local CA file")
	}
	return &proxyClient{addr: e.HTTPSAddr().String(), tls: &tls.Config{RootCAs: roots, ServerName: e.Config().Hostname}}
}

func (p *proxyClient) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.addr)
}

func (p *proxyClient) url(scheme, path string) string {
	_, port, _ := net.SplitHostPort(p.addr)
	return scheme + "://" + p.tls.ServerName + ":" + port + path
}

// keepalive opens one HTTP/1.1 connection with a request on it and leaves
// it open; closing the returned transport closes it.
func (p *proxyClient) keepalive(t *testing.T, path string) *http.Transport {
	t.Helper()
	tr := &http.Transport{DialContext: p.dial, TLSClientConfig: p.tls.Clone(), MaxConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(p.url("https", path))
	if err != nil {
		t.Fatal(err)
	}
	// Read to the end, or the transport closes the connection instead of
	// keeping it.
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, res.Status)
	}
	return tr
}

// websocket opens a WebSocket through the proxy and checks it echoes.
func (p *proxyClient) websocket(t *testing.T, path string) *websocket.Conn {
	t.Helper()
	dialer := websocket.Dialer{NetDialContext: p.dial, TLSClientConfig: p.tls.Clone(), HandshakeTimeout: 10 * time.Second}
	conn, _, err := dialer.Dial(p.url("wss", path), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "hello" {
		t.Fatalf("echo through the proxy: %q, %v", msg, err)
	}
	return conn
}

// cells renders each row of the connection table through its own create
// and update functions: what a person sees, row by row, with whether the
// WebSocket marker shows.
func (d *dashboard) cells() (rows [][]string, marked []bool) {
	n, cols := d.connTable.Length()
	for r := range n {
		var row []string
		mark := false
		for c := range cols {
			cell := d.connTable.CreateCell()
			d.connTable.UpdateCell(widget.TableCellID{Row: r, Col: c}, cell)
			box := cell.(*fyne.Container)
			row = append(row, box.Objects[0].(*widget.Label).Text)
			mark = mark || box.Objects[1].Visible()
		}
		rows, marked = append(rows, row), append(marked, mark)
	}
	return rows, marked
}

func TestDashboardShowsLiveConnectionsAndWebSockets(t *testing.T) {
	a := test.NewTempApp(t)
	e := startTestEngine(t, config.Config{Upstream: echoUpstream(t, nil).URL})
	d, _, _ := newTestDashboard(t, a)
	onUI(func() { d.follow(engineBackend{e}) })

	client := newProxyClient(t, e)
	first := client.keepalive(t, "/one")
	second := client.keepalive(t, "/two")
	ws := client.websocket(t, "/ws/client/")

	waitFor(t, d, 10*time.Second, "cards show 3 connections, 1 WebSocket", func() (bool, string) {
		seen := d.connections.value.Text + " connections, " + d.websockets.value.Text + " WebSockets, " + d.state.Text
		return d.connections.value.Text == "3" && d.websockets.value.Text == "1" && d.state.Text == "Running", seen
	})
	onUI(func() {
		rows, marked := d.cells()
		if len(rows) != 3 {
			t.Fatalf("table rows = %v, want 3", rows)
		}
		var paths []string
		for i, row := range rows {
			paths = append(paths, row[2])
			isWS := row[1] == "WebSocket"
			if marked[i] != isWS {
				t.Errorf("row %v: WebSocket marker shown = %v", row, marked[i])
			}
			if isWS && (row[2] != "GET /ws/client/" || row[3] != "open") {
				t.Errorf("WebSocket row = %v, want request GET /ws/client/, status open", row)
			}
			if !isWS && (row[1] != "HTTP/1.1" || row[3] != "200") {
				t.Errorf("HTTP row = %v, want HTTP/1.1 with status 200", row)
			}
			if !strings.HasPrefix(row[0], "127.0.0.1:") || row[5] == "0 B" || row[6] == "0 B" {
				t.Errorf("row %v: want a loopback client and bytes both ways", row)
			}
		}
		if got := strings.Join(paths, ","); got != "GET /one,GET /two,GET /ws/client/" {
			t.Errorf("requests in table = %s, want the three, oldest first", got)
		}
		if got := d.connTab.Text; got != "Connections (3)" {
			t.Errorf("tab title = %q", got)
		}
		if !d.link.Visible() || d.link.URL == nil || d.link.URL.String() != e.PublicURL() {
			t.Errorf("header link = %v, want %s", d.link.URL, e.PublicURL())
		}
	})
	waitFor(t, d, 10*time.Second, "the chart and the events list fill", func() (bool, string) {
		var reqs []string
		for _, ev := range d.eventRows {
			if ev.Kind == proxyengine.EventRequest {
				reqs = append(reqs, eventText(ev))
			}
		}
		seen := strings.Join(reqs, " | ")
		return len(d.chart.times) >= 2 && strings.Contains(seen, "GET /one") && strings.Contains(seen, "GET /two"), seen
	})

	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	ws.Close()
	first.CloseIdleConnections()
	second.CloseIdleConnections()
	waitFor(t, d, 10*time.Second, "everything closed shows as zero", func() (bool, string) {
		rows, _ := d.cells()
		seen := d.connections.value.Text + " connections, " + d.websockets.value.Text + " WebSockets, table " + strings.Repeat("x", len(rows))
		return d.connections.value.Text == "0" && d.websockets.value.Text == "0" && len(rows) == 0, seen
	})
}

func TestDashboardButtonsFollowTheProxyState(t *testing.T) {
	a := test.NewTempApp(t)
	d, rec, _ := newTestDashboard(t, a)

	// Before the first start: stopped, only Start and Edit setup work.
	if d.state.Text != "Stopped" || !d.stop.Disabled() || d.start.Disabled() || d.edit.Disabled() {
		t.Fatalf("new dashboard: state %q, stop disabled %v, start disabled %v, edit disabled %v", d.state.Text, d.stop.Disabled(), d.start.Disabled(), d.edit.Disabled())
	}
	onUI(func() { test.Tap(d.stop) })
	if rec.stops.Load() != 0 {
		t.Error("a disabled Stop called onStop")
	}
	onUI(func() { test.Tap(d.start) })
	if rec.starts.Load() != 1 || !d.start.Disabled() {
		t.Errorf("Start: %d calls, disabled afterwards %v; want 1 call and disabled until the start ends", rec.starts.Load(), d.start.Disabled())
	}
	onUI(func() { test.Tap(d.start) })
	if rec.starts.Load() != 1 {
		t.Error("a second tap started twice")
	}

	// The shell started it.
	e := startTestEngine(t, config.Config{})
	onUI(func() { d.follow(engineBackend{e}) })
	waitFor(t, d, 10*time.Second, "running", func() (bool, string) {
		return d.state.Text == "Running" && !d.stop.Disabled() && d.start.Disabled(), d.state.Text
	})
	onUI(func() { test.Tap(d.stop) })
	if rec.stops.Load() != 1 {
		t.Errorf("Stop called onStop %d times, want 1", rec.stops.Load())
	}

	// The shell stopped it.
	onUI(func() { d.stopped(nil) })
	onUI(func() {
		if d.state.Text != "Stopped" || d.problem.Visible() || !d.stop.Disabled() || d.start.Disabled() {
			t.Errorf("after stopped(nil): state %q, problem shown %v, stop disabled %v, start disabled %v", d.state.Text, d.problem.Visible(), d.stop.Disabled(), d.start.Disabled())
		}
		if d.connections.value.Text != "0" || len(d.connRows) != 0 {
			t.Errorf("a stopped proxy shows %s connections, %d rows", d.connections.value.Text, len(d.connRows))
		}
		if d.upstream.value.Text != "Not checked" {
			t.Errorf("a stopped proxy's upstream shows %q, want Not checked (nobody checks it)", d.upstream.value.Text)
		}
	})
	onUI(func() { test.Tap(d.edit) })
	if rec.edits.Load() != 1 {
		t.Errorf("Edit setup called onEditSetup %d times, want 1", rec.edits.Load())
	}
}

func TestDashboardStoppedShowsTheErrorInPlainWords(t *testing.T) {
	a := test.NewTempApp(t)
	d, _, _ := newTestDashboard(t, a)

	acmeErr := &acme.Error{
		Kind:    acme.Connection,
		Summary: "Let's Encrypt could not connect to this machine on port 443.",
		Fix:     "Forward port 443 on your router to this computer.",
		Detail:  "urn:ietf:params:acme:error:connection: 203.0.113.7: Timeout during connect",
	}
	onUI(func() { d.stopped(errors.Join(errors.New("starting"), acmeErr)) })
	if d.state.Text != "Failed" || d.state.Importance != widget.DangerImportance {
		t.Errorf("state = %q (importance %v), want Failed in the danger colour", d.state.Text, d.state.Importance)
	}
	if want := acmeErr.Summary + " " + acmeErr.Fix; !d.problem.Visible() || d.problem.Text != want {
		t.Errorf("problem = %q (shown %v), want %q", d.problem.Text, d.problem.Visible(), want)
	}
	if d.start.Disabled() || !d.stop.Disabled() {
		t.Error("after a failure Start must be offered and Stop not")
	}

	onUI(func() { d.stopped(errors.New("listen tcp 0.0.0.0:443: bind: permission denied")) })
	if d.problem.Text != "listen tcp 0.0.0.0:443: bind: permission denied" {
		t.Errorf("problem = %q", d.problem.Text)
	}
	onUI(func() { d.stopped(nil) })
	if d.problem.Visible() || d.state.Text != "Stopped" {
		t.Errorf("a clean stop still shows %q / %q", d.state.Text, d.problem.Text)
	}
}

// syntheticHistory is ten minutes of made-up traffic: a working day's
// morning in miniature, so the screenshot's chart shows curves.
func syntheticHistory(end time.Time) []proxyengine.HistoryPoint {
	const n = 600
	points := make([]proxyengine.HistoryPoint, n)
	for i := range points {
		x := float64(i) / n
		wave := 0.5 + 0.5*math.Sin(x*3*math.Pi)
		points[i] = proxyengine.HistoryPoint{
			Time:              end.Add(time.Duration(i-n+1) * time.Second),
			Requests:          uint64(6 + 18*x + 8*wave + 3*math.Sin(float64(i)/4)),
			ActiveConnections: 3 + int(10*x+4*wave),
			ActiveWebSockets:  1 + int(3*x),
		}
	}
	return points
}

func TestDashboardScreenshot(t *testing.T) {
	if *screenshotDir == "" {
		t.Skip("no -screenshots directory given")
	}
	a := test.NewTempApp(t)
	a.Settings().SetTheme(theme.DefaultTheme()) // as users see it, not the test theme
	e := startTestEngine(t, config.Config{Upstream: echoUpstream(t, nil).URL})
	d, _, w := newTestDashboard(t, a)
	onUI(func() { d.follow(engineBackend{e}) })

	client := newProxyClient(t, e)
	client.keepalive(t, "/if/flow/default-authentication-flow/")
	client.keepalive(t, "/static/dist/admin/AdminInterface.js")
	client.keepalive(t, "/api/v3/core/users/me/")
	client.websocket(t, "/ws/client/")
	waitFor(t, d, 10*time.Second, "live traffic shown", func() (bool, string) {
		return d.connections.value.Text == "4" && d.websockets.value.Text == "1", d.connections.value.Text
	})

	// The chart's real history is a few seconds long here: for the picture
	// only, show the live snapshot with ten minutes of made-up history.
	onUI(func() {
		d.watch.stop()
		d.watch = nil
		st := d.last
		st.History = syntheticHistory(d.now())
		st.RequestsPerSecond, st.RequestsLastMinute = 27, 24.3
		for _, p := range st.History {
			st.RequestsTotal += p.Requests
		}
		d.render(st)
	})
	// The test canvas lays out again only when resized (the real driver
	// also does when a minimum size grows): shrink it so saving lays out.
	onUI(func() { w.Resize(fyne.NewSize(100, 100)) })
	saveScreenshot(t, w, dashboardSize, "dashboard")
}

func TestDashboardRendersASnapshot(t *testing.T) {
	a := test.NewTempApp(t)
	d, _, _ := newTestDashboard(t, a)
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.Local)
	d.now = func() time.Time { return now }
	d.running = true // as follow leaves it
	history := []proxyengine.HistoryPoint{
		{Time: now.Add(-2 * time.Second), Requests: 30, Errors: 0, ActiveConnections: 5},
		{Time: now.Add(-time.Second), Requests: 10, Errors: 10, ActiveConnections: 6},
	}
	st := proxyengine.Status{
		State:              proxyengine.StateRunning,
		Hostname:           "sso.example.com",
		PublicURL:          "https://sso.example.com/",
		ActiveConnections:  6,
		ActiveWebSockets:   2,
		RequestsTotal:      1234,
		RequestsPerSecond:  12.5,
		RequestsLastMinute: 3.25,
		UpstreamErrors:     10,
		ConnectionsRefused: 89,
		UpstreamLatency:    proxyengine.LatencySummary{P50: 4 * time.Millisecond, P95: 25 * time.Millisecond, P99: 1500 * time.Millisecond, Count: 40},
		Upstream: upstream.Health{
			URL: "https://authentik.lan:9443/-/health/live/", Checked: true, Healthy: false,
			CheckedAt: now.Add(-3 * time.Second), ChangedAt: now.Add(-5 * time.Minute), LastError: "dial tcp 192.168.1.20:9443: connection refused",
		},
		Certificate: certs.Status{
			Source: config.TLSACME, Issuer: "R11", NotAfter: now.Add(10*24*time.Hour + time.Hour),
			NextRenewal: now.Add(-time.Hour), LastError: "Let's Encrypt is rate-limiting this name until 13:00.",
		},
		History: history,
		Events: []proxyengine.Event{
			{Time: now, Kind: proxyengine.EventUpstream, Message: "upstream is down: connection refused"},
			{Time: now.Add(-time.Second), Kind: proxyengine.EventRequest, Method: "GET", Path: "/api/v3/", Status: 502, Duration: 2 * time.Millisecond, Remote: "203.0.113.9"},
		},
	}
	onUI(func() { d.render(st) })

	for _, tc := range []struct {
		card          *statCard
		value, detail string
		importance    widget.Importance
		alert         string
	}{
		{d.connections, "6", "1234 requests since start\n89 connections refused", widget.MediumImportance, ""},
		{d.websockets, "2", "of 6 connections", widget.MediumImportance, ""},
		{d.rate, "12", "3.2 average over the last minute", widget.MediumImportance, ""},
		{d.errorRate, "25.0 %", "10 upstream errors since start", widget.DangerImportance, ""},
		{d.upstream, "Down",
			"https://authentik.lan:9443/-/health/live/ checked at 11:59:57\ndown since 11:55:00 (5 min)\nlatency p50 4.0 ms · p95 25 ms · p99 1.5 s",
			widget.DangerImportance, "The app does not answer."},
		{d.certificate, "Expires in 10 days",
			"ACME (automatic), issued by R11\nvalid until " + formatDate(st.Certificate.NotAfter) + " · next renewal " + formatDate(st.Certificate.NextRenewal),
			widget.WarningImportance, "Let's Encrypt is rate-limiting this name until 13:00."},
	} {
		if tc.card.value.Text != tc.value || tc.card.value.Importance != tc.importance {
			t.Errorf("%s: value %q (importance %v), want %q (%v)", tc.card.title.Text, tc.card.value.Text, tc.card.value.Importance, tc.value, tc.importance)
		}
		if tc.card.detail.Text != tc.detail {
			t.Errorf("%s: detail\n%q, want\n%q", tc.card.title.Text, tc.card.detail.Text, tc.detail)
		}
		if tc.card.alert.Text != tc.alert || tc.card.alert.Visible() != (tc.alert != "") {
			t.Errorf("%s: alert %q (shown %v), want %q", tc.card.title.Text, tc.card.alert.Text, tc.card.alert.Visible(), tc.alert)
		}
	}
	if len(d.chart.times) != 2 || d.chart.series[0].values[0] != 30 || d.chart.series[1].values[1] != 6 {
		t.Errorf("chart data = %v %v", d.chart.times, d.chart.series)
	}
	if d.state.Text != "Running, app unreachable" || d.state.Importance != widget.WarningImportance || d.link.Text != "https://sso.example.com/" || d.link.URL.String() != "https://sso.example.com/" {
		t.Errorf("header: %q, link %q -> %v", d.state.Text, d.link.Text, d.link.URL)
	}
	if len(d.eventRows) != 2 {
		t.Fatalf("event rows = %d, want 2", len(d.eventRows))
	}
	one := st
	one.ActiveConnections, one.ActiveWebSockets, one.RequestsTotal = 1, 1, 1
	onUI(func() { d.render(one) })
	if d.websockets.detail.Text != "of 1 connection" || d.connections.detail.Text != "1 request since start\n89 connections refused" {
		t.Errorf("one connection: %q, %q", d.websockets.detail.Text, d.connections.detail.Text)
	}
	onUI(func() { d.render(st) })
	if badge, imp := eventBadge(d.eventRows[1]); badge != "502" || imp != widget.DangerImportance {
		t.Errorf("a 502 request's badge = %q (%v)", badge, imp)
	}
	if got, want := eventText(d.eventRows[1]), "GET /api/v3/ · 2.0 ms · 203.0.113.9"; got != want {
		t.Errorf("request event text = %q, want %q", got, want)
	}
	if got, want := eventText(d.eventRows[0]), "upstream is down: connection refused"; got != want {
		t.Errorf("upstream event text = %q, want %q", got, want)
	}

	// An expired certificate, and one not yet obtained.
	st.Certificate.NotAfter = now.Add(-50 * time.Hour)
	onUI(func() { d.render(st) })
	if d.certificate.value.Text != "Expired 3 days ago" || d.certificate.value.Importance != widget.DangerImportance {
		t.Errorf("expired certificate shows %q (%v)", d.certificate.value.Text, d.certificate.value.Importance)
	}
	st.Certificate = certs.Status{Source: config.TLSACME}
	onUI(func() { d.render(st) })
	if d.certificate.value.Text != "None yet" || d.certificate.alert.Visible() {
		t.Errorf("no certificate shows %q, alert %q", d.certificate.value.Text, d.certificate.alert.Text)
	}
}

func TestDashboardNotifiesWhenTheUpstreamGoesDownAndComesBack(t *testing.T) {
	a := test.NewTempApp(t)
	var down atomic.Bool
	e := startTestEngine(t, config.Config{Upstream: echoUpstream(t, &down).URL})
	d, _, _ := newTestDashboard(t, a)
	onUI(func() { d.follow(engineBackend{e}) })
	waitFor(t, d, 10*time.Second, "the first check found the upstream healthy", func() (bool, string) {
		return d.upstream.value.Text == "Healthy", d.upstream.value.Text
	})

	// The engine checks every 10 s; nothing in the ui can make it sooner.
	wentDown := &fyne.Notification{Title: "Upstream is down"}
	test.AssertNotificationSent(t, wentDown, func() {
		down.Store(true)
		waitFor(t, d, 30*time.Second, "the upstream card says down", func() (bool, string) {
			return d.upstream.value.Text == "Down" && d.upstream.alert.Visible(), d.upstream.value.Text
		})
		onUI(func() {
			u := d.last.Upstream
			if !strings.Contains(u.LastError, "503") {
				t.Errorf("upstream error = %q, want the 503 it answered", u.LastError)
			}
			wentDown.Content = u.URL + " is not answering (" + u.LastError + "); visitors to gatehouse.test get an error page until it is back."
		})
	})

	cameBack := &fyne.Notification{Title: "Upstream is back"}
	test.AssertNotificationSent(t, cameBack, func() {
		down.Store(false)
		waitFor(t, d, 30*time.Second, "the upstream card says healthy again", func() (bool, string) {
			return d.upstream.value.Text == "Healthy" && !d.upstream.alert.Visible(), d.upstream.value.Text
		})
		cameBack.Content = e.Status().Upstream.URL + " answers again; gatehouse.test is serving visitors."
	})
}

// TestDashboardMarkup keeps the dashboard's layout (what sits where, with
// which text, style and colour) in ui/testdata/dashboard.xml: a change to it
// shows up as a diff to look at. Update the file from testdata/failed/ when
// the change is meant.
func TestDashboardMarkup(t *testing.T) {
	a := test.NewTempApp(t)
	d, _, w := newTestDashboard(t, a)
	// Times in the local zone, so the clock texts are the same anywhere.
	now := time.Date(2026, 11, 28, 14, 30, 0, 0, time.Local)
	d.now = func() time.Time { return now }
	d.running = true
	var history []proxyengine.HistoryPoint
	for i := range 90 {
		history = append(history, proxyengine.HistoryPoint{
			Time:              now.Add(time.Duration(i-89) * time.Second),
			Requests:          uint64(5 + i%10),
			ActiveConnections: 2 + i/30,
		})
	}
	opened := now.Add(-95 * time.Second)
	onUI(func() {
		d.render(proxyengine.Status{
			State: proxyengine.StateRunning, Hostname: "sso.example.com", PublicURL: "https://sso.example.com/",
			ActiveConnections: 2, ActiveWebSockets: 1, RequestsTotal: 812, RequestsPerSecond: 9, RequestsLastMinute: 8.5,
			UpstreamLatency: proxyengine.LatencySummary{P50: 3 * time.Millisecond, P95: 12 * time.Millisecond, P99: 40 * time.Millisecond, Count: 500},
			Connections: []proxyengine.ConnectionInfo{
				{ID: 7, Remote: "198.51.100.4:50122", Protocol: "HTTP/2", OpenedAt: opened, Method: "GET", Path: "/if/admin/", Status: 200, BytesIn: 2048, BytesOut: 48 << 10},
				{ID: 9, Remote: "198.51.100.4:50130", Protocol: "WebSocket", WebSocket: true, OpenedAt: opened.Add(time.Second), Method: "GET", Path: "/ws/client/", BytesIn: 900, BytesOut: 3500},
			},
			Upstream: upstream.Health{URL: "https://authentik.lan:9443/-/health/live/", Checked: true, Healthy: true,
				Latency: 2 * time.Millisecond, CheckedAt: now.Add(-4 * time.Second), ChangedAt: now.Add(-2 * time.Hour)},
			Certificate: certs.Status{Source: config.TLSACME, Issuer: "R11", NotAfter: now.Add(60*24*time.Hour + time.Hour), NextRenewal: now.Add(30*24*time.Hour + time.Hour)},
			History:     history,
			Sites:       []proxyengine.SiteStatus{{Hostname: "sso.example.com", PublicURL: "https://sso.example.com/", ActiveConnections: 2, ActiveWebSockets: 1, RequestsTotal: 812}},
		})
	})
	onUI(func() { w.Resize(fyne.NewSize(100, 100)) }) // lay out again at the real size, as saveScreenshot explains
	onUI(func() { w.Resize(dashboardSize) })
	test.AssertRendersToMarkup(t, "dashboard.xml", w.Canvas())
}

func TestDashboardLinkOpensThePublicURL(t *testing.T) {
	a := &desktopApp{App: test.NewTempApp(t)}
	d, _, w := newTestDashboard(t, a)
	onUI(func() {
		d.render(proxyengine.Status{State: proxyengine.StateRunning, PublicURL: "https://sso.example.com:8443/"})
	})
	onUI(func() { w.Resize(fyne.NewSize(100, 100)) }) // lay the header out with the link shown
	onUI(func() { w.Resize(dashboardSize) })
	size := d.link.Size()
	onUI(func() { test.TapAt(d.link, fyne.NewPos(size.Width/2, size.Height/2)) })
	if len(a.opened) != 1 || a.opened[0] != "https://sso.example.com:8443/" {
		t.Errorf("opened %q, want the public URL once", a.opened)
	}
}

// With several sites the header names the site whose app is unreachable,
// and the upstream and certificate cards say they are the first site's.
func TestDashboardHeaderNamesTheSiteDown(t *testing.T) {
	a := test.NewTempApp(t)
	d, _, _ := newTestDashboard(t, a)
	d.running = true
	up := upstream.Health{Checked: true, Healthy: true}
	down := upstream.Health{Checked: true, Healthy: false}
	st := proxyengine.Status{State: proxyengine.StateRunning, Hostname: "sso.example.com", Upstream: up,
		Sites: []proxyengine.SiteStatus{{Hostname: "sso.example.com", Upstream: up}, {Hostname: "wiki.example.com", Upstream: down}}}
	for _, tc := range []struct {
		sso, wiki upstream.Health
		want      string
	}{
		{up, up, "Running"},
		{up, down, "Running, app of wiki.example.com unreachable"},
		{down, down, "Running, 2 apps unreachable"},
	} {
		st.Upstream, st.Sites[0].Upstream, st.Sites[1].Upstream = tc.sso, tc.sso, tc.wiki
		onUI(func() { d.render(st) })
		if d.state.Text != tc.want {
			t.Errorf("header %q, want %q", d.state.Text, tc.want)
		}
	}
	if d.upstream.title.Text != "Upstream of sso.example.com" || d.certificate.title.Text != "Certificate of sso.example.com" {
		t.Errorf("card titles %q, %q", d.upstream.title.Text, d.certificate.title.Text)
	}
	st.Sites = st.Sites[:1]
	onUI(func() { d.render(st) })
	if d.state.Text != "Running, app unreachable" || d.upstream.title.Text != "Upstream" {
		t.Errorf("one site: header %q, card %q", d.state.Text, d.upstream.title.Text)
	}
}
