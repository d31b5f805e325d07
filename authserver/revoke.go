package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// serveRevoke is the revocation endpoint (RFC 7009). token_type_hint is
// optional and only a hint: access tokens are recognised as JWTs, anything
// else is looked up as a refresh token. Revoking either ends the whole grant
// (the refresh family and, through "sid", the access tokens minted from it).
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	form, e := parseForm(w, r)
	if e != nil {
		s.writeRevokeRefusal(w, r, "", e)
		return
	}
	client, e := s.authenticateClient(r, form)
	if e != nil {
		s.writeRevokeRefusal(w, r, requestClientID(r, form), e)
		return
	}
	token := form.Get("token")
	if token == "" {
		s.writeRevokeRefusal(w, r, client.ID, oauth.ErrInvalidRequest("token is required"))
		return
	}
	if len(token) > 8192 {
		revoked(w) // not a token of ours
		return
	}
	var grantID, owner string
	if strings.Count(token, ".") == 2 {
		claims, ok, err := s.verifyOwnAccessToken(r.Context(), token)
		if err != nil {
			WriteError(w, r, s.storageError("revoke: key lookup", err))
			return
		}
		if !ok || claims.GrantID == "" {
			revoked(w) // unknown, foreign or expired: nothing to do (RFC 7009 §2.2)
			return
		}
		grantID, owner = claims.GrantID, claims.ClientID
	} else {
		g, err := s.store.GrantByRefresh(r.Context(), hashToken(token))
		if errors.Is(err, storage.ErrNotFound) {
			revoked(w)
			return
		}
		if err != nil {
			WriteError(w, r, s.storageError("revoke: grant lookup", err))
			return
		}
		if g.Revoked() {
			if g.ClientID != client.ID {
				s.writeRevokeRefusal(w, r, client.ID, oauth.ErrUnauthorizedClient("the token was issued to another client"))
				return
			}
			revoked(w)
			return
		}
		grantID, owner = g.ID, g.ClientID
	}
	if owner != client.ID {
		// RFC 7009 §2.1: the server refuses to revoke another client's token.
		s.emit(r.Context(), r, storage.AuditEvent{Type: audit.TokenRevoke, Outcome: "refused_other_client", ClientID: client.ID})
		s.writeRevokeRefusal(w, r, client.ID, oauth.ErrUnauthorizedClient("the token was issued to another client"))
		return
	}
	err := s.store.RevokeGrant(r.Context(), grantID, "revoked_by_client", s.cfg.Now())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		WriteError(w, r, s.storageError("revoke grant", err))
		return
	}
	s.emit(r.Context(), r, storage.AuditEvent{Type: audit.TokenRevoke, Outcome: "success", ClientID: client.ID,
		Detail: map[string]string{"grant_id": grantID}})
	revoked(w)
}

// revoked answers a successful revocation: 200, empty body, no caching.
func revoked(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// ownClaims are the claims revocation needs from one of our access tokens.
type ownClaims struct {
	Issuer   string `json:"iss"`
	ClientID string `json:"client_id"`
	GrantID  string `json:"sid"`
	Exp      int64  `json:"exp"`
}

// verifyOwnAccessToken checks that token is an unexpired access token signed
// by one of our keys for our issuer. ok=false: not ours (or expired); err: the
// key set could not be consulted.
func (s *Server) verifyOwnAccessToken(ctx context.Context, token string) (ownClaims, bool, error) {
	var c ownClaims
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		return c, false, nil
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	kid := hdr.KeyID()
	if kid == "" || hdr.Type() != "at+jwt" {
		return c, false, nil
	}
	pub, alg, err := s.keys.PublicKey(ctx, kid)
	if errors.Is(err, ErrUnknownKey) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	if hdr.Algorithm().String() != alg {
		return c, false, nil
	}
	payload, err := jws.Verify([]byte(token), jws.WithKey(jwa.SignatureAlgorithm(alg), pub))
	if err != nil {
		return c, false, nil
	}
	if json.Unmarshal(payload, &c) != nil || c.Issuer != s.cfg.Issuer {
		return c, false, nil
	}
	if c.Exp != 0 && !s.cfg.Now().Before(time.Unix(c.Exp, 0)) {
		return c, false, nil
	}
	return c, true, nil
}
