package ui

import (
	"regexp"
)

// The engine words its findings and fixes for `gatehouse serve` and
// `gatehouse check`, naming command-line flags. The desktop app never shows
// a flag: inAppWords names the wizard's fields and buttons instead, so
// every message the app shows can be acted on where it is shown.

// flagWords rewrites the engine's phrases that name flags, most specific
// first. A phrase without a rule here keeps its words, and the test that
// walks the engine's messages finds it.
var flagWords = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(` \(--[a-z][a-z-]*\)`), ""}, // "(--hostname)": the field is on screen
	{regexp.MustCompile(`the --acme-directory URL \([^)]*\)`),
		"the certificate authority chosen on the Certificate step (for another ACME CA, its directory URL)"},
	{regexp.MustCompile(`(?:with )?--acme-directory staging(?: first)?`),
		"with Let's Encrypt's staging service first (the tick box on the Certificate step)"},
	{regexp.MustCompile(`with --acme-ca-roots FILE`), "under \u201cCA roots for the ACME server\u201d on the Certificate step"},
	{regexp.MustCompile(`with --acme-eab-kid and --acme-eab-hmac`), "in the External Account Binding fields on the Certificate step"},
	{regexp.MustCompile(`\(--upstream-fingerprint, --upstream-ca or --upstream-insecure\)`),
		"(Trust this certificate, Use a CA file\u2026 or Skip verification, offered after Test connection on the Upstream step)"},
	{regexp.MustCompile(`: --upstream-fingerprint ([0-9A-Fa-f:]+)`), " with \u201cTrust this certificate\u201d (fingerprint $1)"},
	{regexp.MustCompile(`as --upstream-insecure asks`), "as \u201cSkip verification\u201d asks"},
	{regexp.MustCompile(`--upstream-insecure`), "\u201cSkip verification\u201d"},
	{regexp.MustCompile(`with --upstream-ca FILE`), "with \u201cUse a CA file\u2026\u201d"},
	{regexp.MustCompile(`(?:set |correct )?--health-path`), "set health_path in the config file"},
}

// inAppWords rewrites a message of the engine in the app's words.
func inAppWords(s string) string {
	for _, w := range flagWords {
		s = w.re.ReplaceAllString(s, w.with)
	}
	return s
}
