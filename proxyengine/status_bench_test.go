package proxyengine

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkDashboardSnapshot is the snapshot a dashboard takes each second
// with 9,000 WebSocket connections open (the most one proxy holds under
// this machine's 20,000 open files): the totals alone (rows=0, what the
// updates stream sends up to four times a second), the 50 rows the
// desktop's table shows, and every row (what GET /status lists).
func BenchmarkDashboardSnapshot(b *testing.B) {
	up := httptest.NewServer(nil)
	defer up.Close()
	e := startEngine(b, testConfig(b, up))
	site := e.current().firstSite().stats
	for i := range 9000 {
		c := &trackedConn{t: e.tracker, id: uint64(1_000_000 + i), remote: fmt.Sprintf("192.0.2.%d:%d", i%250, 40000+i), opened: time.Now()}
		c.protocol.Store(protoWebSocket)
		c.last.Store(&requestInfo{method: "GET", path: "/ws/client/", status: 101})
		c.site.Store(site)
		e.tracker.mu.Lock()
		e.tracker.conns[c.id] = c
		e.tracker.mu.Unlock()
	}
	for _, rows := range []int{0, 50, AllRows} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			for b.Loop() {
				if st := e.Snapshot(View{Rows: rows}); st.ActiveConnections < 9000 {
					b.Fatalf("%d connections counted", st.ActiveConnections)
				}
			}
		})
	}
}
