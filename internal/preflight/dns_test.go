package preflight

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
)

func TestCheckHostname(t *testing.T) {
	var k Checker
	tests := []struct {
		name    string
		tls     config.TLSSource
		want    Status
		finding string
	}{
		{"sso.example.com", config.TLSACME, Pass, "valid public DNS name"},
		{"SSO.Example.COM.", config.TLSACME, Pass, "sso.example.com is a valid"},
		{"192.168.1.5", config.TLSACME, Fail, "is an IP address"},
		{"2001:db8::1", config.TLSSelfSigned, Fail, "is an IP address"},
		{"https://sso.example.com", config.TLSACME, Fail, "includes a scheme"},
		{"", config.TLSACME, Fail, "enter the public name"},
		{"authentik", config.TLSACME, Fail, "single name without a domain"},
		{"authentik", config.TLSSelfSigned, Warn, "single name without a domain"},
		{"auth.lan", config.TLSACME, Fail, "ends in .lan"},
		{"auth.home.arpa", config.TLSFiles, Warn, "ends in .home.arpa"},
		{"auth.landmark.com", config.TLSACME, Pass, "valid public"},
		{"gatehouse.localhost", config.TLSSelfSigned, Pass, "the name for trying Gatehouse out"},
		{"gatehouse.localhost", config.TLSACME, Fail, "always means this computer"},
		{"localhost", config.TLSFiles, Pass, "always means this computer"},
	}
	for _, tt := range tests {
		r := k.CheckHostname(config.Config{Hostname: tt.name, TLS: tt.tls})
		if r.Status != tt.want || !strings.Contains(r.Finding, tt.finding) {
			t.Errorf("CheckHostname(%q, %s) = %s %q; want %s containing %q", tt.name, tt.tls, r.Status, r.Finding, tt.want, tt.finding)
		}
		if r.Status != Pass && r.Fix == "" {
			t.Errorf("CheckHostname(%q, %s): no fix offered for %s", tt.name, tt.tls, r.Status)
		}
		if r.Name != NameHostname || r.Field != "hostname" {
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
	resolver := testutil.StartDNS(t, testutil.Zone{
		Records: map[string][]netip.Addr{
			"loop.example.com":    mustAddrs("127.0.0.1", "::1"),
			"router.example.com":  mustAddrs("203.0.113.7"),
			"lan.example.com":     mustAddrs("192.168.77.77"),
			"v6.example.com":      mustAddrs("203.0.113.7", "2001:db8::99"),
			"here.example.com":    {here},
			"blocked.example.com": mustAddrs("0.0.0.0"),
		},
		Silent: map[string]bool{"silent.example.com": true},
	}).Resolver()
	k := Checker{Resolver: resolver, Timeout: 2 * time.Second}
	ctx := context.Background()

	type want struct {
		status  Status
		finding []string // substrings of the finding
		fix     []string // substrings of the fix
	}
	tests := []struct {
		host  string
		tls   config.TLSSource
		want  want
		addrs []ResolvedAddress // IP, Scope and Local compared
	}{
		{"loop.example.com", config.TLSACME, want{Fail, []string{"127.0.0.1 (A: loopback", "::1 (AAAA: loopback"}, []string{"public IP address"}},
			[]ResolvedAddress{{IP: netip.MustParseAddr("127.0.0.1"), Scope: ScopeLoopback, Local: true}, {IP: netip.MustParseAddr("::1"), Scope: ScopeLoopback, Local: true}}},
		{"loop.example.com", config.TLSSelfSigned, want{Warn, []string{"only this machine itself"}, []string{"point the name at this machine"}}, nil},
		{"router.example.com", config.TLSACME, want{Warn, []string{"203.0.113.7 (A: a public address that is not this machine's: probably your router"}, []string{"forward TCP port 80 to this machine", "port 443 to port 8443"}},
			[]ResolvedAddress{{IP: netip.MustParseAddr("203.0.113.7"), Scope: ScopePublic}}},
		{"lan.example.com", config.TLSACME, want{Fail, []string{"private address of another machine"}, []string{"public IP address"}},
			[]ResolvedAddress{{IP: netip.MustParseAddr("192.168.77.77"), Scope: ScopePrivate}}},
		{"lan.example.com", config.TLSSelfSigned, want{Warn, []string{"private address of another machine"}, []string{"run Gatehouse on the machine this name points to"}}, nil},
		{"v6.example.com", config.TLSACME, want{Warn, []string{"2001:db8::99 (AAAA: a public IPv6 address", "routers do not translate IPv6"}, []string{"AAAA record"}},
			[]ResolvedAddress{{IP: netip.MustParseAddr("203.0.113.7"), Scope: ScopePublic}, {IP: netip.MustParseAddr("2001:db8::99"), Scope: ScopePublic}}},
		{"here.example.com", config.TLSSelfSigned, want{Pass, []string{here.String() + " (A: this machine's"}, nil},
			[]ResolvedAddress{{IP: here, Scope: addressScope(here), Local: true}}},
		{"blocked.example.com", config.TLSACME, want{Fail, []string{"not a usable address"}, []string{"DNS blocker"}}, nil},
		{"missing.example.com", config.TLSACME, want{Fail, []string{"does not resolve"}, []string{"create an A record"}}, nil},
		// Answered without a lookup (the test server knows neither name).
		{"gatehouse.localhost", config.TLSSelfSigned, want{Pass, []string{"always means this computer"}, nil},
			[]ResolvedAddress{{IP: netip.MustParseAddr("127.0.0.1"), Scope: ScopeLoopback, Local: true}, {IP: netip.MustParseAddr("::1"), Scope: ScopeLoopback, Local: true}}},
		{"LOCALHOST.", config.TLSACME, want{Fail, []string{"localhost always means this computer", "no CA on the internet can reach it"}, []string{"local certificate authority"}}, nil},
		{"silent.example.com", config.TLSACME, want{Fail, []string{"no answer within 2s"}, []string{"DNS server"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.host+"/"+string(tt.tls), func(t *testing.T) {
			cfg := config.Config{Hostname: tt.host, TLS: tt.tls, HTTPSAddr: ":8443", HTTPAddr: ":8080"}
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

	r := k.CheckDNS(ctx, config.Config{Hostname: "not a name"})
	if r.Status != Skip {
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
	acme := config.Config{TLS: config.TLSACME}.WithDefaults()
	self := config.Config{TLS: config.TLSSelfSigned}.WithDefaults()
	tests := []struct {
		ip     string
		cfg    config.Config
		scope  AddressScope
		local  bool
		status Status
		fix    string
	}{
		{"198.51.100.10", acme, ScopePublic, true, Pass, ""},
		{"203.0.113.7", acme, ScopePublic, false, Warn, "forward TCP ports 80 and 443 to this machine (192.168.1.20)"},
		{"192.168.1.20", acme, ScopePrivate, true, Fail, "--dns-server 1.1.1.1:53"},
		{"192.168.1.20", self, ScopePrivate, true, Pass, ""},
		{"10.1.2.3", self, ScopePrivate, false, Warn, "point the name at this machine (192.168.1.20)"},
		{"100.101.102.103", acme, ScopePrivate, false, Fail, "public IP address"},
		{"fe80::1", acme, ScopePrivate, false, Fail, "public IP address"},
		{"fd12::1", self, ScopePrivate, false, Warn, "point the name at this machine"},
		{"127.0.0.2", self, ScopeLoopback, true, Warn, "point the name at this machine (192.168.1.20)"},
		{"0.0.0.0", self, ScopeInvalid, false, Fail, "DNS blocker"},
		{"ff02::1", self, ScopeInvalid, false, Fail, "DNS blocker"},
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
	r := k.CheckDNS(context.Background(), config.Config{Hostname: "sso.example.com"})
	if r.Status != Fail || !strings.Contains(r.Finding, "looking up sso.example.com failed: ") || strings.Contains(r.Finding, " on ") {
		t.Errorf("result %s", r)
	}
	wantContains(t, "fix", r.Fix, "the DNS server you chose")
}
