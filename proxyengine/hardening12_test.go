package proxyengine

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
	e := startEngine(t, testConfig(t, pausingUpstream(t, pause)), func(e *Engine) { e.limits.sendTimeout = send })
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
