package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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

// setRetryAfter writes e's Retry-After header, if any.
func (e *Error) setRetryAfter(w http.ResponseWriter) {
	if e != nil && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
}

// Error implements error: "authserver: <code>: <description>".
func (e *Error) Error() string {
	if e.Description == "" {
		return "authserver: " + e.Code
	}
	return "authserver: " + e.Code + ": " + e.Description
}

func oauthErr(code string, status int, desc string) *Error {
	return &Error{Code: code, Description: desc, Status: status}
}

// ErrInvalidRequest: the request is missing a parameter, repeats one or is
// otherwise malformed (400).
func ErrInvalidRequest(desc string) *Error {
	return oauthErr(CodeInvalidRequest, http.StatusBadRequest, desc)
}

// ErrInvalidClient: client authentication failed (401). WriteError adds a
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

// oauthErrorBody is the JSON error response (RFC 6749 §5.2).
type oauthErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// WriteError writes err as a JSON OAuth error response with its status and
// no-store caching headers. Errors that are not *Error become server_error.
// An invalid_client answer to a request that authenticated with HTTP Basic
// carries WWW-Authenticate: Basic (RFC 6749 §5.2).
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := AsError(err)
	if e == nil {
		e = ErrServerError()
	}
	status := e.Status
	if status < 400 || status > 599 {
		status = http.StatusBadRequest
		if e.Code == CodeServerError {
			status = http.StatusInternalServerError
		}
	}
	if e.Code == CodeInvalidClient && status == http.StatusUnauthorized && r != nil && usedBasicAuth(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth", charset="UTF-8"`)
	}
	e.setRetryAfter(w)
	writeJSON(w, status, oauthErrorBody{Error: sanitizeErrorText(e.Code), ErrorDescription: sanitizeErrorText(e.Description)})
}

func usedBasicAuth(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	return len(h) >= 6 && strings.EqualFold(h[:6], "basic ")
}

// RedirectError sends the browser back to the client's redirect URI with the
// error (RFC 6749 §4.1.2.1): error, error_description, state (when the
// request had one) and iss (RFC 9207). The redirect URI's own query is kept;
// parameters of ours that it already carries are replaced, so each appears
// exactly once. The status is 303 so that a POST (consent form) is never
// replayed. redirectURI must be one that matched the client's registration:
// a bad client or redirect URI is never redirected to.
func RedirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, issuer string, err error) {
	e := AsError(err)
	if e == nil {
		e = ErrServerError()
	}
	params := url.Values{}
	params.Set("error", sanitizeErrorText(e.Code))
	if d := sanitizeErrorText(e.Description); d != "" {
		params.Set("error_description", d)
	}
	if state != "" {
		params.Set("state", state)
	}
	if issuer != "" {
		params.Set("iss", issuer)
	}
	target, ok := appendRedirectQuery(redirectURI, params)
	if !ok {
		// Not a redirect URI we can use: never guess, answer the browser.
		WriteError(w, r, ErrInvalidRequest("invalid redirect_uri"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}

// appendQuery adds params to uri's query, keeping the rest of the existing
// query byte for byte and dropping any existing pair whose name is one of
// params' names. It refuses URIs with a fragment or that do not parse.
func appendRedirectQuery(uri string, params url.Values) (string, bool) {
	if uri == "" || strings.ContainsRune(uri, '#') {
		return "", false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return "", false
	}
	base, query, _ := strings.Cut(uri, "?")
	var kept []string
	if query != "" {
		for _, pair := range strings.Split(query, "&") {
			if pair == "" {
				continue
			}
			name, _, _ := strings.Cut(pair, "=")
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
			if _, ours := params[name]; ours {
				continue
			}
			kept = append(kept, pair)
		}
	}
	kept = append(kept, params.Encode())
	return base + "?" + strings.Join(kept, "&"), true
}

// sanitizeErrorText keeps the characters RFC 6749 §5.2 allows in error and
// error_description (%x20-21 / %x23-5B / %x5D-7E) and caps the length.
func sanitizeErrorText(s string) string {
	const maxLen = 512
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxLen; i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\'')
		case c >= 0x20 && c <= 0x7e:
			b.WriteByte(c)
		default:
			// Control and non-ASCII bytes are dropped.
		}
	}
	return b.String()
}

// writeJSON writes v as JSON with status and the caching headers every
// OAuth response carries (RFC 6749 §5.1: no-store).
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"server_error","error_description":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
