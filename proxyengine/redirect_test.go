package proxyengine

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRedirectKeepsPathAndQueryByteForByte(t *testing.T) {
	for _, tc := range []struct {
		port   int
		target string
		want   string
	}{
		{443, "/", "https://sso.example.com/"},
		{443, "/if/flow/x/?next=%2F%61&q=a+b%20c#", "https://sso.example.com/if/flow/x/?next=%2F%61&q=a+b%20c#"},
		{8443, "/a%2Fb/?x=%E2%9C%93", "https://sso.example.com:8443/a%2Fb/?x=%E2%9C%93"},
		{443, "http://evil.example/steal?x=1", "https://sso.example.com/steal?x=1"},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		r.Host = "evil.example"
		w := httptest.NewRecorder()
		redirectHandler("sso.example.com", tc.port).ServeHTTP(w, r)
		if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != tc.want {
			t.Errorf("%s (port %d): %d Location %q, want 301 %q", tc.target, tc.port, w.Code, w.Header().Get("Location"), tc.want)
		}
	}
}

// TestRedirectOnRealListener sends raw request lines, as a browser would,
// so nothing in a client library normalises the target first.
func TestRedirectOnRealListener(t *testing.T) {
	cfg := testConfig(t, newEchoUpstream(t))
	cfg.PublicHTTPSPort = 8443
	e := startEngine(t, cfg)
	conn, err := net.Dial("tcp", e.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for _, target := range []string{"/application/o/authorize/?client_id=a%20b&redirect_uri=https%3A%2F%2Fx", "/%7Euser/./x"} {
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", target, testHostname)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "https://" + testHostname + ":8443" + target
		if resp.StatusCode != 301 || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d %q, want 301 %q", target, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}
