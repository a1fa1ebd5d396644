package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// commandLine is what `serve` and `check` share: the config file, the flags
// that override it, and logging.
type commandLine struct {
	fs         *flag.FlagSet
	configPath string
	logFormat  string
	logLevel   string
	stderr     io.Writer                       // where logs go
	logger     *slog.Logger                    // set by parse
	set        map[string]func(*config.Config) // per flag name, applied when given
	// createsConfig, when set and true, allows --config to name a file that
	// does not exist yet because the command will write it.
	createsConfig *bool
}

func newCommandLine(name string, stderr io.Writer) *commandLine {
	cl := &commandLine{fs: flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError), stderr: stderr, set: map[string]func(*config.Config){}}
	fs := cl.fs
	fs.SetOutput(io.Discard)
	defPath, _ := config.DefaultPath()
	fs.StringVar(&cl.configPath, "config", defPath, "config file (JSON); flags override it")
	fs.StringVar(&cl.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&cl.logLevel, "log-level", "info", "log level: debug, info, warn or error")

	// Each setting's flag is its config key with - for _ (a test holds
	// every key to having one).
	str := func(f config.Field, usage string, field func(*config.Config) *string) {
		v := fs.String(flagName(f), "", usage)
		cl.set[flagName(f)] = func(c *config.Config) { *field(c) = *v }
	}
	site := func(f config.Field, usage string, field func(*config.Site) *string) {
		v := fs.String(flagName(f), "", usage)
		cl.set[flagName(f)] = func(c *config.Config) { setFirstSite(c, func(s *config.Site) { *field(s) = *v }) }
	}
	// The site flags set the single site, or the first of a config file
	// that lists its sites under "sites" alone.
	site(config.FieldHostname, "public DNS name visitors use, such as sso.example.com (the first site's)", func(s *config.Site) *string { return &s.Hostname })
	site(config.FieldUpstream, "URL of the app behind the proxy, such as https://authentik.lan:9443 (the first site's)", func(s *config.Site) *string { return &s.Upstream })
	site(config.FieldUpstreamCA, "PEM file of CAs trusted for the upstream's certificate", func(s *config.Site) *string { return &s.UpstreamCA })
	site(config.FieldUpstreamFingerprint, "SHA-256 fingerprint of the upstream's certificate to trust (pinning)", func(s *config.Site) *string { return &s.UpstreamFingerprint })
	sites := fs.String(flagName(config.FieldSites), "", "further sites, comma-separated hostname=upstream pairs, such as app.example.com=http://10.0.0.5:8080 (trust and forward auth: in the config file)")
	cl.set[flagName(config.FieldSites)] = func(c *config.Config) { c.Sites = append(c.Sites, parseSites(*sites)...) }
	str(config.FieldHTTPAddr, `plain HTTP listen address, or "off" (default ":80")`, func(c *config.Config) *string { return &c.HTTPAddr })
	str(config.FieldHTTPSAddr, `TLS listen address (default ":443")`, func(c *config.Config) *string { return &c.HTTPSAddr })
	tls := fs.String(flagName(config.FieldTLS), "", "certificate source: acme, files or self-signed (default acme)")
	cl.set[flagName(config.FieldTLS)] = func(c *config.Config) { c.TLS = config.TLSSource(*tls) }
	str(config.FieldCertFile, "PEM certificate chain, with --tls files", func(c *config.Config) *string { return &c.CertFile })
	str(config.FieldKeyFile, "PEM private key, with --tls files", func(c *config.Config) *string { return &c.KeyFile })
	str(config.FieldStateDir, "directory for certificates and keys (default: state/ beside the config file)", func(c *config.Config) *string { return &c.StateDir })
	str(config.FieldACMEEmail, "contact address for the ACME account", func(c *config.Config) *string { return &c.ACMEEmail })
	str(config.FieldACMEDirectory, "ACME directory URL, or production / staging for Let's Encrypt (default production)", func(c *config.Config) *string { return &c.ACMEDirectory })
	str(config.FieldACMECARoots, "PEM file of extra roots trusted for the ACME server's API", func(c *config.Config) *string { return &c.ACMECARoots })
	str(config.FieldACMEEABKeyID, "External Account Binding key ID", func(c *config.Config) *string { return &c.ACMEEABKeyID })
	str(config.FieldACMEEABHMAC, "External Account Binding HMAC key (base64url)", func(c *config.Config) *string { return &c.ACMEEABHMAC })
	str(config.FieldStatusAddr, `status and metrics listen address, or "off" (default "127.0.0.1:9180")`, func(c *config.Config) *string { return &c.StatusAddr })
	str(config.FieldHSTS, `Strict-Transport-Security: on, off or a max-age such as 730d (default: on with acme and files, off with self-signed)`, func(c *config.Config) *string { return &c.HSTS })
	str(config.FieldHealthPath, `upstream path checked periodically (default "/-/health/live/")`, func(c *config.Config) *string { return &c.HealthPath })

	stagingFirst := fs.Bool(flagName(config.FieldACMEStagingFirst), false, "with Let's Encrypt, get a staging certificate first to check validation, until a production one was obtained once")
	cl.set[flagName(config.FieldACMEStagingFirst)] = func(c *config.Config) { c.ACMEStagingFirst = *stagingFirst }
	insecure := fs.Bool(flagName(config.FieldUpstreamInsecure), false, "do not verify the upstream's certificate (prefer --upstream-fingerprint)")
	cl.set[flagName(config.FieldUpstreamInsecure)] = func(c *config.Config) {
		setFirstSite(c, func(s *config.Site) { s.UpstreamInsecure = *insecure })
	}
	port := fs.Int(flagName(config.FieldPublicHTTPSPort), 0, "port visitors reach HTTPS on, for redirects (default: the --https-addr port)")
	cl.set[flagName(config.FieldPublicHTTPSPort)] = func(c *config.Config) { c.PublicHTTPSPort = *port }
	keepalive := fs.Int(flagName(config.FieldUpstreamKeepalive), 0, fmt.Sprintf("idle upstream connections kept for reuse (default %d)", config.DefaultUpstreamKeepalive))
	cl.set[flagName(config.FieldUpstreamKeepalive)] = func(c *config.Config) { c.UpstreamKeepalive = *keepalive }
	timeout := fs.Duration(flagName(config.FieldUpstreamTimeout), 0, "wait this long for the upstream's response headers before answering 504 (default 60s)")
	cl.set[flagName(config.FieldUpstreamTimeout)] = func(c *config.Config) { c.UpstreamTimeout = config.Duration(*timeout) }
	idle := fs.Duration(flagName(config.FieldUpstreamIdleTimeout), 0, "close idle upstream connections after this long (default 90s)")
	cl.set[flagName(config.FieldUpstreamIdleTimeout)] = func(c *config.Config) { c.UpstreamIdleTimeout = config.Duration(*idle) }
	// forward_auth is an object; its flag gives the outpost's URL, the
	// one part every use needs. The outpost's trust settings stay in the
	// config file (kept when the flag replaces the URL).
	forwardAuth := fs.String(flagName(config.FieldForwardAuth), "", "protect the site with authentik forward auth: the outpost's URL, such as https://authentik.lan:9443 (its certificate trust is set in the config file)")
	cl.set[flagName(config.FieldForwardAuth)] = func(c *config.Config) {
		setFirstSite(c, func(s *config.Site) {
			var fa config.ForwardAuth
			if s.ForwardAuth != nil {
				fa = *s.ForwardAuth
			}
			fa.URL, fa.Site = *forwardAuth, ""
			s.ForwardAuth = &fa
		})
	}
	proxies := fs.String(flagName(config.FieldTrustedProxies), "", "comma-separated CIDRs of proxies in front of Gatehouse whose X-Forwarded-For is believed")
	cl.set[flagName(config.FieldTrustedProxies)] = func(c *config.Config) { c.TrustedProxies = splitList(*proxies) }
	return cl
}

// parse reads the flags and the config file, returning the merged config.
// Errors are usage errors, worded for one line.
func (cl *commandLine) parse(args []string) (config.Config, error) {
	if err := cl.fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	if cl.fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("unexpected argument %q", cl.fs.Arg(0))
	}
	explicit := false
	cl.fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(cl.configPath)
	if err != nil {
		creating := cl.createsConfig != nil && *cl.createsConfig
		if !errors.Is(err, fs.ErrNotExist) || explicit && !creating {
			return cfg, err
		}
		cfg = config.Config{}
	}
	cl.override(&cfg)
	if cl.logger, err = newLogger(cl.stderr, cl.logFormat, cl.logLevel); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// setFirstSite applies set to the site the --hostname, --upstream and
// trust flags set: the top-level one, unless the config file lists its
// sites under "sites" alone, when they set the first of those.
func setFirstSite(c *config.Config, set func(*config.Site)) {
	if c.Hostname == "" && c.Upstream == "" && len(c.Sites) > 0 {
		set(&c.Sites[0])
		return
	}
	s := config.Site{Hostname: c.Hostname, Upstream: c.Upstream, UpstreamInsecure: c.UpstreamInsecure,
		UpstreamCA: c.UpstreamCA, UpstreamFingerprint: c.UpstreamFingerprint, ForwardAuth: c.ForwardAuth}
	set(&s)
	c.Hostname, c.Upstream, c.UpstreamInsecure, c.UpstreamCA, c.UpstreamFingerprint, c.ForwardAuth =
		s.Hostname, s.Upstream, s.UpstreamInsecure, s.UpstreamCA, s.UpstreamFingerprint, s.ForwardAuth
}

// parseSites reads --sites: hostname=upstream pairs, comma-separated. A
// pair without "=" is kept as a hostname without upstream, for Validate
// to report.
func parseSites(list string) []config.Site {
	var out []config.Site
	for _, pair := range splitList(list) {
		host, up, _ := strings.Cut(pair, "=")
		out = append(out, config.Site{Hostname: strings.TrimSpace(host), Upstream: strings.TrimSpace(up)})
	}
	return out
}

// override sets in cfg what the flags given set.
func (cl *commandLine) override(cfg *config.Config) {
	cl.fs.Visit(func(f *flag.Flag) {
		if apply, ok := cl.set[f.Name]; ok {
			apply(cfg)
		}
	})
}

// flagName is the flag that sets f: its config key with - for _.
func flagName(f config.Field) string { return strings.TrimPrefix(f.Flag(), "--") }

// usage prints the flags of the command.
func (cl *commandLine) usage(w io.Writer, summary string) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n\nFlags:\n", cl.fs.Name(), summary)
	cl.fs.SetOutput(w)
	cl.fs.PrintDefaults()
	cl.fs.SetOutput(io.Discard)
}

// describeConfigError words a validation error with flag names, on one line.
func describeConfigError(err error) string {
	fields := config.FieldErrors(err)
	if fields == nil {
		return err.Error()
	}
	parts := make([]string, len(fields))
	for i, fe := range fields {
		name := fe.Field.Flag()
		if _, _, inSite := fe.Field.InSite(); inSite {
			name = string(fe.Field) // a key of the config file's sites list: no flag sets it
		}
		parts[i] = name + ": " + fe.Message
	}
	return strings.Join(parts, "; ")
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
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
