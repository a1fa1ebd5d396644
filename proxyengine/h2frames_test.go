package proxyengine

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// writeSizes records the size of each write that reaches it, and flushes.
type writeSizes struct {
	*httptest.ResponseRecorder
	writes []int
	events []string // "write N" and "flush", in order
}

func (w *writeSizes) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	w.events = append(w.events, "write "+strconv.Itoa(len(p)))
	return w.ResponseRecorder.Write(p)
}

func (w *writeSizes) Flush() {
	w.events = append(w.events, "flush")
	w.ResponseRecorder.Flush()
}

func TestRecordSizedFramesRegroupsABody(t *testing.T) {
	body := make([]byte, 100<<10)
	rand.Read(body)
	rec := &writeSizes{ResponseRecorder: httptest.NewRecorder()}
	w := newRecordSizedFrames(rec)
	// As the upstream's TLS records arrive: 16 KiB, then the 4 KiB rest.
	for rest := body; len(rest) > 0; {
		n, err := w.Write(rest[:min(16<<10, len(rest))])
		if err != nil || n != min(16<<10, len(rest)) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		rest = rest[n:]
	}
	w.finish(true)
	if !bytes.Equal(rec.Body.Bytes(), body) {
		t.Fatal("the body arrived changed")
	}
	// 102,400 bytes: six whole frames and 4,150 bytes.
	want := []int{h2FramePayload, h2FramePayload, h2FramePayload, h2FramePayload, h2FramePayload, h2FramePayload, len(body) - 6*h2FramePayload}
	if !slices.Equal(rec.writes, want) {
		t.Fatalf("writes %v, want %v", rec.writes, want)
	}
	if w.held != nil {
		t.Fatal("finish kept its buffer")
	}
}

func TestRecordSizedFramesPassesWholeFramesUncopied(t *testing.T) {
	rec := &writeSizes{ResponseRecorder: httptest.NewRecorder()}
	w := newRecordSizedFrames(rec)
	w.Write(make([]byte, 2*h2FramePayload+10))
	if !slices.Equal(rec.writes, []int{h2FramePayload, h2FramePayload}) || w.n != 10 {
		t.Fatalf("writes %v with %d held, want two frames and 10 held", rec.writes, w.n)
	}
}

func TestRecordSizedFramesFlushSendsWhatIsHeld(t *testing.T) {
	rec := &writeSizes{ResponseRecorder: httptest.NewRecorder()}
	w := newRecordSizedFrames(rec)
	// An event stream: ReverseProxy flushes after each write.
	for _, event := range []string{"data: one\n\n", "data: two\n\n"} {
		w.Write([]byte(event))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"write 11", "flush", "write 11", "flush"}
	if !slices.Equal(rec.events, want) {
		t.Fatalf("events %v, want %v", rec.events, want)
	}
	if rec.Body.String() != "data: one\n\ndata: two\n\n" {
		t.Fatalf("body %q", rec.Body.String())
	}
}

func TestRecordSizedFramesDropsWhatIsHeldWhenTheHandlerAborts(t *testing.T) {
	rec := &writeSizes{ResponseRecorder: httptest.NewRecorder()}
	func() {
		defer func() {
			if recover() != http.ErrAbortHandler {
				t.Error("the abort did not pass through")
			}
		}()
		r := httptest.NewRequest("GET", "/", nil)
		r.ProtoMajor = 2
		withRecordSizedFrames(rec, r, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("part of a body"))
			panic(http.ErrAbortHandler)
		}))
	}()
	if len(rec.writes) != 0 {
		t.Fatalf("an aborted response wrote %v", rec.writes)
	}
}

func TestRecordSizedFramesReportsAFailedWrite(t *testing.T) {
	w := newRecordSizedFrames(failingWriter{httptest.NewRecorder()})
	if n, err := w.Write(make([]byte, h2FramePayload+5)); err == nil || n != 0 {
		t.Fatalf("Write = %d, %v; want 0 and the error", n, err)
	}
}

type failingWriter struct{ http.ResponseWriter }

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("stream reset") }

// TestHTTP2FramesFillTLSRecords fetches a 100 KiB answer over HTTP/2 and
// reads the DATA frames as they arrive: each but the last carries
// h2FramePayload bytes, so with its header it is one full TLS record,
// never a full record and a 9-byte one.
func TestHTTP2FramesFillTLSRecords(t *testing.T) {
	body := make([]byte, 100<<10)
	rand.Read(body)
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	t.Cleanup(up.Close)
	e := startEngine(t, testConfig(t, up))

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", e.HTTPSAddr().String(), clientTLS(t, e, "h2"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	conn.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(conn, conn)
	// Windows wide open, so flow control never cuts a frame short.
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", testHostname}, {":path", "/download"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndStream: true, EndHeaders: true})

	var got []byte
	var sizes []int
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v (after %d body bytes)", err, len(got))
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("the server ended the stream: %v", f)
		case *http2.DataFrame:
			if f.StreamID != 1 {
				continue
			}
			if len(f.Data()) > 0 {
				sizes = append(sizes, len(f.Data()))
			}
			got = append(got, f.Data()...)
			if f.StreamEnded() {
				if !bytes.Equal(got, body) {
					t.Fatalf("got %d body bytes, not the upstream's %d", len(got), len(body))
				}
				for i, n := range sizes[:len(sizes)-1] {
					if n != h2FramePayload {
						t.Fatalf("DATA frame %d carried %d bytes, want %d (frame sizes %v)", i, n, h2FramePayload, sizes)
					}
				}
				return
			}
		}
	}
}

// TestHTTP2TrailersFollowAHeldPiece: the piece held at the end of a body
// goes out before the upstream's trailers, which still arrive.
func TestHTTP2TrailersFollowAHeldPiece(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Write(bytes.Repeat([]byte("a"), h2FramePayload+100))
		w.Header().Set("X-Checksum", "sum-of-a")
	}))
	t.Cleanup(up.Close)
	e := startEngine(t, testConfig(t, up))
	resp, err := httpClient(t, e, true).Get(engineURL("/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("read %d bytes over %s: %v", len(b), resp.Proto, err)
	}
	if len(b) != h2FramePayload+100 || resp.Trailer.Get("X-Checksum") != "sum-of-a" {
		t.Fatalf("got %d bytes and trailers %v", len(b), resp.Trailer)
	}
}
