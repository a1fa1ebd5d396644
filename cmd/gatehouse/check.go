package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
)

const checkSummary = `Runs the pre-flight checks with the same settings as serve: the hostname,
what it resolves to, the listen ports, and the way to the upstream (TCP
connect, TLS handshake, health path, WebSocket upgrade), for each site.
Prints one line per check with the fix beneath it, and changes nothing.

Exit status: 0 when no check failed (warnings allowed), 1 when one failed,
2 for a usage error or a config file that cannot be read. Invalid settings
are reported as failed checks, so one run lists every problem.`

// runCheck is `gatehouse check`.
func runCheck(args []string, stdout, stderr io.Writer) int {
	cl := newCommandLine("check", stderr)
	timeout := cl.fs.Duration("timeout", preflight.DefaultTimeout, "time limit for each check")
	asJSON := cl.fs.Bool("json", false, "print the results as a JSON array, with their facts (addresses, port owner, certificate), instead of lines")
	dnsServer := cl.fs.String("dns-server", "", "look the public hostname up with this DNS server (address[:port], such as 1.1.1.1) instead of the system's; a public one shows what the internet sees (the upstream is still looked up as the proxy does)")
	cfg, err := cl.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		cl.usage(stdout, checkSummary)
		return 0
	}
	if err == nil && *timeout <= 0 {
		err = fmt.Errorf("--timeout %s: use a positive duration such as 10s", *timeout)
	}
	k := preflight.Checker{Timeout: *timeout}
	if err == nil && *dnsServer != "" {
		// Only the public hostname: the proxy finds the upstream through
		// the system's resolver, and so must the check.
		k.Resolver, err = dnsResolver(*dnsServer)
		k.UpstreamResolver = net.DefaultResolver
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse check: %v (see gatehouse check -h)\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results := k.Run(ctx, cfg)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintf(stderr, "gatehouse check: %v\n", err)
			return 1
		}
	} else {
		printResults(stdout, results)
	}
	for _, r := range results {
		if r.Status == preflight.Fail {
			return 1
		}
	}
	return 0
}

// checkNameWidth aligns the findings: the longest check name.
const checkNameWidth = len(preflight.NameUpstreamWebSocket)

// printResults writes one line per result, its fix indented beneath, and
// a count.
func printResults(w io.Writer, results []preflight.Result) {
	counts := map[preflight.Status]int{}
	indent := strings.Repeat(" ", 4+2+checkNameWidth+2)
	for _, r := range results {
		counts[r.Status]++
		finding := r.Finding
		if r.Site != "" {
			finding = r.Site + ": " + finding
		}
		fmt.Fprintf(w, "%-4s  %-*s  %s\n", strings.ToUpper(string(r.Status)), checkNameWidth, r.Name, finding)
		if r.Fix != "" && r.Status != preflight.Pass {
			fmt.Fprintf(w, "%sfix: %s\n", indent, r.Fix)
		}
	}
	warnings := fmt.Sprintf("%d warnings", counts[preflight.Warn])
	if counts[preflight.Warn] == 1 {
		warnings = "1 warning"
	}
	fmt.Fprintf(w, "\n%d passed, %s, %d failed, %d skipped\n",
		counts[preflight.Pass], warnings, counts[preflight.Fail], counts[preflight.Skip])
}

// dnsResolver asks only server, an IP address with an optional port (53).
func dnsResolver(server string) (*net.Resolver, error) {
	addr := server
	if _, _, err := net.SplitHostPort(server); err != nil {
		addr = net.JoinHostPort(strings.Trim(server, "[]"), "53")
	}
	host, _, _ := net.SplitHostPort(addr)
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("--dns-server %q: give the server's IP address, with an optional port, such as 1.1.1.1 or [2606:4700:4700::1111]:53", server)
	}
	var d net.Dialer
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}, nil
}
