package proxyengine

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// siteStats are one site's counters. They belong to the engine, by the
// site's name, so they carry over when Apply changes the site's settings,
// and count on for connections opened before a site was removed.
type siteStats struct {
	hostname       atomic.Pointer[string] // as last configured
	requests       atomic.Uint64
	byClass        [6]atomic.Uint64 // index status/100; 0 holds anything else
	upstreamErrors atomic.Uint64
	connections    atomic.Int64 // open client connections whose requests go to this site
	websockets     atomic.Int64 // open WebSocket sessions to this site's upstream
}

// count records an answer to a request for the site.
func (s *siteStats) count(status int) {
	s.requests.Add(1)
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	s.byClass[class].Add(1)
}

// name is the site's hostname.
func (s *siteStats) name() string {
	if h := s.hostname.Load(); h != nil {
		return *h
	}
	return ""
}

// siteStatsSet holds every site's counters by config.SiteKey.
type siteStatsSet struct {
	mu sync.Mutex
	m  map[string]*siteStats
}

// siteStats returns the counters of the site named key, creating them.
func (e *Engine) siteStats(key string) *siteStats {
	set := &e.siteCounters
	set.mu.Lock()
	defer set.mu.Unlock()
	if set.m == nil {
		set.m = map[string]*siteStats{}
	}
	st := set.m[key]
	if st == nil {
		st = &siteStats{}
		set.m[key] = st
	}
	return st
}

// ServeHTTP routes a request on the TLS listener to the site its Host
// names, after the checks every request passes. r.Host is the authority
// of an absolute-form request line (Go's server takes it over the Host
// header), so both forms are routed alike. A name no site has gets 421,
// whatever certificate the handshake got.
func (g *generation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, hostErr := requestHostName(r.Host)
	var s *siteRun
	if hostErr == nil {
		s = g.byName[host]
	}
	switch {
	case r.Method == http.MethodConnect:
		serveConnect(w)
	case hostErr != nil:
		serveMalformedHost(w)
	case s == nil:
		serveMisdirected(w)
	default:
		if rec, ok := w.(*statusRecorder); ok {
			rec.site = s.stats
		}
		if tc := connFromRequest(r); tc != nil {
			tc.setSite(s.stats)
		}
		s.proxy.serveSite(w, r)
	}
}

// sitesSummary is the names of g's sites, for messages.
func (g *generation) sitesSummary() string {
	names := make([]string, len(g.sites))
	for i, s := range g.sites {
		names[i] = s.site.Hostname
	}
	return joinNames(names)
}

// publicURLs is the addresses of g's sites, for messages.
func (g *generation) publicURLs() string {
	urls := make([]string, len(g.sites))
	for i, s := range g.sites {
		urls[i] = s.publicURL()
	}
	return joinNames(urls)
}

// joinNames lists hostnames for a message.
func joinNames(names []string) string { return strings.Join(names, ", ") }

// firstSite is the default site of g.
func (g *generation) firstSite() *siteRun { return g.sites[0] }
