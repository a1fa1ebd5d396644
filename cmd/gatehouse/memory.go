package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is Gatehouse's garbage collection target when GOGC is not
// set: 50 rather than Go's 100. A proxy's live heap is mostly its
// connections' TLS state and buffers, and at GOGC=100 the runtime keeps
// about as much again of freed memory between collections. Measured with
// 2,000 idle proxied WebSockets, 50 brings resident memory from 45 to 36 KiB
// each (half of nginx's 72), and costs at most 8% of HTTP throughput, at
// 256 connections; see docs/BENCHMARKS.md. GOGC=100 in the environment
// trades the memory back for that throughput.
const defaultGCPercent = 50

// setDefaultGCPercent applies defaultGCPercent unless GOGC says otherwise.
func setDefaultGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}
