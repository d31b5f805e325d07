package authserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// JWT access tokens (RFC 9068; requirement 8).

// AccessTokenType is the JWS "typ" of access tokens (RFC 9068 §2.1).
const AccessTokenType = "at+jwt"

// AccessToken is what an access token says.
type AccessToken struct {
	Issuer   string
	Subject  string
	Audience string // the resolved resource (RFC 8707)
	ClientID string
	GrantID  string // claim "sid": revoking the grant revokes the token
	JTI      string // generated when empty
	// Email is a verified email of the subject: it is asserted with
	// "email_verified": true. Never set it to an unverified address.
	Email  string
	Scopes []string
	// Tools is the grant's tool snapshot (claim ClaimTools, when any).
	Tools []string
	// IssuedAt and ExpiresAt are required; AuthTime is optional.
	IssuedAt  time.Time
	ExpiresAt time.Time
	AuthTime  time.Time
	// JKT, when set, binds the token to a DPoP key: claim cnf.jkt (RFC 9449 §6.1).
	JKT string
}

// MintAccessToken signs t as an RFC 9068 JWT with the active key: header
// {alg, kid, typ: "at+jwt"}; claims iss, sub, aud (a string), exp, iat,
// nbf (= iat), jti, client_id, scope (space-separated, when any), sid (the
// grant id, when set), auth_time (when set) and email with email_verified true (when set).
func (k *KeySet) MintAccessToken(ctx context.Context, t AccessToken) (string, error) {
	switch {
	case t.Issuer == "":
		return "", errors.New("authserver: access token without issuer")
	case t.Subject == "":
		return "", errors.New("authserver: access token without subject")
	case t.Audience == "":
		return "", errors.New("authserver: access token without audience")
	case t.ClientID == "":
		return "", errors.New("authserver: access token without client_id")
	case t.IssuedAt.IsZero() || !t.ExpiresAt.After(t.IssuedAt):
		return "", errors.New("authserver: access token needs iat before exp")
	}
	for _, s := range t.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return "", fmt.Errorf("authserver: invalid scope token in access token")
		}
	}
	jti := t.JTI
	if jti == "" {
		var err error
		if jti, err = randomJTI(16); err != nil {
			return "", err
		}
	}
	iat := t.IssuedAt.Unix()
	claims := map[string]any{
		"iss":       t.Issuer,
		"sub":       t.Subject,
		"aud":       t.Audience,
		"exp":       t.ExpiresAt.Unix(),
		"iat":       iat,
		"nbf":       iat,
		"jti":       jti,
		"client_id": t.ClientID,
	}
	if len(t.Scopes) > 0 {
		claims["scope"] = strings.Join(t.Scopes, " ")
	}
	if t.GrantID != "" {
		claims["sid"] = t.GrantID
	}
	if !t.AuthTime.IsZero() {
		claims["auth_time"] = t.AuthTime.Unix()
	}
	if t.JKT != "" {
		claims["cnf"] = map[string]any{"jkt": t.JKT}
	}
	if len(t.Tools) > 0 {
		claims[ClaimTools] = t.Tools
	}
	if t.Email != "" {
		claims["email"] = t.Email
		claims["email_verified"] = true
	}
	return k.Sign(ctx, claims, AccessTokenType)
}

// randomToken returns n bytes from crypto/rand, base64url without padding.
func randomJTI(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("authserver: random: %w", err)
	}
	return b64RawURL(b), nil
}

func b64RawURL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
