package oauth

import (
	"errors"
	"net/http"
	"time"
)

// OAuth error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 7009 §2.2.1, RFC 7591
// §3.2.2, RFC 8707 §2, OpenID Connect Core §3.1.2.6 for prompt=none).
const (
	CodeInvalidRequest          = "invalid_request"
	CodeInvalidClient           = "invalid_client"
	CodeInvalidGrant            = "invalid_grant"
	CodeUnauthorizedClient      = "unauthorized_client"
	CodeUnsupportedGrantType    = "unsupported_grant_type"
	CodeUnsupportedResponseType = "unsupported_response_type"
	CodeInvalidScope            = "invalid_scope"
	CodeInvalidTarget           = "invalid_target"
	CodeAccessDenied            = "access_denied"
	CodeInvalidRedirectURI      = "invalid_redirect_uri"
	CodeInvalidClientMetadata   = "invalid_client_metadata"
	CodeUnsupportedTokenType    = "unsupported_token_type"
	CodeServerError             = "server_error"
	CodeTemporarilyUnavailable  = "temporarily_unavailable"
	CodeLoginRequired           = "login_required"
	CodeConsentRequired         = "consent_required"
	CodeInteractionRequired     = "interaction_required"
	// DPoP (RFC 9449 §5 and §8).
	CodeInvalidDPoPProof = "invalid_dpop_proof"
	CodeUseDPoPNonce     = "use_dpop_nonce"
)

// Error is an OAuth error: a code from the specifications, a description
// that is safe to show to the client (it never echoes a credential), and the
// HTTP status used when it is written as a JSON response.
//
// Constructors return fresh values, so a caller may adjust a returned error
// without affecting anyone else.
type Error struct {
	Code        string
	Description string
	Status      int
	// RetryAfter, when positive, is sent as a Retry-After header (whole
	// seconds) with a temporarily_unavailable answer, JSON or page.
	RetryAfter time.Duration
	// Reason is why the request was refused, from the closed set of
	// reason.go; the server logs and audits it with the refusal.
	Reason Reason
}

// Error implements error: "oauth: <code>: <description>".
func (e *Error) Error() string {
	if e.Description == "" {
		return "oauth: " + e.Code
	}
	return "oauth: " + e.Code + ": " + e.Description
}

func oauthErr(code string, status int, desc string) *Error {
	return &Error{Code: code, Description: desc, Status: status}
}

// ErrInvalidRequest: the request is missing a parameter, repeats one or is
// otherwise malformed (400).
func ErrInvalidRequest(desc string) *Error {
	return oauthErr(CodeInvalidRequest, http.StatusBadRequest, desc)
}

// ErrInvalidClient: client authentication failed (401). authserver.WriteError adds a
// WWW-Authenticate challenge when the request used HTTP Basic.
func ErrInvalidClient(desc string) *Error {
	return oauthErr(CodeInvalidClient, http.StatusUnauthorized, desc)
}

// ErrInvalidGrant: the code or refresh token is invalid, expired, revoked,
// used, or bound to another client or redirect URI (400).
func ErrInvalidGrant(desc string) *Error {
	return oauthErr(CodeInvalidGrant, http.StatusBadRequest, desc)
}

// ErrUnauthorizedClient: the client may not use this grant type (400).
func ErrUnauthorizedClient(desc string) *Error {
	return oauthErr(CodeUnauthorizedClient, http.StatusBadRequest, desc)
}

// ErrUnsupportedGrantType: the grant type is not served (400).
func ErrUnsupportedGrantType(desc string) *Error {
	return oauthErr(CodeUnsupportedGrantType, http.StatusBadRequest, desc)
}

// ErrUnsupportedResponseType: only response_type=code is served (400).
func ErrUnsupportedResponseType(desc string) *Error {
	return oauthErr(CodeUnsupportedResponseType, http.StatusBadRequest, desc)
}

// ErrInvalidScope: the scope is unknown, malformed or exceeds the grant (400).
func ErrInvalidScope(desc string) *Error {
	return oauthErr(CodeInvalidScope, http.StatusBadRequest, desc)
}

// ErrInvalidTarget: the resource indicator is invalid or unknown (RFC 8707, 400).
func ErrInvalidTarget(desc string) *Error {
	return oauthErr(CodeInvalidTarget, http.StatusBadRequest, desc)
}

// ErrAccessDenied: the user or the server refused the request (403).
func ErrAccessDenied(desc string) *Error {
	return oauthErr(CodeAccessDenied, http.StatusForbidden, desc)
}

// ErrInvalidRedirectURI: a registered redirect URI is invalid (RFC 7591, 400).
func ErrInvalidRedirectURI(desc string) *Error {
	return oauthErr(CodeInvalidRedirectURI, http.StatusBadRequest, desc)
}

// ErrInvalidClientMetadata: client metadata is invalid (RFC 7591, 400).
func ErrInvalidClientMetadata(desc string) *Error {
	return oauthErr(CodeInvalidClientMetadata, http.StatusBadRequest, desc)
}

// ErrUnsupportedTokenType: the token type cannot be revoked (RFC 7009, 400).
func ErrUnsupportedTokenType(desc string) *Error {
	return oauthErr(CodeUnsupportedTokenType, http.StatusBadRequest, desc)
}

// ErrServerError is the generic internal error (500). Its description never
// says what went wrong; the caller logs the original error.
func ErrServerError() *Error {
	return oauthErr(CodeServerError, http.StatusInternalServerError, "internal error")
}

// ErrTemporarilyUnavailable: the server cannot answer now, e.g. the store is
// unreachable (503).
func ErrTemporarilyUnavailable(desc string) *Error {
	return oauthErr(CodeTemporarilyUnavailable, http.StatusServiceUnavailable, desc)
}

// ErrLoginRequired answers prompt=none when no user is signed in (redirected).
func ErrLoginRequired(desc string) *Error {
	return oauthErr(CodeLoginRequired, http.StatusBadRequest, desc)
}

// ErrConsentRequired answers prompt=none when consent must be asked (redirected).
func ErrConsentRequired(desc string) *Error {
	return oauthErr(CodeConsentRequired, http.StatusBadRequest, desc)
}

// ErrInteractionRequired answers prompt=none when any other user interaction
// is needed (redirected).
func ErrInteractionRequired(desc string) *Error {
	return oauthErr(CodeInteractionRequired, http.StatusBadRequest, desc)
}

// ErrInvalidDPoPProof is 400 invalid_dpop_proof (RFC 9449 §5).
func ErrInvalidDPoPProof(desc string) *Error {
	return oauthErr(CodeInvalidDPoPProof, http.StatusBadRequest, desc)
}

// ErrUseDPoPNonce is 400 use_dpop_nonce (RFC 9449 §8): the proof must carry
// the server's nonce.
func ErrUseDPoPNonce(desc string) *Error {
	return oauthErr(CodeUseDPoPNonce, http.StatusBadRequest, desc)
}

// AsError returns err as an OAuth error: an *Error (found with errors.As) as
// is, anything else as ErrServerError(), whose text reveals nothing. The
// caller logs the original error. AsError(nil) is nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e != nil && e.Code != "" {
		return e
	}
	return ErrServerError()
}
