package oidc

import (
	"errors"
	"github.com/mcpauth/caddy-mcpauth/idp/internal/upstream"
	"net/url"

	"github.com/mcpauth/caddy-mcpauth/idp"
)

// Bounds on what we accept from the provider.
const (
	maxSubject    = 255
	maxEmail      = 254
	maxName       = 200
	maxGroups     = 256
	maxGroup      = 256
	maxParamValue = 4096
)

var errClaims = errors.New("oidc: unusable claims")

// mapClaims turns verified claims into the identity the idp links.
func mapClaims(provider string, m ClaimMapping, claims map[string]any) (idp.ExternalIdentity, error) {
	sub, ok := claims[m.Subject].(string)
	if !ok || sub == "" || len(sub) > maxSubject || !upstream.Printable(sub) {
		return idp.ExternalIdentity{}, errClaims
	}
	ext := idp.ExternalIdentity{Provider: provider, Subject: sub}
	if e, ok := claims[m.Email].(string); ok && len(e) <= maxEmail && upstream.Printable(e) {
		ext.Email = e
	}
	switch v := claims[m.EmailVerified].(type) {
	case bool:
		ext.EmailVerified = v
	case string:
		ext.EmailVerified = v == "true" || v == "1"
	}
	if ext.Email == "" {
		ext.EmailVerified = false
	}
	if n, ok := claims[m.Name].(string); ok {
		ext.Name = upstream.CleanText(n, maxName)
	}
	ext.Groups = groupsOf(claims[m.Groups])
	return ext, nil
}

// groupsOf reads a string or an array of strings, bounded.
func groupsOf(v any) []string {
	var out []string
	add := func(s string) {
		if s != "" && len(s) <= maxGroup && upstream.Printable(s) && len(out) < maxGroups {
			out = append(out, s)
		}
	}
	switch g := v.(type) {
	case string:
		add(g)
	case []any:
		for _, e := range g {
			if s, ok := e.(string); ok {
				add(s)
			}
		}
	case []string:
		for _, s := range g {
			add(s)
		}
	}
	return out
}

// callbackParams is the authorization response (RFC 6749 §4.1.2, RFC 9207).
type callbackParams struct {
	Code, State, Iss string
	Error            string
}

var errParams = errors.New("oidc: malformed authorization response")

// parseCallback parses the callback's query. Each parameter may appear at
// most once and is bounded; anything else is refused rather than guessed.
func parseCallback(rawQuery string) (callbackParams, error) {
	if len(rawQuery) > 4*maxParamValue {
		return callbackParams{}, errParams
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return callbackParams{}, errParams
	}
	var p callbackParams
	for k, vs := range q {
		var dst *string
		switch k {
		case "code":
			dst = &p.Code
		case "state":
			dst = &p.State
		case "iss":
			dst = &p.Iss
		case "error":
			dst = &p.Error
		default:
			continue // error_description, session_state, scope, ...: ignored
		}
		if len(vs) != 1 || len(vs[0]) > maxParamValue || !upstream.Printable(vs[0]) {
			return callbackParams{}, errParams
		}
		*dst = vs[0]
	}
	return p, nil
}

// upstreamErrorReason maps an OAuth error code from the provider to an audit
// reason; unknown codes are not echoed.
func upstreamErrorReason(code string) string {
	switch code {
	case "access_denied", "login_required", "consent_required", "interaction_required",
		"invalid_request", "unauthorized_client", "unsupported_response_type", "invalid_scope",
		"server_error", "temporarily_unavailable", "account_selection_required":
		return "upstream_" + code
	}
	return "upstream_error"
}
