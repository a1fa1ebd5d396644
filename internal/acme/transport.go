package acme

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/progress"
	"golang.org/x/crypto/acme"
)

// maxACMEBody bounds how much of a CA response is held for inspection;
// ACME resources and certificate chains are a few kilobytes.
const maxACMEBody = 1 << 20

// acmeTransport sits between autocert's ACME client and the network. autocert
// has no hooks, so this is where Gatehouse sees an issuance happen:
//   - it admits requests that could begin an attempt only as the backoff
//     schedule allows, whoever makes them (Start, autocert's renewal timer),
//     and refuses all once the source is stopped;
//   - it turns requests into progress stages (account, order, challenge,
//     validating, issued) by matching URLs learnt from the directory,
//     orders and authorizations;
//   - it keeps the problems of rejected challenges, which autocert drops
//     when it moves on to the next challenge type.
type acmeTransport struct {
	base         http.RoundTripper
	directoryURL string
	host         string
	backoff      *acmeBackoff
	logger       *slog.Logger
	now          func() time.Time
	life         context.Context // requests are refused once it is done

	mu         sync.Mutex
	newNonce   string
	newAccount string
	newOrder   string
	challenges map[string]string // challenge URL -> challenge type
	finalize   map[string]bool
	certURLs   map[string]bool
	rejected   map[string]bool    // challenge URLs seen invalid, each reported once
	failed     []challengeFailure // rejected challenges since the attempt began
	orders     int                // new orders sent, over the transport's life
	// sent counts the requests let through to the CA, over the
	// transport's life: what the backoff did not hold back.
	sent     atomic.Int64
	progress func(progress.Stage, string)
}

func newACMETransport(base http.RoundTripper, directoryURL, host string, backoff *acmeBackoff, logger *slog.Logger, life context.Context) *acmeTransport {
	return &acmeTransport{
		base:         base,
		directoryURL: directoryURL,
		host:         host,
		backoff:      backoff,
		logger:       logger,
		now:          time.Now,
		life:         life,
		challenges:   map[string]string{},
		finalize:     map[string]bool{},
		certURLs:     map[string]bool{},
		rejected:     map[string]bool{},
	}
}

// acmeResource holds the fields of any ACME resource that matter here:
// a directory, an order or an authorization.
type acmeResource struct {
	NewNonce    string          `json:"newNonce"`
	NewAccount  string          `json:"newAccount"`
	NewOrder    string          `json:"newOrder"`
	Status      string          `json:"status"`
	Finalize    string          `json:"finalize"`
	Certificate string          `json:"certificate"`
	Challenges  []acmeChallenge `json:"challenges"`
}

type acmeChallenge struct {
	Type   string `json:"type"`
	URL    string `json:"url"`
	Status string `json:"status"`
	Error  *struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
		Status int    `json:"status"`
	} `json:"error"`
}

func (t *acmeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.life.Err(); err != nil {
		return nil, fmt.Errorf("the certificate source is stopped: %w", err)
	}
	url := req.URL.String()
	t.mu.Lock()
	// Only these can begin an attempt; the rest (authorizations,
	// challenges, finalization, cleanup) continue an order already admitted.
	gated := url == t.directoryURL || url == t.newNonce || url == t.newAccount || url == t.newOrder
	t.mu.Unlock()
	if gated {
		next, ok, err := t.backoff.admit(t.now())
		if err != nil {
			return nil, err
		}
		if !ok {
			t.logger.Info("not contacting the ACME CA yet: waiting after earlier failures", "next_attempt", next)
			return nil, &acmeBackoffError{Next: next}
		}
	}

	t.mu.Lock()
	if req.Method == http.MethodPost {
		switch {
		case url == t.newAccount:
			t.emitLocked(progress.ACMEAccount, "Registering with the ACME certificate authority")
		case url == t.newOrder:
			t.orders++
			t.emitLocked(progress.ACMEOrder, "Ordering a certificate")
		case t.challenges[url] != "":
			typ := t.challenges[url]
			t.emitLocked(progress.ACMEChallenge, fmt.Sprintf("Answering the %s challenge on %s", typ, challengePort(typ)))
		case t.finalize[url]:
			t.emitLocked(progress.ACMEValidating, "Name validated; the certificate authority is signing the certificate")
		}
	}
	t.mu.Unlock()

	t.sent.Add(1)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxACMEBody+1))
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if len(body) > maxACMEBody {
		// Not an ACME resource worth inspecting; pass it on whole.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	t.inspect(req, url, resp, body)
	return resp, nil
}

// inspect learns URLs from a response and notes progress and failures.
func (t *acmeTransport) inspect(req *http.Request, url string, resp *http.Response, body []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if req.Method == http.MethodPost && t.certURLs[url] && resp.StatusCode == http.StatusOK {
		t.failed = nil
		if err := t.backoff.succeed(t.now()); err != nil {
			t.logger.Error("recording the new certificate in the backoff state", "err", err)
		}
		return
	}
	contentType := resp.Header.Get("Content-Type")
	if strings.Contains(contentType, "problem+json") {
		var p struct{ Type, Detail string }
		if json.Unmarshal(body, &p) == nil && strings.HasSuffix(p.Type, ":rateLimited") {
			t.rateLimitedLocked(&acme.Error{StatusCode: resp.StatusCode, ProblemType: p.Type, Detail: p.Detail, Header: resp.Header})
		}
		return
	}
	var r acmeResource
	if !strings.Contains(contentType, "json") || json.Unmarshal(body, &r) != nil {
		return
	}
	if url == t.directoryURL && req.Method == http.MethodGet {
		t.newNonce, t.newAccount, t.newOrder = r.NewNonce, r.NewAccount, r.NewOrder
		return
	}
	if r.Finalize != "" {
		t.finalize[r.Finalize] = true
	}
	if r.Certificate != "" {
		t.certURLs[r.Certificate] = true
	}
	for _, c := range r.Challenges {
		if c.URL == "" {
			continue
		}
		t.challenges[c.URL] = c.Type
		// autocert polls a failed authorization again when it cleans up,
		// possibly after a later success: report each rejection once.
		if c.Status == acme.StatusInvalid && c.Error != nil && !t.rejected[c.URL] {
			t.rejected[c.URL] = true
			t.recordFailureLocked(c.Type, &acme.Error{StatusCode: c.Error.Status, ProblemType: c.Error.Type, Detail: c.Error.Detail})
		}
	}
	if t.challenges[url] != "" && req.Method == http.MethodPost && resp.StatusCode == http.StatusOK && r.Status != acme.StatusInvalid {
		t.emitLocked(progress.ACMEValidating, "Waiting for the certificate authority to check the answer")
	}
}

// recordFailureLocked keeps the latest rejection of each challenge type.
// Outside Start (a renewal) nobody receives the final error, so the
// explanation goes straight into the status.
func (t *acmeTransport) recordFailureLocked(typ string, p *acme.Error) {
	f := challengeFailure{Type: typ, Problem: p}
	replaced := false
	for i := range t.failed {
		if t.failed[i].Type == typ {
			t.failed[i], replaced = f, true
		}
	}
	if !replaced {
		t.failed = append(t.failed, f)
	}
	t.logger.Warn("the ACME CA rejected a challenge", "challenge", typ, "problem", p.ProblemType, "detail", p.Detail)
	if t.progress == nil {
		explained := explainChallengeFailures(t.failed, t.host, t.now(), nil)
		if err := t.backoff.setLastError(explained.Error()); err != nil {
			t.logger.Error("recording the renewal failure", "err", err)
		}
	}
}

// rateLimitedLocked keeps Gatehouse from asking again before the CA's
// rate limit lifts, whoever asked (Start or a renewal).
func (t *acmeTransport) rateLimitedLocked(p *acme.Error) {
	explained := explainProblem(p, nil, t.host, t.now(), p)
	t.logger.Warn("the ACME CA is rate limiting", "retry_at", explained.RetryAt, "detail", p.Detail)
	if !explained.RetryAt.IsZero() {
		if err := t.backoff.postpone(explained.RetryAt); err != nil {
			t.logger.Error("recording the rate limit", "err", err)
		}
	}
	if t.progress == nil {
		if err := t.backoff.setLastError(explained.Error()); err != nil {
			t.logger.Error("recording the rate limit", "err", err)
		}
	}
}

func (t *acmeTransport) emitLocked(stage progress.Stage, msg string) {
	if t.progress != nil {
		t.progress(stage, msg)
	} else {
		t.logger.Info(msg, "stage", string(stage))
	}
}

// beginReporting sends progress to report until the returned func is called
// and clears the challenge failures of earlier attempts.
func (t *acmeTransport) beginReporting(report func(progress.Stage, string)) (end func() []challengeFailure) {
	t.mu.Lock()
	t.progress = report
	t.failed = nil
	t.mu.Unlock()
	return func() []challengeFailure {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.progress = nil
		return append([]challengeFailure(nil), t.failed...)
	}
}

// orderCount is how many new orders were sent.
func (t *acmeTransport) orderCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.orders
}
