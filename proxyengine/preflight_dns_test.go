package proxyengine

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNS is a tiny authoritative DNS server on 127.0.0.1: names in records
// answer with their addresses (A or AAAA as asked), names in silent get no
// reply at all, and every other name is NXDOMAIN.
type testDNS struct {
	records map[string][]netip.Addr
	silent  map[string]bool
}

// startTestDNS serves d on a loopback UDP port and returns a resolver that
// asks it and nothing else.
func startTestDNS(t *testing.T, d testDNS) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("DNS server did not start")
	}
	t.Cleanup(func() { srv.Shutdown() })
	addr := pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

func (d testDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	if d.silent[name] {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	addrs, ok := d.records[name]
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	for _, a := range addrs {
		switch {
		case a.Is4() && q.Qtype == dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case a.Is6() && q.Qtype == dns.TypeAAAA:
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	w.WriteMsg(m)
}

func TestCheckHostname(t *testing.T) {
	var k Checker
	tests := []struct {
		name, tls string
		want      CheckStatus
		finding   string
	}{
		{"sso.example.com", TLSACME, CheckPass, "valid public DNS name"},
		{"SSO.Example.COM.", TLSACME, CheckPass, "sso.example.com is a valid"},
		{"192.168.1.5", TLSACME, CheckFail, "is an IP address"},
		{"2001:db8::1", TLSSelfSigned, CheckFail, "is an IP address"},
		{"https://sso.example.com", TLSACME, CheckFail, "includes a scheme"},
		{"", TLSACME, CheckFail, "enter the public name"},
		{"authentik", TLSACME, CheckFail, "single name without a domain"},
		{"authentik", TLSSelfSigned, CheckWarn, "single name without a domain"},
		{"auth.lan", TLSACME, CheckFail, "ends in .lan"},
		{"auth.home.arpa", TLSFiles, CheckWarn, "ends in .home.arpa"},
		{"auth.landmark.com", TLSACME, CheckPass, "valid public"},
		{"gatehouse.localhost", TLSSelfSigned, CheckPass, "the name for trying Gatehouse out"},
		{"gatehouse.localhost", TLSACME, CheckFail, "always means this computer"},
		{"localhost", TLSFiles, CheckPass, "always means this computer"},
	}
	for _, tt := range tests {
		r := k.CheckHostname(Config{Hostname: tt.name, TLS: tt.tls})
		if r.Status != tt.want || !strings.Contains(r.Finding, tt.finding) {
			t.Errorf("CheckHostname(%q, %s) = %s %q; want %s containing %q", tt.name, tt.tls, r.Status, r.Finding, tt.want, tt.finding)
		}
		if r.Status != CheckPass && r.Fix == "" {
			t.Errorf("CheckHostname(%q, %s): no fix offered for %s", tt.name, tt.tls, r.Status)
		}
		if r.Name != CheckNameHostname || r.Field != "hostname" {
			t.Errorf("CheckHostname(%q): name %q field %q", tt.name, r.Name, r.Field)
		}
	}
}

// nonLoopbackAddr returns one of this machine's own non-loopback addresses.
func nonLoopbackAddr(t *testing.T) netip.Addr {
	for ip := range localAddresses() {
		if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return netip.Addr{}
}

func TestCheckDNS(t *testing.T) {
	here := nonLoopbackAddr(t)
	mustAddrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	resolver := startTestDNS(t, testDNS{
		records: map[string][]netip.Addr{
			"loop.example.com":    mustAddrs("127.0.0.1", "::1"),
			"router.example.com":  mustAddrs("203.0.113.7"),
			"lan.example.com":     mustAddrs("192.168.77.77"),
			"v6.example.com":      mustAddrs("203.0.113.7", "2001:db8::99"),
			"here.example.com":    {here},
			"blocked.example.com": mustAddrs("0.0.0.0"),
		},
		silent: map[string]bool{"silent.example.com": true},
	})
	k := Checker{Resolver: resolver, Timeout: 2 * time.Second}
	ctx := context.Background()

	type want struct {
		status  CheckStatus
		finding []string // substrings of the finding
		fix     []string // substrings of the fix
	}
	tests := []struct {
		host, tls string
		want      want
		addrs     []ResolvedAddress // IP, Scope and Local compared
	}{
		{"loop.example.com", TLSACME, want{CheckFail, []string{"127.0.0.1 (A: loopback", "::1 (AAAA: loopback"}, []string{"public IP address"}},
			[]ResolvedAddress{{IP: netip.MustParseAddr("127.0.0.1"), Scope: ScopeLoopback, Local: true}, {IP: netip.MustParseAddr("::1"), Scope: ScopeLoopback, Local: true}}},
		{"loop.example.com", TLSSelfSigned, want{CheckWarn, []string{"only this machine itself"}, []string{"point the name at this machine"}}, nil},
		{"router.example.com", TLSACME, want{CheckWarn, []string{"203.0.113.7 (A: a public address that is not this machine's: probably your router"}, []string{"forward TCP port 80 to this machine", "port 443 to port 8443"}},
			[]ResolvedAddress{{IP: netip.MustParseAddr("203.0.113.7"), Scope: ScopePublic}}},
		{"lan.example.com", TLSACME, want{CheckFail, []string{"private address of another machine"}, []string{"public IP address"}},
			[]ResolvedAddress{{IP: netip.MustParseAddr("192.168.77.77"), Scope: ScopePrivate}}},
		{"lan.example.com", TLSSelfSigned, want{CheckWarn, []string{"private address of another machine"}, []string{"run Gatehouse on the machine this name points to"}}, nil},
		{"v6.example.com", TLSACME, want{CheckWarn, []string{"2001:db8::99 (AAAA: a public IPv6 address", "routers do not translate IPv6"}, []string{"AAAA record"}},
			[]ResolvedAddress{{IP: netip.MustParseAddr("203.0.113.7"), Scope: ScopePublic}, {IP: netip.MustParseAddr("2001:db8::99"), Scope: ScopePublic}}},
		{"here.example.com", TLSSelfSigned, want{CheckPass, []string{here.String() + " (A: this machine's"}, nil},
			[]ResolvedAddress{{IP: here, Scope: addressScope(here), Local: true}}},
		{"blocked.example.com", TLSACME, want{CheckFail, []string{"not a usable address"}, []string{"DNS blocker"}}, nil},
		{"missing.example.com", TLSACME, want{CheckFail, []string{"does not resolve"}, []string{"create an A record"}}, nil},
		// Answered without a lookup (the test server knows neither name).
		{"gatehouse.localhost", TLSSelfSigned, want{CheckPass, []string{"always means this computer"}, nil},
			[]ResolvedAddress{{IP: netip.MustParseAddr("127.0.0.1"), Scope: ScopeLoopback, Local: true}, {IP: netip.MustParseAddr("::1"), Scope: ScopeLoopback, Local: true}}},
		{"LOCALHOST.", TLSACME, want{CheckFail, []string{"localhost always means this computer", "no CA on the internet can reach it"}, []string{"local certificate authority"}}, nil},
		{"silent.example.com", TLSACME, want{CheckFail, []string{"no answer within 2s"}, []string{"DNS server"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.host+"/"+tt.tls, func(t *testing.T) {
			cfg := Config{Hostname: tt.host, TLS: tt.tls, HTTPSAddr: ":8443", HTTPAddr: ":8080"}
			start := time.Now()
			r := k.CheckDNS(ctx, cfg)
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("took %s, beyond the 2s timeout", elapsed)
			}
			if r.Status != tt.want.status {
				t.Errorf("status %s, want %s: %s", r.Status, tt.want.status, r)
			}
			for _, s := range tt.want.finding {
				if !strings.Contains(r.Finding, s) {
					t.Errorf("finding %q lacks %q", r.Finding, s)
				}
			}
			for _, s := range tt.want.fix {
				if !strings.Contains(r.Fix, s) {
					t.Errorf("fix %q lacks %q", r.Fix, s)
				}
			}
			if tt.addrs != nil {
				if len(r.Addresses) != len(tt.addrs) {
					t.Fatalf("addresses %+v, want %+v", r.Addresses, tt.addrs)
				}
				for i, a := range r.Addresses {
					w := tt.addrs[i]
					if a.IP != w.IP || a.Scope != w.Scope || a.Local != w.Local {
						t.Errorf("address %d = %s %s local=%v, want %s %s local=%v", i, a.IP, a.Scope, a.Local, w.IP, w.Scope, w.Local)
					}
				}
			}
		})
	}

	r := k.CheckDNS(ctx, Config{Hostname: "not a name"})
	if r.Status != CheckSkip {
		t.Errorf("invalid hostname: status %s, want skip", r.Status)
	}
}

// TestClassifyAddress covers combinations a test machine cannot set up for
// real, such as a public address on one of its own interfaces.
func TestClassifyAddress(t *testing.T) {
	local := map[netip.Addr]bool{
		netip.MustParseAddr("198.51.100.10"): true, // a public address on this machine (a VPS)
		netip.MustParseAddr("192.168.1.20"):  true,
		netip.MustParseAddr("127.0.0.1"):     true,
	}
	acme := Config{TLS: TLSACME}.WithDefaults()
	self := Config{TLS: TLSSelfSigned}.WithDefaults()
	tests := []struct {
		ip     string
		cfg    Config
		scope  AddressScope
		local  bool
		status CheckStatus
		fix    string
	}{
		{"198.51.100.10", acme, ScopePublic, true, CheckPass, ""},
		{"203.0.113.7", acme, ScopePublic, false, CheckWarn, "forward TCP ports 80 and 443 to this machine (192.168.1.20)"},
		{"192.168.1.20", acme, ScopePrivate, true, CheckFail, "--dns-server 1.1.1.1:53"},
		{"192.168.1.20", self, ScopePrivate, true, CheckPass, ""},
		{"10.1.2.3", self, ScopePrivate, false, CheckWarn, "point the name at this machine (192.168.1.20)"},
		{"100.101.102.103", acme, ScopePrivate, false, CheckFail, "public IP address"},
		{"fe80::1", acme, ScopePrivate, false, CheckFail, "public IP address"},
		{"fd12::1", self, ScopePrivate, false, CheckWarn, "point the name at this machine"},
		{"127.0.0.2", self, ScopeLoopback, true, CheckWarn, "point the name at this machine (192.168.1.20)"},
		{"0.0.0.0", self, ScopeInvalid, false, CheckFail, "DNS blocker"},
		{"ff02::1", self, ScopeInvalid, false, CheckFail, "DNS blocker"},
	}
	for _, tt := range tests {
		a := classifyAddress(netip.MustParseAddr(tt.ip), local, tt.cfg)
		if a.Scope != tt.scope || a.Local != tt.local || a.Status != tt.status || !strings.Contains(a.Fix, tt.fix) {
			t.Errorf("classifyAddress(%s, %s) = %s local=%v %s fix %q; want %s local=%v %s fix containing %q",
				tt.ip, tt.cfg.TLS, a.Scope, a.Local, a.Status, a.Fix, tt.scope, tt.local, tt.status, tt.fix)
		}
		if a.Note == "" {
			t.Errorf("classifyAddress(%s): no note", tt.ip)
		}
	}
}

// TestCheckDNSServerDown: a chosen DNS server that is not running.
func TestCheckDNSServerDown(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	k := Checker{Timeout: 2 * time.Second, Resolver: &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}}
	r := k.CheckDNS(context.Background(), Config{Hostname: "sso.example.com"})
	if r.Status != CheckFail || !strings.Contains(r.Finding, "looking up sso.example.com failed: ") || strings.Contains(r.Finding, " on ") {
		t.Errorf("result %s", r)
	}
	wantContains(t, "fix", r.Fix, "the DNS server you chose")
}
