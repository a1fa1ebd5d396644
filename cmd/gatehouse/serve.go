package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
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
	engine, err := proxyengine.New(cfg, proxyengine.Options{Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse serve: %s\n", describeConfigError(err))
		return 2
	}
	if *save {
		if err := config.Save(cl.configPath, cfg); err != nil {
			fmt.Fprintf(stderr, "gatehouse serve: %v\n", err)
			return 1
		}
		logger.Info("saved settings", "config", cl.configPath)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := engine.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "gatehouse serve: %v\n", err)
		return 1
	}
	code := 0
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-engine.Err():
		logger.Error("a listener failed; shutting down", "err", err)
		code = 1
	}
	stop() // a second signal now kills the process at once
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := engine.Shutdown(sctx); err != nil {
		logger.Warn("shutdown was not clean", "err", err)
	}
	return code
}
