// Package assets holds the files embedded in the Gatehouse binary.
package assets

import _ "embed"

// Icon is the application icon, 256x256 PNG (drawn from icon.svg).
//
//go:embed icon.png
var Icon []byte
