package main

import (
	"runtime/debug"
	"testing"
)

func TestDefaultGCPercentLeavesGOGCToTheUser(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	t.Setenv("GOGC", "")
	setDefaultGCPercent()
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("without GOGC the GC percent is %d, want %d", got, defaultGCPercent)
	}

	t.Setenv("GOGC", "200")
	setDefaultGCPercent()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, setDefaultGCPercent changed the GC percent to %d", got)
	}
}
