package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// commandLine is what `serve` and `check` share: the config file, the flags
// that override it, and logging.
type commandLine struct {
	fs         *flag.FlagSet
	configPath string
	logFormat  string
	logLevel   string
	set        map[string]func(*proxyengine.Config) // per flag name, applied when given
	// createsConfig, when set and true, allows --config to name a file that
	// does not exist yet because the command will write it.
	createsConfig *bool
}

func newCommandLine(name string) *commandLine {
	cl := &commandLine{fs: flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError), set: map[string]func(*proxyengine.Config){}}
	fs := cl.fs
	fs.SetOutput(io.Discard)
	defPath, _ := proxyengine.DefaultConfigPath()
	fs.StringVar(&cl.configPath, "config", defPath, "config file (JSON); flags override it")
	fs.StringVar(&cl.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&cl.logLevel, "log-level", "info", "log level: debug, info, warn or error")

	str := func(name, usage string, field func(*proxyengine.Config) *string) {
		v := fs.String(name, "", usage)
		cl.set[name] = func(c *proxyengine.Config) { *field(c) = *v }
	}
	str("hostname", "public DNS name visitors use, such as sso.example.com", func(c *proxyengine.Config) *string { return &c.Hostname })
	str("upstream", "URL of the app behind the proxy, such as https://authentik.lan:9443", func(c *proxyengine.Config) *string { return &c.Upstream })
	str("upstream-ca", "PEM file of CAs trusted for the upstream's certificate", func(c *proxyengine.Config) *string { return &c.UpstreamCA })
	str("upstream-fingerprint", "SHA-256 fingerprint of the upstream's certificate to trust (pinning)", func(c *proxyengine.Config) *string { return &c.UpstreamFingerprint })
	str("http-addr", `plain HTTP listen address, or "off" (default ":80")`, func(c *proxyengine.Config) *string { return &c.HTTPAddr })
	str("https-addr", `TLS listen address (default ":443")`, func(c *proxyengine.Config) *string { return &c.HTTPSAddr })
	str("tls", "certificate source: acme, files or self-signed (default acme)", func(c *proxyengine.Config) *string { return &c.TLS })
	str("cert-file", "PEM certificate chain, with --tls files", func(c *proxyengine.Config) *string { return &c.CertFile })
	str("key-file", "PEM private key, with --tls files", func(c *proxyengine.Config) *string { return &c.KeyFile })
	str("state-dir", "directory for certificates and keys (default: state/ beside the config file)", func(c *proxyengine.Config) *string { return &c.StateDir })
	str("acme-email", "contact address for the ACME account", func(c *proxyengine.Config) *string { return &c.ACMEEmail })
	str("acme-directory", "ACME directory URL, or production / staging for Let's Encrypt (default production)", func(c *proxyengine.Config) *string { return &c.ACMEDirectory })
	str("acme-ca-roots", "PEM file of extra roots trusted for the ACME server's API", func(c *proxyengine.Config) *string { return &c.ACMECARoots })
	str("acme-eab-kid", "External Account Binding key ID", func(c *proxyengine.Config) *string { return &c.ACMEEABKeyID })
	str("acme-eab-hmac", "External Account Binding HMAC key (base64url)", func(c *proxyengine.Config) *string { return &c.ACMEEABHMAC })
	str("status-addr", `status and metrics listen address, or "off" (default "127.0.0.1:9180")`, func(c *proxyengine.Config) *string { return &c.StatusAddr })
	str("hsts", `Strict-Transport-Security: on, off or a max-age such as 730d (default: on with acme and files, off with self-signed)`, func(c *proxyengine.Config) *string { return &c.HSTS })
	str("health-path", `upstream path checked periodically (default "/-/health/live/")`, func(c *proxyengine.Config) *string { return &c.HealthPath })

	insecure := fs.Bool("upstream-insecure", false, "do not verify the upstream's certificate (prefer --upstream-fingerprint)")
	cl.set["upstream-insecure"] = func(c *proxyengine.Config) { c.UpstreamInsecure = *insecure }
	port := fs.Int("public-https-port", 0, "port visitors reach HTTPS on, for redirects (default: the --https-addr port)")
	cl.set["public-https-port"] = func(c *proxyengine.Config) { c.PublicHTTPSPort = *port }
	keepalive := fs.Int("upstream-keepalive", 0, fmt.Sprintf("idle upstream connections kept for reuse (default %d)", proxyengine.DefaultUpstreamKeepalive))
	cl.set["upstream-keepalive"] = func(c *proxyengine.Config) { c.UpstreamKeepalive = *keepalive }
	timeout := fs.Duration("upstream-timeout", 0, "wait this long for the upstream's response headers before answering 504 (default 60s)")
	cl.set["upstream-timeout"] = func(c *proxyengine.Config) { c.UpstreamTimeout = proxyengine.Duration(*timeout) }
	idle := fs.Duration("upstream-idle-timeout", 0, "close idle upstream connections after this long (default 90s)")
	cl.set["upstream-idle-timeout"] = func(c *proxyengine.Config) { c.UpstreamIdleTimeout = proxyengine.Duration(*idle) }
	proxies := fs.String("trusted-proxies", "", "comma-separated CIDRs of proxies in front of Gatehouse whose X-Forwarded-For is believed")
	cl.set["trusted-proxies"] = func(c *proxyengine.Config) { c.TrustedProxies = splitList(*proxies) }
	return cl
}

// parse reads the flags and the config file, returning the merged config.
// Errors are usage errors, worded for one line.
func (cl *commandLine) parse(args []string) (proxyengine.Config, error) {
	if err := cl.fs.Parse(args); err != nil {
		return proxyengine.Config{}, err
	}
	if cl.fs.NArg() > 0 {
		return proxyengine.Config{}, fmt.Errorf("unexpected argument %q", cl.fs.Arg(0))
	}
	explicit := false
	cl.fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := proxyengine.LoadConfig(cl.configPath)
	if err != nil {
		creating := cl.createsConfig != nil && *cl.createsConfig
		if !errors.Is(err, fs.ErrNotExist) || explicit && !creating {
			return cfg, err
		}
		cfg = proxyengine.Config{}
	}
	cl.fs.Visit(func(f *flag.Flag) {
		if apply, ok := cl.set[f.Name]; ok {
			apply(&cfg)
		}
	})
	logger, err := newLogger(cl.logFormat, cl.logLevel)
	if err != nil {
		return cfg, err
	}
	cfg.Logger = logger
	return cfg, nil
}

// usage prints the flags of the command.
func (cl *commandLine) usage(w io.Writer, summary string) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n\nFlags:\n", cl.fs.Name(), summary)
	cl.fs.SetOutput(w)
	cl.fs.PrintDefaults()
	cl.fs.SetOutput(io.Discard)
}

// describeConfigError words a validation error with flag names, on one line.
func describeConfigError(err error) string {
	fields := proxyengine.FieldErrors(err)
	if fields == nil {
		return err.Error()
	}
	parts := make([]string, len(fields))
	for i, fe := range fields {
		parts[i] = "--" + strings.ReplaceAll(fe.Field, "_", "-") + ": " + fe.Message
	}
	return strings.Join(parts, "; ")
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// shutdownTimeout bounds a graceful stop on SIGINT or SIGTERM.
const shutdownTimeout = 15 * time.Second
