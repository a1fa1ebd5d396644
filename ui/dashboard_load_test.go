package ui

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// crowdOpen is the crowd the dashboard is measured with: 9,000 open
// WebSockets, as issue 15 asks (the open-file limit here is 20,000).
const crowdOpen = 9000

// crowdStatus is a snapshot of a proxy with open connections, every one a
// WebSocket, listing rows of them, with ten minutes of history and a full
// event list, as the dashboard receives it.
func crowdStatus(now time.Time, open, rows int) proxyengine.Status {
	st := proxyengine.Status{
		State: proxyengine.StateRunning, Hostname: "sso.example.com", PublicURL: "https://sso.example.com/",
		ActiveConnections: open, ActiveWebSockets: open, RequestsTotal: uint64(open) * 3,
		History: syntheticHistory(now),
		Sites:   []proxyengine.SiteStatus{{Hostname: "sso.example.com", ActiveConnections: open, ActiveWebSockets: open}},
	}
	for i := range rows {
		opened := now.Add(-time.Duration(open-i) * time.Second)
		moved := int64(now.Unix() % 100) // more bytes a second later
		st.Connections = append(st.Connections, proxyengine.ConnectionInfo{
			ID: uint64(i + 1), Remote: "198.51.100." + strconv.Itoa(i%250) + ":" + strconv.Itoa(40000+i%20000),
			Protocol: "WebSocket", WebSocket: true, Site: "sso.example.com", OpenedAt: opened,
			Method: "GET", Path: "/ws/client/", BytesIn: int64(900+i) + moved, BytesOut: int64(3500+i) + 4*moved, Active: true,
		})
		st.WebSockets = append(st.WebSockets, proxyengine.WebSocketInfo{ConnectionID: uint64(i + 1), Path: "/ws/client/", OpenedAt: opened})
	}
	for i := range keptEvents {
		st.Events = append(st.Events, proxyengine.Event{Time: now.Add(-time.Duration(i) * time.Second), Kind: proxyengine.EventRequest,
			Method: "GET", Path: "/api/v3/core/users/me/", Status: 200, Duration: 3 * time.Millisecond, Remote: "198.51.100.7"})
	}
	return st
}

// BenchmarkDashboardRefresh measures one refresh of the dashboard with
// 9,000 WebSockets open: "render" is the snapshot put into the widgets
// (the dashboard's own work each second), "frame" that and the window
// painted by the test driver's software painter (which a desktop's GPU
// does instead). rows=50 is what the dashboard asks for and gets
// (dashboardRows); rows=9000 is every connection listed, as before issue
// 15, for comparison. docs/BENCHMARKS.md has the figures.
func BenchmarkDashboardRefresh(b *testing.B) {
	for _, rows := range []int{dashboardRows, crowdOpen} {
		for _, paint := range []bool{false, true} {
			b.Run(fmt.Sprintf("rows=%d/%s", rows, map[bool]string{false: "render", true: "frame"}[paint]), func(b *testing.B) {
				a := test.NewTempApp(b)
				w := a.NewWindow("Gatehouse")
				defer w.Close()
				d := newDashboard(a, w, dashboardActions{}, false)
				w.SetContent(d.content())
				w.Resize(dashboardSize)
				d.running = true
				// Two snapshots a second apart, taking turns, so that what
				// changes each second changes: the clock, every row's age
				// and bytes, the counters, the chart.
				start := time.Now()
				var snaps [2]proxyengine.Status
				for i := range snaps {
					snaps[i] = crowdStatus(start.Add(time.Duration(i)*time.Second), crowdOpen, rows)
					snaps[i].RequestsPerSecond = float64(10 + i)
				}
				i := 0
				d.now = func() time.Time { return start.Add(time.Duration(i%2) * time.Second) }
				for b.Loop() {
					i++
					d.render(snaps[i%2])
					if paint {
						w.Canvas().Capture()
					}
				}
			})
		}
	}
}

// viewRecorder is a backend that notes the views the dashboard asks for.
type viewRecorder struct {
	engineBackend
	mu    sync.Mutex
	views []proxyengine.View
}

func (r *viewRecorder) Status(ctx context.Context, v proxyengine.View) (proxyengine.Status, error) {
	r.mu.Lock()
	r.views = append(r.views, v)
	r.mu.Unlock()
	return r.engineBackend.Status(ctx, v)
}

func (r *viewRecorder) last() (proxyengine.View, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.views) == 0 {
		return proxyengine.View{}, 0
	}
	return r.views[len(r.views)-1], len(r.views)
}

// TestDashboardAsksForTheRowsItShows: however large the crowd, each
// snapshot the dashboard takes lists at most the rows its table shows,
// of the site chosen above it.
func TestDashboardAsksForTheRowsItShows(t *testing.T) {
	a := test.NewTempApp(t)
	up := echoUpstream(t, nil)
	e := startTestEngine(t, config.Config{Upstream: up.URL, Sites: []config.Site{{Hostname: "other.test", Upstream: up.URL}}})
	d, _, _ := newTestDashboard(t, a)
	rec := &viewRecorder{engineBackend: engineBackend{e}}
	onUI(func() { d.follow(rec) })
	eventually(t, "a snapshot", func() bool { _, n := rec.last(); return n > 0 && d.seen })
	if v, _ := rec.last(); v != (proxyengine.View{Rows: dashboardRows}) {
		t.Errorf("the dashboard asked for %+v, want %d rows of every site", v, dashboardRows)
	}
	eventually(t, "the site filter", func() bool { return d.siteFilter.Visible() && len(d.siteFilter.Options) == 3 })
	_, before := rec.last()
	onUI(func() { d.siteFilter.SetSelected("other.test") })
	eventually(t, "a snapshot of the site chosen", func() bool {
		v, n := rec.last()
		return n > before && v == proxyengine.View{Rows: dashboardRows, Site: "other.test"}
	})
	onUI(func() { d.siteFilter.SetSelected(allSites) })
	eventually(t, "a snapshot of every site", func() bool {
		v, _ := rec.last()
		return v == proxyengine.View{Rows: dashboardRows}
	})
}
