package authserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// setRetryAfter writes e's Retry-After header, if any.
func setRetryAfter(w http.ResponseWriter, e *oauth.Error) {
	if e != nil && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
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
	e := oauth.AsError(err)
	if e == nil {
		e = oauth.ErrServerError()
	}
	status := e.Status
	if status < 400 || status > 599 {
		status = http.StatusBadRequest
		if e.Code == oauth.CodeServerError {
			status = http.StatusInternalServerError
		}
	}
	if e.Code == oauth.CodeInvalidClient && status == http.StatusUnauthorized && r != nil && usedBasicAuth(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth", charset="UTF-8"`)
	}
	setRetryAfter(w, e)
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
	e := oauth.AsError(err)
	if e == nil {
		e = oauth.ErrServerError()
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
		WriteError(w, r, oauth.ErrInvalidRequest("invalid redirect_uri"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}

// appendRedirectQuery adds params to a redirect URI's query (the
// authorization response and RedirectError), keeping the rest of the
// existing query byte for byte and dropping any existing pair whose name is
// one of params' names, so that each of ours appears exactly once. It
// refuses URIs with a fragment or that do not parse.
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
