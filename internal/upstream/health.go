package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

const (
	// healthInterval is how often the upstream is checked.
	healthInterval = 10 * time.Second
	// healthTimeout bounds one check.
	healthTimeout = 5 * time.Second
)

// Health is the result of the periodic upstream check.
type Health struct {
	URL       string        // the checked URL
	Checked   bool          // false until the first check ends
	Healthy   bool          // the last check got a 2xx or 3xx answer
	Latency   time.Duration // of the last check
	CheckedAt time.Time
	ChangedAt time.Time // when Healthy last changed
	LastError string    // why the last check failed; empty when healthy
}

// healthJSON is Health on the wire: the latency in milliseconds, as the
// status endpoint documents.
type healthJSON struct {
	URL       string    `json:"url"`
	Checked   bool      `json:"checked"`
	Healthy   bool      `json:"healthy"`
	LatencyMS float64   `json:"latency_ms"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	ChangedAt time.Time `json:"changed_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// MarshalJSON writes the latency in milliseconds.
func (h Health) MarshalJSON() ([]byte, error) {
	return json.Marshal(healthJSON{h.URL, h.Checked, h.Healthy, float64(h.Latency) / float64(time.Millisecond), h.CheckedAt, h.ChangedAt, h.LastError})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *Health) UnmarshalJSON(b []byte) error {
	var j healthJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*h = Health{URL: j.URL, Checked: j.Checked, Healthy: j.Healthy, Latency: time.Duration(j.LatencyMS * float64(time.Millisecond)),
		CheckedAt: j.CheckedAt, ChangedAt: j.ChangedAt, LastError: j.LastError}
	return nil
}

// A HealthChecker asks the upstream's health path through the proxy's own
// transport, so the check sees what visitors' requests will.
type HealthChecker struct {
	// Interval is how often Run checks. NewHealthChecker sets 10 s; tests
	// shorten it before Run.
	Interval time.Duration

	client   *http.Client
	url      string
	host     string // Host header: the public name, as proxied requests carry
	onChange func(Health)

	mu   sync.Mutex
	last Health
}

// NewHealthChecker checks path on upstream through transport, sending
// host as the Host header, and calls onChange (if set) when the upstream
// comes up or goes down.
func NewHealthChecker(upstream *url.URL, path, host string, transport http.RoundTripper, onChange func(Health)) *HealthChecker {
	u := *upstream
	u.Path = path
	return &HealthChecker{
		client: &http.Client{
			Transport:     transport,
			Timeout:       healthTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		url:      u.String(),
		host:     host,
		Interval: healthInterval,
		onChange: onChange,
		last:     Health{URL: u.String()},
	}
}

// Run checks every Interval until ctx is done. The first check waits an
// interval: Start has just checked, and a second probe at once would race
// visitors' first requests for the keepalive pool.
func (h *HealthChecker) Run(ctx context.Context) {
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.Check(ctx)
	}
}

// Check asks the upstream once and records the result.
func (h *HealthChecker) Check(ctx context.Context) Health {
	start := time.Now()
	err := h.probe(ctx)
	if ctx.Err() != nil {
		return h.Status()
	}
	h.mu.Lock()
	prev := h.last
	cur := Health{URL: h.url, Checked: true, Healthy: err == nil, Latency: time.Since(start), CheckedAt: start, ChangedAt: prev.ChangedAt}
	if err != nil {
		cur.LastError = err.Error()
	}
	if !prev.Checked || prev.Healthy != cur.Healthy {
		cur.ChangedAt = start
	}
	h.last = cur
	h.mu.Unlock()
	if h.onChange != nil && (!prev.Checked || prev.Healthy != cur.Healthy) {
		h.onChange(cur)
	}
	return cur
}

func (h *HealthChecker) probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return err
	}
	req.Host = h.host
	req.Header.Set("User-Agent", "Gatehouse health check")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("no answer: %v", unwrapURLError(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("answered %s; if the app has no %s, set the health path to one it serves, such as /", resp.Status, req.URL.Path)
	}
	return nil
}

// Status is the result of the last check.
func (h *HealthChecker) Status() Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// URL is the checked URL.
func (h *HealthChecker) URL() string { return h.url }

// unwrapURLError drops net/http's "Get <url>:" prefix, which repeats what
// the status already says.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
