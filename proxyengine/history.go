package proxyengine

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes of the windows the status API keeps.
const (
	historyLength        = 600 // one point a second: the last 10 minutes
	eventRingSize        = 300
	latencyWindowSeconds = 60
)

// latencyBuckets are the upper bounds of the latency histogram: from
// 0.5 ms, each a quarter above the last, to past a minute; one more bucket
// takes everything slower.
const latencyBucketCount = 56

var latencyBuckets = func() (b [latencyBucketCount]time.Duration) {
	d := 500 * time.Microsecond
	for i := range b {
		b[i] = d
		d = d * 5 / 4
	}
	return b
}()

// latencyWindow is a histogram per second over the last minute. Observing
// is one atomic add; the sampler rotates to a fresh second once a second.
type latencyWindow struct {
	current atomic.Int64 // index of the second being written
	seconds [latencyWindowSeconds][latencyBucketCount + 1]atomic.Uint64
}

func (w *latencyWindow) observe(d time.Duration) {
	i := 0
	for i < latencyBucketCount && d > latencyBuckets[i] {
		i++
	}
	w.seconds[w.current.Load()%latencyWindowSeconds][i].Add(1)
}

// rotate starts a new second, dropping the one a minute old.
func (w *latencyWindow) rotate() {
	next := w.current.Load() + 1
	for i := range w.seconds[next%latencyWindowSeconds] {
		w.seconds[next%latencyWindowSeconds][i].Store(0)
	}
	w.current.Store(next)
}

// LatencySummary gives percentiles of upstream latency over the last minute:
// the time from sending a request to the upstream's response headers. Each
// is the upper bound of its histogram bucket (within 25%).
type LatencySummary struct {
	P50, P95, P99 time.Duration
	Count         uint64 // requests measured
}

func (w *latencyWindow) summary() LatencySummary {
	var counts [latencyBucketCount + 1]uint64
	var total uint64
	for s := range w.seconds {
		for i := range counts {
			n := w.seconds[s][i].Load()
			counts[i] += n
			total += n
		}
	}
	sum := LatencySummary{Count: total}
	if total == 0 {
		return sum
	}
	at := func(q float64) time.Duration {
		rank := uint64(math.Ceil(q * float64(total)))
		var seen uint64
		for i, n := range counts {
			if seen += n; seen >= rank {
				return latencyBuckets[min(i, latencyBucketCount-1)]
			}
		}
		return latencyBuckets[latencyBucketCount-1]
	}
	sum.P50, sum.P95, sum.P99 = at(0.50), at(0.95), at(0.99)
	return sum
}

// An EventKind says what an Event is about.
type EventKind string

// Kinds of Event.
const (
	EventRequest     EventKind = "request"
	EventError       EventKind = "error"
	EventWebSocket   EventKind = "websocket"
	EventUpstream    EventKind = "upstream"
	EventCertificate EventKind = "certificate"
	EventConfig      EventKind = "config" // new settings applied
)

// An Event is one entry of the recent-activity list: a request, an error,
// a WebSocket that ended, or an upstream or certificate change.
type Event struct {
	Time     time.Time     `json:"time"`
	Kind     EventKind     `json:"kind"`
	Message  string        `json:"message,omitempty"`
	Method   string        `json:"method,omitempty"`
	Path     string        `json:"path,omitempty"`
	Status   int           `json:"status,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Remote   string        `json:"remote,omitempty"`
}

// eventRing keeps the latest events without a lock: writers claim a slot
// with one atomic add and publish the event with one atomic store.
type eventRing struct {
	next  atomic.Uint64
	slots [eventRingSize]atomic.Pointer[Event]
}

func (r *eventRing) add(ev Event) {
	i := r.next.Add(1) - 1
	r.slots[i%eventRingSize].Store(&ev)
}

// list returns the events, newest first.
func (r *eventRing) list() []Event {
	n := r.next.Load()
	out := make([]Event, 0, min(n, eventRingSize))
	for i := n; i > 0 && n-i < eventRingSize; i-- {
		if ev := r.slots[(i-1)%eventRingSize].Load(); ev != nil {
			out = append(out, *ev)
		}
	}
	return out
}

// A HistoryPoint is one second of the chart history.
type HistoryPoint struct {
	Time              time.Time `json:"time"`
	Requests          uint64    `json:"requests"` // requests completed in that second
	Errors            uint64    `json:"errors"`   // 5xx answers in that second
	ActiveConnections int       `json:"active_connections"`
	ActiveWebSockets  int       `json:"active_websockets"`
}

// historyRing holds the last 10 minutes, written by the sampler once a second.
type historyRing struct {
	mu     sync.Mutex
	points []HistoryPoint // oldest first, at most historyLength
}

func (h *historyRing) add(p HistoryPoint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.points) == historyLength {
		copy(h.points, h.points[1:])
		h.points = h.points[:historyLength-1]
	}
	h.points = append(h.points, p)
}

func (h *historyRing) list() []HistoryPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]HistoryPoint(nil), h.points...)
}

// rates returns requests per second over the last point and the last
// minute of points.
func (h *historyRing) rates() (lastSecond, lastMinute float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.points)
	if n == 0 {
		return 0, 0
	}
	lastSecond = float64(h.points[n-1].Requests)
	var sum uint64
	window := h.points[max(0, n-60):]
	for _, p := range window {
		sum += p.Requests
	}
	return lastSecond, float64(sum) / float64(len(window))
}
