// Package trust installs Gatehouse's local certificate authority where this
// computer's programs look for trusted roots, and removes it again, as
// `caddy trust` does for Caddy's: the system store (Debian and Ubuntu's
// /usr/local/share/ca-certificates with update-ca-certificates, or Fedora's
// /etc/pki/ca-trust/source/anchors with update-ca-trust), and the NSS
// databases Chrome, Chromium and Firefox read, through certutil
// (Debian's libnss3-tools) when it is installed.
//
// A Store works under a root directory and runs commands through a
// replaceable runner, so tests use a temporary root and real tools.
package trust

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

const (
	// SystemFileName is the CA's file name in the system store.
	SystemFileName = "gatehouse-local-ca.crt"
	// Nickname is the CA's name in NSS databases (what browsers list).
	Nickname = "Gatehouse local CA"
)

// Runner runs a command and returns its combined output.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// execRunner runs commands with os/exec.
func execRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// Store is this computer's set of places to trust a CA. The zero value
// works on the real system as the current user: commands that need root
// run through pkexec unless the process is root already.
type Store struct {
	// Root is prefixed to every system path (default "/"). With a root
	// other than "/", update-ca-certificates is told the prefixed paths.
	Root string
	// Home is the user's home directory, where the browsers keep their
	// NSS databases. Default: os.UserHomeDir.
	Home string
	// Run runs commands. Default: os/exec.
	Run Runner
	// LookPath finds a command. Default: exec.LookPath.
	LookPath func(string) (string, error)
	// Elevate is put before commands that change the system store, such
	// as {"pkexec"}. Default: {"pkexec"} when not root and Root is "/",
	// else nothing. Set it to an empty, non-nil slice to run them as is.
	Elevate []string
}

// Outcome is what happened in one place.
type Outcome string

const (
	Done    Outcome = "done"
	Skipped Outcome = "skipped" // nothing to do there (no such browser, not installed)
	Failed  Outcome = "failed"
)

// Result is what Trust or Untrust did in one place, in words for people.
type Result struct {
	Place   string // such as "System store" or "Firefox (profile abc.default)"
	Outcome Outcome
	Detail  string
}

func (r Result) String() string {
	return fmt.Sprintf("%s: %s", r.Place, r.Detail)
}

func (s *Store) root() string {
	if s.Root == "" {
		return "/"
	}
	return s.Root
}

func (s *Store) path(p string) string { return filepath.Join(s.root(), p) }

func (s *Store) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if s.Run != nil {
		return s.Run(ctx, name, args...)
	}
	return execRunner(ctx, name, args...)
}

func (s *Store) lookPath(name string) (string, error) {
	if s.LookPath != nil {
		return s.LookPath(name)
	}
	return exec.LookPath(name)
}

// findTool finds a system tool, also in the sbin directories a normal
// user's PATH leaves out on Debian.
func (s *Store) findTool(name string) (string, error) {
	p, err := s.lookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", err
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func (s *Store) home() string {
	if s.Home != "" {
		return s.Home
	}
	h, _ := os.UserHomeDir()
	return h
}

// NeedsPassword reports whether changing the system store goes through
// pkexec, which asks for a password: say so before calling Trust.
func (s *Store) NeedsPassword() bool { return len(s.elevate()) > 0 }

func (s *Store) elevate() []string {
	if s.Elevate != nil {
		return s.Elevate
	}
	if os.Geteuid() != 0 && s.root() == "/" {
		return []string{"pkexec"}
	}
	return nil
}

// systemKind is how this system keeps trusted roots.
type systemKind struct {
	name   string // for messages
	dir    string // where a root goes, under Root
	update []string
}

func (s *Store) system() (systemKind, bool) {
	kinds := []systemKind{
		{"Debian/Ubuntu", "/usr/local/share/ca-certificates", []string{"update-ca-certificates"}},
		{"Fedora/RHEL/Arch", "/etc/pki/ca-trust/source/anchors", []string{"update-ca-trust", "extract"}},
	}
	for _, k := range kinds {
		if fi, err := os.Stat(s.path(k.dir)); err == nil && fi.IsDir() {
			if _, err := s.findTool(k.update[0]); err == nil {
				if k.update[0] == "update-ca-certificates" && s.root() != "/" {
					r := s.root()
					k.update = append(k.update,
						"--certsconf", filepath.Join(r, "etc/ca-certificates.conf"),
						"--certsdir", filepath.Join(r, "usr/share/ca-certificates"),
						"--localcertsdir", filepath.Join(r, "usr/local/share/ca-certificates"),
						"--etccertsdir", filepath.Join(r, "etc/ssl/certs"),
						"--hooksdir", filepath.Join(r, "etc/ca-certificates/update.d"))
				}
				return k, true
			}
		}
	}
	return systemKind{}, false
}

// SystemPath is where Trust puts the CA in the system store, or "" when
// this system keeps its roots in no place Trust knows.
func (s *Store) SystemPath() string {
	k, ok := s.system()
	if !ok {
		return ""
	}
	return filepath.Join(s.path(k.dir), SystemFileName)
}

// Trust installs the CA certificate in pemData (the local CA's file, as
// read once by the caller, who shows its fingerprint) in the system store
// and every NSS database found, and says what it did in each place. What
// is installed is that certificate alone, re-encoded: root gets it in the
// command's arguments and never reads a path of the user's, which could
// be swapped for another file (a link to a secret of root's) meanwhile;
// certutil reads a private copy.
func (s *Store) Trust(ctx context.Context, pemData []byte) []Result {
	cert, err := parseCert(pemData)
	if err != nil {
		return []Result{{Place: "Certificate", Outcome: Failed, Detail: err.Error()}}
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	out := []Result{s.trustSystem(ctx, data)}
	dir, err := os.MkdirTemp("", "gatehouse-trust-")
	if err != nil {
		return append(out, Result{Place: "Browsers", Outcome: Failed, Detail: "cannot write a copy for certutil: " + err.Error()})
	}
	defer os.RemoveAll(dir)
	certFile := filepath.Join(dir, SystemFileName)
	if err := os.WriteFile(certFile, data, 0o600); err != nil {
		return append(out, Result{Place: "Browsers", Outcome: Failed, Detail: "cannot write a copy for certutil: " + err.Error()})
	}
	return append(out, s.eachNSS(ctx, func(db nssDB, certutil string) Result {
		// A CA made again (a new state directory) replaces the old one.
		s.run(ctx, certutil, "-D", "-d", "sql:"+db.dir, "-n", Nickname)
		if b, err := s.run(ctx, certutil, "-A", "-d", "sql:"+db.dir, "-t", "C,,", "-n", Nickname, "-i", certFile); err != nil {
			return Result{Place: db.label, Outcome: Failed, Detail: "certutil could not add it: " + commandError(b, err)}
		}
		return Result{Place: db.label, Outcome: Done, Detail: "trusted as \u201c" + Nickname + "\u201d (restart the browser if it is open)"}
	})...)
}

// Untrust removes what Trust installed.
func (s *Store) Untrust(ctx context.Context) []Result {
	out := []Result{s.untrustSystem(ctx)}
	return append(out, s.eachNSS(ctx, func(db nssDB, certutil string) Result {
		if _, err := s.run(ctx, certutil, "-L", "-d", "sql:"+db.dir, "-n", Nickname); err != nil {
			return Result{Place: db.label, Outcome: Skipped, Detail: "it was not there"}
		}
		if b, err := s.run(ctx, certutil, "-D", "-d", "sql:"+db.dir, "-n", Nickname); err != nil {
			return Result{Place: db.label, Outcome: Failed, Detail: "certutil could not remove it: " + commandError(b, err)}
		}
		return Result{Place: db.label, Outcome: Done, Detail: "removed"}
	})...)
}

const systemPlace = "System store"

func (s *Store) trustSystem(ctx context.Context, data []byte) Result {
	k, ok := s.system()
	if !ok {
		return Result{Place: systemPlace, Outcome: Skipped,
			Detail: "this system has neither update-ca-certificates nor update-ca-trust; add the certificate to its trusted roots by hand"}
	}
	dst := filepath.Join(s.path(k.dir), SystemFileName)
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return Result{Place: systemPlace, Outcome: Done, Detail: "already trusted (" + dst + ")"}
	}
	// The certificate is the argument $1, written beside the store's
	// file and renamed over it.
	script := `printf '%s' "$1" > "$2.new" && chmod 0644 "$2.new" && mv -f "$2.new" "$2" && shift 2 && "$@"`
	args := append([]string{"-c", script, "sh", string(data), dst}, k.update...)
	if b, err := s.runSystem(ctx, "/bin/sh", args...); err != nil {
		return Result{Place: systemPlace, Outcome: Failed, Detail: "not installed: " + s.systemError(b, err)}
	}
	return Result{Place: systemPlace, Outcome: Done,
		Detail: fmt.Sprintf("installed as %s and %s ran (%s): curl, wget and most programs trust it now", dst, k.update[0], k.name)}
}

func (s *Store) untrustSystem(ctx context.Context) Result {
	k, ok := s.system()
	if !ok {
		return Result{Place: systemPlace, Outcome: Skipped, Detail: "no system store Gatehouse knows"}
	}
	dst := filepath.Join(s.path(k.dir), SystemFileName)
	if _, err := os.Stat(dst); errors.Is(err, os.ErrNotExist) {
		return Result{Place: systemPlace, Outcome: Skipped, Detail: "it was not there"}
	}
	script := `rm -f "$1" && shift && "$@"`
	args := append([]string{"-c", script, "sh", dst}, k.update...)
	if k.update[0] == "update-ca-certificates" {
		args = append(args, "--fresh") // drops the link to the removed file
	}
	if b, err := s.runSystem(ctx, "/bin/sh", args...); err != nil {
		return Result{Place: systemPlace, Outcome: Failed, Detail: "not removed: " + s.systemError(b, err)}
	}
	return Result{Place: systemPlace, Outcome: Done, Detail: "removed " + dst + " and ran " + k.update[0]}
}

// runSystem runs a command that changes the system store, through pkexec
// when that is needed.
func (s *Store) runSystem(ctx context.Context, name string, args ...string) ([]byte, error) {
	if e := s.elevate(); len(e) > 0 {
		return s.run(ctx, e[0], append(append(e[1:len(e):len(e)], name), args...)...)
	}
	return s.run(ctx, name, args...)
}

// systemError explains a failed change of the system store; pkexec exits
// 126 when the password dialog is dismissed and 127 when not authorized.
func (s *Store) systemError(out []byte, err error) string {
	var ee *exec.ExitError
	if len(s.elevate()) > 0 && errors.As(err, &ee) {
		switch ee.ExitCode() {
		case 126:
			return "the password dialog was closed"
		case 127:
			return "this user may not change the system store (or no password dialog could be shown); run `sudo gatehouse trust` in a terminal"
		}
	}
	if errors.Is(err, exec.ErrNotFound) {
		return "pkexec is not installed; run `sudo gatehouse trust` in a terminal"
	}
	return commandError(out, err)
}

func commandError(out []byte, err error) string {
	if msg := strings.TrimSpace(string(out)); msg != "" {
		lines := strings.Split(msg, "\n")
		return lines[len(lines)-1]
	}
	return err.Error()
}

// nssDB is one NSS database a browser reads.
type nssDB struct{ dir, label string }

// nssDatabases lists the NSS databases (sql: format, cert9.db) in the
// places Chrome, Chromium and Firefox keep them, including their snaps.
func (s *Store) nssDatabases() []nssDB {
	home := s.home()
	if home == "" {
		return nil
	}
	var out []nssDB
	add := func(dir, label string) {
		if _, err := os.Stat(filepath.Join(dir, "cert9.db")); err == nil {
			out = append(out, nssDB{dir, label})
		}
	}
	add(filepath.Join(home, ".pki", "nssdb"), "Chrome/Chromium (~/.pki/nssdb)")
	add(filepath.Join(home, "snap", "chromium", "current", ".pki", "nssdb"), "Chromium snap")
	for _, base := range []struct{ glob, label string }{
		{filepath.Join(home, ".mozilla", "firefox", "*"), "Firefox"},
		{filepath.Join(home, "snap", "firefox", "common", ".mozilla", "firefox", "*"), "Firefox snap"},
		{filepath.Join(home, ".var", "app", "org.mozilla.firefox", ".mozilla", "firefox", "*"), "Firefox flatpak"},
	} {
		dirs, _ := filepath.Glob(base.glob)
		sort.Strings(dirs)
		for _, d := range dirs {
			add(d, fmt.Sprintf("%s (profile %s)", base.label, filepath.Base(d)))
		}
	}
	return out
}

// eachNSS applies f to every NSS database, or says why it cannot.
func (s *Store) eachNSS(ctx context.Context, f func(nssDB, string) Result) []Result {
	dbs := s.nssDatabases()
	if len(dbs) == 0 {
		return []Result{{Place: "Browsers", Outcome: Skipped,
			Detail: "no Chrome, Chromium or Firefox profile found; a browser started later may need the certificate imported in its settings"}}
	}
	certutil, err := s.lookPath("certutil")
	if err != nil {
		var out []Result
		for _, db := range dbs {
			out = append(out, Result{Place: db.label, Outcome: Failed,
				Detail: "certutil is not installed (Debian/Ubuntu: sudo apt install libnss3-tools), so this browser's own store was left alone"})
		}
		return out
	}
	var out []Result
	for _, db := range dbs {
		out = append(out, f(db, certutil))
	}
	return out
}

// parseCert reads the first certificate of a PEM file.
func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Fingerprint is the SHA-256 fingerprint of the PEM certificate in data,
// as browsers and `openssl x509 -fingerprint -sha256` show it.
func Fingerprint(data []byte) (string, error) {
	cert, err := parseCert(data)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":"), nil
}

// Summary is one line per place, for a terminal or a dialog.
func Summary(results []Result) string {
	lines := make([]string, len(results))
	for i, r := range results {
		mark := map[Outcome]string{Done: "✓", Skipped: "–", Failed: "✗"}[r.Outcome]
		lines[i] = mark + " " + r.String()
	}
	return strings.Join(lines, "\n")
}
