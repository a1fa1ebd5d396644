package testutil

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"time"
)

// GetVia fetches url over a new connection to addr, whatever url's host,
// trusting any certificate (the proxy under test serves a test name with a
// certificate made for the test), and returns the body.
func GetVia(addr, url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
