package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/control"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// exitNotRunning is status's and reload's exit code when no service
// answers, as LSB init scripts' status uses 3 for "not running".
const exitNotRunning = 3

// controlTimeout bounds a status request; reload may obtain a certificate.
const controlTimeout = 10 * time.Second

// controlFlags parses a control command's flags: --control-socket, and
// what the command adds.
func controlFlags(name string, args []string, stderr io.Writer, more func(*flag.FlagSet)) (socket string, err error) {
	fs := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&socket, "control-socket", "", "the service's control socket (default: this user's service, then the system service)")
	if more != nil {
		more(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return socket, nil
}

// findService connects to the named socket, or to the first candidate a
// service answers on.
func findService(ctx context.Context, socket string) (*control.Client, error) {
	if socket != "" {
		return control.Find(ctx, socket)
	}
	return control.Find(ctx, control.Candidates()...)
}

// notRunning is the one line said when no service answers.
func notRunning(name, socket string) string {
	where := strings.Join(control.Candidates(), " or ")
	if socket != "" {
		where = socket
	}
	return fmt.Sprintf("gatehouse %s: no Gatehouse service is running (nothing answers on %s); start one with `gatehouse serve`, or install it with `gatehouse service install`", name, where)
}

// runStatus is `gatehouse status`: the service's state, address, upstream
// health, certificate and counts, or with --json the snapshot's fields as
// /status names them.
func runStatus(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	socket, err := controlFlags("status", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the status snapshot as JSON, as the status endpoint does")
	})
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	c, err := findService(ctx, socket)
	if errors.Is(err, control.ErrNoService) {
		fmt.Fprintln(stderr, notRunning("status", socket))
		return exitNotRunning
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse status: %v\n", err)
		return 1
	}
	var view proxyengine.View // the totals
	if asJSON {
		view.Rows = proxyengine.AllRows
	}
	st, err := c.Status(ctx, view)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse status: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return 0
	}
	writeStatus(stdout, st, c.Socket)
	return 0
}

// writeStatus prints a status for a person.
func writeStatus(w io.Writer, st proxyengine.Status, socket string) {
	switch st.State {
	case proxyengine.StateRunning:
		fmt.Fprintf(w, "Gatehouse is running, serving %s", st.PublicURL)
		if !st.StartedAt.IsZero() {
			fmt.Fprintf(w, " (for %s)", time.Since(st.StartedAt).Round(time.Second))
		}
		fmt.Fprintln(w)
	case proxyengine.StatePaused:
		fmt.Fprintf(w, "Gatehouse is paused: it does not serve %s until resumed from the dashboard\n", st.Hostname)
	default:
		fmt.Fprintf(w, "Gatehouse is %s\n", st.State)
	}
	row := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	if st.HTTPSAddr != "" {
		listening := st.HTTPSAddr
		if st.HTTPAddr != "" {
			listening += " (HTTPS), " + st.HTTPAddr + " (HTTP)"
		}
		row("Listening", "%s", listening)
	}
	if u := st.Upstream; u.URL != "" {
		switch {
		case !u.Checked:
			row("Upstream", "%s: not checked yet", u.URL)
		case u.Healthy:
			row("Upstream", "%s: up, answered in %s", u.URL, u.Latency.Round(time.Millisecond))
		default:
			row("Upstream", "%s: DOWN: %s", u.URL, u.LastError)
		}
	}
	if c := st.Certificate; c.Source != "" {
		line := string(c.Source)
		if c.Issuer != "" {
			line += ", issued by " + c.Issuer
		}
		if !c.NotAfter.IsZero() {
			line += ", valid until " + c.NotAfter.Format("2 Jan 2006")
		}
		if c.LastError != "" {
			line += "; problem: " + c.LastError
		}
		row("Certificate", "%s", line)
	}
	if st.State == proxyengine.StateRunning {
		refused := ""
		if st.ConnectionsRefused > 0 {
			refused = fmt.Sprintf("; %d connections refused (too many from one address)", st.ConnectionsRefused)
		}
		row("Visitors", "%d connections, %d WebSockets; %d requests (%.1f/s over the last minute), %d upstream errors%s",
			st.ActiveConnections, st.ActiveWebSockets, st.RequestsTotal, st.RequestsLastMinute, st.UpstreamErrors, refused)
	}
	row("Control", "%s", socket)
}

// runReload is `gatehouse reload`: the service reads its config file
// again. A refused config exits 1 with each refused field on a line.
func runReload(args []string, stdout, stderr io.Writer) int {
	socket, err := controlFlags("reload", args, stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := findService(ctx, socket)
	if errors.Is(err, control.ErrNoService) {
		fmt.Fprintln(stderr, notRunning("reload", socket))
		return exitNotRunning
	}
	if err == nil {
		err = c.Reload(ctx)
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse reload: the service refused the config file and keeps serving the previous settings:")
		if fields := config.FieldErrors(err); fields != nil {
			for _, fe := range fields {
				fmt.Fprintf(stderr, "  %s: %s\n", fe.Field, fe.Message)
			}
		} else {
			fmt.Fprintf(stderr, "  %v\n", err)
		}
		return 1
	}
	fmt.Fprintln(stdout, "gatehouse reload: the service now serves the config file's settings")
	return 0
}
