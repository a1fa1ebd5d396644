package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
)

// privateSuffixes are top-level names that never resolve on the public
// internet (RFC 6761, RFC 6762, RFC 8375, ICANN's .internal, and names home
// routers commonly hand out), so no public CA issues certificates for them.
var privateSuffixes = []string{
	"local", "localhost", "localdomain", "lan", "home", "home.arpa", "internal",
	"intranet", "corp", "private", "test", "example", "invalid",
}

// CheckHostname checks that the hostname is a DNS name a public CA can
// issue a certificate for: not an IP address, not a single label, and not
// under a private top-level name such as .lan or .local. Private names are
// a failure with ACME certificates and a warning with the others, which
// work inside a home network.
func (k *Checker) CheckHostname(cfg config.Config) Result {
	cfg = cfg.WithDefaults()
	r := Result{Name: NameHostname, Title: "Hostname", Field: config.FieldHostname}
	name := strings.TrimSuffix(strings.ToLower(cfg.Hostname), ".")
	if err := config.ValidateHostname(cfg.Hostname); err != nil {
		r.Status, r.Finding = Fail, err.Error()
		r.Fix = "enter the full public name visitors will type, such as sso.example.com (--hostname)"
		return r
	}
	private := ""
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		// Not a private name but this computer's own (RFC 6761): the
		// try-out choice with a local CA, and nothing a CA can validate.
		if cfg.TLS == config.TLSACME {
			r.Status, r.Finding = Fail, name+" always means this computer, so no public CA such as Let's Encrypt can reach it to issue a certificate"
			r.Fix = "use a name in a domain you own, such as sso.example.com, or choose the local certificate authority to try Gatehouse on this computer"
			return r
		}
		r.Status, r.Finding = Pass, name+" always means this computer: the name for trying Gatehouse out here (other devices cannot reach it; for them, use a name in your domain)"
		return r
	}
	if !strings.Contains(name, ".") {
		private = fmt.Sprintf("%s is a single name without a domain, which only your own network can resolve", name)
	} else {
		for _, s := range privateSuffixes {
			if strings.HasSuffix(name, "."+s) {
				private = fmt.Sprintf("%s ends in .%s, a private name that only your own network can resolve", name, s)
				break
			}
		}
	}
	switch {
	case private == "":
		r.Status, r.Finding = Pass, name+" is a valid public DNS name"
	case cfg.TLS == config.TLSACME:
		r.Status, r.Finding = Fail, private+", so no public CA such as Let's Encrypt will issue a certificate for it"
		r.Fix = "use a name in a domain you own, such as sso.example.com (a free dynamic DNS name works too), or choose the local certificate authority for use inside your network only"
	default:
		r.Status, r.Finding = Warn, private+"; visitors outside your network cannot reach it"
		r.Fix = "fine for use inside your network; for visitors from the internet use a name in a public domain, such as sso.example.com"
	}
	return r
}

// AddressScope says what kind of network an address belongs to.
type AddressScope string

const (
	ScopePublic   AddressScope = "public"   // reachable from the internet (if nothing blocks it)
	ScopePrivate  AddressScope = "private"  // a home or office network: RFC 1918, IPv6 ULA, link-local, carrier-grade NAT
	ScopeLoopback AddressScope = "loopback" // this machine only
	ScopeInvalid  AddressScope = "invalid"  // 0.0.0.0, multicast and the like: no machine answers there
)

// A ResolvedAddress is one address the public hostname resolves to, with
// what it means for Gatehouse.
type ResolvedAddress struct {
	IP     netip.Addr   `json:"ip"`
	Scope  AddressScope `json:"scope"`
	Local  bool         `json:"local"` // one of this machine's own addresses
	Status Status       `json:"status"`
	Note   string       `json:"note"`          // what this address means, such as "probably your router"
	Fix    string       `json:"fix,omitempty"` // what to do about it, if anything
}

// Record is "A" or "AAAA", the DNS record type the address came from.
func (a ResolvedAddress) Record() string {
	if a.IP.Is4() {
		return "A"
	}
	return "AAAA"
}

func addressScope(ip netip.Addr) AddressScope {
	switch {
	case ip.IsLoopback():
		return ScopeLoopback
	case ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast():
		return ScopeInvalid
	case ip.IsPrivate() || ip.IsLinkLocalUnicast() || carrierGradeNAT.Contains(ip):
		return ScopePrivate
	}
	return ScopePublic
}

// carrierGradeNAT is the shared address space ISPs (and VPNs such as
// Tailscale) use behind their own NAT (RFC 6598).
var carrierGradeNAT = netip.MustParsePrefix("100.64.0.0/10")

// CheckDNS looks up the hostname's A and AAAA records and says, for each
// address, whether it is this machine, another machine on the local
// network, or a public address, which for a home server is usually the
// router that must forward ports 80 and 443 here. With ACME certificates,
// private addresses fail: the CA validates from the internet.
func (k *Checker) CheckDNS(ctx context.Context, cfg config.Config) Result {
	cfg = cfg.WithDefaults()
	start := time.Now()
	r := Result{Name: NameDNS, Title: "DNS", Field: config.FieldHostname}
	defer func() { r.Elapsed = time.Since(start) }()
	name := strings.TrimSuffix(strings.ToLower(cfg.Hostname), ".")
	if config.ValidateHostname(cfg.Hostname) != nil {
		r.Status, r.Finding = Skip, "not looked up: the hostname is not valid"
		return r
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return checkLocalhostName(r, name, cfg)
	}
	ctx, cancel := k.withTimeout(ctx)
	defer cancel()
	ips, err := k.resolver().LookupNetIP(ctx, "ip", name)
	if err != nil {
		r.Status = Fail
		r.Finding, r.Fix = describeLookupError(name, err, k.timeout(), k.Resolver != nil)
		return r
	}
	local := localAddresses()
	seen := map[netip.Addr]bool{}
	r.Status = Pass
	var notes, fixes []string
	for _, ip := range ips {
		ip = ip.Unmap().WithZone("")
		if seen[ip] {
			continue
		}
		seen[ip] = true
		a := classifyAddress(ip, local, cfg)
		r.Addresses = append(r.Addresses, a)
		r.Status = r.Status.worse(a.Status)
		notes = append(notes, fmt.Sprintf("%s (%s: %s)", ip, a.Record(), a.Note))
		if a.Fix != "" && !slices.Contains(fixes, a.Fix) {
			fixes = append(fixes, a.Fix)
		}
	}
	// A before AAAA, as people read their DNS settings.
	slices.SortStableFunc(r.Addresses, func(a, b ResolvedAddress) int {
		return boolOrder(b.IP.Is4()) - boolOrder(a.IP.Is4())
	})
	r.Finding = name + " resolves to " + strings.Join(notes, ", ")
	r.Fix = strings.Join(fixes, " ")
	return r
}

// checkLocalhostName answers the DNS check for localhost and its
// subdomains without a lookup: they always mean this machine (RFC 6761,
// 6.3), browsers answer them themselves, and many resolvers refuse or
// fail them, so a lookup would only mislead.
func checkLocalhostName(r Result, name string, cfg config.Config) Result {
	if cfg.TLS == config.TLSACME {
		r.Status = Fail
		r.Finding = name + " always means this computer, so no CA on the internet can reach it to validate a certificate"
		r.Fix = "use a name in a domain you own, such as sso.example.com, or choose the local certificate authority to try Gatehouse on this computer"
	} else {
		r.Status = Pass
		r.Finding = name + " always means this computer: browsers reach Gatehouse here without any DNS record"
	}
	for _, ip := range []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()} {
		r.Addresses = append(r.Addresses, ResolvedAddress{IP: ip, Scope: ScopeLoopback, Local: true,
			Status: r.Status, Note: "loopback, so only this machine itself can reach it"})
	}
	return r
}

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

// describeLookupError explains a failed lookup of the public hostname,
// made with a chosen DNS server or the system's.
func describeLookupError(name string, err error, timeout time.Duration, chosenServer bool) (finding, fix string) {
	var dnsErr *net.DNSError
	checkServer := "check this machine's network connection and DNS server (/etc/resolv.conf), then run the check again"
	if chosenServer {
		checkServer = "check that the DNS server you chose answers, and this machine's network connection, then run the check again"
	}
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("%s does not resolve: there is no A or AAAA record for it", name),
			fmt.Sprintf("at your DNS provider, create an A record for %s pointing at your public IP address (your router's, for a home server); new records can take a few minutes to appear", name)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &dnsErr) && dnsErr.IsTimeout:
		return fmt.Sprintf("looking up %s got no answer within %s", name, timeout),
			checkServer
	}
	if dnsErr != nil {
		// dnsErr.Server names resolv.conf's server even when a Resolver
		// dials another, so leave it out.
		return fmt.Sprintf("looking up %s failed: %s", name, dnsErr.Err),
			checkServer
	}
	return fmt.Sprintf("looking up %s failed: %v", name, err),
		checkServer
}

// localAddresses lists this machine's interface addresses. An error leaves
// the list empty: every address then counts as another machine's, which
// the finding words cautiously.
func localAddresses() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = true
		}
	}
	return out
}

// lanAddressList names this machine's addresses of one family, for advice
// such as "forward port 443 to 192.168.1.20": its private addresses if it
// has any (what a router forwards to), else its public ones.
func lanAddressList(local map[netip.Addr]bool, v4 bool) string {
	var private, public []string
	for ip := range local {
		if ip.Is4() != v4 || ip.IsLinkLocalUnicast() {
			continue
		}
		switch addressScope(ip) {
		case ScopePrivate:
			private = append(private, ip.String())
		case ScopePublic:
			public = append(public, ip.String())
		}
	}
	list := private
	if len(list) == 0 {
		list = public
	}
	if len(list) == 0 {
		return "this machine"
	}
	slices.Sort(list)
	return "this machine (" + strings.Join(list, " or ") + ")"
}

// classifyAddress says what one resolved address means for a Gatehouse with
// cfg running on a machine with the local addresses.
func classifyAddress(ip netip.Addr, local map[netip.Addr]bool, cfg config.Config) ResolvedAddress {
	a := ResolvedAddress{IP: ip, Scope: addressScope(ip), Local: local[ip] || ip.IsLoopback()}
	acme := cfg.TLS == config.TLSACME
	here := lanAddressList(local, ip.Is4())
	switch {
	case a.Scope == ScopeInvalid:
		a.Status, a.Note = Fail, "not a usable address; a DNS blocker or a placeholder record answers for this name"
		a.Fix = fmt.Sprintf("point the record at your public IP address, and check that no DNS blocker (such as Pi-hole) answers for %s", cfg.Hostname)
	case a.Scope == ScopeLoopback:
		a.Note = "loopback, so only this machine itself can reach it"
		a.Fix = fmt.Sprintf("point the name at %s instead, so that other machines reach it", here)
		a.Status = Warn
		if acme {
			a.Status = Fail
			a.Fix = "point the public DNS record at your public IP address (your router's, for a home server), which the CA can reach from the internet"
		}
	case a.Scope == ScopePrivate && a.Local:
		a.Note = "this machine's address on your local network"
		a.Status = Pass
		if acme {
			a.Status, a.Note = Fail, a.Note+", which a CA on the internet cannot reach"
			a.Fix = "point the public DNS record at your public IP address (your router's) and forward TCP ports 80 and 443 there to this machine; if only your router's DNS gives this local answer, ask a public server what the internet sees (gatehouse check --dns-server 1.1.1.1:53)"
		}
	case a.Scope == ScopePrivate:
		a.Note = "a private address of another machine, not this one"
		a.Status = Warn
		a.Fix = fmt.Sprintf("run Gatehouse on the machine this name points to, or point the name at %s", here)
		if acme {
			a.Status = Fail
			a.Fix = "point the public DNS record at your public IP address (your router's) and forward TCP ports 80 and 443 there to this machine"
		}
	case a.Local:
		a.Status, a.Note = Pass, "this machine's public address, reachable directly"
	case ip.Is4():
		a.Status, a.Note = Warn, "a public address that is not this machine's: probably your router, with this machine behind its NAT"
		a.Fix = "on your router, " + forwardingAdvice(cfg, here)
		a.Fix += "; if this is not your router's address, correct the record"
	default:
		a.Status, a.Note = Warn, "a public IPv6 address that is not this machine's; routers do not translate IPv6, so IPv6 visitors (and Let's Encrypt, which tries IPv6 first) reach another machine"
		a.Fix = fmt.Sprintf("point the AAAA record at %s, or delete it and let the A record carry visitors", here)
	}
	return a
}

// forwardingAdvice says which ports a router must forward to this machine:
// 80 (unless the HTTP listener is off) and 443, to the ports Gatehouse
// listens on.
func forwardingAdvice(cfg config.Config, here string) string {
	type forward struct{ public, local int }
	var fwd []forward
	if cfg.HTTPAddr != config.Off {
		_, port, _ := ports.SplitAddr(cfg.HTTPAddr)
		fwd = append(fwd, forward{80, port})
	}
	_, port, _ := ports.SplitAddr(cfg.HTTPSAddr)
	fwd = append(fwd, forward{443, port})
	same := true
	for _, f := range fwd {
		same = same && (f.public == f.local || f.local == 0)
	}
	switch {
	case same && len(fwd) == 2:
		return "forward TCP ports 80 and 443 to " + here
	case same:
		return "forward TCP port 443 to " + here
	case len(fwd) == 2:
		return fmt.Sprintf("forward TCP port 80 to %s port %d and port 443 to port %d", here, fwd[0].local, fwd[1].local)
	}
	return fmt.Sprintf("forward TCP port 443 to %s port %d", here, fwd[0].local)
}
