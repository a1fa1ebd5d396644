package proxyengine

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingTransport answers every request with status and counts them.
type countingTransport struct {
	status int
	header http.Header // of every answer
	calls  atomic.Int32
}

type readWriteBody struct {
	io.Reader
	io.Writer
}

func (readWriteBody) Close() error { return nil }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	if c.status == http.StatusSwitchingProtocols {
		return &http.Response{StatusCode: c.status, Body: readWriteBody{strings.NewReader(""), io.Discard}}, nil
	}
	return &http.Response{StatusCode: c.status, Header: c.header.Clone(), Body: io.NopCloser(strings.NewReader("ok"))}, nil
}

func queueRequest(t *testing.T, ctx context.Context) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://upstream.test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// cancelled is a context a request waiting for a slot gives up on at once.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestUpstreamQueueHoldsASlotUntilTheBodyCloses: with one slot, a second
// request waits (here: gives up, as its context is done) until the first
// one's body is closed, and closing that body twice frees one slot only.
func TestUpstreamQueueHoldsASlotUntilTheBodyCloses(t *testing.T) {
	next := &countingTransport{status: http.StatusOK}
	q := newUpstreamQueue(next, 1)
	q.longHold = time.Hour

	first, err := q.RoundTrip(queueRequest(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.RoundTrip(queueRequest(t, cancelled())); !errors.Is(err, context.Canceled) {
		t.Fatalf("second request while the first holds the slot: err %v, want it to wait and give up", err)
	}
	if n := next.calls.Load(); n != 1 {
		t.Fatalf("%d requests reached the upstream, want 1", n)
	}

	first.Body.Close()
	first.Body.Close()
	// A free slot is taken without waiting, even by a request whose
	// context is done; a second free slot would let the next one through.
	second, err := q.RoundTrip(queueRequest(t, cancelled()))
	if err != nil {
		t.Fatalf("request after the first body closed: %v", err)
	}
	defer second.Body.Close()
	if _, err := q.RoundTrip(queueRequest(t, cancelled())); err == nil {
		t.Fatal("closing a body twice freed two slots")
	}
}

// TestUpstreamQueueLongHeldSlotsStallNoOne: a request that keeps its
// slot past longHold (a long poll, a large download) gives it back, so the
// next request goes ahead at once rather than wait behind it; the long
// request's body still reads and closing it does not free a second slot.
func TestUpstreamQueueLongHeldSlotsStallNoOne(t *testing.T) {
	next := &countingTransport{status: http.StatusOK}
	q := newUpstreamQueue(next, 1)
	q.longHold = 20 * time.Millisecond

	long, err := q.RoundTrip(queueRequest(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	q.longHold = time.Hour // for the slots taken from here on
	// The slot is free within longHold; the bound is only there so that
	// a queue that never gives it back fails rather than hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := time.Now()
	second, err := q.RoundTrip(queueRequest(t, ctx))
	if err != nil {
		t.Fatalf("request behind a long-held slot: %v after %v", err, time.Since(started))
	}
	if b, _ := io.ReadAll(long.Body); string(b) != "ok" {
		t.Errorf("the long request's body reads %q", b)
	}
	long.Body.Close()
	// The second request holds the one slot now, for an hour: the long
	// request's Close must not have freed another.
	if _, err := q.RoundTrip(queueRequest(t, cancelled())); err == nil {
		t.Fatal("closing a body after its slot expired freed a second slot")
	}
	second.Body.Close()
}

// TestUpstreamQueueSwitchedProtocols: a 101 keeps its read-write body for
// ReverseProxy to take over, and its connection, gone from the pool, frees
// its slot at once.
func TestUpstreamQueueSwitchedProtocols(t *testing.T) {
	q := newUpstreamQueue(&countingTransport{status: http.StatusSwitchingProtocols}, 1)
	q.longHold = time.Hour
	resp, err := q.RoundTrip(queueRequest(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Body.(io.ReadWriteCloser); !ok {
		t.Errorf("a 101's body is %T, not the read-write connection", resp.Body)
	}
	if _, err := q.RoundTrip(queueRequest(t, cancelled())); err != nil {
		t.Errorf("the slot of a 101 was not freed: %v", err)
	}
}

func TestUpstreamQueueSizeDefaultsAsTheTransports(t *testing.T) {
	if got := cap(newUpstreamQueue(http.DefaultTransport, 0).slots); got != http.DefaultMaxIdleConnsPerHost {
		t.Errorf("a queue for MaxIdleConnsPerHost 0 has %d slots, want http's default %d", got, http.DefaultMaxIdleConnsPerHost)
	}
}

// TestUpstreamQueueEventStreamFreesItsSlot: an event stream, which keeps
// its connection for as long as someone watches, gives its slot back when
// its headers arrive; its body stays readable.
func TestUpstreamQueueEventStreamFreesItsSlot(t *testing.T) {
	next := &countingTransport{status: http.StatusOK, header: http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}}}
	q := newUpstreamQueue(next, 1)
	q.longHold = time.Hour
	stream, err := q.RoundTrip(queueRequest(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	next.header = nil
	if _, err := q.RoundTrip(queueRequest(t, cancelled())); err != nil {
		t.Errorf("a request after an open event stream waited: %v", err)
	}
	if b, _ := io.ReadAll(stream.Body); string(b) != "ok" {
		t.Errorf("the stream's body reads %q", b)
	}
}

func TestIsEventStream(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream": true, "Text/Event-Stream; charset=utf-8": true, " text/event-stream ;x=1": true,
		"text/event-streams": false, "text/html": false, "": false, "text/event": false,
	} {
		if got := isEventStream(&http.Response{Header: http.Header{"Content-Type": {ct}}}); got != want {
			t.Errorf("Content-Type %q: event stream %v, want %v", ct, got, want)
		}
	}
}
