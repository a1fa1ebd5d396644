package upstream

import (
	"strings"
	"testing"
)

func TestParseFingerprintForms(t *testing.T) {
	hexs := strings.Repeat("0a", 32)
	colon := FormatFingerprint(make([]byte, 32))
	for _, s := range []string{hexs, strings.ToUpper(hexs), "sha256:" + hexs, colon} {
		if _, err := ParseFingerprint(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}
