package proxyengine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// A State is where the engine is in its life.
type State string

// Engine states reported in Status.State.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateStopped  State = "stopped"
	// StatePaused is a service's: its process runs, its proxy does not.
	StatePaused State = "paused"
)

// Status is a snapshot of the engine, safe to keep and read from any
// goroutine. The JSON form is what GET /status serves. Its counters are
// totals over every site; Hostname, PublicURL, Upstream and Certificate
// are the first site's; Sites has each site's own.
type Status struct {
	State     State     `json:"state"`
	Hostname  string    `json:"hostname"`
	PublicURL string    `json:"public_url"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// HTTPSAddr and HTTPAddr are the bound listen addresses ("" when not
	// listening), as visitors' connections arrive on them.
	HTTPSAddr string `json:"https_addr,omitempty"`
	HTTPAddr  string `json:"http_addr,omitempty"`

	ActiveConnections  int               `json:"active_connections"`
	ActiveWebSockets   int               `json:"active_websockets"`
	RequestsTotal      uint64            `json:"requests_total"`
	RequestsPerSecond  float64           `json:"requests_per_second"`    // over the last full second
	RequestsLastMinute float64           `json:"requests_per_second_1m"` // average over the last minute
	ResponsesByClass   map[string]uint64 `json:"responses_by_class"`     // "2xx" … "5xx"
	UpstreamErrors     uint64            `json:"upstream_errors"`
	// ConnectionsRefused counts connections reset as they arrived because
	// their visitor already held as many open as one may.
	ConnectionsRefused uint64         `json:"connections_refused"`
	UpstreamLatency    LatencySummary `json:"upstream_latency"`

	Connections []ConnectionInfo `json:"connections"`
	WebSockets  []WebSocketInfo  `json:"websockets"`
	Upstream    upstream.Health  `json:"upstream"`
	Certificate certs.Status     `json:"certificate"`
	History     []HistoryPoint   `json:"history"`
	Events      []Event          `json:"events"` // newest first

	// Sites describes each site, in the order of the configuration
	// (config.Config.AllSites).
	Sites []SiteStatus `json:"sites"`
}

// SiteStatus is one site's part of a Status. Its counters count since the
// engine started, whatever settings the site had meanwhile.
type SiteStatus struct {
	Hostname         string            `json:"hostname"`
	PublicURL        string            `json:"public_url"`
	Upstream         upstream.Health   `json:"upstream"`
	Certificate      certs.Status      `json:"certificate"`
	RequestsTotal    uint64            `json:"requests_total"`
	ResponsesByClass map[string]uint64 `json:"responses_by_class"` // "1xx" … "5xx"
	UpstreamErrors   uint64            `json:"upstream_errors"`
	// ActiveConnections counts the open client connections whose requests
	// went to this site; a connection yet to send a request counts for
	// none.
	ActiveConnections int `json:"active_connections"`
	ActiveWebSockets  int `json:"active_websockets"`
}

// ErrorRate is the share of answers in the last minute of history that
// were server errors (5xx), from 0 to 1.
func (s Status) ErrorRate() float64 {
	var reqs, errs uint64
	for _, p := range s.History[max(0, len(s.History)-60):] {
		reqs += p.Requests
		errs += p.Errors
	}
	if reqs == 0 {
		return 0
	}
	return float64(errs) / float64(reqs)
}

func durationMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencyJSON is LatencySummary on the wire: milliseconds.
type latencyJSON struct {
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Count uint64  `json:"count"`
}

// MarshalJSON writes latencies in milliseconds.
func (l LatencySummary) MarshalJSON() ([]byte, error) {
	return json.Marshal(latencyJSON{durationMS(l.P50), durationMS(l.P95), durationMS(l.P99), l.Count})
}

// UnmarshalJSON reads what MarshalJSON writes, as clients of the status
// and control endpoints do.
func (l *LatencySummary) UnmarshalJSON(b []byte) error {
	var j latencyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	fromMS := func(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
	*l = LatencySummary{P50: fromMS(j.P50), P95: fromMS(j.P95), P99: fromMS(j.P99), Count: j.Count}
	return nil
}

// ConnectionInfo describes one client connection to the TLS listener.
type ConnectionInfo struct {
	ID         uint64    `json:"id"`
	Remote     string    `json:"remote"`
	Protocol   string    `json:"protocol"` // "HTTP/1.1", "HTTP/2", "WebSocket", or "TLS" before the first request
	WebSocket  bool      `json:"websocket"`
	ServerName string    `json:"server_name,omitempty"` // the TLS SNI
	Site       string    `json:"site,omitempty"`        // the hostname of the site its requests go to
	OpenedAt   time.Time `json:"opened_at"`
	Method     string    `json:"method,omitempty"` // of the current or last request
	Path       string    `json:"path,omitempty"`
	Status     int       `json:"status,omitempty"` // 0 while the request is in flight
	BytesIn    int64     `json:"bytes_in"`         // from the client, on the wire
	BytesOut   int64     `json:"bytes_out"`
	Active     bool      `json:"active"` // a request or WebSocket is in progress
}

// WebSocketInfo describes one proxied WebSocket session.
type WebSocketInfo struct {
	ConnectionID uint64    `json:"connection_id"`
	Remote       string    `json:"remote"`
	Path         string    `json:"path"`
	Site         string    `json:"site,omitempty"` // the hostname of the site whose upstream it reaches
	OpenedAt     time.Time `json:"opened_at"`
	BytesIn      int64     `json:"bytes_in"` // client to upstream
	BytesOut     int64     `json:"bytes_out"`
	MessagesIn   uint64    `json:"messages_in"`
	MessagesOut  uint64    `json:"messages_out"`
}

// Status returns a snapshot of the engine with every connection.
func (e *Engine) Status() Status { return e.Snapshot(View{Rows: AllRows}) }

// AllRows as View.Rows lists every connection and WebSocket.
const AllRows = -1

// A View chooses the connections and WebSockets a snapshot lists. Its
// zero value lists none: the totals alone.
type View struct {
	// Rows is how many connections and how many WebSockets are listed at
	// most, the oldest first; AllRows (any negative number) lists every
	// one. A dashboard asks for the rows it shows, so its cost does not
	// grow with the crowd.
	Rows int
	// Site, when set, lists only the connections and WebSockets whose
	// requests went to the site of that hostname (in any letter case);
	// the totals stay every site's. Default: every site's.
	Site string
}

// Snapshot returns a snapshot of the engine listing what v chooses.
func (e *Engine) Snapshot(v View) Status {
	rows, site := v.Rows, config.SiteKey(v.Site)
	e.mu.Lock()
	state, started := e.state, e.startedAt
	e.mu.Unlock()
	counts := e.tracker.counts()
	g := e.current()
	st := Status{
		State:              state,
		Hostname:           g.firstSite().site.Hostname,
		PublicURL:          e.PublicURL(),
		HTTPSAddr:          addrString(e.HTTPSAddr()),
		HTTPAddr:           addrString(e.HTTPAddr()),
		StartedAt:          started,
		RequestsTotal:      counts.requests,
		ResponsesByClass:   counts.byClass,
		WebSockets:         []WebSocketInfo{}, // [] rather than null in JSON
		UpstreamErrors:     counts.upstreamErrors,
		ConnectionsRefused: e.visitors.refused.Load(),
		UpstreamLatency:    counts.latency,
		Upstream:           g.firstSite().health.Status(),
		Certificate:        g.firstSite().cert.status(),
		Sites:              g.siteStatuses(),
		History:            e.history.list(),
		Events:             e.tracker.events.list(),
	}
	st.RequestsPerSecond, st.RequestsLastMinute = e.history.rates()
	if rows == 0 {
		st.ActiveWebSockets = e.ws.count()
	} else {
		sessions := e.ws.list()
		st.ActiveWebSockets = len(sessions)
		for _, s := range sessions {
			if rows > 0 && len(st.WebSockets) == rows {
				break
			}
			if info := s.info(); site == "" || config.SiteKey(info.Site) == site {
				st.WebSockets = append(st.WebSockets, info)
			}
		}
	}
	st.Connections, st.ActiveConnections = e.tracker.connectionInfos(rows, site)
	return st
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// PublicURL is the address visitors use: the first site's.
func (e *Engine) PublicURL() string { return e.current().firstSite().publicURL() }

// publicURL is the address visitors use for s.
func (s *siteRun) publicURL() string {
	if s.cfg.PublicHTTPSPort == 443 {
		return "https://" + s.site.Hostname + "/"
	}
	return "https://" + net.JoinHostPort(s.site.Hostname, strconv.Itoa(s.cfg.PublicHTTPSPort)) + "/"
}

// siteStatuses describes each site of g.
func (g *generation) siteStatuses() []SiteStatus {
	out := make([]SiteStatus, len(g.sites))
	for i, s := range g.sites {
		st := s.stats
		out[i] = SiteStatus{
			Hostname:          s.site.Hostname,
			PublicURL:         s.publicURL(),
			Upstream:          s.health.Status(),
			Certificate:       s.cert.status(),
			RequestsTotal:     st.requests.Load(),
			ResponsesByClass:  make(map[string]uint64, 5),
			UpstreamErrors:    st.upstreamErrors.Load(),
			ActiveConnections: int(st.connections.Load()),
			ActiveWebSockets:  int(st.websockets.Load()),
		}
		for class := 1; class <= 5; class++ {
			out[i].ResponsesByClass[strconv.Itoa(class)+"xx"] = st.byClass[class].Load()
		}
	}
	return out
}

// notifyInterval is the fastest pace of change notifications.
const notifyInterval = 250 * time.Millisecond

// Subscribe returns a channel that receives a value when the status has
// changed, at most four times a second and at least once a second while
// the engine runs; a slow reader misses nothing but intermediate ticks.
// cancel ends the subscription.
func (e *Engine) Subscribe() (updates <-chan struct{}, cancel func()) { return e.subs.Subscribe() }

// sample runs while the engine serves: once a second it adds a history
// point and rotates the latency window, and four times a second it tells
// subscribers about changes.
func (e *Engine) sample(ctx context.Context) {
	tick := time.NewTicker(notifyInterval)
	defer tick.Stop()
	lastSecond := time.Now()
	var lastReqs, lastErrs uint64
	lastCert := map[*certRun]certs.Status{}
	for _, c := range e.current().certs {
		lastCert[c] = c.status()
	}
	for {
		select {
		case <-ctx.Done():
			e.subs.Notify()
			return
		case now := <-tick.C:
			t := e.tracker
			if now.Sub(lastSecond) >= time.Second {
				lastSecond = now
				reqs, errs := t.requests.Load(), t.byClass[5].Load()
				e.history.add(HistoryPoint{
					Time: now, Requests: reqs - lastReqs, Errors: errs - lastErrs,
					ActiveConnections: t.count(), ActiveWebSockets: e.ws.count(),
				})
				lastReqs, lastErrs = reqs, errs
				t.latency.rotate()
				seen := map[*certRun]certs.Status{}
				for _, c := range e.current().certs {
					cert := c.status()
					if prev, ok := lastCert[c]; ok && certChanged(prev, cert) {
						e.noteCertificate(c.names, cert)
					}
					seen[c] = cert
				}
				lastCert = seen
				t.changed.Store(true)
			}
			if t.changed.Swap(false) {
				e.subs.Notify()
			}
		}
	}
}

func certChanged(a, b certs.Status) bool {
	return a.Fingerprint != b.Fingerprint || a.LastError != b.LastError
}

// noteCertificate records a certificate change as an event and a log line.
func (e *Engine) noteCertificate(names []string, c certs.Status) {
	ev := Event{Time: time.Now(), Kind: EventCertificate}
	if c.LastError != "" {
		ev.Message = fmt.Sprintf("certificate problem (%s): %s", joinNames(names), c.LastError)
		e.logger.Warn("certificate problem", "names", names, "err", c.LastError)
	} else {
		ev.Message = fmt.Sprintf("serving a certificate for %s from %s, valid until %s", joinNames(names), c.Issuer, c.NotAfter.Format(time.DateOnly))
		e.logger.Info("serving a new certificate", "names", names, "issuer", c.Issuer, "not_after", c.NotAfter)
	}
	e.tracker.events.add(ev)
}

// noteUpstreamHealth records a change of the health of site's upstream.
// With one site the message is as it always was; with more it names the
// site.
func (e *Engine) noteUpstreamHealth(site string, h upstream.Health) {
	ev := Event{Time: h.CheckedAt, Kind: EventUpstream}
	which := "upstream"
	if len(e.current().sites) > 1 {
		which = "upstream of " + site
	}
	if h.Healthy {
		ev.Message = fmt.Sprintf("%s is up (answered in %s)", which, h.Latency.Round(time.Millisecond))
		e.logger.Info("upstream is up", "site", site, "url", h.URL, "latency", h.Latency)
	} else {
		ev.Message = which + " is down: " + h.LastError
		e.logger.Warn("upstream is down", "site", site, "url", h.URL, "err", h.LastError)
	}
	e.tracker.events.add(ev)
	e.tracker.changed.Store(true)
}
