//go:build !unix

package proxyengine

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: without a way to wait for a socket without
// reading it, pumps never park.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

// waitReadable is never called when rawConnOf returns nil.
func waitReadable(syscall.RawConn) error { panic("proxyengine: waitReadable without a socket") }
