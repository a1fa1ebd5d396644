package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/control"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
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

// TestServeRunsAndStopsOnSIGTERM starts `gatehouse serve` with
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

// serveChildEnv makes the test binary run `gatehouse serve` with the
// arguments it holds (a JSON list) instead of the tests. serveAndStop runs
// serve this way, in a child process: the SIGTERM it sends then reaches
// serve alone, and cannot end the test binary if serve failed to start.
const serveChildEnv = "GATEHOUSE_TEST_SERVE_ARGS"

func TestMain(m *testing.M) {
	if v, ok := os.LookupEnv(serveChildEnv); ok {
		var args []string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(runServe(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// serveChild is `gatehouse serve` running in a child process.
type serveChild struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer  // read only once exited is closed
	exited chan struct{} // closed when the child has exited
}

// startServe starts `gatehouse serve args` in a child process, which is
// killed when the test ends if it is still running.
func startServe(t *testing.T, args []string) *serveChild {
	t.Helper()
	encoded, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := &serveChild{cmd: exec.Command(self), exited: make(chan struct{})}
	s.cmd.Env = append(os.Environ(), serveChildEnv+"="+string(encoded))
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
	return s
}

// serveAndStop runs `gatehouse serve --save-config` in front of upstream
// on a port the system picks (its control socket says which), fetches /
// through it, checks the saved config and stops it with SIGTERM. It
// returns the body fetched.
func serveAndStop(t *testing.T, upstream string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "conf", "config.json")
	socket := filepath.Join(dir, "control.sock")
	s := startServe(t, []string{"--config", path, "--save-config", "--hostname", "sso.test", "--upstream", upstream,
		"--tls", "self-signed", "--state-dir", filepath.Join(dir, "state"), "--https-addr", "127.0.0.1:0",
		"--http-addr", "off", "--status-addr", "off", "--log-level", "error", "--control-socket", socket})
	httpsAddr := s.listening(t, socket)
	body, ok := fetchThroughServe(t, s, httpsAddr)
	if !ok {
		t.Fatalf("serve exited with %v before answering: %s", s.cmd.ProcessState, s.stderr.String())
	}
	saved, err := config.Load(path)
	if err != nil || saved.Hostname != "sso.test" || saved.HTTPSAddr != "127.0.0.1:0" || saved.Upstream != upstream {
		t.Errorf("--save-config wrote %+v (%v)", saved, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v", fi.Mode().Perm())
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if !s.cmd.ProcessState.Success() {
			t.Errorf("serve ended with %v after SIGTERM, want exit status 0; stderr: %s", s.cmd.ProcessState, s.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket is left behind after SIGTERM: %v", err)
	}
	return body
}

// listening waits until the child's control socket says it serves, and
// returns the HTTPS address it listens on.
func (s *serveChild) listening(t *testing.T, socket string) string {
	t.Helper()
	c := control.NewClient(socket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := c.Status(t.Context(), proxyengine.View{}); err == nil && st.State == proxyengine.StateRunning {
			return st.HTTPSAddr
		}
		select {
		case <-s.exited:
			t.Fatalf("serve exited with %v: %s", s.cmd.ProcessState, s.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer on its control socket: %s", s.stderr.String())
		}
	}
}

// fetchThroughServe gets https://sso.test/ from the child serving on
// httpsAddr, trying until it answers; ok is false if it exits first.
func fetchThroughServe(t *testing.T, s *serveChild, httpsAddr string) (body string, ok bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if body, err := testutil.GetVia(httpsAddr, "https://sso.test/"); err == nil {
			return body, true
		}
		select {
		case <-s.exited:
			return "", false
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer on %s within 30 s", httpsAddr)
		}
	}
}
