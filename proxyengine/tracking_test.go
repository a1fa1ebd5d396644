package proxyengine

import (
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// TestStalledConnectionClosesAtOnce: once a write to a visitor who reads
// nothing has timed out, closing the TLS connection lets the socket go at
// once, rather than after crypto/tls's 5 s wait to send close_notify into
// a full socket.
func TestStalledConnectionClosesAtOnce(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	cert := srv.TLS.Certificates[0]
	srv.Close()

	near, far := loopbackPair(t)
	near.SetWriteBuffer(4096)
	far.SetReadBuffer(4096)
	tc := &trackedConn{Conn: near, t: newTracker()}
	server := tls.Server(tc, &tls.Config{Certificates: []tls.Certificate{cert}})
	client := tls.Client(far, &tls.Config{InsecureSkipVerify: true})
	handshook := make(chan error, 1)
	go func() { handshook <- client.Handshake() }()
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-handshook; err != nil {
		t.Fatal(err)
	}

	// The visitor reads nothing from here on.
	server.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	chunk := make([]byte, 16<<10)
	var err error
	for i := 0; i < 10_000 && err == nil; i++ {
		_, err = server.Write(chunk)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writing to a visitor that reads nothing: %v, want the deadline", err)
	}
	started := time.Now()
	server.Close()
	// crypto/tls would wait 5 s; half of that is a wide margin for a
	// close that should take microseconds.
	if took := time.Since(started); took > 2500*time.Millisecond {
		t.Errorf("closing the stalled connection took %v", took)
	}
}
