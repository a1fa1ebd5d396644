package upstream

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// TestParseFingerprintForms: the forms people paste (bare hex in either
// case, with a sha256: prefix, colon-separated as the upstream check shows
// it) all name the same fingerprint.
func TestParseFingerprintForms(t *testing.T) {
	want := make([]byte, 32)
	for i := range want {
		want[i] = byte(0xa0 + i) // hex letters, so case matters
	}
	hexs := hex.EncodeToString(want)
	for _, s := range []string{hexs, strings.ToUpper(hexs), "sha256:" + hexs, FormatFingerprint(want)} {
		got, err := ParseFingerprint(s)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q: %x, %v; want %x", s, got, err, want)
		}
	}
}
