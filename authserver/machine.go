package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Agents without a browser (requirement 23): the client credentials grant
// for confidential clients, and workload identity federation, where a
// signed workload token (a Kubernetes service-account token, a GitHub
// Actions OIDC token, a SPIFFE JWT-SVID) from an issuer the operator trusts
// is the client assertion, so that an agent in CI or a cluster holds no
// stored secret.

// Workload token limits.
const (
	// DefaultWorkloadMaxLifetime bounds exp - now of a workload token
	// (Kubernetes projects tokens for an hour by default).
	DefaultWorkloadMaxLifetime = time.Hour
	// MaxWorkloadMaxLifetime is the largest max lifetime an operator may set.
	MaxWorkloadMaxLifetime = 24 * time.Hour
)

// WorkloadIssuer trusts the signed workload tokens of one issuer as client
// assertions.
type WorkloadIssuer struct {
	// Name identifies the issuer in logs and audit records.
	Name string
	// Issuer is the exact "iss"; its keys are discovered from its
	// OpenID configuration unless JWKSURI is set.
	Issuer  string
	JWKSURI string
	// Audience the token's "aud" must contain (default: our issuer).
	Audience string
	// SubjectClaim names the claim that identifies the workload (default
	// "sub"; a string claim).
	SubjectClaim string
	// Clients maps a workload subject to the owned client it
	// authenticates. Such a client has neither secret nor keys and
	// authenticates only with a workload token.
	Clients map[string]string
	// MaxLifetime bounds how far ahead exp may be (default 1h, at most 24h).
	MaxLifetime time.Duration
	// SingleUse records each token's jti and refuses a second use. Off by
	// default: a workload token is a credential its platform reuses until it
	// rotates it (a Kubernetes token for its hour), bound to our audience.
	SingleUse bool
}

// validateWorkloadIssuers checks and normalizes cfg.WorkloadIssuers.
func validateWorkloadIssuers(ws []WorkloadIssuer, issuer string) error {
	seen := map[string]bool{}
	for i := range ws {
		w := &ws[i]
		if w.Name == "" {
			return errors.New("authserver: config: a workload issuer needs a name")
		}
		if err := ValidateIssuerURL(w.Issuer); err != nil {
			return fmt.Errorf("authserver: config: workload issuer %q: issuer: %w", w.Name, err)
		}
		if w.JWKSURI != "" {
			if err := checkIssuerURL(w.JWKSURI); err != nil {
				return fmt.Errorf("authserver: config: workload issuer %q: jwks_uri: %w", w.Name, err)
			}
		}
		if seen[w.Issuer] || w.Issuer == issuer {
			return fmt.Errorf("authserver: config: issuer %q is trusted twice", w.Issuer)
		}
		seen[w.Issuer] = true
		if w.Audience == "" {
			w.Audience = issuer
		}
		if w.SubjectClaim == "" {
			w.SubjectClaim = "sub"
		}
		switch {
		case w.MaxLifetime == 0:
			w.MaxLifetime = DefaultWorkloadMaxLifetime
		case w.MaxLifetime < 0 || w.MaxLifetime > MaxWorkloadMaxLifetime:
			return fmt.Errorf("authserver: config: workload issuer %q: max lifetime out of range (0, %s]", w.Name, MaxWorkloadMaxLifetime)
		}
		if len(w.Clients) == 0 {
			return fmt.Errorf("authserver: config: workload issuer %q maps no subject to a client", w.Name)
		}
	}
	return nil
}

// workloadIssuer returns the trusted workload issuer named iss.
func (s *Server) workloadIssuer(iss string) (*WorkloadIssuer, KeySource) {
	for i := range s.cfg.WorkloadIssuers {
		if w := &s.cfg.WorkloadIssuers[i]; w.Issuer == iss {
			return w, s.issuerKeys[iss]
		}
	}
	return nil, nil
}

// workloadBound reports whether an owned client authenticates only with
// workload tokens.
func (s *Server) workloadBound(id string) bool { return s.workloadClients[id] }

// authenticateWorkload authenticates a client with a workload token as its
// client assertion: verified under w (signature with the issuer's keys,
// iss, aud, exp within MaxLifetime, jti once when SingleUse), then the
// subject claim mapped to a client of w.Clients. formID, when sent, must be
// that client.
func (s *Server) authenticateWorkload(r *http.Request, w *WorkloadIssuer, keys KeySource, assertion, formID string) (storage.Client, *oauth.Error) {
	claims, err := VerifyAssertion(r.Context(), assertion, AssertionPolicy{
		Issuer:      w.Issuer,
		Audiences:   []string{w.Audience},
		MaxLifetime: w.MaxLifetime,
		Keys:        keys,
		Replays:     s.store,
		Reusable:    !w.SingleUse,
		Now:         s.cfg.Now,
	})
	if err != nil {
		return storage.Client{}, s.trustedAssertionError(err, w.Name, oauth.ErrInvalidClient, oauth.ReasonWorkloadTokenInvalid)
	}
	subject := claims.Subject
	if w.SubjectClaim != "sub" {
		v, ok := stringClaim(claims.Claims, w.SubjectClaim)
		if !ok || v == "" {
			return storage.Client{}, oauth.ErrInvalidClient("invalid client assertion: the workload token has no " + safeName(w.SubjectClaim) + " claim").Because(oauth.ReasonWorkloadTokenInvalid)
		}
		subject = v
	}
	id, ok := w.Clients[subject]
	if !ok {
		return storage.Client{}, oauth.ErrInvalidClient("this workload is not mapped to a client").Because(oauth.ReasonWorkloadUnmapped)
	}
	if formID != "" && formID != id {
		return storage.Client{}, oauth.ErrInvalidClient("client_id does not match the workload's client").Because(oauth.ReasonWorkloadUnmapped)
	}
	c, err := s.store.GetClient(r.Context(), id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return storage.Client{}, oauth.ErrInvalidClient("").Plain(oauth.ReasonClientUnknown, "")
	case err != nil:
		return storage.Client{}, s.storageError("get client", err)
	case c.Disabled:
		return storage.Client{}, oauth.ErrInvalidClient("").Plain(oauth.ReasonClientDisabled, "")
	}
	return c, nil
}

// trustedAssertionError maps a refusal of an assertion from a trusted issuer
// (enterprise IdP, workload issuer): the assertion's fault with mk and
// reason, a key source that cannot be consulted 503, else a store failure.
func (s *Server) trustedAssertionError(err error, name string, mk func(string) *oauth.Error, reason oauth.Reason) *oauth.Error {
	var ae *AssertionError
	if errors.As(err, &ae) {
		return mk(ae.Reason).Because(reason)
	}
	var te temporaryError
	var je *jwksError
	if errors.As(err, &te) && te.Temporary() || errors.As(err, &je) {
		s.cfg.Logger.Warn("authserver: trusted issuer keys unavailable", "issuer", name, "error", err)
		e := oauth.ErrTemporarilyUnavailable("the issuer's signing keys cannot be fetched right now; try again later").Because(oauth.ReasonIssuerKeysUnavailable)
		e.RetryAfter = 5 * time.Second
		return e
	}
	return s.storageError("trusted assertion", err)
}

// clientCredentials serves grant_type=client_credentials (RFC 6749 §4.4):
// the client acts for itself, so sub = client id (RFC 9068 §2.2); the
// resource as at /authorize (requirement 7); scopes within the client's
// allowed set; no refresh token; a grant recorded so that revoking the
// client ends its tokens.
func (s *Server) clientCredentials(r *http.Request, client storage.Client, method string, form url.Values) (*tokenResponse, *oauth.Error) {
	if method == oauth.AuthMethodNone && !s.workloadBound(client.ID) {
		return nil, oauth.ErrUnauthorizedClient("client_credentials is for confidential clients only").Because(oauth.ReasonGrantTypeNotAllowed)
	}
	aud, e := s.cfg.Resources.Resolve(form["resource"], client)
	if e != nil {
		return nil, e
	}
	scopes, e := s.machineScopes(client, form)
	if e != nil {
		return nil, e
	}
	return s.issueMachineToken(r, client, client.ID, scopes, aud, map[string]string{"grant_type": oauth.GrantClientCredentials, "auth_method": method})
}

// machineScopes are the scopes of a grant without a user: the requested
// ones (each offered and allowed to the client), else the client's default
// scopes, else the server's; offline_access never (no refresh token).
func (s *Server) machineScopes(client storage.Client, form url.Values) ([]string, *oauth.Error) {
	requested, e := parseScopeParam(form)
	if e != nil {
		return nil, e
	}
	allowed := func(sc string) bool {
		return sc != ScopeOfflineAccess && contains(s.cfg.Scopes, sc) && (len(client.Scopes) == 0 || contains(client.Scopes, sc))
	}
	if len(requested) > 0 {
		for _, sc := range requested {
			if !allowed(sc) {
				return nil, oauth.ErrInvalidScope("scope " + safeName(sc) + " is not allowed for this client").Because(oauth.ReasonScopeInvalid)
			}
		}
		return requested, nil
	}
	defaults := client.DefaultScopes
	if len(defaults) == 0 {
		defaults = s.cfg.DefaultScopes
	}
	var out []string
	for _, sc := range defaults {
		if allowed(sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// parseScopeParam splits the scope parameter (deduplicated, each token valid).
func parseScopeParam(form url.Values) ([]string, *oauth.Error) {
	var out []string
	for _, sc := range strings.Split(form.Get("scope"), " ") {
		if sc == "" || contains(out, sc) {
			continue
		}
		if !validScopeToken(sc) {
			return nil, oauth.ErrInvalidScope("malformed scope").Because(oauth.ReasonScopeInvalid)
		}
		out = append(out, sc)
	}
	return out, nil
}

// issueMachineToken records a grant that lives as long as its access token
// (no refresh token) and mints the token. detail goes into the audit event.
func (s *Server) issueMachineToken(r *http.Request, client storage.Client, subject string, scopes []string, aud string, detail map[string]string) (*tokenResponse, *oauth.Error) {
	ctx := r.Context()
	id, err := randomToken(16)
	if err != nil {
		s.cfg.Logger.Error("authserver: random", "error", err)
		return nil, oauth.ErrServerError()
	}
	now := s.cfg.Now()
	ttl := s.cfg.AccessTokenTTL
	if client.AccessTokenTTL > 0 {
		ttl = client.AccessTokenTTL
	}
	g := storage.Grant{ID: id, ClientID: client.ID, Subject: subject, Scopes: scopes, Resource: aud,
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.store.CreateGrant(ctx, g); err != nil {
		return nil, s.storageError("create grant", err)
	}
	resp, e := s.mint(ctx, client, g, scopes, aud, "")
	if e != nil {
		if err := s.store.RevokeGrant(context.WithoutCancel(ctx), g.ID, "mint_failed", s.cfg.Now()); err != nil {
			s.cfg.Logger.Error("authserver: revoke grant after mint failure", "error", err)
		}
		return nil, e
	}
	d := map[string]string{"grant_id": g.ID, "scope": resp.Scope, "resource": aud}
	for k, v := range detail {
		d[k] = v
	}
	s.emit(ctx, r, storage.AuditEvent{Type: audit.TokenIssued, Outcome: "success", Subject: subject, ClientID: client.ID, Detail: d})
	return resp, nil
}
