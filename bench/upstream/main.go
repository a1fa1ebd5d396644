// Command upstream is the benchmark suite's stand-in for authentik: an
// HTTPS server on loopback with a page, payloads of chosen sizes, the
// liveness endpoint and a WebSocket echo, so nginx, Caddy and Gatehouse can
// be measured in front of the same backend.
//
// At start it generates a self-signed ECDSA certificate for localhost,
// 127.0.0.1 and ::1, and writes it (cert.pem, key.pem) to -cert-dir, where the
// proxies under test load it too. Nothing it generates is meant to be kept.
//
//	upstream -addr 127.0.0.1:19443 -cert-dir /tmp/bench
//
// Routes:
//
//	/                  a small HTML page
//	/bytes/N           N bytes of application/octet-stream (N up to 16 MiB)
//	/-/health/live/    204, as authentik's liveness check
//	/ws/client/        WebSocket echo of every message
//	/-/bench/connections  how many connections it has accepted, so the suite
//	                   can count a proxy's upstream handshakes per request
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// maxPayload bounds /bytes/N so a typo cannot make the server allocate
// gigabytes.
const maxPayload = 16 << 20

const page = `<!DOCTYPE html>
<html><head><title>authentik stand-in</title></head>
<body><h1>Welcome</h1><p>The benchmark upstream answered.</p></body></html>
`

func main() {
	addr := flag.String("addr", "127.0.0.1:19443", "TLS listen address")
	certDir := flag.String("cert-dir", ".", "directory the generated cert.pem and key.pem are written to")
	flag.Parse()

	cert, err := writeSelfSigned(*certDir)
	if err != nil {
		log.Fatalf("upstream: %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("upstream: %v", err)
	}
	srv := newServer(cert)
	fmt.Printf("upstream listening on https://%s\n", ln.Addr())
	log.Fatal(srv.ServeTLS(ln, "", ""))
}

// newServer returns the HTTP/1.1 server with the routes, counting the
// connections it accepts for /-/bench/connections.
func newServer(cert tls.Certificate) *http.Server {
	var accepted atomic.Int64
	return &http.Server{
		Handler: newHandler(&accepted),
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				accepted.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		// HTTP/1.1 only, as authentik's proxies speak to it.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     log.New(os.Stderr, "upstream: ", 0),
	}
}

// newHandler returns the routes listed in the package comment; accepted
// counts the server's connections.
func newHandler(accepted *atomic.Int64) http.Handler {
	payload := make([]byte, maxPayload)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	upgrader := websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     func(*http.Request) bool { return true }, // load clients send no Origin
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	})
	mux.HandleFunc("/bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n > maxPayload {
			http.Error(w, fmt.Sprintf("size %q is not a number of bytes from 0 to %d", r.PathValue("n"), maxPayload), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(payload[:n])
	})
	mux.HandleFunc("/-/health/live/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/-/bench/connections", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, accepted.Load())
	})
	mux.HandleFunc("/ws/client/", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered the client already
		}
		defer conn.Close()
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	})
	return mux
}

// writeSelfSigned creates a fresh certificate and key for the loopback
// names, writes them as PEM to dir (the key 0600) and returns them.
func writeSelfSigned(dir string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating a serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("signing the certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("encoding the key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("creating %s: %w", dir, err)
	}
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return tls.Certificate{}, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}
