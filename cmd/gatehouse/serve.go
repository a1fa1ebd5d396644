package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

const serveSummary = `Runs the proxy without a display: redirects HTTP to HTTPS, serves the
certificate, and forwards visitors to the upstream. Settings come from the
config file (written by the desktop app or --save-config), and flags override it.`

// runServe is `gatehouse serve`. It returns the process exit code: 2 for a
// usage or config error, 1 when the proxy cannot start or fails.
func runServe(args []string) int {
	cl := newCommandLine("serve")
	save := cl.fs.Bool("save-config", false, "write the merged settings to the config file (mode 0600) before serving")
	cl.createsConfig = save
	cfg, err := cl.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		cl.usage(os.Stdout, serveSummary)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gatehouse serve: %v (see gatehouse serve -h)\n", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "gatehouse serve: %s\n", describeConfigError(err))
		return 2
	}
	saved := cfg // keeps "demo" rather than the demo's port of this run
	cfg, demo, err := proxyengine.WithDemoApp(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gatehouse serve: %v\n", err)
		return 1
	}
	defer demo.Close()
	engine, err := proxyengine.New(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gatehouse serve: %s\n", describeConfigError(err))
		return 2
	}
	if *save {
		if err := config.Save(cl.configPath, saved); err != nil {
			fmt.Fprintf(os.Stderr, "gatehouse serve: %v\n", err)
			return 1
		}
		cfg.Logger.Info("saved settings", "config", cl.configPath)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := engine.Start(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "gatehouse serve: %v\n", err)
		return 1
	}
	code := 0
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
	case err := <-engine.Err():
		cfg.Logger.Error("a listener failed; shutting down", "err", err)
		code = 1
	}
	stop() // a second signal now kills the process at once
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := engine.Shutdown(sctx); err != nil {
		cfg.Logger.Warn("shutdown was not clean", "err", err)
	}
	return code
}
