package control

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/supervisor"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// service runs a supervisor with a real engine on loopback, its config
// saved in a temporary directory, and the API on a socket there.
type service struct {
	sup    *supervisor.Supervisor
	client *Client
	path   string // the config file
	socket string
}

func startService(t *testing.T, upstream string) *service {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Config{Hostname: "gatehouse.test", Upstream: upstream, TLS: config.TLSSelfSigned,
		HTTPAddr: config.Off, HTTPSAddr: "127.0.0.1:0", StatusAddr: config.Off, StateDir: filepath.Join(dir, "state")}
	s := &service{path: filepath.Join(dir, "config.json"), socket: filepath.Join(dir, "run", "control.sock")}
	if err := config.Save(s.path, cfg); err != nil {
		t.Fatal(err)
	}
	s.sup = supervisor.New(cfg, s.path, supervisor.Options{Logger: testutil.Logger(t)})
	if err := s.sup.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.sup.Shutdown(context.Background()) })
	srv := &Server{Controller: s.sup, Logger: testutil.Logger(t)}
	ln, err := srv.Listen(s.socket)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.client = NewClient(s.socket)
	return s
}

// get fetches / through the proxy, for the body the upstream answered.
func (s *service) get(t *testing.T) (string, error) {
	t.Helper()
	st := s.sup.Snapshot(proxyengine.View{})
	if st.State != proxyengine.StateRunning {
		return "", errors.New("not running: " + string(st.State))
	}
	return testutil.GetVia(st.HTTPSAddr, "https://gatehouse.test/")
}

func TestControlStatusApplyPauseResume(t *testing.T) {
	a, b := testutil.NamedUpstream(t, "A", false), testutil.NamedUpstream(t, "B", false)
	s := startService(t, a.URL)
	ctx := t.Context()
	if fi, err := os.Stat(s.socket); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}

	st, err := s.client.Status(ctx, proxyengine.View{})
	if err != nil || st.State != proxyengine.StateRunning || st.Hostname != "gatehouse.test" || st.Connections == nil {
		t.Fatalf("status: %+v, %v", st, err)
	}
	cfg, err := s.client.Config(ctx)
	if err != nil || cfg.Upstream != a.URL {
		t.Fatalf("config: %+v, %v", cfg, err)
	}

	// A refused config names its fields and changes nothing.
	bad := cfg
	bad.Upstream, bad.ACMEEmail = "authentik.lan:9443", "not an address"
	bad.TLS = config.TLSACME
	err = s.client.Apply(ctx, bad)
	fields := config.FieldErrors(err)
	if fields.For(config.FieldUpstream) == nil || fields.For(config.FieldACMEEmail) == nil {
		t.Fatalf("apply of bad settings: %v, want field errors for upstream and acme_email", err)
	}
	if body, err := s.get(t); body != "A" {
		t.Errorf("after a refused apply the proxy answers %q (%v), want A", body, err)
	}
	if saved, _ := config.Load(s.path); saved.Upstream != a.URL {
		t.Errorf("a refused apply was saved: %+v", saved)
	}

	cfg.Upstream = b.URL
	if err := s.client.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if body, err := s.get(t); body != "B" {
		t.Errorf("after apply the proxy answers %q (%v), want B", body, err)
	}
	saved, err := config.Load(s.path)
	if err != nil || saved.Upstream != b.URL {
		t.Errorf("apply saved %+v (%v)", saved, err)
	}
	if fi, _ := os.Stat(s.path); fi.Mode().Perm() != 0o600 {
		t.Errorf("the saved config has mode %v", fi.Mode().Perm())
	}

	// The file edited by hand, then reloaded.
	saved.Upstream = a.URL
	config.Save(s.path, saved)
	if err := s.client.Reload(ctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if body, _ := s.get(t); body != "A" {
		t.Errorf("after reload the proxy answers %q, want A", body)
	}

	if err := s.client.Pause(ctx); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if st, _ := s.client.Status(ctx, proxyengine.View{}); st.State != proxyengine.StatePaused {
		t.Errorf("state after pause: %q", st.State)
	}
	if _, err := s.get(t); err == nil {
		t.Error("the proxy still serves while paused")
	}
	if err := s.client.Resume(ctx); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if body, err := s.get(t); body != "A" {
		t.Errorf("after resume the proxy answers %q (%v), want A", body, err)
	}
	if c, err := s.client.Certificate(ctx); err != nil || c.Source != config.TLSSelfSigned || len(c.Names) != 1 {
		t.Errorf("certificate: %+v, %v", c, err)
	}
}

// TestControlApplyRefusesOversizedOrTrailingBodies: a body over the limit
// is answered 413, a config with more after it 400; neither is applied.
// The status lists the rows and the site asked for in its query; the
// counts stay every connection's.
func TestControlStatusListsTheViewAsked(t *testing.T) {
	a := testutil.NamedUpstream(t, "A", false)
	s := startService(t, a.URL)
	ctx := t.Context()
	// Two visitors keep their connections open to the one site.
	for range 2 {
		c, err := tls.Dial("tcp", s.sup.Snapshot(proxyengine.View{}).HTTPSAddr, &tls.Config{ServerName: "gatehouse.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, v := range []struct {
		view proxyengine.View
		want int
	}{
		{proxyengine.View{}, 0},
		{proxyengine.View{Rows: 1}, 1},
		{proxyengine.View{Rows: proxyengine.AllRows}, 2},
		{proxyengine.View{Rows: proxyengine.AllRows, Site: "Gatehouse.Test"}, 2},
		{proxyengine.View{Rows: 5, Site: "other.test"}, 0},
	} {
		st, err := s.client.Status(ctx, v.view)
		if err != nil || len(st.Connections) != v.want || st.ActiveConnections != 2 {
			t.Errorf("status %+v: %d connections listed of %d (%v), want %d of 2", v.view, len(st.Connections), st.ActiveConnections, err, v.want)
		}
	}
}

func TestControlApplyRefusesOversizedOrTrailingBodies(t *testing.T) {
	a := testutil.NamedUpstream(t, "A", false)
	s := startService(t, a.URL)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.socket)
		}}}
	defer c.CloseIdleConnections()
	cfg, _ := json.Marshal(s.sup.Config())
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"upstream":"` + strings.Repeat("a", maxConfigBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{string(cfg) + `{"upstream":"http://127.0.0.1:1"}`, http.StatusBadRequest},
	} {
		resp, err := c.Post("http://gatehouse/v1/apply", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d-byte body: %s %s, want %d", len(tc.body), resp.Status, msg, tc.want)
		}
	}
	if got := s.sup.Config().Upstream; got != a.URL {
		t.Errorf("upstream %q after refused applies, want %q", got, a.URL)
	}
}

func TestControlUpdatesStreamTotals(t *testing.T) {
	s := startService(t, testutil.NamedUpstream(t, "A", false).URL)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	updates, err := s.client.Updates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := <-updates
	if first.State != proxyengine.StateRunning || first.Connections != nil || first.History != nil {
		t.Errorf("first update: state %q, %d connections, %d history points; want running totals only",
			first.State, len(first.Connections), len(first.History))
	}
	for range 3 {
		if _, err := s.get(t); err != nil {
			t.Fatal(err)
		}
	}
	for {
		select {
		case st, ok := <-updates:
			if !ok {
				t.Fatal("the stream ended")
			}
			if st.RequestsTotal >= 3 {
				return
			}
		case <-ctx.Done():
			t.Fatal("no update counted the requests")
		}
	}
}

func TestControlNoService(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "control.sock"))
	if _, err := c.Status(t.Context(), proxyengine.View{}); !errors.Is(err, ErrNoService) {
		t.Errorf("status with nothing there: %v, want ErrNoService", err)
	}
	if _, err := Find(t.Context(), c.Socket); !errors.Is(err, ErrNoService) {
		t.Errorf("Find with nothing there: %v", err)
	}
}

// TestControlRefusesAnotherUser: with the socket file opened to everyone by
// hand, a process of another user still gets nothing (SO_PEERCRED). It
// needs root, to run that process as nobody.
func TestControlRefusesAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	s := startService(t, testutil.NamedUpstream(t, "A", false).URL)
	testutil.OpenToOthers(t, filepath.Dir(s.socket))
	os.Chmod(s.socket, 0o666)
	exe := testutil.CopyTestBinary(t, "control.test")
	for _, asUID := range []uint32{65534, 0} {
		cmd := exec.Command(exe, "-test.run=^TestHelperControlClient$")
		cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_SOCKET="+s.socket)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: asUID, Gid: asUID}}
		out, err := cmd.CombinedOutput()
		got := string(out)
		switch {
		case asUID != 0 && (err == nil || !strings.Contains(got, "may not use the Gatehouse service")):
			t.Errorf("uid %d: %v\n%s; want refused", asUID, err, got)
		case asUID == 0 && (err != nil || !strings.Contains(got, "state running")):
			t.Errorf("root: %v\n%s; want the status", err, got)
		}
	}
}

// TestHelperControlClient asks the socket in GATEHOUSE_TEST_SOCKET for the
// status, as TestControlRefusesAnotherUser's other user.
func TestHelperControlClient(t *testing.T) {
	path := os.Getenv("GATEHOUSE_TEST_SOCKET")
	if path == "" {
		t.Skip("run by TestControlRefusesAnotherUser")
	}
	st, err := NewClient(path).Status(context.Background(), proxyengine.View{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state %s", st.State)
	os.Stdout.WriteString("state " + string(st.State) + "\n")
}

// TestControlAdmitsTheGroup: with Group, the socket is open to anyone
// and the peer check admits the group (here nogroup, whose gid a helper
// process takes) and refuses other users. It needs root.
func TestControlAdmitsTheGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run clients as other users")
	}
	g, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Skip("no nogroup group here")
	}
	gid, _ := strconv.Atoi(g.Gid)
	s := startService(t, testutil.NamedUpstream(t, "A", false).URL)
	srv := &Server{Controller: s.sup, Group: "nogroup", Logger: testutil.Logger(t)}
	socket := filepath.Join(t.TempDir(), "run", "group.sock")
	ln, err := srv.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	if fi, _ := os.Stat(socket); fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %v, want 0666 (the peer check decides)", fi.Mode().Perm())
	}
	testutil.OpenToOthers(t, filepath.Dir(socket))
	exe := testutil.CopyTestBinary(t, "control.test")
	for _, tc := range []struct {
		uid, gid uint32
		admitted bool
	}{{65534, uint32(gid), true}, {65533, 65533, false}} {
		cmd := exec.Command(exe, "-test.run=^TestHelperControlClient$")
		cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_SOCKET="+socket)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.gid}}
		out, err := cmd.CombinedOutput()
		if admitted := err == nil && strings.Contains(string(out), "state running"); admitted != tc.admitted {
			t.Errorf("uid %d gid %d: admitted %v, want %v\n%s", tc.uid, tc.gid, admitted, tc.admitted, out)
		}
	}
}
