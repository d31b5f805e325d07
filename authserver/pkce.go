package authserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// PKCE (RFC 7636), S256 only: OAuth 2.1 §4.1.1 and the MCP authorization
// specification require it of every client, and "plain" is refused because
// it protects nothing once the authorization request leaks.

// PKCEMethodS256 is the only code_challenge_method served.
const PKCEMethodS256 = "S256"

// ValidCodeChallenge checks an authorization request's code_challenge and
// code_challenge_method. The method must be S256 (RFC 7636 §4.3 defaults a
// missing method to plain, so a missing method is refused too) and the
// challenge must be the unpadded base64url encoding of a SHA-256 digest
// (43 characters).
func ValidCodeChallenge(challenge, method string) *oauth.Error {
	switch method {
	case PKCEMethodS256:
	case "":
		if challenge == "" {
			return oauth.ErrInvalidRequest("code_challenge required (PKCE S256)").Because(oauth.ReasonPKCEMissing)
		}
		return oauth.ErrInvalidRequest("code_challenge_method S256 required").Because(oauth.ReasonPKCEInvalid)
	case "plain":
		return oauth.ErrInvalidRequest("code_challenge_method plain is not supported; use S256").Because(oauth.ReasonPKCEInvalid)
	default:
		return oauth.ErrInvalidRequest("unsupported code_challenge_method; use S256").Because(oauth.ReasonPKCEInvalid)
	}
	if challenge == "" {
		return oauth.ErrInvalidRequest("code_challenge required (PKCE S256)").Because(oauth.ReasonPKCEMissing)
	}
	if len(challenge) != 43 {
		return oauth.ErrInvalidRequest("code_challenge must be 43 characters of base64url (S256)").Because(oauth.ReasonPKCEInvalid)
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(challenge); err != nil {
		return oauth.ErrInvalidRequest("code_challenge is not base64url").Because(oauth.ReasonPKCEInvalid)
	}
	return nil
}

// VerifyPKCE reports whether verifier is a syntactically valid
// code_verifier (RFC 7636 §4.1: 43 to 128 unreserved characters) whose S256
// transform equals challenge. The comparison is constant-time.
func VerifyPKCE(verifier, challenge string) bool {
	if !validVerifier(verifier) || challenge == "" {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	computed := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(computed), []byte(challenge)) == 1
}

// validVerifier: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT
// / "-" / "." / "_" / "~".
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !isUnreserved(v[i]) {
			return false
		}
	}
	return true
}

func isUnreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
