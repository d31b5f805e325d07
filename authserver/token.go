package authserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// parseForm reads the body of a /token or /revoke request: POST,
// Content-Type application/x-www-form-urlencoded, at most maxFormBytes, no
// parameters in the URL query, no parameter repeated (RFC 6749 §3.2: "Request
// and response parameters MUST NOT be included more than once"), except
// resource, whose repetition the resource policy refuses as invalid_target.
// Parameters sent without a value are treated as omitted.
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauth.Error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		return nil, &oauth.Error{Code: oauth.CodeInvalidRequest, Description: "method not allowed", Status: http.StatusMethodNotAllowed}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauth.ErrInvalidRequest("content type must be application/x-www-form-urlencoded")
	}
	if r.URL.RawQuery != "" {
		return nil, oauth.ErrInvalidRequest("parameters must be sent in the request body, not the URL")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil {
		return nil, oauth.ErrInvalidRequest("the request body could not be read")
	}
	if len(body) > maxFormBytes {
		return nil, oauth.ErrInvalidRequest("the request body is too large")
	}
	return parseFormBody(string(body))
}

// parseFormBody parses an urlencoded body strictly (see parseForm).
func parseFormBody(body string) (url.Values, *oauth.Error) {
	form, err := url.ParseQuery(body)
	if err != nil {
		return nil, oauth.ErrInvalidRequest("malformed form body")
	}
	for k, v := range form {
		if len(v) > 1 && k != "resource" {
			return nil, oauth.ErrInvalidRequest("parameter " + safeName(k) + " is repeated")
		}
		if k == "resource" {
			continue
		}
		if v[0] == "" {
			delete(form, k)
		}
	}
	return form, nil
}

// tokenResponse is the successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// serveToken is the token endpoint (OAuth 2.1 §3.2).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	form, e := parseForm(w, r)
	if e != nil {
		s.writeRefusal(w, r, "", e)
		return
	}
	client, method, e := s.authenticateClientMethod(r, form)
	if e != nil {
		s.writeRefusal(w, r, requestClientID(r, form), e)
		return
	}
	gt := form.Get("grant_type")
	switch gt {
	case "":
		s.writeRefusal(w, r, client.ID, oauth.ErrInvalidRequest("grant_type is required").Because(oauth.ReasonGrantTypeUnsupported))
		return
	case oauth.GrantAuthorizationCode, oauth.GrantRefreshToken:
	case oauth.GrantClientCredentials, oauth.GrantJWTBearer:
		// Served only when configured (requirements 23, 24).
		if gt == oauth.GrantJWTBearer && len(s.cfg.EnterpriseIdPs) == 0 || gt == oauth.GrantClientCredentials && !s.servesClientCredentials() {
			s.writeRefusal(w, r, client.ID, oauth.ErrUnsupportedGrantType("grant type is not supported").Because(oauth.ReasonGrantTypeUnsupported))
			return
		}
	default:
		s.writeRefusal(w, r, client.ID, oauth.ErrUnsupportedGrantType("grant type is not supported").Because(oauth.ReasonGrantTypeUnsupported))
		return
	}
	if gt == oauth.GrantJWTBearer && !s.servesIDJAG(client) || gt != oauth.GrantJWTBearer && !allowsGrant(client, gt) {
		s.writeRefusal(w, r, client.ID, oauth.ErrUnauthorizedClient("the client may not use this grant type").Because(oauth.ReasonGrantTypeNotAllowed))
		return
	}
	if r, e = s.checkDPoP(w, r); e != nil { // dpop.go
		s.writeRefusal(w, r, client.ID, e)
		return
	}
	var resp *tokenResponse
	switch gt {
	case oauth.GrantAuthorizationCode:
		resp, e = s.exchangeCode(r, client, form)
	case oauth.GrantRefreshToken:
		resp, e = s.refresh(r, client, form)
	case oauth.GrantClientCredentials:
		resp, e = s.clientCredentials(r, client, method, form)
	default:
		resp, e = s.jwtBearer(r, client, method, form)
	}
	if e != nil {
		s.writeRefusal(w, r, client.ID, e)
		return
	}
	s.touchClient(r.Context(), client)
	writeJSON(w, http.StatusOK, resp)
}

// requestClientID is the client id a /token request names (Basic or form),
// for the log and audit of a refusal before the client is authenticated.
func requestClientID(r *http.Request, form url.Values) string {
	if id, _, ok, _ := basicCredentials(r); ok {
		return id
	}
	return form.Get("client_id")
}

// storageError maps a store failure to a response and logs it.
func (s *Server) storageError(op string, err error) *oauth.Error {
	s.cfg.Logger.Error("authserver: "+op, "error", err)
	return oauth.ErrTemporarilyUnavailable("storage unavailable").Because(oauth.ReasonStorageUnavailable)
}

// exchangeCode redeems an authorization code (OAuth 2.1 §4.1.3) in one write
// transaction. Checks made before the store is touched (missing parameters)
// leave the code redeemable; checks on the code burn it.
func (s *Server) exchangeCode(r *http.Request, client storage.Client, form url.Values) (*tokenResponse, *oauth.Error) {
	ctx := r.Context()
	// redirect_uri is optional (OAuth 2.1 §4.1.3): the code is bound to the
	// redirect URI of its authorization request, and PKCE to that request.
	// When sent, it must equal that URI exactly.
	code, verifier := form.Get("code"), form.Get("code_verifier")
	redirectURI, sentRedirect := form.Get("redirect_uri"), form.Has("redirect_uri")
	switch {
	case code == "":
		return nil, oauth.ErrInvalidRequest("code is required")
	case verifier == "":
		return nil, oauth.ErrInvalidRequest("code_verifier is required").Because(oauth.ReasonPKCEMissing)
	case len(code) > 512:
		return nil, oauth.ErrInvalidGrant("the code is invalid, expired or already used").Because(oauth.ReasonCodeInvalid)
	}
	now := s.cfg.Now()
	refresh := ""
	if allowsGrant(client, oauth.GrantRefreshToken) {
		var err error
		if refresh, err = randomToken(32); err != nil {
			s.cfg.Logger.Error("authserver: random", "error", err)
			return nil, oauth.ErrServerError()
		}
	}
	var aud string
	var grant storage.Grant
	// token.issued commits with the grant (an acknowledged exchange always
	// has its record, even after a crash).
	txCtx, notify := s.withAudit(ctx, r, func(outcome error, g *storage.Grant) []storage.AuditEvent {
		if outcome != nil || g == nil {
			return nil
		}
		return []storage.AuditEvent{{Type: audit.TokenIssued, Outcome: "success", Subject: g.Subject, ClientID: client.ID,
			Detail: map[string]string{"grant_type": oauth.GrantAuthorizationCode, "grant_id": g.ID, "scope": strings.Join(g.Scopes, " "), "resource": aud}}}
	})
	ac, err := s.store.RedeemCode(txCtx, hashToken(code), now, func(c storage.AuthCode) (*storage.Grant, error) {
		if c.ClientID != client.ID {
			return nil, oauth.ErrInvalidGrant("the code was issued to another client").Because(oauth.ReasonCodeWrongClient)
		}
		if sentRedirect && c.RedirectURI != redirectURI {
			return nil, oauth.ErrInvalidGrant("redirect_uri does not match the authorization request").Because(oauth.ReasonRedirectURIMismatch)
		}
		if c.CodeChallenge == "" {
			// Every code we mint carries a challenge; a verifier for a code
			// without one is a PKCE downgrade (RFC 9700 §2.1.1).
			return nil, oauth.ErrInvalidGrant("PKCE downgrade: the authorization request had no code_challenge").Because(oauth.ReasonPKCEMissing)
		}
		if c.CodeChallengeMethod != "S256" || !VerifyPKCE(verifier, c.CodeChallenge) {
			return nil, oauth.ErrInvalidGrant("code_verifier does not match the code_challenge").Because(oauth.ReasonPKCEMismatch)
		}
		a, e := s.cfg.Resources.CheckExchange(form["resource"], c.Resource)
		if e != nil {
			return nil, e
		}
		aud = a
		grant = storage.Grant{
			ID:        c.GrantID,
			ClientID:  c.ClientID,
			Subject:   c.Subject,
			Scopes:    c.Scopes,
			Resource:  c.Resource,
			AuthTime:  c.AuthTime,
			Tools:     c.Tools,
			CreatedAt: now,
			ExpiresAt: now.Add(s.cfg.GrantTTL),
		}
		if refresh != "" {
			grant.RefreshHash = hashToken(refresh)
			grant.RefreshExpiresAt = minTime(now.Add(s.refreshTTL(client)), grant.ExpiresAt)
			grant.DPoPJKT = refreshBinding(ctx, client)
		}
		return &grant, nil
	})
	if err != nil {
		var oe *oauth.Error
		switch {
		case errors.As(err, &oe):
			return nil, oe // audited (aggregated) by writeRefusal
		case errors.Is(err, storage.ErrCodeUsed):
			return nil, s.codeReplayed(r, client, ac, verifier)
		case errors.Is(err, storage.ErrNotFound):
			return nil, oauth.ErrInvalidGrant("the code is invalid, expired or already used").Because(oauth.ReasonCodeInvalid)
		default:
			return nil, s.storageError("redeem code", err)
		}
	}
	resp, e := s.mint(ctx, client, grant, grant.Scopes, aud, refresh)
	if e != nil {
		// The grant exists but its tokens were never delivered: end it.
		if err := s.store.RevokeGrant(context.WithoutCancel(ctx), grant.ID, "mint_failed", s.cfg.Now()); err != nil {
			s.cfg.Logger.Error("authserver: revoke grant after mint failure", "error", err)
		}
		return nil, e
	}
	notify()
	return resp, nil
}

// codeReplayed handles a code presented again (requirement 6): when the
// client and verifier are the legitimate ones, the grant the first
// redemption produced is revoked; otherwise nothing changes. Both answer
// invalid_grant.
func (s *Server) codeReplayed(r *http.Request, client storage.Client, ac storage.AuthCode, verifier string) *oauth.Error {
	ctx := r.Context()
	valid := ac.ClientID == client.ID && ac.CodeChallenge != "" && VerifyPKCE(verifier, ac.CodeChallenge)
	outcome := "ignored"
	ev := storage.AuditEvent{Type: audit.CodeReplay, Subject: ac.Subject, ClientID: client.ID,
		Detail: map[string]string{"grant_id": ac.GrantID}}
	if valid && ac.GrantID != "" {
		// The revocation commits with its record.
		revoked := ev
		revoked.Outcome = "grant_revoked"
		txCtx, notify := s.withAudit(ctx, r, func(error, *storage.Grant) []storage.AuditEvent { return []storage.AuditEvent{revoked} })
		err := s.store.RevokeGrant(txCtx, ac.GrantID, "code_replay", s.cfg.Now())
		switch {
		case err == nil:
			notify()
			return oauth.ErrInvalidGrant("the code is invalid, expired or already used").Because(oauth.ReasonCodeReused)
		case errors.Is(err, storage.ErrNotFound):
			outcome = "no_grant" // the first redemption failed its checks
		default:
			outcome = "revoke_failed"
			s.cfg.Logger.Error("authserver: revoke grant on code replay", "client_id", client.ID, "error", err)
		}
	}
	// Nothing changed (or the grant was revoked before): batched.
	ev.Outcome = outcome
	s.emit(ctx, r, ev)
	return oauth.ErrInvalidGrant("the code is invalid, expired or already used").Because(oauth.ReasonCodeReused)
}

// refresh rotates a refresh token (OAuth 2.1 §4.3, requirement 9).
func (s *Server) refresh(r *http.Request, client storage.Client, form url.Values) (*tokenResponse, *oauth.Error) {
	ctx := r.Context()
	presented := form.Get("refresh_token")
	if presented == "" {
		return nil, oauth.ErrInvalidRequest("refresh_token is required")
	}
	if len(presented) > 512 {
		return nil, oauth.ErrInvalidGrant("the refresh token is invalid, expired or revoked").Because(oauth.ReasonRefreshInvalid)
	}
	var requested []string
	if raw, ok := form["scope"]; ok {
		for _, sc := range strings.Split(raw[0], " ") {
			if sc == "" || contains(requested, sc) {
				continue
			}
			if !validScopeToken(sc) {
				return nil, oauth.ErrInvalidScope("malformed scope").Because(oauth.ReasonScopeInvalid)
			}
			requested = append(requested, sc)
		}
	}
	next, err := randomToken(32)
	if err != nil {
		s.cfg.Logger.Error("authserver: random", "error", err)
		return nil, oauth.ErrServerError()
	}
	now := s.cfg.Now()
	var aud string
	scopes := requested
	retry := false // the grace's one use of the previous token
	// token.issued commits with the rotation, refresh.reuse with the
	// family's revocation.
	txCtx, notify := s.withAudit(ctx, r, func(outcome error, g *storage.Grant) []storage.AuditEvent {
		switch {
		case g == nil:
			return nil
		case errors.Is(outcome, storage.ErrRefreshReused):
			return []storage.AuditEvent{{Type: audit.RefreshReuse, Outcome: "family_revoked", Subject: g.Subject, ClientID: client.ID,
				Detail: map[string]string{"grant_id": g.ID}}}
		case outcome != nil:
			return nil
		}
		sc := scopes
		if len(sc) == 0 {
			sc = g.Scopes
		}
		detail := map[string]string{"grant_type": oauth.GrantRefreshToken, "grant_id": g.ID, "scope": strings.Join(sc, " "), "resource": aud}
		if retry {
			detail["rotation"] = "lost_response_retry"
		}
		return []storage.AuditEvent{{Type: audit.TokenIssued, Outcome: "success", Subject: g.Subject, ClientID: client.ID, Detail: detail}}
	})
	g, err := s.store.RotateRefresh(txCtx, storage.Rotation{
		Presented:     hashToken(presented),
		Next:          hashToken(next),
		Now:           now,
		NextExpiresAt: now.Add(s.refreshTTL(client)),
		Grace:         max(s.cfg.RefreshGrace, 0),
		Check: func(g storage.Grant) error {
			if g.ClientID != client.ID {
				return oauth.ErrInvalidGrant("the refresh token was issued to another client").Because(oauth.ReasonRefreshWrongClient)
			}
			if e := checkRefreshBinding(ctx, g); e != nil {
				return e
			}
			for _, sc := range requested {
				if !contains(g.Scopes, sc) {
					return oauth.ErrInvalidScope("the requested scope exceeds the grant").Because(oauth.ReasonScopeExceedsGrant)
				}
			}
			a, e := s.cfg.Resources.CheckRefresh(form["resource"], g.Resource, client)
			if e != nil {
				return e
			}
			aud = a
			retry = len(g.PreviousHash) > 0 && subtle.ConstantTimeCompare(g.PreviousHash, hashToken(presented)) == 1
			return nil
		},
	})
	if err != nil {
		var oe *oauth.Error
		switch {
		case errors.As(err, &oe):
			return nil, oe
		case errors.Is(err, storage.ErrRefreshReused):
			notify()
			return nil, oauth.ErrInvalidGrant("the refresh token is invalid, expired or revoked").Because(oauth.ReasonRefreshReused)
		case errors.Is(err, storage.ErrGrantRevoked), errors.Is(err, storage.ErrNotFound):
			return nil, oauth.ErrInvalidGrant("the refresh token is invalid, expired or revoked").Because(oauth.ReasonRefreshInvalid)
		default:
			return nil, s.storageError("rotate refresh token", err)
		}
	}
	if len(scopes) == 0 {
		scopes = g.Scopes
	}
	resp, e := s.mint(ctx, client, g, scopes, aud, next)
	if e != nil {
		return nil, e
	}
	notify()
	return resp, nil
}

// mint signs the access token (RFC 9068) and builds the response.
func (s *Server) mint(ctx context.Context, client storage.Client, g storage.Grant, scopes []string, aud, refresh string) (*tokenResponse, *oauth.Error) {
	jti, err := randomToken(16)
	if err != nil {
		s.cfg.Logger.Error("authserver: random", "error", err)
		return nil, oauth.ErrServerError()
	}
	now := s.cfg.Now()
	ttl := s.cfg.AccessTokenTTL
	if client.AccessTokenTTL > 0 {
		ttl = client.AccessTokenTTL
	}
	if !g.ExpiresAt.IsZero() && now.Add(ttl).After(g.ExpiresAt) {
		ttl = g.ExpiresAt.Sub(now).Truncate(time.Second)
	}
	if ttl < time.Second {
		return nil, oauth.ErrInvalidGrant("the grant has expired").Because(oauth.ReasonGrantExpired)
	}
	var email string
	if s.cfg.UserEmail != nil {
		// An email nobody verified (a self-signup address) is never
		// asserted downstream: it could be anyone's (requirement 36).
		if e, verified := s.cfg.UserEmail(ctx, g.Subject); verified {
			email = e
		}
	}
	at, err := s.keys.MintAccessToken(ctx, AccessToken{
		Email:     email,
		Issuer:    s.cfg.Issuer,
		Subject:   g.Subject,
		Audience:  aud,
		ClientID:  client.ID,
		GrantID:   g.ID,
		JTI:       jti,
		Scopes:    scopes,
		Tools:     g.Tools,
		IssuedAt:  now,
		ExpiresAt: now.Add(ttl),
		AuthTime:  g.AuthTime,
		JKT:       dpopJKT(ctx),
	})
	if err != nil {
		s.cfg.Logger.Error("authserver: mint access token", "client_id", client.ID, "error", err)
		return nil, oauth.ErrServerError()
	}
	tokenType := "Bearer"
	if dpopJKT(ctx) != "" {
		tokenType = TokenTypeDPoP
	}
	return &tokenResponse{
		AccessToken:  at,
		TokenType:    tokenType,
		ExpiresIn:    int64(ttl / time.Second),
		RefreshToken: refresh,
		Scope:        strings.Join(scopes, " "),
	}, nil
}

func (s *Server) refreshTTL(c storage.Client) time.Duration {
	if c.RefreshTokenTTL > 0 {
		return c.RefreshTokenTTL
	}
	return s.cfg.RefreshTokenTTL
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
