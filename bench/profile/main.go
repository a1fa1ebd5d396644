// Command profile runs the Gatehouse engine in-process with net/http/pprof
// beside it, so the benchmark suite can take a CPU profile of the proxy under
// load (`gatehouse serve` has no profiling endpoint, by design):
//
//	profile -config gatehouse.json -pprof 127.0.0.1:16060
//	curl -o cpu.prof 'http://127.0.0.1:16060/debug/pprof/profile?seconds=10'
//
// The config file is Gatehouse's own JSON format (see docs/CONFIG.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

func main() {
	configPath := flag.String("config", "", "Gatehouse config file (JSON)")
	pprofAddr := flag.String("pprof", "127.0.0.1:16060", "loopback address for /debug/pprof/")
	flag.Parse()
	if err := run(*configPath, *pprofAddr); err != nil {
		fmt.Fprintf(os.Stderr, "profile: %v\n", err)
		os.Exit(1)
	}
}

func run(configPath, pprofAddr string) error {
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	engine, err := proxyengine.New(cfg, proxyengine.Options{Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", pprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	pprofServer := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	go pprofServer.Serve(ln)
	defer pprofServer.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := engine.Start(ctx); err != nil {
		return err
	}
	fmt.Printf("proxy running; pprof on http://%s/debug/pprof/\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err = <-engine.Err():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, engine.Shutdown(sctx))
}
