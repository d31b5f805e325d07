package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/dpop"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// DPoP at the token endpoint (RFC 9449; requirement 25). When configured,
// a /token request may carry one DPoP proof for POST and the token
// endpoint's URL; the proof is verified (internal/dpop), its jti is used
// once through the store (so across every instance sharing it), and the
// tokens minted for that request are bound to the proof's key: the access
// token carries cnf.jkt and token_type is DPoP, and the refresh token of a
// public client is bound too (a refresh must then prove the same key).

// TokenTypeDPoP is the token_type of a DPoP-bound access token (RFC 9449 §5).
const TokenTypeDPoP = "DPoP"

// DPoPConfig turns DPoP on at the token endpoint.
type DPoPConfig struct {
	// Algorithms are the proof algorithms accepted and advertised
	// (dpop_signing_alg_values_supported); default dpop.Algs. Asymmetric
	// only.
	Algorithms []string
	// Nonce makes every proof carry a server nonce (RFC 9449 §8): a proof
	// without a fresh one is answered use_dpop_nonce with a DPoP-Nonce.
	Nonce bool
	// NonceKey keys the stateless nonces; nil: a random key per process
	// (a nonce is then good only on the instance that issued it; give
	// every instance the same key to share them).
	NonceKey []byte
	// MaxAge bounds a proof's age (default dpop.DefaultMaxAge).
	MaxAge time.Duration
}

// dpopState is the server's DPoP setup (nil when off).
type dpopState struct {
	algs   []string
	nonces *dpop.Nonces // nil without nonces
	maxAge time.Duration
}

// DPoPAlgs are the algorithms the server accepts in DPoP proofs (nil when
// DPoP is off).
func (s *Server) DPoPAlgs() []string {
	if s.dpop == nil {
		return nil
	}
	return slices.Clone(s.dpop.algs)
}

// initDPoP validates cfg.DPoP and advertises it in the metadata.
func (s *Server) initDPoP() error {
	c := s.cfg.DPoP
	if c == nil {
		return nil
	}
	st := &dpopState{algs: c.Algorithms, maxAge: c.MaxAge}
	if len(st.algs) == 0 {
		st.algs = slices.Clone(dpop.Algs)
	}
	for _, a := range st.algs {
		if !slices.Contains(dpop.Algs, a) {
			return fmt.Errorf("authserver: dpop: algorithm %q is not accepted (asymmetric algorithms only: %v)", a, dpop.Algs)
		}
	}
	if st.maxAge < 0 || st.maxAge > 10*time.Minute {
		return errors.New("authserver: dpop: max age out of range (0, 10m]")
	}
	if c.Nonce {
		n, err := dpop.NewNonces(c.NonceKey, 0)
		if err != nil {
			return err
		}
		st.nonces = n
	}
	s.dpop = st
	s.metadata["dpop_signing_alg_values_supported"] = slices.Clone(st.algs)
	return nil
}

type dpopKey struct{}

// dpopJKT is the thumbprint of the verified proof of this /token request
// ("" without one).
func dpopJKT(ctx context.Context) string {
	v, _ := ctx.Value(dpopKey{}).(string)
	return v
}

// checkDPoP verifies the request's DPoP proof, if any, and returns the
// request with the proof's key thumbprint in its context. With DPoP off the
// header is ignored (RFC 9449 §5: the token is then a bearer token).
func (s *Server) checkDPoP(w http.ResponseWriter, r *http.Request) (*http.Request, *oauth.Error) {
	if s.dpop == nil {
		return r, nil
	}
	now := s.cfg.Now()
	if s.dpop.nonces != nil {
		// A fresh nonce on every answer, so that a client never needs a
		// failed round trip once it has one.
		w.Header().Set("DPoP-Nonce", s.dpop.nonces.Issue(now))
	}
	proofs := r.Header.Values("DPoP")
	switch len(proofs) {
	case 0:
		return r, nil
	case 1:
	default:
		return r, oauth.ErrInvalidDPoPProof("more than one DPoP header").Because(oauth.ReasonDPoPProofInvalid)
	}
	pol := dpop.Policy{Method: http.MethodPost, URL: s.endpoint(pathToken), Algs: s.dpop.algs, MaxAge: s.dpop.maxAge, Now: now}
	if n := s.dpop.nonces; n != nil {
		pol.Nonce = func(v string) bool { return n.Valid(v, now) }
	}
	p, err := dpop.Verify(proofs[0], pol)
	var pe *dpop.Error
	switch {
	case errors.Is(err, dpop.ErrNonce):
		return r, oauth.ErrUseDPoPNonce("the DPoP proof must carry the server's nonce (DPoP-Nonce)").Because(oauth.ReasonDPoPNonceRequired)
	case errors.As(err, &pe):
		return r, oauth.ErrInvalidDPoPProof("DPoP proof refused: " + pe.Reason).Because(oauth.ReasonDPoPProofInvalid)
	case err != nil:
		return r, oauth.ErrServerError()
	}
	err = s.store.UseOnce(r.Context(), dpop.ReplayKey(p.JKT, p.JTI), p.Until, now)
	if errors.Is(err, storage.ErrReplayed) {
		return r, oauth.ErrInvalidDPoPProof("DPoP proof refused: replayed").Because(oauth.ReasonDPoPProofInvalid)
	}
	if err != nil {
		return r, s.storageError("record DPoP proof", err)
	}
	return r.WithContext(context.WithValue(r.Context(), dpopKey{}, p.JKT)), nil
}

// refreshBinding is the key a new grant's refresh tokens are bound to: the
// proof's, for a public client (RFC 9449 §5: a confidential client's refresh
// tokens are bound to its authentication already).
func refreshBinding(ctx context.Context, client storage.Client) string {
	if client.TokenEndpointAuthMethod != "none" {
		return ""
	}
	return dpopJKT(ctx)
}

// checkRefreshBinding refuses the refresh of a bound grant without a proof
// of the same key.
func checkRefreshBinding(ctx context.Context, g storage.Grant) *oauth.Error {
	if g.DPoPJKT == "" || g.DPoPJKT == dpopJKT(ctx) {
		return nil
	}
	return oauth.ErrInvalidGrant("the refresh token is bound to a DPoP key: send a DPoP proof signed with it").Because(oauth.ReasonDPoPKeyMismatch)
}
