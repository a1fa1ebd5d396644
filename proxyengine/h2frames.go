package proxyengine

import (
	"net/http"
	"sync"
)

// h2FramePayload is the most body a DATA frame carries for the frame,
// with its 9-byte header, to fill one TLS record: 16 KiB of plaintext.
const h2FramePayload = 16<<10 - 9

var h2FrameBuffers = sync.Pool{New: func() any { return new([h2FramePayload]byte) }}

// recordSizedFrames passes an HTTP/2 response body to Go's HTTP/2 server
// in pieces of h2FramePayload bytes, so that each DATA frame it sends fills
// one TLS record.
//
// Why: the server turns each write of a handler into DATA frames of up to
// the peer's largest frame size, 16 KiB unless the client asks otherwise.
// With its 9-byte header such a frame is 16,393 bytes, which crypto/tls
// sends as a full record and a 9-byte one, two system calls where one
// would do; the upstream's body arrives in 16 KiB TLS records, so nearly
// every frame of a large answer was such a pair. Frames of 16,375 bytes
// halve the writes of a large download (docs/BENCHMARKS.md).
//
// A piece smaller than a frame is held until the next write fills it, the
// response is flushed (httputil.ReverseProxy flushes event streams and
// bodies of unknown length after every write) or the handler returns
// (finish). Go's server holds up to 4 KiB the same way; nginx holds up to
// its 16 KiB ssl_buffer_size.
type recordSizedFrames struct {
	http.ResponseWriter
	rc   http.ResponseController // of the ResponseWriter, held to save an allocation per flush
	held *[h2FramePayload]byte   // from h2FrameBuffers while a piece is held
	n    int                     // bytes of held in use
}

func newRecordSizedFrames(w http.ResponseWriter) *recordSizedFrames {
	return &recordSizedFrames{ResponseWriter: w, rc: *http.NewResponseController(w)}
}

func (w *recordSizedFrames) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.n == 0 && len(p) >= h2FramePayload {
			// A whole frame's worth passes without a copy.
			n, err := w.ResponseWriter.Write(p[:h2FramePayload])
			written += n
			if err != nil {
				return written, err
			}
			p = p[h2FramePayload:]
			continue
		}
		if w.held == nil {
			w.held = h2FrameBuffers.Get().(*[h2FramePayload]byte)
		}
		c := copy(w.held[w.n:], p)
		w.n += c
		p = p[c:]
		written += c
		if w.n == h2FramePayload {
			if err := w.writeHeld(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// writeHeld passes the held piece on and returns its buffer to the pool.
func (w *recordSizedFrames) writeHeld() error {
	if w.held == nil {
		return nil
	}
	var err error
	if w.n > 0 {
		_, err = w.ResponseWriter.Write(w.held[:w.n])
	}
	h2FrameBuffers.Put(w.held)
	w.held, w.n = nil, 0
	return err
}

// FlushError sends what is held and flushes the response.
func (w *recordSizedFrames) FlushError() error {
	if err := w.writeHeld(); err != nil {
		return err
	}
	return w.rc.Flush()
}

// finish passes on what is still held once the handler has returned. If the
// handler panicked (httputil.ReverseProxy aborts a response whose upstream
// failed mid-body), the held bytes are dropped with the response.
func (w *recordSizedFrames) finish(completed bool) {
	if completed {
		w.writeHeld()
		return
	}
	if w.held != nil {
		h2FrameBuffers.Put(w.held)
		w.held, w.n = nil, 0
	}
}

func (w *recordSizedFrames) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withRecordSizedFrames serves r through next, with its body sent in
// record-sized frames (recordSizedFrames) if r came over HTTP/2.
func withRecordSizedFrames(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if r.ProtoMajor != 2 {
		next.ServeHTTP(w, r)
		return
	}
	fw := newRecordSizedFrames(w)
	completed := false
	defer func() { fw.finish(completed) }()
	next.ServeHTTP(fw, r)
	completed = true
}
