package proxyengine

import "sync"

// copyBufferSize is the size of the buffers that carry response bodies and
// busy WebSockets: io.Copy's own default, and twice TLS's largest record.
const copyBufferSize = 32 << 10

// copyBuffers lends out the buffers that response bodies and busy
// WebSockets are copied through. httputil.ReverseProxy allocates a new
// 32 KiB buffer for every response unless given a pool, which at thousands
// of requests a second is most of the garbage the collector chases.
//
// It implements httputil.BufferPool. The pool holds array pointers, so
// neither Get nor Put allocates.
type copyBuffers struct{ pool sync.Pool }

// proxyBuffers is the process's one pool, shared by every engine: buffers
// are only ever in use for the length of one copy.
var proxyBuffers = &copyBuffers{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}

// Get returns a buffer of copyBufferSize bytes.
func (p *copyBuffers) Get() []byte { return p.pool.Get().(*[copyBufferSize]byte)[:] }

// Put returns b to the pool; a buffer of another size (one not from Get) is
// left to the collector.
func (p *copyBuffers) Put(b []byte) {
	if cap(b) == copyBufferSize {
		p.pool.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
	}
}

// wsSmallBuffers lend out the buffers a WebSocket direction reads into
// between bursts. A parked direction (see wsParkAfter) holds none, so idle
// WebSockets share the few that are in use.
var wsSmallBuffers = sync.Pool{New: func() any { return new([wsSmallBuffer]byte) }}
