package testutil

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A Zone is what the fake DNS server knows: names in Records answer with
// their addresses (A or AAAA as asked), names in Silent get no reply at
// all, and every other name is NXDOMAIN.
type Zone struct {
	Records map[string][]netip.Addr
	Silent  map[string]bool
}

// A DNS is a tiny authoritative DNS server on 127.0.0.1, over UDP and TCP
// on one port, whose zone a test may switch while it runs.
type DNS struct {
	Addr string // host:port it serves on

	mu   sync.Mutex
	zone Zone
}

// StartDNS serves zone until the test ends.
func StartDNS(t testing.TB, zone Zone) *DNS {
	t.Helper()
	d := &DNS{zone: zone}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", tcp.Addr().String())
	if err != nil {
		tcp.Close()
		t.Fatal(err)
	}
	d.Addr = tcp.Addr().String()
	handler := dns.HandlerFunc(d.serve)
	servers := []*dns.Server{{Listener: tcp, Handler: handler}, {PacketConn: udp, Handler: handler}}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the DNS server did not start")
		}
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			srv.Shutdown()
		}
	})
	return d
}

// SetZone replaces what the server answers.
func (d *DNS) SetZone(zone Zone) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.zone = zone
}

// Resolver asks this server and nothing else.
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "udp", d.Addr)
		},
	}
}

func (d *DNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	d.mu.Lock()
	zone := d.zone
	d.mu.Unlock()
	q := req.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	if zone.Silent[name] {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	addrs, ok := zone.Records[name]
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
