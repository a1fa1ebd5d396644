package proxyengine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A listenAddr is one of the addresses the engine binds.
type listenAddr struct {
	name, title, purpose, field, addr string
}

// listenAddrs lists the config's listen addresses, leaving out those "off".
func listenAddrs(cfg Config) []listenAddr {
	out := []listenAddr{{CheckNameHTTPSPort, "HTTPS port", "HTTPS", "https_addr", cfg.HTTPSAddr}}
	if cfg.HTTPAddr != Off {
		out = append(out, listenAddr{CheckNameHTTPPort, "HTTP port", "HTTP", "http_addr", cfg.HTTPAddr})
	}
	if cfg.StatusAddr != Off {
		out = append(out, listenAddr{CheckNameStatusPort, "Status port", "status", "status_addr", cfg.StatusAddr})
	}
	return out
}

// CheckPorts checks that this user can bind each listen address of cfg now,
// by binding it and letting go at once, through the same code the engine
// uses to listen, so it explains a failure the same way: a port in use (by
// which process, when /proc tells), a privileged port (with the setcap and
// sysctl commands that allow it), or an address this machine lacks.
func (k *Checker) CheckPorts(ctx context.Context, cfg Config) []CheckResult {
	cfg = cfg.WithDefaults()
	errs := FieldErrors(cfg.Validate())
	var out []CheckResult
	for _, l := range listenAddrs(cfg) {
		if ctx.Err() != nil {
			out = append(out, CheckResult{Name: l.name, Title: l.title, Field: l.field, Status: CheckSkip, Finding: "not checked: the check was cancelled"})
			continue
		}
		out = append(out, checkPort(l, errs.For(l.field)))
	}
	return out
}

func checkPort(l listenAddr, invalid *FieldError) CheckResult {
	r := CheckResult{Name: l.name, Title: l.title, Field: l.field}
	if invalid != nil {
		r.Status, r.Finding = CheckFail, invalid.Message
		r.Fix = fmt.Sprintf("correct the %s listen address (--%s) as the finding says", l.purpose, strings.ReplaceAll(l.field, "_", "-"))
		return r
	}
	start := time.Now()
	ln, err := listen(l.purpose, l.addr)
	r.Elapsed = time.Since(start)
	if err == nil {
		bound := ln.Addr().String()
		ln.Close()
		r.Status, r.Finding = CheckPass, fmt.Sprintf("%s is free and this user can listen on it", l.addr)
		if _, port, _ := splitListenAddr(l.addr); port == 0 {
			r.Finding = fmt.Sprintf("%s is free and this user can listen on it (bound as %s)", l.addr, bound)
		}
		return r
	}
	return portResult(r, err)
}

// portResult words a failure to bind, which listen returns as a ListenError.
func portResult(r CheckResult, err error) CheckResult {
	var le *ListenError
	if !errors.As(err, &le) {
		r.Status, r.Finding = CheckFail, err.Error()
		return r
	}
	r.Status = CheckFail
	if le.Owner != nil && le.Owner.isGatehouse() {
		// Gatehouse's own running proxy, as when the dashboard checks again
		// or the service runs while `gatehouse check` does.
		r.Status = CheckWarn
	}
	r.Finding = fmt.Sprintf("cannot listen on %s: %s", le.Addr, le.Reason())
	r.Fix = le.Fix()
	r.PortOwner = le.Owner
	return r
}
