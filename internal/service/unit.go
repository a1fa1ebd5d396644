package service

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The system service's names and paths, as they are on the running system
// (Install writes them under Installer.Root).
const (
	// UnitName is the unit's name, for systemctl and journalctl -u.
	UnitName = "gatehouse.service"
	// Account is the system user and group the service runs as; desktop
	// users in the group may use the control socket.
	Account = "gatehouse"

	SystemBinary        = "/usr/local/bin/gatehouse"
	SystemConfigDir     = "/etc/gatehouse"
	SystemConfig        = "/etc/gatehouse/config.json"
	SystemStateDir      = "/var/lib/gatehouse"
	SystemControlSocket = "/run/gatehouse/control.sock"
	SystemUnitPath      = "/etc/systemd/system/gatehouse.service"
)

// SystemUnit is the unit file of the system service.
//
// It runs as the gatehouse user with CAP_NET_BIND_SERVICE as its only
// capability, so it binds ports 80 and 443 and can do nothing else a user
// cannot; everything else is systemd's sandbox, and `systemd-analyze
// security` rates the unit below 2.0 (the package's tests hold it there).
// Left out on purpose: IPAddressDeny= (the proxy reaches arbitrary upstreams
// and ACME CAs), PrivateNetwork= and PrivateUsers= (it serves the host's
// network, and capabilities in a user namespace of its own would not bind
// the host's ports), ProcSubset=pid (it hides /proc/net/tcp, where Gatehouse
// looks up which process holds a port).
func SystemUnit() string {
	return `# Gatehouse as a system service: written by ` + "`gatehouse service install`" + `.
# ` + "`gatehouse service uninstall`" + ` removes it; logs: journalctl -u gatehouse
[Unit]
Description=Gatehouse HTTPS gateway
Documentation=https://github.com/gatehouse-proxy/gatehouse
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User=` + Account + `
Group=` + Account + `
ExecStart=` + systemExecStart + `
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
# Two descriptors per proxied WebSocket; set here because setrlimit is
# filtered below.
LimitNOFILE=524288

# Ports 80 and 443, and no other privilege.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes

# The config directory is writable (settings are saved there atomically,
# through a temporary file and a rename); the state directory holds
# certificates and keys; the runtime directory the control socket, which
# members of the gatehouse group may use.
ProtectSystem=strict
ReadWritePaths=` + SystemConfigDir + `
StateDirectory=gatehouse
StateDirectoryMode=0700
RuntimeDirectory=gatehouse
RuntimeDirectoryMode=0755
UMask=0077

ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RemoveIPC=yes
` + restrictions + `
[Install]
WantedBy=multi-user.target
`
}

// restrictions are what both units forbid the process with seccomp and
// no_new_privs alone, so they work in a user manager too: other socket
// families, namespaces, realtime scheduling, set-user-ID files, writable
// executable memory, and system calls outside @system-service or in
// @privileged and @resources.
const restrictions = `RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
`

// systemExecStart is the system service's command line.
var systemExecStart = execLine(SystemBinary, "serve", "--config", SystemConfig,
	"--state-dir", SystemStateDir, "--control-socket", SystemControlSocket, "--log-format", "json")

// UserPaths are where a user service's files are, on the running system.
type UserPaths struct {
	Binary   string // ~/.local/bin/gatehouse
	Config   string // the user's config file, which the service reads and saves
	UnitPath string // ~/.config/systemd/user/gatehouse.service
}

// userControlSocket is the control socket of a user service, in
// $XDG_RUNTIME_DIR (systemd's %t in a user unit).
const userControlSocket = "%t/gatehouse/control.sock"

// UserUnit is the unit file of a user service running the binary and
// config in p.
//
// A user unit gets the sandboxing that needs no namespaces: seccomp
// filters and no_new_privs. The mount-namespace options (ProtectSystem=,
// PrivateTmp= and the like) need unprivileged user namespaces in a user
// manager, which some distributions turn off, and the unit would then fail
// to start. Under no_new_privs file capabilities do not apply, so ports
// below 1024 need net.ipv4.ip_unprivileged_port_start (Install says so).
func UserUnit(p UserPaths) string {
	return `# Gatehouse as a user service: written by ` + "`gatehouse service install --user`" + `.
# ` + "`gatehouse service uninstall --user`" + ` removes it; logs: journalctl --user -u gatehouse
[Unit]
Description=Gatehouse HTTPS gateway (user service)
Documentation=https://github.com/gatehouse-proxy/gatehouse

[Service]
Type=exec
ExecStart=` + execLine(p.Binary, "serve", "--config", p.Config) + ` --control-socket ` + userControlSocket + ` --log-format json
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
LimitNOFILE=524288
RuntimeDirectory=gatehouse
RuntimeDirectoryMode=0700
UMask=0077

NoNewPrivileges=yes
` + restrictions + `
[Install]
WantedBy=default.target
`
}

// execLine is a command line for ExecStart=, each word quoted as systemd
// reads it.
func execLine(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if i == 0 {
			q[i] = unitQuoteProgram(w)
		} else {
			q[i] = unitQuote(w)
		}
	}
	return strings.Join(q, " ")
}

// unitQuote quotes an argument on a unit's command line: % and $ are
// doubled (systemd would expand specifiers and variables), and a word with
// blanks, quotes, backslashes or a semicolon goes in double quotes with C
// escapes.
func unitQuote(w string) string {
	w = strings.NewReplacer("%", "%%", "$", "$$").Replace(w)
	if w != "" && !strings.ContainsAny(w, " \t\n\"'\\;") {
		return w
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range w {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// unitQuoteProgram quotes the program on a unit's command line, where
// systemd expands specifiers (so % is doubled) but no variables, and
// refuses quotes and backslashes (checkProgramPath).
func unitQuoteProgram(path string) string {
	path = strings.ReplaceAll(path, "%", "%%")
	if strings.ContainsAny(path, " \t;") {
		return `"` + path + `"`
	}
	return path
}

// checkProgramPath refuses a program path systemd would not run.
func checkProgramPath(path string) error {
	if strings.ContainsAny(path, "\"'\\\n\t") || !filepath.IsAbs(path) {
		return fmt.Errorf("systemd cannot run a program from %q: its path must be absolute and free of quotes, backslashes and control characters", path)
	}
	return nil
}

// shellQuote quotes argv for a POSIX shell, for commands shown to people.
func shellQuote(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
