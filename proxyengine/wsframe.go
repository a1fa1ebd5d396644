package proxyengine

import (
	"encoding/binary"
	"sync/atomic"
)

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	wsOpContinuation = 0x0
	wsOpClose        = 0x8
)

// wsFrameScanner follows the frame structure of one direction of a
// WebSocket byte stream without buffering it. The proxy copies bytes
// untouched; the scanner only watches, so it can count messages, read the
// close code and tell whether the stream sits between frames, where a close
// frame of the proxy's own may be inserted.
type wsFrameScanner struct {
	hdr    [14]byte
	hdrLen int    // header bytes gathered so far
	need   int    // header length once known from the first two bytes
	left   uint64 // payload bytes of the current frame not yet seen

	opcode  byte
	fin     bool
	masked  bool
	mask    [4]byte
	payOff  uint64 // payload bytes already seen, for unmasking
	closeP  []byte // payload of a close frame, at most 125 bytes
	inClose bool

	messages  atomic.Uint64 // complete data messages; read by Status while the pump runs
	closeSeen bool
	closeCode int    // 1005 (no code) when the close frame had no payload
	closeText string // reason of the close frame
}

// atBoundary reports whether the bytes seen so far end on a frame boundary.
func (s *wsFrameScanner) atBoundary() bool { return s.hdrLen == 0 && s.left == 0 }

// scan follows p, the next bytes of the stream.
func (s *wsFrameScanner) scan(p []byte) {
	for len(p) > 0 {
		if s.left == 0 {
			p = s.scanHeader(p)
			continue
		}
		n := min(uint64(len(p)), s.left)
		if s.inClose {
			// Control frames carry at most 125 bytes; a longer one is the
			// peers' protocol error, not the scanner's to buffer.
			for _, b := range p[:min(n, uint64(125-len(s.closeP)))] {
				if s.masked {
					b ^= s.mask[s.payOff%4]
				}
				s.closeP = append(s.closeP, b)
				s.payOff++
			}
		}
		s.left -= n
		p = p[n:]
		if s.left == 0 {
			s.endFrame()
		}
	}
}

// scanHeader gathers header bytes from p and returns the rest of p.
func (s *wsFrameScanner) scanHeader(p []byte) []byte {
	for len(p) > 0 {
		s.hdr[s.hdrLen] = p[0]
		s.hdrLen++
		p = p[1:]
		if s.hdrLen == 2 {
			s.need = 2
			switch s.hdr[1] & 0x7f {
			case 126:
				s.need += 2
			case 127:
				s.need += 8
			}
			if s.hdr[1]&0x80 != 0 {
				s.need += 4
			}
		}
		if s.hdrLen >= 2 && s.hdrLen == s.need {
			s.startFrame()
			return p
		}
	}
	return p
}

func (s *wsFrameScanner) startFrame() {
	s.fin = s.hdr[0]&0x80 != 0
	s.opcode = s.hdr[0] & 0x0f
	s.masked = s.hdr[1]&0x80 != 0
	off := 2
	switch l := s.hdr[1] & 0x7f; l {
	case 126:
		s.left = uint64(binary.BigEndian.Uint16(s.hdr[2:4]))
		off = 4
	case 127:
		s.left = binary.BigEndian.Uint64(s.hdr[2:10])
		off = 10
	default:
		s.left = uint64(l)
	}
	if s.masked {
		copy(s.mask[:], s.hdr[off:off+4])
	}
	s.hdrLen, s.need, s.payOff = 0, 0, 0
	s.inClose = s.opcode == wsOpClose
	s.closeP = s.closeP[:0]
	if s.left == 0 {
		s.endFrame()
	}
}

func (s *wsFrameScanner) endFrame() {
	switch {
	case s.inClose:
		s.closeSeen = true
		s.closeCode, s.closeText = 1005, ""
		if len(s.closeP) >= 2 {
			s.closeCode = int(binary.BigEndian.Uint16(s.closeP))
			s.closeText = string(s.closeP[2:])
		}
		s.inClose = false
	case s.fin && s.opcode < wsOpClose:
		// A data frame with FIN ends a message, whether it is the first
		// frame (text, binary) or a continuation.
		s.messages.Add(1)
	}
}
