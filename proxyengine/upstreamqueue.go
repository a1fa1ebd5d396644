package proxyengine

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// upstreamLongHold is how long a request keeps its slot in the queue at
// most: past it, the request counts as long-held (a long poll, a large
// download, a slow upload) and no longer keeps others waiting.
const upstreamLongHold = time.Second

// upstreamQueue holds the requests in flight to one upstream to the size of
// its keepalive pool. http.Transport dials a new connection for every
// request that finds none idle, and closes whatever no longer fits the idle
// pool when the answers are done: with more requests in flight than the
// pool holds (64 HTTP/2 connections with 16 streams each ask for 1,024),
// it opened a new TLS connection to the upstream for every tenth request,
// and the handshakes took a fifth of the CPU (docs/BENCHMARKS.md). Waiting
// for a pooled connection is cheaper than dialling one, and the pool is
// then never outgrown.
//
// The queue is not a hard cap, so requests that hold connections for long
// cannot stall the others: a slot is given back when the response body is
// closed or after longHold, whichever comes first, and a request waits at
// most until the oldest slot is that old. Past that the Transport dials for
// the next request, as it would without the queue. An event stream gives
// its slot back as soon as its headers arrive, a switched connection
// (WebSocket) too.
type upstreamQueue struct {
	next     http.RoundTripper
	slots    chan struct{} // one per request holding a slot
	longHold time.Duration // upstreamLongHold; tests shorten it
}

// newUpstreamQueue queues for a pool of size idle connections per host,
// http.Transport's MaxIdleConnsPerHost, whose zero means its default.
func newUpstreamQueue(next http.RoundTripper, size int) *upstreamQueue {
	if size <= 0 {
		size = http.DefaultMaxIdleConnsPerHost
	}
	return &upstreamQueue{next: next, slots: make(chan struct{}, size), longHold: upstreamLongHold}
}

// RoundTrip holds a slot from before the request is sent until its
// response body is closed, which is when http.Transport gives the
// connection back to the pool, or until the slot is longHold old.
func (q *upstreamQueue) RoundTrip(r *http.Request) (*http.Response, error) {
	s, err := q.acquire(r.Context())
	if err != nil {
		return nil, err
	}
	resp, err := q.next.RoundTrip(r)
	if err != nil || resp.StatusCode == http.StatusSwitchingProtocols || isEventStream(resp) {
		// A switched connection leaves the pool, and its body must stay
		// the connection ReverseProxy takes over. An event stream holds
		// its connection for as long as someone watches: the requests
		// after it should not wait for that.
		s.release()
		return resp, err
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, slot: s}
	return resp, nil
}

// acquire waits for a slot; every slot is free again within longHold.
func (q *upstreamQueue) acquire(ctx context.Context) (*slot, error) {
	select {
	case q.slots <- struct{}{}:
	default:
		select {
		case q.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	s := &slot{q: q}
	s.expiry = time.AfterFunc(q.longHold, s.expire)
	return s, nil
}

// A slot is one request's place in the queue.
type slot struct {
	q        *upstreamQueue
	expiry   *time.Timer // gives the slot back once it is longHold old
	released atomic.Bool
}

// release gives the slot back unless its expiry already has.
func (s *slot) release() {
	if s.released.CompareAndSwap(false, true) {
		s.expiry.Stop()
		<-s.q.slots
	}
}

// expire gives the slot back unless release already has. It runs on the
// timer's goroutine, possibly before acquire has stored the timer, so it
// leaves expiry alone.
func (s *slot) expire() {
	if s.released.CompareAndSwap(false, true) {
		<-s.q.slots
	}
}

// isEventStream reports whether resp is a server-sent event stream. It
// runs for every response, so it compares the media type in place rather
// than parsing the header's parameters.
func isEventStream(resp *http.Response) bool {
	const eventStream = "text/event-stream"
	ct := strings.TrimSpace(resp.Header.Get("Content-Type"))
	if len(ct) < len(eventStream) || !strings.EqualFold(ct[:len(eventStream)], eventStream) {
		return false
	}
	rest := strings.TrimSpace(ct[len(eventStream):])
	return rest == "" || rest[0] == ';'
}

// slotBody gives its request's slot back when closed.
type slotBody struct {
	io.ReadCloser
	slot *slot
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.slot.release()
	return err
}
