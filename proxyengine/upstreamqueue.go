package proxyengine

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// upstreamQueueWait is how long a request waits for one of the pool's
// connections before it goes ahead on a connection of its own.
const upstreamQueueWait = time.Second

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
// The wait is bounded by upstreamQueueWait, not a hard cap, so requests
// that hold connections for long (long polls) cannot stall the others:
// past the wait, a request dials, as it would without the queue. An event
// stream gives its slot back as soon as its headers arrive.
type upstreamQueue struct {
	next  http.RoundTripper
	slots chan struct{} // one per request holding a slot
	wait  time.Duration
}

// newUpstreamQueue queues for a pool of size idle connections per host,
// http.Transport's MaxIdleConnsPerHost, whose zero means its default.
func newUpstreamQueue(next http.RoundTripper, size int) *upstreamQueue {
	if size <= 0 {
		size = http.DefaultMaxIdleConnsPerHost
	}
	return &upstreamQueue{next: next, slots: make(chan struct{}, size), wait: upstreamQueueWait}
}

// RoundTrip holds a slot from before the request is sent until its
// response body is closed, which is when http.Transport gives the
// connection back to the pool.
func (q *upstreamQueue) RoundTrip(r *http.Request) (*http.Response, error) {
	held, err := q.acquire(r.Context())
	if err != nil {
		return nil, err
	}
	resp, err := q.next.RoundTrip(r)
	if !held {
		return resp, err
	}
	if err != nil || resp.StatusCode == http.StatusSwitchingProtocols || isEventStream(resp) {
		// A switched connection leaves the pool, and its body must stay
		// the connection ReverseProxy takes over. An event stream holds
		// its connection for as long as someone watches: the requests
		// after it should not wait for that.
		q.release()
		return resp, err
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, q: q}
	return resp, nil
}

// acquire takes a slot, waiting at most q.wait for one. It reports whether
// it holds one; past the wait the request goes ahead without.
func (q *upstreamQueue) acquire(ctx context.Context) (bool, error) {
	select {
	case q.slots <- struct{}{}:
		return true, nil
	default:
	}
	t := time.NewTimer(q.wait)
	defer t.Stop()
	select {
	case q.slots <- struct{}{}:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
}

func (q *upstreamQueue) release() { <-q.slots }

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

// slotBody gives its request's slot back when closed, once.
type slotBody struct {
	io.ReadCloser
	q      *upstreamQueue
	closed atomic.Bool
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	if b.closed.CompareAndSwap(false, true) {
		b.q.release()
	}
	return err
}
