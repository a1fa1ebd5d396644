package proxyengine

import (
	"net/http/httputil"
	"testing"
)

var _ httputil.BufferPool = proxyBuffers

func TestCopyBuffersLendWithoutAllocating(t *testing.T) {
	b := proxyBuffers.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("Get returned %d bytes, want %d", len(b), copyBufferSize)
	}
	proxyBuffers.Put(b)
	proxyBuffers.Put(make([]byte, 100)) // not one of ours: dropped, no panic
	if n := testing.AllocsPerRun(100, func() { proxyBuffers.Put(proxyBuffers.Get()) }); n != 0 {
		t.Errorf("Get and Put allocate %.1f times per round trip, want 0", n)
	}
}
