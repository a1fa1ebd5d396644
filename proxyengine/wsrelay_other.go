//go:build !linux

package proxyengine

// wsRelay is Linux's (wsrelay_linux.go); elsewhere every session has its
// pumps.
type wsRelay struct{}

func (*wsRelay) take(*wsSession) bool { return false }

func (*wsRelay) close() {}

// relayLoop is never set outside Linux.
type relayLoop struct{}

func (*relayLoop) stop(*wsSession) {}
