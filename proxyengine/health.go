package proxyengine

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

// UpstreamHealth is the result of the periodic upstream check.
type UpstreamHealth struct {
	URL       string        // the checked URL
	Checked   bool          // false until the first check ends
	Healthy   bool          // the last check got a 2xx or 3xx answer
	Latency   time.Duration // of the last check
	CheckedAt time.Time
	ChangedAt time.Time // when Healthy last changed
	LastError string    // why the last check failed; empty when healthy
}

// MarshalJSON writes the latency in milliseconds, as the status endpoint
// documents.
func (h UpstreamHealth) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		URL       string    `json:"url"`
		Checked   bool      `json:"checked"`
		Healthy   bool      `json:"healthy"`
		LatencyMS float64   `json:"latency_ms"`
		CheckedAt time.Time `json:"checked_at,omitzero"`
		ChangedAt time.Time `json:"changed_at,omitzero"`
		LastError string    `json:"last_error,omitempty"`
	}{h.URL, h.Checked, h.Healthy, durationMS(h.Latency), h.CheckedAt, h.ChangedAt, h.LastError})
}

func durationMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// healthChecker asks the upstream's health path through the proxy's own
// transport, so the check sees what visitors' requests will.
type healthChecker struct {
	client   *http.Client
	url      string
	host     string // Host header: the public name, as proxied requests carry
	interval time.Duration
	onChange func(UpstreamHealth)

	mu   sync.Mutex
	last UpstreamHealth
}

func newHealthChecker(c Config, upstream *url.URL, transport http.RoundTripper, onChange func(UpstreamHealth)) *healthChecker {
	u := *upstream
	u.Path = c.HealthPath
	return &healthChecker{
		client: &http.Client{
			Transport:     transport,
			Timeout:       healthTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		url:      u.String(),
		host:     c.Hostname,
		interval: healthInterval,
		onChange: onChange,
		last:     UpstreamHealth{URL: u.String()},
	}
}

// run checks every interval until ctx is done. The first check waits an
// interval: Start has just checked, and a second probe at once would race
// visitors' first requests for the keepalive pool.
func (h *healthChecker) run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.check(ctx)
	}
}

// check asks the upstream once and records the result.
func (h *healthChecker) check(ctx context.Context) UpstreamHealth {
	start := time.Now()
	err := h.probe(ctx)
	if ctx.Err() != nil {
		return h.status()
	}
	h.mu.Lock()
	prev := h.last
	cur := UpstreamHealth{URL: h.url, Checked: true, Healthy: err == nil, Latency: time.Since(start), CheckedAt: start, ChangedAt: prev.ChangedAt}
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

func (h *healthChecker) probe(ctx context.Context) error {
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

func (h *healthChecker) status() UpstreamHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// unwrapURLError drops net/http's "Get <url>:" prefix, which repeats what
// the status already says.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
