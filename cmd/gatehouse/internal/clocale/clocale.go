// Package clocale stops Fyne from logging an error at start-up on systems
// whose locale is C.UTF-8 (Debian's default in containers and on servers,
// where `gatehouse serve` runs). Fyne's lang package reads the locale in
// its init and cannot parse "C"; setting LANGUAGE, which the C locale
// ignores for messages anyway, gives it a tag it can.
//
// Import it for its side effect from package main. Go initialises packages
// in import-path order as far as dependencies allow, so this package (no
// dependencies beyond os) runs before Fyne's locale lookup.
package clocale

import (
	"os"
	"strings"
)

func init() {
	locale := ""
	for _, env := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if locale = os.Getenv(env); locale != "" {
			break
		}
	}
	if (strings.HasPrefix(locale, "C.") || strings.HasPrefix(locale, "POSIX.")) && os.Getenv("LANGUAGE") == "" {
		os.Setenv("LANGUAGE", "en")
	}
}
