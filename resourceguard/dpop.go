package resourceguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/dpop"
)

// DPoP at the guard (RFC 9449 §7; requirement 25). With DPoP on, the guard
// accepts "Authorization: DPoP <token>" with one DPoP proof header: the
// proof (internal/dpop) is for this request's method and URL (the configured
// resource origin and the request path, never the Host header), its ath is
// the token's hash, its key is the token's cnf.jkt, and its jti is used once
// (ProofReplays, shared like the revocation state). A token with cnf is
// refused as a bearer token whether DPoP is on or not. Refusals challenge
// with both schemes: Bearer (as before) and DPoP algs="…". The
// verified-token cache holds the token; the proof is verified on every
// request.

// DPoPConfig turns DPoP on at the guard.
type DPoPConfig struct {
	// Required refuses tokens that are not DPoP-bound (require_dpop), and
	// publishes dpop_bound_access_tokens_required in the PRM.
	Required bool
	// Algorithms are the proof algorithms accepted (default dpop.Algs).
	Algorithms []string
	// MaxAge bounds a proof's age (default 5 min).
	MaxAge time.Duration
	// Replays records proof jtis. Default: an in-memory record of this
	// process. Give it the shared store when several instances serve.
	Replays ProofReplays
}

// ProofReplays records the jtis of DPoP proofs.
type ProofReplays interface {
	// FirstUse records key until the given time and reports whether it
	// was not recorded already (false: a replay). An error means
	// "unknown": the request is refused with 503.
	FirstUse(ctx context.Context, key []byte, until, now time.Time) (bool, error)
}

// ProofReplaysFunc adapts a function to ProofReplays.
type ProofReplaysFunc func(ctx context.Context, key []byte, until, now time.Time) (bool, error)

// FirstUse implements ProofReplays.
func (f ProofReplaysFunc) FirstUse(ctx context.Context, key []byte, until, now time.Time) (bool, error) {
	return f(ctx, key, until, now)
}

type dpopGuard struct {
	required bool
	algs     []string
	algsText string
	maxAge   time.Duration
	replays  ProofReplays
	origin   string // scheme://host of the resource
}

func newDPoPGuard(c *DPoPConfig, res *url.URL) (*dpopGuard, error) {
	if c == nil {
		return nil, nil
	}
	d := &dpopGuard{required: c.Required, algs: c.Algorithms, maxAge: c.MaxAge, replays: c.Replays,
		origin: res.Scheme + "://" + res.Host}
	if len(d.algs) == 0 {
		d.algs = slices.Clone(dpop.Algs)
	}
	for _, a := range d.algs {
		if !slices.Contains(dpop.Algs, a) {
			return nil, fmt.Errorf("resourceguard: DPoP algorithm %q is not accepted (asymmetric algorithms only: %v)", a, dpop.Algs)
		}
	}
	if d.maxAge < 0 || d.maxAge > 10*time.Minute {
		return nil, errors.New("resourceguard: DPoP max age out of range (0, 10m]")
	}
	if d.replays == nil {
		d.replays = NewMemoryReplays(0)
	}
	d.algsText = dpop.AlgsValue(d.algs)
	return d, nil
}

// presented is how the request presented its token.
type presented struct {
	token string
	dpop  bool   // the DPoP scheme
	proof string // the DPoP header (DPoP scheme only)
	// unchecked: the token's characters are not checked yet (Bearer:
	// verified checks them on a cache miss).
	unchecked bool
}

// accessToken reads the token: "Bearer <token>", or with DPoP on
// "DPoP <token>" with exactly one DPoP header.
func (g *Guard) accessToken(r *http.Request) (presented, *Challenge) {
	if g.dpop != nil {
		if values := r.Header["Authorization"]; len(values) == 1 {
			if tok, kind := parseScheme(values[0], "dpop"); kind != BearerOtherScheme {
				if kind != BearerOK {
					return presented{}, dpopChallenge(invalidToken("malformed DPoP token"))
				}
				proofs := r.Header.Values("DPoP")
				if len(proofs) != 1 {
					return presented{}, invalidProof("exactly one DPoP proof header is required")
				}
				return presented{token: tok, dpop: true, proof: proofs[0]}, nil
			}
		}
	}
	tok, c := g.bearerToken(r)
	return presented{token: tok, unchecked: true}, c
}

// checkProof checks the binding of a verified token to the request (no
// state is changed; recordProof records the jti once everything holds).
func (g *Guard) checkProof(r *http.Request, pr presented, v *verifiedToken) (*dpop.Proof, *Challenge) {
	if !pr.dpop {
		if v.bound {
			g.log.Debug("resourceguard: DPoP-bound token presented as bearer", "client_id", v.p.ClientID)
			return nil, invalidToken("the token is DPoP-bound: present it with the DPoP scheme and a proof")
		}
		if g.dpop != nil && g.dpop.required {
			return nil, dpopChallenge(invalidToken("this resource requires a DPoP-bound token"))
		}
		return nil, nil
	}
	if !v.bound {
		return nil, dpopChallenge(invalidToken("the token is not DPoP-bound"))
	}
	p, err := dpop.Verify(pr.proof, dpop.Policy{
		Method:      r.Method,
		URL:         g.dpop.origin + requestPath(r),
		AccessToken: pr.token,
		Algs:        g.dpop.algs,
		MaxAge:      g.dpop.maxAge,
		Skew:        g.leeway,
		Now:         g.now(),
	})
	var pe *dpop.Error
	if errors.As(err, &pe) {
		g.log.Debug("resourceguard: DPoP proof refused", "reason", pe.Reason, "client_id", v.p.ClientID)
		return nil, invalidProof(pe.Reason)
	}
	if err != nil {
		return nil, invalidProof("the DPoP proof was refused")
	}
	if p.JKT != v.jkt {
		g.log.Debug("resourceguard: DPoP proof key is not the token's", "client_id", v.p.ClientID)
		return nil, invalidProof("the proof is not signed with the token's key")
	}
	return p, nil
}

// recordProof uses the proof's jti once.
func (g *Guard) recordProof(ctx context.Context, p *dpop.Proof) *Challenge {
	if p == nil {
		return nil
	}
	fresh, err := g.dpop.replays.FirstUse(ctx, dpop.ReplayKey(p.JKT, p.JTI), p.Until, g.now())
	if err != nil {
		g.log.Error("resourceguard: DPoP replay record failed", "error", err)
		return unavailable("authorization state is temporarily unavailable")
	}
	if !fresh {
		g.log.Warn("resourceguard: DPoP proof replayed")
		return invalidProof("the DPoP proof was used before")
	}
	return nil
}

// requestPath is the path of the request as the client sent it (before any
// rewrite), without its query.
func requestPath(r *http.Request) string {
	p := r.RequestURI
	if p == "" {
		p = r.URL.RequestURI()
	}
	if !strings.HasPrefix(p, "/") {
		if u, err := url.Parse(p); err == nil {
			p = u.EscapedPath()
		}
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		p = "/"
	}
	return p
}

// ErrorInvalidDPoPProof is the error code of a refused proof (RFC 9449 §7.1).
const ErrorInvalidDPoPProof = "invalid_dpop_proof"

func invalidProof(desc string) *Challenge {
	return &Challenge{Status: http.StatusUnauthorized, Error: ErrorInvalidDPoPProof, Description: desc,
		outcome: OutcomeInvalidToken, viaDPoP: true}
}

// dpopChallenge marks c as answering the DPoP scheme: its error goes on the
// DPoP challenge.
func dpopChallenge(c *Challenge) *Challenge {
	c.viaDPoP = true
	return c
}

// cnfJKT reads cnf.jkt (RFC 9449 §6.1). A cnf without jkt names a
// confirmation method this guard cannot check (mTLS x5t#S256, …): not ok,
// so that a bound token is never taken as a bearer token.
func cnfJKT(m map[string]json.RawMessage) (string, bool) {
	raw, ok := m["cnf"]
	if !ok {
		return "", true
	}
	var cnf map[string]json.RawMessage
	if json.Unmarshal(raw, &cnf) != nil {
		return "", false
	}
	var jkt string
	if json.Unmarshal(cnf["jkt"], &jkt) != nil || jkt == "" || len(jkt) > 128 {
		return "", false
	}
	return jkt, true
}

// setChallenges sets WWW-Authenticate with DPoP on: the Bearer challenge
// and the DPoP one (RFC 9449 §7.1); the error goes on the challenge of the
// scheme the request used.
func (g *Guard) setChallenges(h http.Header, c *Challenge) {
	bearer, dp := c, &Challenge{Status: c.Status, Scopes: c.Scopes}
	if c.viaDPoP {
		bearer, dp = dp, c
	}
	h.Set("WWW-Authenticate", g.ChallengeHeader(bearer))
	v := "DPoP" + strings.TrimPrefix(dp.Header(g.metadataURL), "Bearer")
	if v == "DPoP" {
		v += " "
	} else {
		v += ", "
	}
	h.Add("WWW-Authenticate", v+`algs="`+g.dpop.algsText+`"`)
}

// MemoryReplays is a ProofReplays of one process.
type MemoryReplays struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	max   int
	sweep int // sweep expired entries when the record reaches this size
}

// NewMemoryReplays returns an in-memory ProofReplays holding at most max
// live entries (default 1,000,000; beyond that FirstUse fails: 503).
func NewMemoryReplays(max int) *MemoryReplays {
	if max <= 0 {
		max = 1_000_000
	}
	return &MemoryReplays{seen: map[string]time.Time{}, max: max}
}

// FirstUse implements ProofReplays.
func (m *MemoryReplays) FirstUse(_ context.Context, key []byte, until, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := string(key)
	if t, ok := m.seen[k]; ok && now.Before(t) {
		return false, nil
	}
	if len(m.seen) >= min(m.sweep, m.max) {
		for k, t := range m.seen {
			if !now.Before(t) {
				delete(m.seen, k)
			}
		}
		m.sweep = max(2*len(m.seen), 1024)
		if len(m.seen) >= m.max {
			return false, errors.New("resourceguard: DPoP replay record is full")
		}
	}
	m.seen[k] = until
	return true, nil
}
