package proxyengine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// statusBody fetches GET /status (with ?pretty when pretty) as bytes.
func statusBody(t *testing.T, e *Engine, pretty bool) []byte {
	t.Helper()
	url := "http://" + e.StatusAddr().String() + "/status"
	if pretty {
		url += "?pretty"
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s, %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	return b
}

// checkStatusDocument checks body is one JSON object naming each list
// once and, when pretty, indented exactly as json.MarshalIndent does.
func checkStatusDocument(t *testing.T, body []byte, pretty bool) Status {
	t.Helper()
	sep := ":"
	if pretty {
		sep = ": "
	}
	for _, key := range []string{"connections", "websockets", "sites", "state"} {
		if n := bytes.Count(body, []byte(`"`+key+`"`+sep)); n != 1 {
			t.Errorf("%q named %d times in\n%s", key, n, body)
		}
	}
	var compact, indented bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	if pretty {
		json.Indent(&indented, compact.Bytes(), "", "  ")
		if got := strings.TrimSuffix(string(body), "\n"); got != indented.String() {
			t.Errorf("pretty output is not indented as json.MarshalIndent:\n%s\nwant\n%s", got, indented.String())
		}
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStatusStreamListsEveryRow checks the streamed /status, compact and
// pretty, with no connections (empty lists, not null or missing) and with
// keepalive connections and WebSockets open: every row, oldest first, as
// the snapshot has them.
func TestStatusStreamListsEveryRow(t *testing.T) {
	e, _ := startStatusEngine(t)
	for _, pretty := range []bool{false, true} {
		body := statusBody(t, e, pretty)
		checkStatusDocument(t, body, pretty)
		empty := `"connections":[]`
		if pretty {
			empty = `"connections": []`
		}
		if !bytes.Contains(body, []byte(empty)) {
			t.Errorf("no empty connections list in\n%s", body)
		}
	}

	const keepalive, sockets = 2, 3
	for i := range keepalive {
		resp, err := httpClient(t, e, false).Get(engineURL(fmt.Sprintf("/if/admin/%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for i := range sockets {
		c, _, err := wsDialer(t, e).Dial(wsURL(fmt.Sprintf("/ws/outpost/%d/", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.WriteMessage(websocket.TextMessage, []byte("hello"))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}

	want := e.Status()
	wantConns, _ := json.Marshal(want.Connections)
	wantWS, _ := json.Marshal(want.WebSockets)
	for _, pretty := range []bool{false, true} {
		st := checkStatusDocument(t, statusBody(t, e, pretty), pretty)
		if st.ActiveConnections != keepalive+sockets || st.ActiveWebSockets != sockets || st.State != StateRunning {
			t.Errorf("pretty %v: counts %d connections, %d websockets, state %q", pretty, st.ActiveConnections, st.ActiveWebSockets, st.State)
		}
		gotConns, _ := json.Marshal(st.Connections)
		gotWS, _ := json.Marshal(st.WebSockets)
		if len(st.Connections) != keepalive+sockets || !bytes.Equal(gotConns, wantConns) {
			t.Errorf("pretty %v: connections\n%s\nwant\n%s", pretty, gotConns, wantConns)
		}
		if len(st.WebSockets) != sockets || !bytes.Equal(gotWS, wantWS) {
			t.Errorf("pretty %v: websockets\n%s\nwant\n%s", pretty, gotWS, wantWS)
		}
	}
}

// BenchmarkStatusConnectionList lists 9,000 open connections (the most
// one proxy holds as WebSockets under this machine's 20,000 open files)
// as JSON: whole, as a Status built at once is encoded, and streamed a row
// at a time, as GET /status sends it. Compare B/op.
func BenchmarkStatusConnectionList(b *testing.B) {
	tr := newTracker()
	for i := range 9000 {
		c := &trackedConn{t: tr, id: uint64(i), remote: fmt.Sprintf("192.0.2.%d:%d", i%250, 40000+i), opened: time.Now()}
		c.protocol.Store(protoWebSocket)
		c.last.Store(&requestInfo{method: "GET", path: "/ws/client/", status: 101})
		tr.conns[c.id] = c
	}
	b.Run("whole", func(b *testing.B) {
		for b.Loop() {
			infos, _ := tr.connectionInfos(AllRows, "")
			if err := json.NewEncoder(io.Discard).Encode(infos); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("streamed", func(b *testing.B) {
		for b.Loop() {
			list := statusList{w: bufio.NewWriterSize(io.Discard, 32<<10)}
			if err := writeRows(&list, "connections", tr.connections(), (*trackedConn).info); err != nil {
				b.Fatal(err)
			}
			list.w.Flush()
		}
	})
}
