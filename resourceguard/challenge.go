package resourceguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes of RFC 6750 §3.1.
const (
	ErrorInvalidRequest    = "invalid_request"
	ErrorInvalidToken      = "invalid_token"
	ErrorInsufficientScope = "insufficient_scope"
)

// ErrRefused is wrapped by Challenge.Err.
var ErrRefused = errors.New("resourceguard: request refused")

// Challenge describes a refused request.
//
//   - 401, Error "": no bearer token (RFC 6750 §3.1: no error code).
//   - 401, invalid_token: a bad, expired or revoked token.
//   - 403, insufficient_scope: Scopes lists every scope the operation needs.
//   - 401, invalid_request: a token in the query string (RFC 6750 §2.3 is
//     not supported; the 401 challenge says how to present one).
//   - 400, invalid_request: a malformed request (two Authorization
//     headers, an unreadable JSON-RPC body).
//   - 403, Error "": an Origin that is not allowed (no WWW-Authenticate).
//   - 400 with RPCCode -32020: MCP metadata headers that disagree with the
//     body (a JSON-RPC error body, no WWW-Authenticate).
//   - 413, 415, 431, 503: body too large, an unreadable Content-Encoding,
//     header fields too large, key source or revocation store unavailable
//     (no WWW-Authenticate).
//   - 429: a per-tool rate limit (Retry-After).
type Challenge struct {
	Status      int
	Error       string
	Description string
	Scopes      []string
	// RetryAfter is the Retry-After of a 503 (default 5 s; rounded up to
	// whole seconds).
	RetryAfter time.Duration
	// outcome, when set, is the refusal's class (see Outcome).
	outcome string
	// viaDPoP: the request used the DPoP scheme; the error goes on the
	// DPoP challenge (dpop.go).
	viaDPoP bool

	// toolResult, when set, is the JSON-RPC tool-error answer that replaces
	// the refusal (StepUpConfig.ToolError; see IsToolResult).
	toolResult []byte

	// RPCCode, when not zero, makes the body a JSON-RPC error response
	// with this code (and RPCID as its id) instead of the OAuth-style body:
	// RPCHeaderMismatch (-32020) for a header that disagrees with the body.
	RPCCode int
	RPCID   json.RawMessage
}

// Outcomes of a guard decision: a closed set, used as the metrics label
// and in the log line of a refusal (never a token or a client's value).
const (
	OutcomeAllowed           = "allowed"
	OutcomeNoToken           = "no_token"
	OutcomeInvalidToken      = "invalid_token"
	OutcomeInsufficientScope = "insufficient_scope"
	OutcomeInvalidRequest    = "invalid_request"
	OutcomeOriginRefused     = "origin_refused"
	OutcomeBodyTooLarge      = "body_too_large"
	OutcomeHeadersTooLarge   = "headers_too_large"
	OutcomeUnavailable       = "unavailable"
	OutcomeHeaderMismatch    = "header_mismatch"
	OutcomeRateLimited       = "rate_limited"
	OutcomeOther             = "other"
)

// Outcome classifies a decision (nil: allowed) into the closed set above.
func Outcome(ch *Challenge) string {
	switch {
	case ch == nil:
		return OutcomeAllowed
	case ch.outcome != "":
		return ch.outcome
	case ch.Error == ErrorInvalidToken:
		return OutcomeInvalidToken
	case ch.Error == ErrorInsufficientScope:
		return OutcomeInsufficientScope
	case ch.Error == ErrorInvalidRequest:
		return OutcomeInvalidRequest
	case ch.Status == http.StatusUnauthorized && ch.Error == "":
		return OutcomeNoToken
	case ch.Status == http.StatusForbidden && strings.Contains(ch.Description, "origin"):
		return OutcomeOriginRefused
	case ch.Status == http.StatusRequestEntityTooLarge:
		return OutcomeBodyTooLarge
	case ch.Status == http.StatusRequestHeaderFieldsTooLarge:
		return OutcomeHeadersTooLarge
	case ch.Status == http.StatusServiceUnavailable:
		return OutcomeUnavailable
	}
	return OutcomeOther
}

func invalidToken(desc string) *Challenge {
	return &Challenge{Status: http.StatusUnauthorized, Error: ErrorInvalidToken, Description: desc}
}

func invalidRequest(desc string) *Challenge {
	return &Challenge{Status: http.StatusBadRequest, Error: ErrorInvalidRequest, Description: desc}
}

func headerMismatch(desc string, id json.RawMessage) *Challenge {
	return &Challenge{Status: http.StatusBadRequest, Description: desc, RPCCode: RPCHeaderMismatch, RPCID: id,
		outcome: OutcomeHeaderMismatch}
}

func unavailable(desc string) *Challenge {
	return &Challenge{Status: http.StatusServiceUnavailable, Description: desc}
}

// IsAuthChallenge reports whether the refusal carries a WWW-Authenticate
// header (every 401, and 400/403 with an RFC 6750 error code).
func (c *Challenge) IsAuthChallenge() bool {
	return c.Status == http.StatusUnauthorized || c.Error != ""
}

// BodyError is the "error" member of the JSON body.
func (c *Challenge) BodyError() string {
	if c.Error != "" {
		return c.Error
	}
	switch c.Status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusRequestHeaderFieldsTooLarge:
		return "request_header_fields_too_large"
	case http.StatusServiceUnavailable:
		return "temporarily_unavailable"
	}
	return "error"
}

// Err returns an error describing the refusal (for caddyhttp.Error).
func (c *Challenge) Err() error {
	if c.Description == "" {
		return ErrRefused
	}
	return fmt.Errorf("%w: %s: %s", ErrRefused, c.BodyError(), sanitizeDescription(c.Description))
}

// Header returns the WWW-Authenticate value for this challenge, in RFC 6750
// §3 syntax with RFC 9728 §5.1's resource_metadata:
//
//	Bearer resource_metadata="…", scope="…", error="…", error_description="…"
//
// Every value is a quoted-string. error_description is restricted to the
// characters RFC 6750 allows, scope to scope-tokens, and the URL has its
// quotes and backslashes escaped and control characters removed.
func (c *Challenge) Header(resourceMetadataURL string) string {
	var b strings.Builder
	b.Grow(64 + len(resourceMetadataURL) + len(c.Description))
	b.WriteString("Bearer")
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		writeQuoted(&b, value)
		b.WriteByte('"')
		sep = ", "
	}
	if resourceMetadataURL != "" {
		param("resource_metadata", resourceMetadataURL)
	}
	if s := joinScopes(c.Scopes); s != "" {
		param("scope", s)
	}
	if c.Error != "" && validErrorCode(c.Error) {
		param("error", c.Error)
		if d := sanitizeDescription(c.Description); d != "" {
			param("error_description", d)
		}
	}
	return b.String()
}

// writeQuoted writes the inside of a quoted-string (RFC 9110 §5.6.4): '"'
// and '\' are escaped; control characters other than HTAB are dropped.
func writeQuoted(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\t' || (c >= 0x20 && c != 0x7f):
			b.WriteByte(c)
		}
	}
}

// joinScopes joins the valid scope-tokens (RFC 6749 §3.3) with single spaces.
func joinScopes(scopes []string) string {
	var b strings.Builder
	for _, s := range scopes {
		if !validScopeToken(s) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// validScopeToken: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// validErrorCode: error = 1*( %x20-21 / %x23-5B / %x5D-7E ) (RFC 6750 §3),
// narrowed to what an OAuth error code looks like.
func validErrorCode(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return s != ""
}

// sanitizeDescription keeps the characters RFC 6750 §3 allows in
// error_description (%x20-21 / %x23-5B / %x5D-7E) and caps the length.
func sanitizeDescription(s string) string {
	const max = 200
	clean := true
	for i := 0; i < len(s); i++ {
		if !descChar(s[i]) {
			clean = false
			break
		}
	}
	if clean && len(s) <= max {
		return s
	}
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		if descChar(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}

func descChar(c byte) bool {
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'
}

// ChallengeHeader is c.Header(g.ResourceMetadataURL()).
func (g *Guard) ChallengeHeader(c *Challenge) string {
	if c.Status == http.StatusUnauthorized && c.Error == "" && slicesEqual(c.Scopes, g.baseScopes) {
		return g.noTokenHeader
	}
	return c.Header(g.metadataURL)
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// SetChallengeHeaders sets the refusal's response headers without writing
// anything: WWW-Authenticate (for authentication challenges), Retry-After for
// 503 and Cache-Control: no-store. Use it when the body is produced elsewhere
// (e.g. Caddy's handle_errors); WriteChallenge uses it too.
func (g *Guard) SetChallengeHeaders(w http.ResponseWriter, c *Challenge) {
	h := w.Header()
	if c.IsAuthChallenge() {
		if g.dpop != nil {
			g.setChallenges(h, c) // Bearer and DPoP (dpop.go)
		} else {
			h.Set("WWW-Authenticate", g.ChallengeHeader(c))
		}
	}
	if c.Status == http.StatusServiceUnavailable || c.Status == http.StatusTooManyRequests {
		secs := 5
		if c.RetryAfter > 0 {
			secs = int((c.RetryAfter + time.Second - 1) / time.Second)
		}
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	h.Set("Cache-Control", "no-store")
}

// Body is the small JSON body of a refusal: {"error":…,"error_description":…},
// or a JSON-RPC error response when RPCCode is set.
func (c *Challenge) Body() []byte {
	if c.RPCCode != 0 {
		return rpcErrorBody(c.RPCID, c.RPCCode, sanitizeDescription(c.Description))
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{c.BodyError(), sanitizeDescription(c.Description)})
	return append(body, '\n')
}

// WriteChallenge writes the refusal: the headers of SetChallengeHeaders and
// the JSON Body, or, for a step-up answered as a tool error
// (IsToolResult), that JSON-RPC response with status 200.
func (g *Guard) WriteChallenge(w http.ResponseWriter, c *Challenge) {
	if c.toolResult != nil {
		writeToolResult(w, c)
		return
	}
	if c.Status < 400 || c.Status > 599 {
		c = &Challenge{Status: http.StatusUnauthorized, Error: c.Error, Description: c.Description, Scopes: c.Scopes}
	}
	g.SetChallengeHeaders(w, c)
	body := c.Body()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(c.Status)
	_, _ = w.Write(body)
}

// rpcErrorBody is a JSON-RPC 2.0 error response. id is the request's id as
// the guard parsed it (valid JSON), or null.
func rpcErrorBody(id json.RawMessage, code int, msg string) []byte {
	if len(id) == 0 || !json.Valid(id) {
		id = json.RawMessage("null")
	}
	body, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg}})
	return append(body, '\n')
}
