package preflight

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/ports"
)

// A listenAddr is one of the addresses the engine binds.
type listenAddr struct {
	name           Name
	title, purpose string
	field          config.Field
	addr           string
}

// listenAddrs lists the config's listen addresses, leaving out those "off".
func listenAddrs(cfg config.Config) []listenAddr {
	out := []listenAddr{{NameHTTPSPort, "HTTPS port", "HTTPS", config.FieldHTTPSAddr, cfg.HTTPSAddr}}
	if cfg.HTTPAddr != config.Off {
		out = append(out, listenAddr{NameHTTPPort, "HTTP port", "HTTP", config.FieldHTTPAddr, cfg.HTTPAddr})
	}
	if cfg.StatusAddr != config.Off {
		out = append(out, listenAddr{NameStatusPort, "Status port", "status", config.FieldStatusAddr, cfg.StatusAddr})
	}
	return out
}

// CheckPorts checks that this user can bind each listen address of cfg now,
// by binding it and letting go at once, through the same code the engine
// uses to listen, so it explains a failure the same way: a port in use (by
// which process, when /proc tells), a privileged port (with the setcap and
// sysctl commands that allow it), or an address this machine lacks.
func (k *Checker) CheckPorts(ctx context.Context, cfg config.Config) []Result {
	cfg = cfg.WithDefaults()
	errs := config.FieldErrors(cfg.Validate())
	var out []Result
	for _, l := range listenAddrs(cfg) {
		if ctx.Err() != nil {
			out = append(out, Result{Name: l.name, Title: l.title, Field: l.field, Status: Skip, Finding: "not checked: the check was cancelled"})
			continue
		}
		out = append(out, checkPort(l, errs.For(l.field)))
	}
	return out
}

func checkPort(l listenAddr, invalid *config.FieldError) Result {
	r := Result{Name: l.name, Title: l.title, Field: l.field}
	if invalid != nil {
		r.Status, r.Finding = Fail, invalid.Message
		r.Fix = fmt.Sprintf("correct the %s listen address (%s) as the finding says", l.purpose, l.field.Flag())
		return r
	}
	start := time.Now()
	ln, err := ports.Listen(l.purpose, l.addr)
	r.Elapsed = time.Since(start)
	if err == nil {
		bound := ln.Addr().String()
		ln.Close()
		r.Status, r.Finding = Pass, fmt.Sprintf("%s is free and this user can listen on it", l.addr)
		if _, port, _ := ports.SplitAddr(l.addr); port == 0 {
			r.Finding = fmt.Sprintf("%s is free and this user can listen on it (bound as %s)", l.addr, bound)
		}
		return r
	}
	return portResult(r, err)
}

// portResult words a failure to bind, which listen returns as a ports.ListenError.
func portResult(r Result, err error) Result {
	var le *ports.ListenError
	if !errors.As(err, &le) {
		r.Status, r.Finding = Fail, err.Error()
		return r
	}
	r.Status = Fail
	if le.Owner != nil && le.Owner.IsGatehouse() {
		// Gatehouse's own running proxy, as when the dashboard checks again
		// or the service runs while `gatehouse check` does.
		r.Status = Warn
	}
	r.Finding = fmt.Sprintf("cannot listen on %s: %s", le.Addr, le.Reason())
	r.Fix = le.Fix()
	r.PortOwner = le.Owner
	return r
}
