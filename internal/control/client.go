package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/internal/certs"
	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// SystemSocket is the system service's socket (its unit gives the path).
const SystemSocket = "/run/gatehouse/control.sock"

// DefaultSocket is where `gatehouse serve` listens unless told otherwise:
// the user's runtime directory ($XDG_RUNTIME_DIR/gatehouse/control.sock)
// when there is one and this is not root, else the system service's path.
func DefaultSocket() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" && os.Geteuid() != 0 {
		return filepath.Join(dir, "gatehouse", "control.sock")
	}
	return SystemSocket
}

// Candidates are the sockets a client tries when none is named: this
// user's service first, then the system service.
func Candidates() []string {
	if own := DefaultSocket(); own != SystemSocket {
		return []string{own, SystemSocket}
	}
	return []string{SystemSocket}
}

// ErrNoService means no service answers on the socket.
var ErrNoService = errors.New("no Gatehouse service is running")

// A Client talks to a service's control socket.
type Client struct {
	// Socket is the path of the control socket.
	Socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}}}
}

// Find returns a client for the first candidate socket a service answers
// on, or ErrNoService.
func Find(ctx context.Context, candidates ...string) (*Client, error) {
	for _, path := range candidates {
		c := NewClient(path)
		if _, err := c.Config(ctx); err == nil {
			return c, nil
		} else if !errors.Is(err, ErrNoService) {
			return nil, err
		}
	}
	return nil, ErrNoService
}

// Status is the service's status listing the connections and WebSockets
// v chooses.
func (c *Client) Status(ctx context.Context, v proxyengine.View) (proxyengine.Status, error) {
	var st proxyengine.Status
	q := url.Values{}
	if v.Rows >= 0 {
		q.Set("rows", strconv.Itoa(v.Rows))
	}
	if v.Site != "" {
		q.Set("site", v.Site)
	}
	path := "/v1/status"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return st, c.get(ctx, path, &st)
}

// Config is the configuration the service serves, as saved.
func (c *Client) Config(ctx context.Context) (config.Config, error) {
	var cfg config.Config
	return cfg, c.get(ctx, "/v1/config", &cfg)
}

// Certificate is the state of the certificate served.
func (c *Client) Certificate(ctx context.Context) (certs.Status, error) {
	var st certs.Status
	return st, c.get(ctx, "/v1/certificate", &st)
}

// Apply sends cfg to be validated, applied and saved. Settings that fail
// validation come back as a config.ValidationErrors.
func (c *Client) Apply(ctx context.Context, cfg config.Config) error {
	body, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return c.post(ctx, "/v1/apply", body)
}

// Reload has the service read its config file again.
func (c *Client) Reload(ctx context.Context) error { return c.post(ctx, "/v1/reload", nil) }

// Pause stops serving; the service's process stays.
func (c *Client) Pause(ctx context.Context) error { return c.post(ctx, "/v1/pause", nil) }

// Resume serves again.
func (c *Client) Resume(ctx context.Context) error { return c.post(ctx, "/v1/resume", nil) }

// Updates streams the service's totals (a status without its lists) as
// they change, until ctx is done or the service goes; then the channel
// closes.
func (c *Client) Updates(ctx context.Context) (<-chan proxyengine.Status, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/updates", nil)
	if err != nil {
		return nil, err
	}
	out := make(chan proxyengine.Status)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var st proxyengine.Status
			if json.Unmarshal(sc.Bytes(), &st) != nil {
				return
			}
			select {
			case out <- st:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (c *Client) get(ctx context.Context, path string, into any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("reading the service's answer to %s: %w", path, err)
	}
	return nil
}

func (c *Client) post(ctx context.Context, path string, body []byte) error {
	resp, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// do sends a request and returns a 2xx answer; anything else becomes the
// service's error (field errors as config.ValidationErrors), and a socket
// nobody answers on ErrNoService.
func (c *Client) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://gatehouse"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (nothing answers on %s)", ErrNoService, c.Socket)
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			// The socket's mode turned this user away.
			return nil, fmt.Errorf("%s: %s", c.Socket, errNotAllowed)
		}
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb errorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
		return nil, fmt.Errorf("the service answered %s", resp.Status)
	}
	if len(eb.Fields) > 0 {
		var errs config.ValidationErrors
		for _, f := range eb.Fields {
			errs = append(errs, &config.FieldError{Field: f.Field, Message: f.Message})
		}
		return nil, errs
	}
	return nil, errors.New(eb.Error)
}
