// Package preflight checks, before serving, what Gatehouse depends on and
// cannot fix itself: the hostname (hostname and DNS, dns.go), the listen
// ports (ports.go), the upstream: connect, TLS with the configured
// trust, health and a WebSocket upgrade (upstream.go), and the forward
// auth outpost (forwardauth.go). Each Result says
// what was found and what to do, in words for the person setting it up;
// the wizard shows them beside its fields and `gatehouse check` prints them.
package preflight

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
)

// Status is the outcome of one pre-flight check.
type Status string

const (
	Pass Status = "pass"
	Warn Status = "warn" // works, but deserves a look (the finding says why)
	Fail Status = "fail" // Gatehouse will not work until this is fixed
	Skip Status = "skip" // not run: it does not apply, or an earlier step failed
)

// severity orders statuses from harmless to blocking.
func (s Status) severity() int {
	switch s {
	case Warn:
		return 1
	case Fail:
		return 2
	}
	return 0
}

// worse returns the more severe of s and t.
func (s Status) worse(t Status) Status {
	if t.severity() > s.severity() {
		return t
	}
	return s
}

// A Name identifies a check: the stable identifiers in Result.Name.
type Name string

// Names of the checks.
const (
	NameConfig            Name = "config"
	NameHostname          Name = "hostname"
	NameDNS               Name = "dns"
	NameHTTPSPort         Name = "https-port"
	NameHTTPPort          Name = "http-port"
	NameStatusPort        Name = "status-port"
	NameUpstreamConnect   Name = "upstream-connect"
	NameUpstreamTLS       Name = "upstream-tls"
	NameUpstreamHealth    Name = "upstream-health"
	NameUpstreamWebSocket Name = "upstream-websocket"
	NameForwardAuth       Name = "forward-auth"
)

// A Result is the outcome of one pre-flight check, worded for the
// person setting Gatehouse up: what was found, and what to do about it.
// Checks that learn structured facts (addresses, the process on a port, the
// upstream's certificate) also return them, so a UI can act on them, for
// instance by offering to pin the certificate it shows.
type Result struct {
	Name    Name         `json:"name"`
	Title   string       `json:"title"`           // short label for a UI, such as "Upstream TLS handshake"
	Site    string       `json:"site,omitempty"`  // with several sites: the hostname of the site checked, for per-site checks
	Field   config.Field `json:"field,omitempty"` // the setting the check is about, to show the result beside it
	Status  Status       `json:"status"`
	Finding string       `json:"finding"`       // what the check found, in a sentence or two
	Fix     string       `json:"fix,omitempty"` // what to do, when there is something to do

	Addresses   []ResolvedAddress    `json:"addresses,omitempty"`   // dns: each address the hostname resolves to
	PortOwner   *ports.PortOwner     `json:"port_owner,omitempty"`  // *-port: the process holding a taken port, if known
	Certificate *UpstreamCertificate `json:"certificate,omitempty"` // upstream-tls: the certificate the upstream presented
	HTTPStatus  int                  `json:"http_status,omitempty"` // upstream-health, upstream-websocket: the status answered
	Elapsed     time.Duration        `json:"elapsed,omitempty"`     // how long the check took
}

func (r Result) String() string {
	s := fmt.Sprintf("%s %s: %s", strings.ToUpper(string(r.Status)), r.Name, r.Finding)
	if r.Fix != "" {
		s += " Fix: " + r.Fix
	}
	return s
}

// DefaultTimeout bounds each check, and each step of the upstream checks.
const DefaultTimeout = 10 * time.Second

// A Checker runs the pre-flight checks. Its zero value is ready to use, with
// the system resolver and DefaultTimeout. The checks read the config.Config
// they are given and change nothing; a Checker is safe for concurrent use,
// so a UI may run several checks at once.
type Checker struct {
	// Resolver looks up the public hostname for the DNS check and, unless
	// UpstreamResolver is set, the upstream's host. Default:
	// net.DefaultResolver. Point it at a public DNS server to see what the
	// internet sees rather than a router's local answers.
	Resolver *net.Resolver

	// UpstreamResolver, if set, looks up the upstream's host in place of
	// Resolver. With Resolver pointing at a public DNS server, set it to
	// net.DefaultResolver: the proxy looks the upstream up with the
	// system's resolver, and a public one knows nothing of names such as
	// authentik.lan.
	UpstreamResolver *net.Resolver

	// Timeout bounds each check (each step of the upstream checks).
	// Default: DefaultTimeout.
	Timeout time.Duration
}

func (k *Checker) timeout() time.Duration {
	if k.Timeout > 0 {
		return k.Timeout
	}
	return DefaultTimeout
}

func (k *Checker) resolver() *net.Resolver {
	if k.Resolver != nil {
		return k.Resolver
	}
	return net.DefaultResolver
}

func (k *Checker) upstreamResolver() *net.Resolver {
	if k.UpstreamResolver != nil {
		return k.UpstreamResolver
	}
	return k.resolver()
}

// Run runs every check and returns their results in a fixed order: config,
// hostname, DNS, the listen ports, then the upstream's connect, TLS, health
// and WebSocket steps, and the forward auth outpost when one is set.
// Independent groups run at the same time, so the whole run takes about
// as long as its slowest group. With several sites
// (config.Config.AllSites) the order is config, the listen ports, then
// for each site its hostname, DNS, upstream and forward auth checks, each
// Result naming its Site, and its Field the site's key (such as
// sites[0].upstream); a site with forward auth adds its outpost's check.
func (k *Checker) Run(ctx context.Context, cfg config.Config) []Result {
	if sites := cfg.AllSites(); len(sites) > 1 {
		return k.runSites(ctx, cfg, sites)
	}
	var dns Result
	var ports, upstream []Result
	var wg sync.WaitGroup
	var auth Result
	wg.Go(func() { dns = k.CheckDNS(ctx, cfg) })
	wg.Go(func() { ports = k.CheckPorts(ctx, cfg) })
	wg.Go(func() { upstream = k.CheckUpstream(ctx, cfg) })
	wg.Go(func() { auth = k.CheckForwardAuth(ctx, cfg) })
	wg.Wait()
	out := []Result{k.CheckConfig(cfg), k.CheckHostname(cfg), dns}
	out = append(out, ports...)
	out = append(out, upstream...)
	if cfg.ForwardAuth != nil {
		out = append(out, auth)
	}
	return out
}

// runSites runs the checks of a config with several sites: the shared
// ones once, each site's (CheckSite) at the same time.
func (k *Checker) runSites(ctx context.Context, cfg config.Config, sites []config.Site) []Result {
	perSite := make([][]Result, len(sites))
	var ports []Result
	var wg sync.WaitGroup
	wg.Go(func() { ports = k.CheckPorts(ctx, cfg) })
	for i := range sites {
		wg.Go(func() { perSite[i] = k.checkSite(ctx, cfg, i) })
	}
	wg.Wait()
	out := append([]Result{k.CheckConfig(cfg)}, ports...)
	for _, rs := range perSite {
		out = append(out, rs...)
	}
	return out
}

// CheckSite runs the checks of one of cfg's sites, the one named hostname
// (in any letter case): its hostname, DNS, upstream and, with forward
// auth, its outpost, each Result naming the Site, and its Field the
// site's key (such as sites[0].upstream). A name cfg does not serve gets
// one failed result. The desktop app checks a site it adds so.
func (k *Checker) CheckSite(ctx context.Context, cfg config.Config, hostname string) []Result {
	for i, s := range cfg.AllSites() {
		if s.Key() == config.SiteKey(hostname) {
			return k.checkSite(ctx, cfg, i)
		}
	}
	return []Result{{Name: NameHostname, Title: "Hostname", Field: config.FieldHostname, Site: hostname, Status: Fail,
		Finding: fmt.Sprintf("%s is not one of the configured sites", hostname), Fix: "add the site first"}}
}

// checkSite runs the checks of the site at index i of cfg.AllSites().
func (k *Checker) checkSite(ctx context.Context, cfg config.Config, i int) []Result {
	site := cfg.AllSites()[i]
	one := cfg.ForSite(site)
	var dns, auth Result
	var up []Result
	var wg sync.WaitGroup
	wg.Go(func() { dns = k.CheckDNS(ctx, one) })
	wg.Go(func() { up = k.CheckUpstream(ctx, one) })
	if site.ForwardAuth != nil {
		wg.Go(func() { auth = k.checkSiteForwardAuth(ctx, cfg, one) })
	}
	wg.Wait()
	rs := append([]Result{k.CheckHostname(one), dns}, up...)
	if site.ForwardAuth != nil {
		rs = append(rs, auth)
	}
	// A site of the sites list has its keys there; the top-level site, if
	// any, comes first and keeps the top-level keys.
	listed := len(cfg.AllSites()) - len(cfg.Sites)
	for j := range rs {
		rs[j].Site = site.Hostname
		if i >= listed && rs[j].Field != "" {
			rs[j].Field = config.SiteField(i-listed, rs[j].Field)
		}
	}
	return rs
}

// checkSiteForwardAuth checks the forward auth of one, a site of cfg: an
// outpost named by another site is that site's upstream, which one alone
// does not know.
func (k *Checker) checkSiteForwardAuth(ctx context.Context, cfg, one config.Config) Result {
	outpost, err := cfg.Outpost(*one.ForwardAuth)
	if err != nil {
		return Result{Name: NameForwardAuth, Title: "Forward auth outpost", Field: config.FieldForwardAuth, Status: Fail,
			Finding: err.Error(), Fix: "name the site that serves authentik, or give the outpost's address"}
	}
	one.ForwardAuth = &outpost
	return k.CheckForwardAuth(ctx, one)
}

// checkedFields are the config fields whose problems a dedicated check
// reports; CheckConfig reports the others.
var checkedFields = map[config.Field]bool{
	config.FieldHostname: true, config.FieldUpstream: true, config.FieldUpstreamCA: true, config.FieldUpstreamFingerprint: true,
	config.FieldHTTPAddr: true, config.FieldHTTPSAddr: true, config.FieldStatusAddr: true, config.FieldHealthPath: true,
	config.FieldForwardAuth: true,
}

// CheckConfig reports the settings that are invalid, other than those a
// dedicated check covers (hostname, upstream and its trust, listen
// addresses, health path), so a run of the checks lists every problem once.
func (k *Checker) CheckConfig(cfg config.Config) Result {
	r := Result{Name: NameConfig, Title: "Settings", Status: Pass, Finding: "the settings are valid"}
	var msgs []string
	owned := 0
	for _, fe := range config.FieldErrors(cfg.Validate()) {
		field := fe.Field
		if _, key, inSite := field.InSite(); inSite {
			field = key // a site's key: its site's checks report it
		}
		if checkedFields[field] {
			owned++
			continue
		}
		if r.Field == "" {
			r.Field = fe.Field
		}
		msgs = append(msgs, fe.Error())
	}
	switch {
	case len(msgs) > 0:
		r.Status = Fail
		r.Finding = fmt.Sprintf("%d setting(s) are invalid: %s", len(msgs), strings.Join(msgs, "; "))
		r.Fix = "correct the settings named above (each message says how); the flag for a key is --key with - for _, such as --acme-email"
	case owned > 0:
		r.Finding = "the other settings are valid; problems with the hostname, upstream or listen addresses are reported by their own checks"
	}
	return r
}

// withTimeout bounds one check.
func (k *Checker) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, k.timeout())
}
