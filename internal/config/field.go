package config

import "strings"

// A Field names one setting: its key in the config file, from which its
// flag (--key with - for _) and its place in the wizard follow. Validation
// errors and pre-flight results say which Field they are about.
type Field string

// The fields of Config, one per JSON key (a test ties each to its tag).
const (
	FieldHostname            Field = "hostname"
	FieldUpstream            Field = "upstream"
	FieldUpstreamInsecure    Field = "upstream_insecure"
	FieldUpstreamCA          Field = "upstream_ca"
	FieldUpstreamFingerprint Field = "upstream_fingerprint"
	FieldSites               Field = "sites"
	FieldHTTPAddr            Field = "http_addr"
	FieldHTTPSAddr           Field = "https_addr"
	FieldPublicHTTPSPort     Field = "public_https_port"
	FieldTLS                 Field = "tls"
	FieldCertFile            Field = "cert_file"
	FieldKeyFile             Field = "key_file"
	FieldStateDir            Field = "state_dir"
	FieldTrustedProxies      Field = "trusted_proxies"
	FieldUpstreamKeepalive   Field = "upstream_keepalive"
	FieldUpstreamIdleTimeout Field = "upstream_idle_timeout"
	FieldUpstreamTimeout     Field = "upstream_timeout"
	FieldACMEEmail           Field = "acme_email"
	FieldACMEDirectory       Field = "acme_directory"
	FieldACMECARoots         Field = "acme_ca_roots"
	FieldACMEEABKeyID        Field = "acme_eab_kid"
	FieldACMEEABHMAC         Field = "acme_eab_hmac"
	FieldACMEStagingFirst    Field = "acme_staging_first"
	FieldStatusAddr          Field = "status_addr"
	FieldHealthPath          Field = "health_path"
	FieldHSTS                Field = "hsts"
	FieldForwardAuth         Field = "forward_auth"
)

// A site's keys share the top-level Fields' names (hostname, upstream,
// upstream_insecure, upstream_ca, upstream_fingerprint, cert_file,
// key_file, forward_auth); SiteField places any of them in the sites list.

// Fields lists every Field in the order of Config's fields.
var Fields = []Field{
	FieldHostname, FieldUpstream, FieldUpstreamInsecure, FieldUpstreamCA, FieldUpstreamFingerprint, FieldSites,
	FieldHTTPAddr, FieldHTTPSAddr, FieldPublicHTTPSPort, FieldTLS, FieldCertFile, FieldKeyFile,
	FieldStateDir, FieldTrustedProxies, FieldUpstreamKeepalive, FieldUpstreamIdleTimeout, FieldUpstreamTimeout,
	FieldACMEEmail, FieldACMEDirectory, FieldACMECARoots, FieldACMEEABKeyID, FieldACMEEABHMAC, FieldACMEStagingFirst,
	FieldStatusAddr, FieldHealthPath, FieldHSTS, FieldForwardAuth,
}

// Flag is the command-line flag that sets the field, such as --acme-email.
func (f Field) Flag() string { return "--" + strings.ReplaceAll(string(f), "_", "-") }
