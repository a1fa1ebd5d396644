package preflight

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
	"github.com/gatehouse-proxy/gatehouse/internal/testutil"
)

// onlyHTTPS is a config whose only listen address is addr.
func onlyHTTPS(addr string) config.Config {
	return config.Config{Hostname: "sso.example.com", HTTPSAddr: addr, HTTPAddr: config.Off, StatusAddr: config.Off}
}

func TestCheckPortsFree(t *testing.T) {
	var k Checker
	cfg := config.Config{HTTPSAddr: "127.0.0.1:0", HTTPAddr: "[::1]:0", StatusAddr: "localhost:0"}
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		cfg.HTTPAddr = config.Off // no IPv6 loopback here
	} else {
		ln.Close()
	}
	results := k.CheckPorts(context.Background(), cfg)
	wantNames := []Name{NameHTTPSPort, NameHTTPPort, NameStatusPort}
	if cfg.HTTPAddr == config.Off {
		wantNames = []Name{NameHTTPSPort, NameStatusPort}
	}
	if len(results) != len(wantNames) {
		t.Fatalf("got %d results, want %d: %v", len(results), len(wantNames), results)
	}
	for i, r := range results {
		if r.Name != wantNames[i] || r.Status != Pass || !strings.Contains(r.Finding, "this user can listen on it (bound as ") {
			t.Errorf("result %d = %s; want %s to pass", i, r, wantNames[i])
		}
	}
	// Everything bound was released again.
	for _, r := range results {
		_, bound, _ := strings.Cut(r.Finding, "bound as ")
		bound = strings.TrimSuffix(bound, ")")
		ln, err := net.Listen("tcp", bound)
		if err != nil {
			t.Errorf("%s was not released: %v", bound, err)
			continue
		}
		ln.Close()
	}
}

func TestCheckPortsInvalidAddress(t *testing.T) {
	var k Checker
	results := k.CheckPorts(context.Background(), config.Config{HTTPSAddr: "443", HTTPAddr: "127.0.0.1:8080", StatusAddr: config.Off})
	if len(results) != 2 {
		t.Fatalf("got %v", results)
	}
	if r := results[0]; r.Status != Fail || r.Field != "https_addr" || !strings.Contains(r.Finding, "is not a listen address") {
		t.Errorf("https result = %s (field %s)", r, r.Field)
	}
	results = k.CheckPorts(context.Background(), config.Config{HTTPSAddr: "127.0.0.1:9443", HTTPAddr: "127.0.0.1:9443", StatusAddr: config.Off})
	if r := results[0]; r.Status != Fail || !strings.Contains(r.Finding, "cannot share one address") {
		t.Errorf("shared address result = %s", r)
	}
}

func TestCheckPortsMissingAddress(t *testing.T) {
	var k Checker
	// 192.0.2.0/24 is for documentation; binding it only asks the kernel.
	addr := "192.0.2.123:8443"
	if localAddresses()[netip.MustParseAddr("192.0.2.123")] {
		t.Skip("this machine has the documentation address 192.0.2.123")
	}
	r := k.CheckPorts(context.Background(), onlyHTTPS(addr))[0]
	if r.Status != Fail || !strings.Contains(r.Finding, "this machine has no such address") || !strings.Contains(r.Fix, "use :8443") {
		t.Errorf("result = %s", r)
	}
}

func TestCheckPortsInUseByThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("port owners are found through Linux's /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var k Checker
	r := k.CheckPorts(context.Background(), onlyHTTPS(ln.Addr().String()))[0]
	if r.Status != Warn || r.PortOwner == nil || r.PortOwner.PID != os.Getpid() {
		t.Fatalf("result = %s, owner %+v; want a warning naming this process", r, r.PortOwner)
	}
	if !strings.Contains(r.Finding, fmt.Sprintf("this program itself (pid %d)", os.Getpid())) || !strings.Contains(r.Fix, "running proxy") {
		t.Errorf("result = %s", r)
	}
}

// TestHelperHoldPort is not a test: TestCheckPortsInUseByAnotherProcess
// runs the test binary again with GATEHOUSE_TEST_HOLD_PORT=1 to have
// another process listen on a port. It prints the address and holds the
// port until its standard input closes.
func TestHelperHoldPort(t *testing.T) {
	if os.Getenv("GATEHOUSE_TEST_HOLD_PORT") != "1" {
		t.Skip("helper process for TestCheckPortsInUseByAnotherProcess")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// holdPortInAnotherProcess runs the test binary, as found at exe, as the
// helper process and returns its pid and the address it holds.
func holdPortInAnotherProcess(t *testing.T, exe string) (pid int, addr string) {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestHelperHoldPort$")
	cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_HOLD_PORT=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				lines <- a
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case addr = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("the helper process did not report its port")
	}
	return cmd.Process.Pid, addr
}

func TestCheckPortsInUseByAnotherProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("port owners are found through Linux's /proc")
	}
	pid, addr := holdPortInAnotherProcess(t, testutil.CopyTestBinary(t, "portholder"))
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	if command := strings.TrimSpace(string(comm)); command != "portholder" {
		t.Fatalf("helper runs as %q", command)
	}

	var k Checker
	r := k.CheckPorts(context.Background(), onlyHTTPS(addr))[0]
	if r.Status != Fail {
		t.Fatalf("result = %s; want a failure", r)
	}
	if r.PortOwner == nil || r.PortOwner.PID != pid || r.PortOwner.Command != "portholder" || r.PortOwner.UID != os.Geteuid() || r.PortOwner.User == "" {
		t.Fatalf("owner = %+v; want pid %d, command portholder, uid %d", r.PortOwner, pid, os.Geteuid())
	}
	_, port, _ := net.SplitHostPort(addr)
	wantFinding := fmt.Sprintf("port %s is already in use by portholder (pid %d)", port, pid)
	if !strings.Contains(r.Finding, wantFinding) || !strings.Contains(r.Fix, fmt.Sprintf("stop portholder (pid %d), or choose another port (`systemctl status %d`", pid, pid)) {
		t.Errorf("result = %s; want the finding to say %q", r, wantFinding)
	}

	// The engine's own bind error says the same.
	_, err = ports.Listen("HTTPS", addr)
	var le *ports.ListenError
	if !errors.As(err, &le) || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), wantFinding) {
		t.Errorf("listen error = %v; want a ports.ListenError saying %q", err, wantFinding)
	}
}

// TestCheckPortsInUseByAnotherGatehouse: another copy of this program, as
// the service is while `gatehouse check` runs, is a warning.
func TestCheckPortsInUseByAnotherGatehouse(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("port owners are found through Linux's /proc")
	}
	pid, addr := holdPortInAnotherProcess(t, os.Args[0])
	var k Checker
	r := k.CheckPorts(context.Background(), onlyHTTPS(addr))[0]
	if r.Status != Warn || r.PortOwner == nil || r.PortOwner.PID != pid {
		t.Fatalf("result = %s, owner %+v; want a warning naming pid %d", r, r.PortOwner, pid)
	}
	wantContains(t, "fix", r.Fix, fmt.Sprintf("Gatehouse is already running (perhaps as a service: `systemctl status %d` says which)", pid))
}

// TestCheckPortsPrivileged synthesizes the kernel's EACCES, since tests
// often run as root, where every port can be bound.
func TestCheckPortsPrivileged(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr        string
		port, other int
	}{{":443", 443, 8443}, {"0.0.0.0:80", 80, 8080}, {":25", 25, 8025}} {
		bindErr := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)}
		le := &ports.ListenError{Purpose: "HTTPS", Addr: tt.addr, Err: bindErr}
		r := portResult(Result{Name: NameHTTPSPort}, le)
		wants := []string{
			fmt.Sprintf("`sudo setcap cap_net_bind_service=+ep %s`", exe),
			fmt.Sprintf("`sudo sysctl net.ipv4.ip_unprivileged_port_start=%d`", tt.port),
			fmt.Sprintf("listen on %d and forward port %d to it on your router", tt.other, tt.port),
		}
		if r.Status != Fail || !strings.Contains(r.Finding, fmt.Sprintf("port %d is one of them", tt.port)) {
			t.Errorf("%s: result = %s", tt.addr, r)
		}
		for _, w := range wants {
			if !strings.Contains(r.Fix, w) {
				t.Errorf("%s: fix %q lacks %q", tt.addr, r.Fix, w)
			}
			if !strings.Contains(le.Error(), w) {
				t.Errorf("%s: engine error %q lacks %q", tt.addr, le.Error(), w)
			}
		}
	}
}

// TestCheckPortsPrivilegedForReal binds a privileged port where the test
// runs without privileges.
func TestCheckPortsPrivilegedForReal(t *testing.T) {
	if os.Geteuid() == 0 || ports.UnprivilegedStart() <= 1 {
		t.Skip("this user may bind every port")
	}
	var k Checker
	r := k.CheckPorts(context.Background(), onlyHTTPS("127.0.0.1:1"))[0]
	if r.Status != Fail || !strings.Contains(r.Fix, "setcap cap_net_bind_service=+ep") {
		t.Errorf("result = %s", r)
	}
}

func TestListenErrorInUseAdvice(t *testing.T) {
	inUse := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	tests := []struct {
		owner         *ports.PortOwner
		reason, fixes string
	}{
		{nil, "another program is already using port 443", "`sudo ss -ltnp 'sport = :443'`"},
		{&ports.PortOwner{UID: 33, User: "www-data"}, "in use by a program of user www-data (uid 33)", "`sudo ss -ltnp 'sport = :443'`"},
		{&ports.PortOwner{PID: 812, Command: "nginx"}, "in use by nginx (pid 812)", "`sudo systemctl disable --now nginx`"},
		{&ports.PortOwner{PID: 1234, Command: "docker-proxy"}, "in use by docker-proxy (pid 1234)", "a Docker container publishes port 443"},
		{&ports.PortOwner{PID: 99, Command: "python3"}, "in use by python3 (pid 99)", "`systemctl status 99`"},
	}
	for _, tt := range tests {
		le := &ports.ListenError{Purpose: "HTTPS", Addr: ":443", Err: inUse, Owner: tt.owner}
		if !strings.Contains(le.Reason(), tt.reason) || !strings.Contains(le.Fix(), tt.fixes) {
			t.Errorf("owner %+v: reason %q, fix %q; want %q and %q", tt.owner, le.Reason(), le.Fix(), tt.reason, tt.fixes)
		}
		if want := "cannot listen for HTTPS on :443: " + le.Reason() + ". "; !strings.HasPrefix(le.Error(), want) {
			t.Errorf("error %q does not start with %q", le.Error(), want)
		}
	}
}
