package service

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// fakeSystem stands in for the commands Install runs: getent, groupadd and
// useradd keep a little user database, systemctl answers from fields, and
// every command line is recorded in order.
type fakeSystem struct {
	calls   []string
	passwd  map[string]string // name: getent passwd line
	group   map[string]string
	active  string            // systemctl is-active's answer
	enabled string            // systemctl is-enabled's answer
	fail    map[string]string // command line: output of its failure
}

// exitError is a failed command, as *exec.ExitError reports one.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitError) ExitCode() int { return int(e) }

func newFakeSystem() *fakeSystem {
	return &fakeSystem{passwd: map[string]string{}, group: map[string]string{}, active: "inactive", enabled: "not-found"}
}

func (f *fakeSystem) run(_ context.Context, name string, args ...string) ([]byte, error) {
	line := shellQuote(append([]string{name}, args...)...)
	f.calls = append(f.calls, line)
	if out, ok := f.fail[line]; ok {
		return []byte(out), exitError(1)
	}
	last := args[len(args)-1]
	switch {
	case name == "getent" && args[0] == "passwd", name == "getent" && args[0] == "group":
		db := f.passwd
		if args[0] == "group" {
			db = f.group
		}
		if entry, ok := db[last]; ok {
			return []byte(entry + "\n"), nil
		}
		return nil, exitError(2)
	case name == "groupadd":
		f.group[last] = last + ":x:997:"
	case name == "useradd":
		f.passwd[last] = last + ":x:998:997:Gatehouse HTTPS gateway:/nonexistent:/usr/sbin/nologin"
	case name == "systemctl" && slices.Contains(args, "is-active"):
		if f.active != "active" {
			return []byte(f.active + "\n"), exitError(3)
		}
		return []byte("active\n"), nil
	case name == "systemctl" && slices.Contains(args, "is-enabled"):
		if f.enabled != "enabled" {
			return []byte(f.enabled + "\n"), exitError(1)
		}
		return []byte("enabled\n"), nil
	case name == "systemctl" && slices.Contains(args, "enable"):
		f.active, f.enabled = "active", "enabled"
	case name == "systemctl" && slices.Contains(args, "disable"):
		f.active, f.enabled = "inactive", "disabled"
	}
	return nil, nil
}

// calledSince returns the command lines run since the first n.
func (f *fakeSystem) calledSince(n int) []string { return slices.Clone(f.calls[n:]) }

// testBed is an installer working in a temporary root, for alice, whose
// desktop app has set Gatehouse up.
type testBed struct {
	t      *testing.T
	root   string
	in     *Installer
	sys    *fakeSystem
	exe    []byte
	owners map[string][2]int // with a fake chown (tests not run as root)
}

const aliceHome = "/home/alice"

func newTestBed(t *testing.T) *testBed {
	t.Helper()
	b := &testBed{t: t, root: t.TempDir(), sys: newFakeSystem(), exe: []byte("the gatehouse program\n"), owners: map[string][2]int{}}
	exe := filepath.Join(t.TempDir(), "gatehouse")
	if err := os.WriteFile(exe, b.exe, 0o755); err != nil {
		t.Fatal(err)
	}
	b.in = &Installer{
		Root: b.root, Run: b.sys.run, Executable: exe,
		Invoker: &user.User{Username: "alice", Uid: "1000", Gid: "1000", HomeDir: aliceHome},
		Geteuid: func() int { return 0 },
	}
	if os.Geteuid() != 0 {
		// Owners are checked for real as root (as CI runs), else recorded.
		b.in.Chown = func(path string, uid, gid int) error {
			if _, err := os.Lstat(path); err != nil {
				return err
			}
			b.owners[path] = [2]int{uid, gid}
			return nil
		}
	}
	return b
}

// path is p on the system under test.
func (b *testBed) path(p string) string { return filepath.Join(b.root, p) }

func (b *testBed) write(p string, data string, perm os.FileMode) {
	b.t.Helper()
	if err := os.MkdirAll(filepath.Dir(b.path(p)), 0o700); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(b.path(p), []byte(data), perm); err != nil {
		b.t.Fatal(err)
	}
}

func (b *testBed) read(p string) string {
	b.t.Helper()
	data, err := os.ReadFile(b.path(p))
	if err != nil {
		b.t.Fatal(err)
	}
	return string(data)
}

// owner is the owner of p, as chown set it.
func (b *testBed) owner(p string) [2]int {
	if b.in.Chown != nil {
		if o, ok := b.owners[b.path(p)]; ok {
			return o
		}
		// Renamed into place after chown: recorded under the temporary name.
		for path, o := range b.owners {
			if filepath.Dir(path) == filepath.Dir(b.path(p)) && strings.HasPrefix(filepath.Base(path), "."+filepath.Base(p)+".tmp-") {
				return o
			}
		}
		return [2]int{-1, -1}
	}
	fi, err := os.Lstat(b.path(p))
	if err != nil {
		return [2]int{-1, -1}
	}
	st := fi.Sys().(*syscall.Stat_t)
	return [2]int{int(st.Uid), int(st.Gid)}
}

// wantFile checks p's mode and owner (nil: root, or whoever runs the test).
func (b *testBed) wantFile(p string, perm os.FileMode, owner *[2]int) {
	b.t.Helper()
	fi, err := os.Lstat(b.path(p))
	if err != nil {
		b.t.Errorf("%s: %v", p, err)
		return
	}
	if got := fi.Mode().Perm(); got != perm {
		b.t.Errorf("%s has mode %04o, want %04o", p, got, perm)
	}
	want := [2]int{os.Geteuid(), os.Getegid()}
	if b.in.Chown != nil {
		want = [2]int{-1, -1} // never chowned
	}
	if owner != nil {
		want = *owner
	}
	if got := b.owner(p); got != want {
		b.t.Errorf("%s belongs to %d:%d, want %d:%d", p, got[0], got[1], want[0], want[1])
	}
}

var gatehouseIDs = &[2]int{998, 997}

// aliceSetup writes the config and state alice's desktop app left: a
// local CA, ACME state in a subdirectory, and an upstream CA in her home.
func (b *testBed) aliceSetup() {
	b.t.Helper()
	dir := aliceHome + "/.config/gatehouse"
	b.write(aliceHome+"/certs/authentik-ca.pem", testCA(b.t), 0o644)
	data, _ := json.Marshal(config.Config{
		Hostname: "sso.example.com", Upstream: "https://authentik.lan:9443", UpstreamCA: aliceHome + "/certs/authentik-ca.pem",
		TLS: config.TLSSelfSigned, StateDir: dir + "/state",
	})
	b.write(dir+"/config.json", string(data), 0o600)
	b.write(dir+"/state/local-ca.crt", "CA CERT", 0o644)
	b.write(dir+"/state/local-ca.key", "CA KEY", 0o600)
	b.write(dir+"/state/acme/staging/account.key", "ACCOUNT KEY", 0o600)
}

// testCA is a PEM CA certificate, which Validate reads for upstream_ca.
func testCA(t *testing.T) string {
	cert, _ := testCertificate(t)
	return cert
}

// testCertificate is a PEM certificate and its key.
func testCertificate(t *testing.T) (string, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// noTempFiles fails when a directory holds a temporary file of writeFile.
func (b *testBed) noTempFiles() {
	b.t.Helper()
	filepath.WalkDir(b.root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			b.t.Errorf("temporary file left: %s", path)
		}
		return nil
	})
}

var useradd = "useradd --system --gid gatehouse --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment 'Gatehouse HTTPS gateway' gatehouse"

func TestInstallSystemServiceOnAFreshMachine(t *testing.T) {
	b := newTestBed(t)
	b.aliceSetup()
	ctx := context.Background()

	// The dry run first: it changes nothing and lists what the real run does.
	dry, err := b.in.Install(ctx, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || len(dry.Steps) == 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	wantQueries := []string{"getent group gatehouse", "getent passwd gatehouse", "systemctl is-active gatehouse.service"}
	if !reflect.DeepEqual(b.sys.calls, wantQueries) {
		t.Errorf("the dry run ran %q, want only the queries %q", b.sys.calls, wantQueries)
	}
	for _, p := range []string{"/etc", "/usr", "/var"} {
		if _, err := os.Stat(b.path(p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the dry run made %s", p)
		}
	}

	n := len(b.sys.calls)
	r, err := b.in.Install(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", r.Text("Installed"))
	if got := b.sys.calledSince(n); !reflect.DeepEqual(got, append(wantQueries,
		"groupadd --system gatehouse", "getent group gatehouse", "getent passwd gatehouse",
		useradd, "getent group gatehouse", "getent passwd gatehouse",
		"usermod -aG gatehouse alice", "systemctl daemon-reload", "systemctl enable --now gatehouse.service")) {
		t.Errorf("commands:\n%s", strings.Join(got, "\n"))
	}
	if !reflect.DeepEqual(r.Steps, dry.Steps) {
		t.Errorf("the dry run listed other steps than the install took:\ndry run: %v\ninstall: %v", dry.Steps, r.Steps)
	}

	if got := b.read(SystemBinary); got != string(b.exe) {
		t.Errorf("%s holds %q", SystemBinary, got)
	}
	b.wantFile(SystemBinary, 0o755, nil)
	if got := b.read(SystemUnitPath); got != SystemUnit() {
		t.Errorf("the unit file differs from SystemUnit():\n%s", got)
	}
	b.wantFile(SystemUnitPath, 0o644, nil)

	b.wantFile(SystemConfigDir, 0o700, gatehouseIDs)
	b.wantFile(SystemConfig, 0o600, gatehouseIDs)
	cfg, err := readConfig(b.path(SystemConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != SystemStateDir || cfg.Hostname != "sso.example.com" || cfg.UpstreamCA != "/etc/gatehouse/upstream-ca.pem" {
		t.Errorf("installed config: %+v", cfg)
	}
	if b.read("/etc/gatehouse/upstream-ca.pem") != b.read(aliceHome+"/certs/authentik-ca.pem") {
		t.Error("the upstream CA was not copied")
	}
	b.wantFile("/etc/gatehouse/upstream-ca.pem", 0o600, gatehouseIDs)

	b.wantFile(SystemStateDir, 0o700, gatehouseIDs)
	b.wantFile(SystemStateDir+"/acme", 0o700, gatehouseIDs)
	b.wantFile(SystemStateDir+"/acme/staging", 0o700, gatehouseIDs)
	for file, data := range map[string]string{"local-ca.crt": "CA CERT", "local-ca.key": "CA KEY", "acme/staging/account.key": "ACCOUNT KEY"} {
		if got := b.read(SystemStateDir + "/" + file); got != data {
			t.Errorf("%s holds %q, want %q", file, got, data)
		}
		b.wantFile(SystemStateDir+"/"+file, 0o600, gatehouseIDs)
	}
	b.noTempFiles()
	for _, want := range []string{"The service runs with its own copy of " + aliceHome + "/.config/gatehouse/config.json, /etc/gatehouse/config.json", "upstream_ca: the service cannot read home directories"} {
		if !strings.Contains(strings.Join(r.Notes, "\n"), want) {
			t.Errorf("the notes do not say %q:\n%s", want, strings.Join(r.Notes, "\n"))
		}
	}
}

// TestInstallAgainKeepsTheConfig installs over an installed, running
// service: the user and config are reused as they are, the service restarts.
func TestInstallAgainKeepsTheConfig(t *testing.T) {
	b := newTestBed(t)
	b.aliceSetup()
	ctx := context.Background()
	if _, err := b.in.Install(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	// The admin edits the service's config; alice gets a new certificate.
	edited := strings.Replace(b.read(SystemConfig), "sso.example.com", "login.example.com", 1)
	b.write(SystemConfig, edited, 0o644)
	b.write(aliceHome+"/.config/gatehouse/state/local-ca.crt", "NEW CA CERT", 0o600)

	n := len(b.sys.calls)
	r, err := b.in.Install(ctx, Options{ConfigPath: aliceHome + "/.config/gatehouse/config.json"})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.sys.calledSince(n); !reflect.DeepEqual(got, []string{"getent group gatehouse", "getent passwd gatehouse", "systemctl is-active gatehouse.service",
		"usermod -aG gatehouse alice", "systemctl daemon-reload", "systemctl enable --now gatehouse.service", "systemctl restart gatehouse.service"}) {
		t.Errorf("commands:\n%s", strings.Join(got, "\n"))
	}
	if got := b.read(SystemConfig); got != edited {
		t.Errorf("install overwrote the config:\n%s", got)
	}
	b.wantFile(SystemConfig, 0o600, gatehouseIDs) // readable by the service, by nobody else
	if got := b.read(SystemStateDir + "/local-ca.crt"); got != "CA CERT" {
		t.Errorf("install replaced the service's certificate: %q", got)
	}
	for _, s := range r.Steps {
		if strings.Contains(s.Text, "certificates and keys") {
			t.Errorf("install copies the state dir onto itself: %s", s)
		}
	}
	notes := strings.Join(r.Notes, "\n")
	for _, want := range []string{"/etc/gatehouse/config.json exists, so install keeps it as it is", "So /home/alice/.config/gatehouse/config.json is not installed",
		"The user and group gatehouse exist already"} {
		if !strings.Contains(notes, want) {
			t.Errorf("the notes do not say %q:\n%s", want, notes)
		}
	}
}

// TestInstallKeepsAConfigWrittenByHand: the README's example saves the
// config to /etc/gatehouse as root first. Install keeps it, brings the
// certificates from its state_dir (the unit's --state-dir wins), and says
// which file the sandbox will hide from the service.
func TestInstallKeepsAConfigWrittenByHand(t *testing.T) {
	b := newTestBed(t)
	data, _ := json.Marshal(config.Config{Hostname: "sso.example.com", Upstream: "https://authentik.lan:9443",
		UpstreamCA: "/root/authentik-ca.pem", TLS: config.TLSSelfSigned, StateDir: "/root/.config/gatehouse/state"})
	b.write(SystemConfig, string(data), 0o600)
	b.write("/root/authentik-ca.pem", testCA(t), 0o600)
	b.write("/root/.config/gatehouse/state/local-ca.key", "ROOT'S CA KEY", 0o600)

	r, err := b.in.Install(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.read(SystemConfig); got != string(data) {
		t.Errorf("install changed the config:\n%s", got)
	}
	b.wantFile(SystemConfig, 0o600, gatehouseIDs)
	if got := b.read(SystemStateDir + "/local-ca.key"); got != "ROOT'S CA KEY" {
		t.Errorf("the state was not copied: %q", got)
	}
	b.wantFile(SystemStateDir+"/local-ca.key", 0o600, gatehouseIDs)
	if notes := strings.Join(r.Notes, "\n"); !strings.Contains(notes, "upstream_ca is /root/authentik-ca.pem, which the service cannot read") {
		t.Errorf("the notes do not warn about upstream_ca:\n%s", notes)
	}
}

// TestInstallRelocatesCertificateFiles: with TLS from files kept in the
// state dir, the installed config names their copies in the new one, and
// the config is checked (the pair read) before anything is done.
func TestInstallRelocatesCertificateFiles(t *testing.T) {
	b := newTestBed(t)
	state := aliceHome + "/.config/gatehouse/state"
	cert, key := testCertificate(t)
	b.write(state+"/files/cert.pem", cert, 0o600)
	b.write(state+"/files/key.pem", key, 0o600)
	data, _ := json.Marshal(config.Config{Hostname: "sso.example.com", Upstream: "http://authentik.lan:9000",
		TLS: config.TLSFiles, CertFile: state + "/files/cert.pem", KeyFile: state + "/files/key.pem"})
	b.write(aliceHome+"/.config/gatehouse/config.json", string(data), 0o600)

	if _, err := b.in.Install(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := readConfig(b.path(SystemConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CertFile != SystemStateDir+"/files/cert.pem" || cfg.KeyFile != SystemStateDir+"/files/key.pem" || cfg.StateDir != SystemStateDir {
		t.Errorf("installed config: %+v", cfg)
	}
	if b.read(cfg.KeyFile) != key {
		t.Error("the key was not copied")
	}

	// A key that does not match: refused before anything is done.
	b = newTestBed(t)
	_, otherKey := testCertificate(t)
	b.write(state+"/files/cert.pem", cert, 0o600)
	b.write(state+"/files/key.pem", otherKey, 0o600)
	b.write(aliceHome+"/.config/gatehouse/config.json", string(data), 0o600)
	_, err = b.in.Install(context.Background(), Options{})
	if err == nil || !strings.Contains(err.Error(), "cert_file:") {
		t.Errorf("install with a key of another certificate: %v", err)
	}
	if _, err := os.Stat(b.path("/etc")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a refused install wrote files")
	}
}

func TestInstallSystemServiceRefuses(t *testing.T) {
	ctx := context.Background()

	b := newTestBed(t)
	b.aliceSetup()
	b.in.Geteuid = func() int { return 1000 }
	if _, err := b.in.Install(ctx, Options{}); !errors.Is(err, ErrNeedRoot) {
		t.Errorf("install as alice: %v, want ErrNeedRoot", err)
	}
	if _, err := b.in.Uninstall(ctx, Options{}); !errors.Is(err, ErrNeedRoot) {
		t.Errorf("uninstall as alice: %v, want ErrNeedRoot", err)
	}
	if len(b.sys.calls) != 0 {
		t.Errorf("commands ran: %q", b.sys.calls)
	}

	// No config to install.
	b = newTestBed(t)
	_, err := b.in.Install(ctx, Options{ConfigPath: "/srv/gatehouse.json"})
	if err == nil || !strings.Contains(err.Error(), "no config at /srv/gatehouse.json") {
		t.Errorf("install without a config: %v", err)
	}
	// A config the service could not start with.
	b.write("/srv/gatehouse.json", `{"hostname": "sso.example.com", "upstream": "ftp://x"}`, 0o600)
	_, err = b.in.Install(ctx, Options{ConfigPath: "/srv/gatehouse.json"})
	if err == nil || !strings.Contains(err.Error(), "upstream:") {
		t.Errorf("install with a bad config: %v", err)
	}
	if _, err := os.Stat(b.path("/etc")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a refused install wrote files")
	}

	// A root of its own without a runner of its own would run commands here.
	in := &Installer{Root: t.TempDir()}
	if _, err := in.run(ctx, []string{"useradd", "x"}); err == nil {
		t.Error("the default runner ran a command for a root other than /")
	}
}

// TestInstallCopiesNoOneElsesFiles: install runs as root on files the
// person installing chose. A symbolic link where their config names a file
// (it could point at any file of root's) and a file of another user's in
// their state are not copied for the service, nor is a link where the
// service's config is made its own.
func TestInstallCopiesNoOneElsesFiles(t *testing.T) {
	ctx := context.Background()

	b := newTestBed(t)
	b.aliceSetup()
	ca := aliceHome + "/certs/authentik-ca.pem"
	b.write("/etc/ssl/private/other.pem", b.read(ca), 0o600)
	os.Remove(b.path(ca))
	if err := os.Symlink(b.path("/etc/ssl/private/other.pem"), b.path(ca)); err != nil {
		t.Fatal(err)
	}
	_, err := b.in.Install(ctx, Options{})
	if err == nil || !strings.Contains(err.Error(), ca+" is a symbolic link") {
		t.Errorf("install with the upstream CA a link: %v", err)
	}
	if _, err := os.Stat(b.path(SystemConfigDir + "/upstream-ca.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the linked file was copied: %v", err)
	}

	// The service's config dir is the account's: a link put there is not
	// given to it, nor made 0600.
	b = newTestBed(t)
	b.write("/srv/real.json", `{"hostname": "sso.example.com", "upstream": "http://authentik.lan:9000"}`, 0o644)
	if err := os.MkdirAll(b.path(SystemConfigDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(b.path("/srv/real.json"), b.path(SystemConfig)); err != nil {
		t.Fatal(err)
	}
	_, err = b.in.Install(ctx, Options{})
	if err == nil || !strings.Contains(err.Error(), SystemConfig+" is a symbolic link") {
		t.Errorf("install with %s a link: %v", SystemConfig, err)
	}
	if fi, _ := os.Stat(b.path("/srv/real.json")); fi == nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the link's target was changed: %v", fi)
	}

	if os.Geteuid() != 0 {
		t.Skip("a file of another user's needs root to make")
	}
	b = newTestBed(t)
	b.aliceSetup()
	key := aliceHome + "/.config/gatehouse/state/local-ca.key"
	if err := os.Chown(b.path(key), 4242, 4242); err != nil {
		t.Fatal(err)
	}
	_, err = b.in.Install(ctx, Options{})
	if err == nil || !strings.Contains(err.Error(), key+" belongs to user 4242") {
		t.Errorf("install with a state file of user 4242: %v", err)
	}
	if _, err := os.Stat(b.path(SystemStateDir + "/local-ca.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the other user's file was copied: %v", err)
	}
}

// TestInstallStopsAtAFailedCommand: useradd fails, so nothing after it is
// done and the error says why in useradd's words.
func TestInstallStopsAtAFailedCommand(t *testing.T) {
	b := newTestBed(t)
	b.aliceSetup()
	b.sys.fail = map[string]string{useradd: "useradd: cannot lock /etc/passwd; try again later.\n"}
	r, err := b.in.Install(context.Background(), Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot lock /etc/passwd") {
		t.Fatalf("install: %v", err)
	}
	if len(r.Steps) != 1 || r.Steps[0].Command[0] != "groupadd" {
		t.Errorf("steps done: %v", r.Steps)
	}
	for _, p := range []string{SystemBinary, SystemConfig, SystemUnitPath} {
		if _, err := os.Stat(b.path(p)); err == nil {
			t.Errorf("%s was written after the failure", p)
		}
	}
	if slices.Contains(b.sys.calls, "systemctl daemon-reload") {
		t.Error("systemctl ran after the failure")
	}
}

func TestStateAlreadyThereIsKept(t *testing.T) {
	b := newTestBed(t)
	b.aliceSetup()
	b.write(SystemStateDir+"/local-ca.key", "OLDER KEY", 0o600)
	r, err := b.in.Install(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.read(SystemStateDir + "/local-ca.key"); got != "OLDER KEY" {
		t.Errorf("install copied over a key: %q", got)
	}
	if got := b.read(SystemStateDir + "/local-ca.crt"); got != "CA CERT" {
		t.Errorf("the missing certificate was not copied: %q", got)
	}
	if notes := strings.Join(r.Notes, "\n"); !strings.Contains(notes, "Kept 1 file(s) already in /var/lib/gatehouse") || !strings.Contains(notes, "local-ca.key") {
		t.Errorf("notes:\n%s", notes)
	}
}

func TestUninstallSystemService(t *testing.T) {
	b := newTestBed(t)
	b.aliceSetup()
	ctx := context.Background()

	r, err := b.in.Uninstall(ctx, Options{})
	if err != nil || len(r.Steps) != 0 || len(b.sys.calls) != 0 || !strings.Contains(strings.Join(r.Notes, ""), "not installed") {
		t.Errorf("uninstall before install: %v %+v %q", err, r, b.sys.calls)
	}

	if _, err := b.in.Install(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	n := len(b.sys.calls)
	r, err = b.in.Uninstall(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.sys.calledSince(n); !reflect.DeepEqual(got, []string{"systemctl disable --now gatehouse.service", "systemctl daemon-reload"}) {
		t.Errorf("commands:\n%s", strings.Join(got, "\n"))
	}
	if _, err := os.Stat(b.path(SystemUnitPath)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the unit is still there: %v", err)
	}
	for _, p := range []string{SystemConfig, SystemStateDir + "/local-ca.key", SystemBinary} {
		if _, err := os.Stat(b.path(p)); err != nil {
			t.Errorf("uninstall removed %s", p)
		}
	}
	if notes := strings.Join(r.Notes, "\n"); !strings.Contains(notes, "sudo rm -r /etc/gatehouse /var/lib/gatehouse") {
		t.Errorf("the notes do not say how to remove the rest:\n%s", notes)
	}
}

func TestStatus(t *testing.T) {
	b := newTestBed(t)
	b.aliceSetup()
	ctx := context.Background()
	s, err := b.in.Status(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Installed || s.Running() || s.Enabled != "not-found" || !strings.Contains(s.Text(), "not installed") {
		t.Errorf("before install: %+v", s)
	}
	if _, err := b.in.Install(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	s, _ = b.in.Status(ctx, Options{})
	want := Status{Installed: true, UnitPath: SystemUnitPath, Enabled: "enabled", Active: "active", ConfigPath: SystemConfig,
		ControlSocket: SystemControlSocket, Logs: "journalctl -u gatehouse"}
	if s != want || !s.Running() {
		t.Errorf("installed: %+v", s)
	}

	// Where systemd is not running, systemctl says so on stderr.
	b.sys.fail = map[string]string{
		"systemctl is-active gatehouse.service": "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n",
	}
	s, _ = b.in.Status(ctx, Options{})
	if s.Active != "unknown: Failed to connect to bus: Host is down" || s.Running() {
		t.Errorf("without systemd: %+v", s)
	}
}

func TestInstallUserService(t *testing.T) {
	b := newTestBed(t)
	b.aliceSetup()
	b.in.Geteuid = func() int { return 1000 }
	b.write(unprivilegedPortStart, "1024\n", 0o644)
	ctx := context.Background()
	paths := UserPaths{Binary: aliceHome + "/.local/bin/gatehouse", Config: aliceHome + "/.config/gatehouse/config.json",
		UnitPath: aliceHome + "/.config/systemd/user/gatehouse.service"}

	r, err := b.in.Install(ctx, Options{User: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", r.Text("Installed"))
	if !reflect.DeepEqual(b.sys.calls, []string{"systemctl --user is-active gatehouse.service", "loginctl enable-linger alice",
		"systemctl --user daemon-reload", "systemctl --user enable --now gatehouse.service"}) {
		t.Errorf("commands:\n%s", strings.Join(b.sys.calls, "\n"))
	}
	if got := b.read(paths.Binary); got != string(b.exe) {
		t.Errorf("%s holds %q", paths.Binary, got)
	}
	b.wantFile(paths.Binary, 0o755, nil)
	if got := b.read(paths.UnitPath); got != UserUnit(paths) {
		t.Errorf("the unit differs from UserUnit:\n%s", got)
	}
	b.wantFile(paths.UnitPath, 0o644, nil)
	if !strings.Contains(UserUnit(paths), "ExecStart=/home/alice/.local/bin/gatehouse serve --config /home/alice/.config/gatehouse/config.json --control-socket %t/gatehouse/control.sock --log-format json\n") {
		t.Errorf("ExecStart:\n%s", UserUnit(paths))
	}
	notes := strings.Join(r.Notes, "\n")
	if !strings.Contains(notes, "listens on ports 80 and 443") || !strings.Contains(notes, "echo 'net.ipv4.ip_unprivileged_port_start=80' | sudo tee /etc/sysctl.d/60-gatehouse.conf && sudo sysctl -p /etc/sysctl.d/60-gatehouse.conf") {
		t.Errorf("the notes do not explain the ports:\n%s", notes)
	}
	if _, err := os.Stat(b.path("/etc")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a user install wrote to /etc")
	}

	// Again, lingering refused and ports allowed: install goes on, and
	// says how to turn lingering on.
	b.sys.fail = map[string]string{"loginctl enable-linger alice": "Could not enable linger: Access denied\n"}
	b.write(unprivilegedPortStart, "80\n", 0o644)
	n := len(b.sys.calls)
	r, err = b.in.Install(ctx, Options{User: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.sys.calledSince(n); got[len(got)-1] != "systemctl --user restart gatehouse.service" {
		t.Errorf("a running user service was not restarted: %q", got)
	}
	notes = strings.Join(r.Notes, "\n")
	if !strings.Contains(notes, "sudo loginctl enable-linger alice") || strings.Contains(notes, "ip_unprivileged_port_start") {
		t.Errorf("notes:\n%s", notes)
	}

	// A user service is no business of root's.
	b.in.Geteuid = func() int { return 0 }
	if _, err := b.in.Install(ctx, Options{User: true}); err == nil || !strings.Contains(err.Error(), "without sudo") {
		t.Errorf("install --user as root: %v", err)
	}

	b.in.Geteuid = func() int { return 1000 }
	n = len(b.sys.calls)
	if _, err := b.in.Uninstall(ctx, Options{User: true}); err != nil {
		t.Fatal(err)
	}
	if got := b.sys.calledSince(n); !reflect.DeepEqual(got, []string{"systemctl --user disable --now gatehouse.service", "systemctl --user daemon-reload"}) {
		t.Errorf("uninstall commands: %q", got)
	}
	if _, err := os.Stat(b.path(paths.UnitPath)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("uninstall --user left the unit")
	}
	s, _ := b.in.Status(ctx, Options{User: true})
	if s.Installed || s.ControlSocket != "/run/user/1000/gatehouse/control.sock" || s.UnitPath != paths.UnitPath {
		t.Errorf("status --user: %+v", s)
	}
}

func TestPkexecArgv(t *testing.T) {
	got := PkexecArgv("/opt/gatehouse/gatehouse", "install", Options{ConfigPath: "/home/alice/.config/gatehouse/config.json"})
	want := []string{"pkexec", "/opt/gatehouse/gatehouse", "service", "install", "--config", "/home/alice/.config/gatehouse/config.json"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PkexecArgv = %q, want %q", got, want)
	}
	if got := PkexecArgv("/usr/bin/gatehouse", "uninstall", Options{ConfigPath: "/x.json"}); !reflect.DeepEqual(got, []string{"pkexec", "/usr/bin/gatehouse", "service", "uninstall"}) {
		t.Errorf("PkexecArgv uninstall = %q", got)
	}
}
