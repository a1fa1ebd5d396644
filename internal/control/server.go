// Package control is the API of a running Gatehouse service: HTTP and
// JSON over a Unix socket, for the desktop app and the `gatehouse status`
// and `gatehouse reload` commands. Only the socket reaches it, so nothing
// on the network can change anything; the socket file's mode and the
// peer's credentials (SO_PEERCRED) decide who may.
//
//	GET  /v1/status          the status snapshot; ?rows=N lists at most N connections and
//	                         WebSockets, ?site=H only those of site H
//	GET  /v1/updates         a stream of totals (JSON lines), at most four a second
//	GET  /v1/config          the configuration served, as saved
//	GET  /v1/certificate     the certificate's state
//	POST /v1/apply           a configuration: validated, applied live, saved
//	POST /v1/reload          re-read the config file and apply it
//	POST /v1/pause           stop serving, the process stays
//	POST /v1/resume          serve again
//
// Errors are JSON: {"error": "...", "fields": [{"field": ..., "message": ...}]}
// with 422 for settings that fail validation.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// A Controller is what the API controls: a supervisor.Supervisor.
type Controller interface {
	Snapshot(v proxyengine.View) proxyengine.Status
	Subscribe() (updates <-chan struct{}, cancel func())
	Config() config.Config
	Apply(ctx context.Context, cfg config.Config) error
	Reload(ctx context.Context) error
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
}

const (
	// maxConfigBytes bounds an apply request's body: a config is a few KiB.
	maxConfigBytes = 1 << 20
	// updateInterval is the fastest pace of the updates stream.
	updateInterval = 250 * time.Millisecond
	// applyTimeout bounds an apply, reload or resume, which may obtain a
	// certificate from an ACME CA.
	applyTimeout = 5 * time.Minute
)

// A Server serves the API on a Unix socket.
type Server struct {
	// Controller is what the API controls. Required.
	Controller Controller
	// Group, if set, is the group whose members may use the API besides
	// the service's own user and root: the system service's "gatehouse",
	// which desktop users join (see peerPolicy for how). Default: mode
	// 0600, this user only.
	Group string
	// Logger receives refused peers and failed requests. Default:
	// slog.Default().
	Logger *slog.Logger

	mu     sync.Mutex
	srv    *http.Server
	closed bool
}

// Listen creates the socket at path (and its directory, mode 0700, or 0755
// with Group, when missing), replacing a stale socket that nothing answers
// on, and returns a listener that admits only allowed peers.
func (s *Server) Listen(path string) (net.Listener, error) {
	dirMode := os.FileMode(0o700)
	if s.Group != "" {
		dirMode = 0o755
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	allow, err := s.peerPolicy(path)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return newPeerListener(ln, allow, s.logger()), nil
}

// removeStale removes a socket file left by a process that ended without
// cleaning up, and refuses to start beside a service that still answers.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket %s exists and is not a socket; move it away", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another Gatehouse service already answers on %s; stop it first (or give this one --control-socket off)", path)
	}
	return os.Remove(path)
}

// Serve answers API requests from ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/updates", s.updates)
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Controller.Config()) })
	mux.HandleFunc("GET /v1/certificate", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Controller.Snapshot(proxyengine.View{}).Certificate)
	})
	mux.HandleFunc("POST /v1/apply", s.apply)
	mux.HandleFunc("POST /v1/reload", s.action(s.Controller.Reload))
	mux.HandleFunc("POST /v1/pause", s.action(s.Controller.Pause))
	mux.HandleFunc("POST /v1/resume", s.action(s.Controller.Resume))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.srv = srv
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving; update streams end at once. Changes under way
// finish first (Serve's caller waits for the proxy's shutdown anyway).
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	view := proxyengine.View{Rows: proxyengine.AllRows, Site: q.Get("site")}
	if v := q.Get("rows"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("rows=%q is not a count", v))
			return
		}
		view.Rows = n
	}
	writeJSON(w, s.Controller.Snapshot(view))
}

// Totals is what the updates stream sends: the status without its lists
// (connections, WebSockets, history, events), which a dashboard fetches
// from /v1/status for the rows it shows.
func Totals(st proxyengine.Status) proxyengine.Status {
	st.Connections, st.WebSockets, st.History, st.Events = nil, nil, nil, nil
	return st
}

func (s *Server) updates(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming is not supported"))
		return
	}
	changes, cancel := s.Controller.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	tick := time.NewTicker(updateInterval)
	defer tick.Stop()
	pending := true // the first line goes out at once
	for {
		if pending {
			if err := enc.Encode(Totals(s.Controller.Snapshot(proxyengine.View{}))); err != nil {
				return
			}
			flusher.Flush()
			pending = false
		}
		select {
		case <-r.Context().Done():
			return
		case <-changes:
			// Wait for the tick: several changes make one line.
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
			pending = true
		}
	}
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	var cfg config.Config
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxConfigBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(&cfg)
	if err == nil {
		if _, next := dec.Token(); next != io.EOF {
			err = errors.New("more follows the config")
		}
	}
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("the settings are over %d bytes; a config is a few KiB", maxConfigBytes))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("the settings are not a config: %w", err))
		return
	}
	s.run(w, r, func(ctx context.Context) error { return s.Controller.Apply(ctx, cfg) })
}

func (s *Server) action(f func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.run(w, r, f) }
}

// run runs a change and answers 204, or the error. The change runs to its
// end even if the client goes: a half-applied change is worse than a late
// answer.
func (s *Server) run(w http.ResponseWriter, r *http.Request, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), applyTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		status := http.StatusInternalServerError
		if config.FieldErrors(err) != nil {
			status = http.StatusUnprocessableEntity
		}
		s.logger().Warn("control request refused", "path", r.URL.Path, "err", err)
		writeError(w, status, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// errorBody is an error on the wire.
type errorBody struct {
	Error  string       `json:"error"`
	Fields []fieldError `json:"fields,omitempty"`
}

type fieldError struct {
	Field   config.Field `json:"field"`
	Message string       `json:"message"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	body := errorBody{Error: err.Error()}
	for _, fe := range config.FieldErrors(err) {
		body.Fields = append(body.Fields, fieldError{fe.Field, fe.Message})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
