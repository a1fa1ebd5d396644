package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

func TestServeUsageErrorsExit2WithOneLine(t *testing.T) {
	dir := t.TempDir()
	missing, empty := filepath.Join(dir, "missing.json"), filepath.Join(dir, "empty.json")
	os.WriteFile(empty, []byte("{}"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"--config", missing}, "reading config"},
		{[]string{"--config", empty, "extra"}, `unexpected argument "extra"`},
		{[]string{"--config", empty, "--hostname", "sso.example.com"}, "--upstream: enter the address"},
		{[]string{"--config", empty, "--hostname", "10.0.0.1", "--upstream", "https://a.lan:9443"}, "--hostname: 10.0.0.1 is an IP address"},
		{[]string{"--config", empty, "--log-format", "xml"}, `--log-format "xml"`},
	} {
		var stderr strings.Builder
		code := runServe(tc.args, io.Discard, &stderr)
		out := stderr.String()
		if code != 2 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line containing %q", tc.args, code, out, tc.want)
		}
	}
}

// TestServeRunsAndStopsOnSIGTERM starts `gatehouse serve` in-process with
// --save-config, proxies one request, then stops it with SIGTERM.
func TestServeRunsAndStopsOnSIGTERM(t *testing.T) {
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream says hi") })}
	upLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(upLn)
	defer up.Close()
	if body := serveAndStop(t, "http://"+upLn.Addr().String()); body != "upstream says hi" {
		t.Fatalf("proxied body %q", body)
	}
}

// TestServeRunsTheDemoApp: --upstream demo serves the built-in demo app,
// and the saved config keeps "demo" rather than this run's port.
func TestServeRunsTheDemoApp(t *testing.T) {
	if body := serveAndStop(t, config.UpstreamDemo); !strings.Contains(body, "this page came through Gatehouse") {
		t.Fatalf("proxied body %.200q, want the demo page", body)
	}
}

// serveAndStop runs `gatehouse serve --save-config` in-process in front of
// upstream, fetches / through it, checks the saved config and stops it with
// SIGTERM. It returns the body fetched.
func serveAndStop(t *testing.T, upstream string) string {
	t.Helper()
	port, _ := net.Listen("tcp", "127.0.0.1:0") // reserve a free port
	httpsAddr := port.Addr().String()
	port.Close()

	dir := t.TempDir()
	path := filepath.Join(dir, "conf", "config.json")
	args := []string{"--config", path, "--save-config", "--hostname", "sso.test", "--upstream", upstream,
		"--tls", "self-signed", "--state-dir", filepath.Join(dir, "state"), "--https-addr", httpsAddr,
		"--http-addr", "off", "--status-addr", "off", "--log-level", "error", "--control-socket", filepath.Join(dir, "control.sock")}
	code := make(chan int, 1)
	go func() { code <- runServe(args, io.Discard, io.Discard) }()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, httpsAddr)
		}}}
	defer client.CloseIdleConnections()
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get("https://sso.test/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	saved, err := config.Load(path)
	if err != nil || saved.Hostname != "sso.test" || saved.HTTPSAddr != httpsAddr || saved.Upstream != upstream {
		t.Errorf("--save-config wrote %+v (%v)", saved, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v", fi.Mode().Perm())
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d after SIGTERM, want 0", c)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	return body
}
