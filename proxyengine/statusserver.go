package proxyengine

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statusHandler serves the status endpoint: GET /status (JSON) and
// GET /metrics (Prometheus text). It listens on loopback by default.
func (e *Engine) statusHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(engineCollector{e}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		e.writeStatus(w, r.URL.Query().Has("pretty"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	listenHost, _, _ := ports.SplitAddr(e.Config().StatusAddr)
	return statusGuard(mux, listenHost)
}

// statusGuard keeps web pages from reading the status endpoint, which
// shows visitors' addresses and paths. A page on another site could do so
// by DNS rebinding: its own name, made to resolve to 127.0.0.1, is then
// same-origin with the endpoint, and the browser sends that name as Host.
// So only a Host that is an IP address (whose origin is the endpoint's
// own), localhost, or the status address's configured name is served; and
// a browser's cross-site request (Sec-Fetch-Site) is refused whatever its
// Host. Prometheus and curl send neither problem.
func statusGuard(next http.Handler, listenHost string) http.Handler {
	listenHost = normalizeHost(listenHost)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, err := requestHostName(r.Host)
		_, ipErr := netip.ParseAddr(strings.Trim(name, "[]"))
		switch {
		case err != nil || ipErr != nil && name != "localhost" && (listenHost == "" || name != listenHost):
			http.Error(w, "Misdirected Request: the status endpoint answers only to its own address, such as 127.0.0.1 or localhost", http.StatusMisdirectedRequest)
		case !sameOriginOrDirect(r.Header.Get("Sec-Fetch-Site")):
			http.Error(w, "Forbidden: the status endpoint does not answer other sites' pages", http.StatusForbidden)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// sameOriginOrDirect reports whether a browser's Sec-Fetch-Site value (or
// its absence, as from a non-browser client) allows the request: the user
// typed the address, or a page of the endpoint itself asked.
func sameOriginOrDirect(site string) bool {
	return site == "" || site == "none" || site == "same-origin"
}

// The metrics. Series without a site label are totals over every site,
// as a single-site Gatehouse always reported them; the gatehouse_site_*
// series split them by site. The upstream's health and the certificate
// are each site's alone, so their series carry a site label (a query
// without one, such as gatehouse_upstream_up == 0, still works).
var (
	descActiveConns = prometheus.NewDesc("gatehouse_active_connections",
		"Client connections open on the HTTPS listener.", nil, nil)
	descActiveWS = prometheus.NewDesc("gatehouse_active_websockets",
		"Proxied WebSocket sessions open.", nil, nil)
	descRequests = prometheus.NewDesc("gatehouse_requests_total",
		"Requests answered on the HTTPS listener, by status class.", []string{"class"}, nil)
	descUpstreamErrors = prometheus.NewDesc("gatehouse_upstream_errors_total",
		"Requests answered 502 or 504 because the upstream failed or was too slow.", nil, nil)
	descConnsRefused = prometheus.NewDesc("gatehouse_connections_refused_total",
		"Connections reset as they arrived because their visitor (an IPv4 address or IPv6 /64) already held the most one may.", nil, nil)
	descUpstreamUp = prometheus.NewDesc("gatehouse_upstream_up",
		"1 if the last health check of the site's upstream passed, else 0.", []string{"site"}, nil)
	descUpstreamCheckSeconds = prometheus.NewDesc("gatehouse_upstream_health_check_duration_seconds",
		"Duration of the last health check of the site's upstream.", []string{"site"}, nil)
	descUpstreamLatency = prometheus.NewDesc("gatehouse_upstream_latency_seconds",
		"Upstream time to response headers over the last minute, by quantile, over every site.", []string{"quantile"}, nil)
	descCertExpiry = prometheus.NewDesc("gatehouse_certificate_expiry_seconds",
		"Unix time at which the site's certificate expires.", []string{"site", "source"}, nil)
	descBytes = prometheus.NewDesc("gatehouse_connection_bytes",
		"Bytes on the wire of the open client connections, by direction.", []string{"direction"}, nil)
	descSiteRequests = prometheus.NewDesc("gatehouse_site_requests_total",
		"Requests answered for the site, by status class.", []string{"site", "class"}, nil)
	descSiteUpstreamErrors = prometheus.NewDesc("gatehouse_site_upstream_errors_total",
		"Requests for the site answered 502 or 504 because its upstream failed or was too slow.", []string{"site"}, nil)
	descSiteConns = prometheus.NewDesc("gatehouse_site_active_connections",
		"Client connections open whose requests go to the site.", []string{"site"}, nil)
	descSiteWS = prometheus.NewDesc("gatehouse_site_active_websockets",
		"Proxied WebSocket sessions open to the site's upstream.", []string{"site"}, nil)
)

// engineCollector reads the engine's counters at scrape time, so metrics
// cost nothing on the request path beyond the tracking itself.
type engineCollector struct{ e *Engine }

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActiveConns, descActiveWS, descRequests, descUpstreamErrors, descConnsRefused, descUpstreamUp,
		descUpstreamCheckSeconds, descUpstreamLatency, descCertExpiry, descBytes,
		descSiteRequests, descSiteUpstreamErrors, descSiteConns, descSiteWS} {
		ch <- d
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	in, out := e.tracker.wireBytes()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descActiveConns, float64(e.tracker.count()))
	gauge(descActiveWS, float64(e.ws.count()))
	gauge(descBytes, float64(in), "in")
	gauge(descBytes, float64(out), "out")
	counts := e.tracker.counts()
	for class, n := range counts.byClass {
		counter(descRequests, float64(n), class)
	}
	counter(descUpstreamErrors, float64(counts.upstreamErrors))
	counter(descConnsRefused, float64(e.visitors.refused.Load()))
	l := counts.latency
	gauge(descUpstreamLatency, l.P50.Seconds(), "0.5")
	gauge(descUpstreamLatency, l.P95.Seconds(), "0.95")
	gauge(descUpstreamLatency, l.P99.Seconds(), "0.99")
	for _, s := range e.current().siteStatuses() {
		site := s.Hostname
		up := 0.0
		if s.Upstream.Healthy {
			up = 1
		}
		gauge(descUpstreamUp, up, site)
		gauge(descUpstreamCheckSeconds, s.Upstream.Latency.Seconds(), site)
		if cert := s.Certificate; !cert.NotAfter.IsZero() {
			gauge(descCertExpiry, float64(cert.NotAfter.Unix()), site, string(cert.Source))
		}
		for class, n := range s.ResponsesByClass {
			counter(descSiteRequests, float64(n), site, class)
		}
		counter(descSiteUpstreamErrors, float64(s.UpstreamErrors), site)
		gauge(descSiteConns, float64(s.ActiveConnections), site)
		gauge(descSiteWS, float64(s.ActiveWebSockets), site)
	}
}
