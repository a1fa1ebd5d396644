// Command gatehouse puts a web app such as authentik behind HTTPS.
//
//	gatehouse           opens the desktop app (setup wizard, then the dashboard)
//	gatehouse serve     runs the proxy headless from flags and the config file
//	gatehouse status    shows the running service's state (reload re-reads its config)
//	gatehouse check     runs the pre-flight checks and exits non-zero on a failure
//	gatehouse trust     trusts the local CA on this computer (untrust removes it)
//	gatehouse service   installs it as a systemd service (install, uninstall, status, unit)
package main

import (
	"fmt"
	"os"

	_ "github.com/gatehouse-proxy/gatehouse/cmd/gatehouse/internal/clocale" // before Fyne's locale lookup
	"github.com/gatehouse-proxy/gatehouse/internal/service"
	"github.com/gatehouse-proxy/gatehouse/internal/trust"
)

func main() {
	setDefaultGCPercent()
	args := os.Args[1:]
	if len(args) == 0 {
		os.Exit(runDesktop(os.Stderr))
	}
	switch args[0] {
	case "serve":
		os.Exit(runServe(args[1:], os.Stdout, os.Stderr))
	case "status":
		os.Exit(runStatus(args[1:], os.Stdout, os.Stderr))
	case "reload":
		os.Exit(runReload(args[1:], os.Stdout, os.Stderr))
	case "check":
		os.Exit(runCheck(args[1:], os.Stdout, os.Stderr))
	case "trust", "untrust":
		os.Exit(runTrust(args[1:], args[0] == "untrust", &trust.Store{}, os.Stdout, os.Stderr))
	case "service":
		os.Exit(runService(args[1:], os.Args[0], &service.Installer{}, os.Stdout, os.Stderr))
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
	case "version", "--version":
		fmt.Println("gatehouse", version())
	default:
		fmt.Fprintf(os.Stderr, "gatehouse: unknown command %q; run `gatehouse help` for the list\n", args[0])
		os.Exit(2)
	}
}

const usage = `Gatehouse puts a web app such as authentik behind HTTPS.

Usage:
  gatehouse                 open the desktop app: setup wizard, then the live dashboard
  gatehouse serve [flags]   run the proxy without a display (see gatehouse serve -h)
  gatehouse status [--json] show the running service: state, address, upstream, certificate, visitors
  gatehouse reload          have the running service read its config file again (as SIGHUP does)
  gatehouse check [flags]   check hostname, DNS, ports and upstream before serving (see gatehouse check -h)
  gatehouse trust           trust the local certificate authority on this computer (browsers, system)
  gatehouse untrust         remove it again
  gatehouse service install run it as a systemd service, at boot and without a login (see gatehouse service -h)
  gatehouse version         print the version
`
