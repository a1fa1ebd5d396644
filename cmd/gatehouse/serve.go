package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/control"
	"github.com/gatehouse-proxy/gatehouse/internal/supervisor"
)

const serveSummary = `Runs the proxy without a display: redirects HTTP to HTTPS, serves the
certificate, and forwards visitors to the upstream. Settings come from the
config file (written by the desktop app or --save-config), and flags override it.`

// runServe is `gatehouse serve`, logging to stderr. It returns the process
// exit code: 2 for a usage or config error, 1 when the proxy cannot start
// or fails.
func runServe(args []string, stdout, stderr io.Writer) int {
	cl := newCommandLine("serve", stderr)
	save := cl.fs.Bool("save-config", false, "write the merged settings to the config file (mode 0600) before serving")
	socket := cl.fs.String("control-socket", control.DefaultSocket(),
		`Unix socket for the desktop app, gatehouse status and gatehouse reload; "off" disables it`)
	cl.createsConfig = save
	cfg, err := cl.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		cl.usage(stdout, serveSummary)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse serve: %v (see gatehouse serve -h)\n", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "gatehouse serve: %s\n", describeConfigError(err))
		return 2
	}
	logger := cl.logger
	if *save {
		if err := config.Save(cl.configPath, cfg); err != nil {
			fmt.Fprintf(stderr, "gatehouse serve: %v\n", err)
			return 1
		}
		logger.Info("saved settings", "config", cl.configPath)
	}
	sup := supervisor.New(cfg, cl.configPath, supervisor.Options{Logger: logger, Overrides: cl.override})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := sup.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "gatehouse serve: %s\n", describeConfigError(err))
		return 1
	}
	if *socket != config.Off {
		srv := &control.Server{Controller: sup, Group: serviceGroup(), Logger: logger}
		ln, err := srv.Listen(*socket)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse serve: %v\n", err)
			sup.Shutdown(context.Background())
			return 1
		}
		go srv.Serve(ln)
		defer srv.Close() // also removes the socket file
		logger.Info("control socket ready", "path", *socket)
	}

	code := 0
	for code == 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-hup:
			if err := sup.Reload(ctx); err != nil {
				logger.Error("reload refused; still serving the previous settings", "err", describeConfigError(err))
			} else {
				logger.Info("reloaded the config file", "config", cl.configPath)
			}
		case err := <-sup.Err():
			logger.Error("a listener failed; shutting down", "err", err)
			code = 1
		}
	}
	logger.Info("shutting down")
	stop() // a second signal now kills the process at once
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := sup.Shutdown(sctx); err != nil {
		logger.Warn("shutdown was not clean", "err", err)
	}
	return code
}

// serviceGroup is the group that may use the control socket besides this
// user: "gatehouse" when the process runs as that group, as the system
// service does (desktop users join it), else none.
func serviceGroup() string {
	if g, err := user.LookupGroupId(strconv.Itoa(os.Getgid())); err == nil && g.Name == "gatehouse" {
		return g.Name
	}
	return ""
}
