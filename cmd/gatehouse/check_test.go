package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/preflight"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// checkArgs are flags for a check that touches only loopback: the test
// DNS server, ports on 127.0.0.1 and an empty config file.
func checkArgs(t *testing.T, extra ...string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := config.Save(path, config.Config{StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	dns := testutil.StartDNS(t, testutil.Zone{Records: map[string][]netip.Addr{"sso.example.com": {netip.MustParseAddr("203.0.113.7")}}})
	return append([]string{
		"-config", path, "--dns-server", dns.Addr, "--timeout", "5s",
		"--hostname", "sso.example.com", "--tls", "self-signed",
		"--https-addr", "127.0.0.1:0", "--http-addr", "off", "--status-addr", "off",
	}, extra...)
}

func runCheckForTest(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runCheck(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCheckCommandPasses(t *testing.T) {
	up := httptest.NewUnstartedServer(http.NotFoundHandler())
	up.Config.ErrorLog = log.New(io.Discard, "", 0) // the connect check hangs up before TLS
	up.StartTLS()
	defer up.Close()
	sum := sha256.Sum256(up.Certificate().Raw)
	fp := upstream.FormatFingerprint(sum[:])

	// The upstream by name, which the system resolves from /etc/hosts.
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	code, out, errOut := runCheckForTest(checkArgs(t, "--upstream", "https://localhost:"+port, "--upstream-fingerprint", fp, "--health-path", "/")...)
	// An app other than authentik: / answers 404, a warning, and so does
	// the WebSocket refusal; nothing fails.
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errOut)
	}
	wantOutput(t, out,
		"PASS  config ",
		"PASS  hostname            sso.example.com is a valid public DNS name\n",
		"WARN  dns                 sso.example.com resolves to 203.0.113.7 (A: a public address that is not this machine's: probably your router",
		"                          fix: on your router, forward TCP port 443 to this machine",
		"WARN  upstream-health     GET / answered 404 Not Found, so this is probably not authentik\n",
		"PASS  https-port          127.0.0.1:0 is free",
		"PASS  upstream-connect    connected to localhost:"+port+" (127.0.0.1:"+port+")",
		"PASS  upstream-tls        ",
		"matches the pinned fingerprint\n",
		"WARN  upstream-websocket  ",
		"5 passed, 3 warnings, 0 failed, 0 skipped\n",
	)
}

func TestCheckCommandFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	code, out, _ := runCheckForTest(checkArgs(t, "--upstream", "https://"+closed)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	wantOutput(t, out,
		"FAIL  upstream-connect    "+closed+" refused the connection",
		"\n                          fix: start the app",
		"SKIP  upstream-tls        not tried: no connection to the upstream\n",
	)

	// Invalid settings are failed checks, not usage errors, so every
	// problem shows in one run.
	code, out, _ = runCheckForTest(checkArgs(t, "--hostname", "192.168.1.5", "--upstream", "authentik.lan:9443", "--https-addr", "443")...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	wantOutput(t, out,
		"FAIL  hostname            192.168.1.5 is an IP address",
		"SKIP  dns                 not looked up",
		"FAIL  https-port          \"443\" is not a listen address",
		"FAIL  upstream-connect    \"authentik.lan:9443\" has no scheme",
	)
}

func TestCheckCommandJSON(t *testing.T) {
	up := httptest.NewUnstartedServer(http.NotFoundHandler())
	up.Config.ErrorLog = log.New(io.Discard, "", 0)
	up.StartTLS()
	defer up.Close()
	sum := sha256.Sum256(up.Certificate().Raw)

	code, out, _ := runCheckForTest(checkArgs(t, "--json", "--upstream", up.URL)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the certificate is not trusted)\n%s", code, out)
	}
	var results []preflight.Result
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("output is not a JSON array of results: %v\n%s", err, out)
	}
	var tlsResult *preflight.Result
	for i := range results {
		if results[i].Name == preflight.NameUpstreamTLS {
			tlsResult = &results[i]
		}
	}
	if tlsResult == nil || tlsResult.Status != preflight.Fail || tlsResult.Certificate == nil ||
		tlsResult.Certificate.Fingerprint != upstream.FormatFingerprint(sum[:]) {
		t.Errorf("upstream-tls result %+v", tlsResult)
	}
}

func TestCheckCommandUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"-h"}, 0, "Usage: gatehouse check [flags]", ""},
		{[]string{"--no-such-flag"}, 2, "", "flag provided but not defined"},
		{[]string{"-config", filepath.Join(t.TempDir(), "missing.json")}, 2, "", "reading config"},
		{[]string{"-config", os.DevNull, "--timeout", "0s"}, 2, "", "config"},
		{[]string{"--timeout", "-1s"}, 2, "", "--timeout -1s: use a positive duration"},
		{[]string{"--dns-server", "dns.example.com"}, 2, "", "give the server's IP address"},
		{[]string{"extra"}, 2, "", "unexpected argument"},
	}
	for _, tt := range tests {
		code, out, errOut := runCheckForTest(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
			t.Errorf("check %v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
		}
	}
}

func TestDNSResolver(t *testing.T) {
	for _, s := range []string{"1.1.1.1", "1.1.1.1:5353", "[2606:4700:4700::1111]:53", "2606:4700:4700::1111"} {
		if _, err := dnsResolver(s); err != nil {
			t.Errorf("dnsResolver(%q): %v", s, err)
		}
	}
}

// wantOutput checks that the check's output holds each of wants.
func wantOutput(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckCommandChecksEverySite: the hostname, DNS and upstream checks
// run for each site, each result naming it; one site's failure fails the
// run.
func TestCheckCommandChecksEverySite(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	code, out, errOut := runCheckForTest(checkArgs(t, "--upstream", up.URL, "--health-path", "/",
		"--sites", "app.example.com="+deadURL, "--json")...)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (app.example.com's upstream is down)\n%s%s", code, out, errOut)
	}
	var results []preflight.Result
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatal(err)
	}
	got := map[string]preflight.Result{}
	for _, r := range results {
		got[r.Site+" "+string(r.Name)] = r
	}
	for key, want := range map[string]preflight.Status{
		" config":                          preflight.Pass,
		"sso.example.com dns":              preflight.Warn, // a public address that is not this machine's
		"app.example.com dns":              preflight.Fail, // the test DNS server knows only sso.example.com
		"sso.example.com upstream-connect": preflight.Pass,
		"app.example.com upstream-connect": preflight.Fail,
	} {
		if r, ok := got[key]; !ok || r.Status != want {
			t.Errorf("%q: %+v, want %s", key, r, want)
		}
	}
	if f := got["app.example.com upstream-connect"].Field; f != "sites[0].upstream" {
		t.Errorf("app.example.com's upstream result is about %q, want sites[0].upstream", f)
	}
	if f := got["sso.example.com upstream-connect"].Field; f != config.FieldUpstream {
		t.Errorf("the top-level site's upstream result is about %q, want upstream", f)
	}
	_, text, _ := runCheckForTest(checkArgs(t, "--upstream", up.URL, "--health-path", "/", "--sites", "app.example.com="+deadURL)...)
	if !strings.Contains(text, "app.example.com: ") || !strings.Contains(text, "sso.example.com: ") {
		t.Errorf("the lines do not name the sites:\n%s", text)
	}
}
