package authserver

import (
	"net/url"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// Authorization server metadata (RFC 8414; requirement 1). The document is
// generated from what the server actually serves: fields for optional
// endpoints appear only when those endpoints exist.

// WellKnownAuthorizationServer is the RFC 8414 well-known URI suffix.
const WellKnownAuthorizationServer = "/.well-known/oauth-authorization-server"

// MetadataInput is what the server serves, as absolute URLs.
type MetadataInput struct {
	Issuer                string
	AuthorizationEndpoint string
	TokenEndpoint         string
	RevocationEndpoint    string
	// RegistrationEndpoint is "" when dynamic client registration is off.
	RegistrationEndpoint string
	JWKSURI              string
	EndSessionEndpoint   string
	// ScopesSupported are the scopes offered; offline_access is added.
	ScopesSupported []string
	// CIMD: client ID metadata documents are accepted.
	CIMD                 bool
	ServiceDocumentation string
	// ClientCredentials: the client_credentials grant is served (some
	// client may use it).
	ClientCredentials bool
	// IDJAG: the JWT bearer grant with ID-JAGs is served (an enterprise
	// IdP is configured).
	IDJAG bool
}

// BuildMetadata returns the RFC 8414 metadata document.
func BuildMetadata(in MetadataInput) map[string]any {
	// private_key_jwt (RFC 7523 §2.2) is served for every client with keys:
	// inline jwks always, jwks_uri through the CIMD fetcher.
	authMethods := []string{"none", "client_secret_basic", "client_secret_post", oauth.AuthMethodPrivateKeyJWT}
	m := map[string]any{
		"issuer":                                           in.Issuer,
		"authorization_endpoint":                           in.AuthorizationEndpoint,
		"token_endpoint":                                   in.TokenEndpoint,
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"grant_types_supported":                            grantTypesSupported(in),
		"code_challenge_methods_supported":                 []string{PKCEMethodS256},
		"token_endpoint_auth_methods_supported":            authMethods,
		"token_endpoint_auth_signing_alg_values_supported": append([]string(nil), AssertionAlgs...),
		"scopes_supported":                                 scopesWithOffline(in.ScopesSupported),
		"authorization_response_iss_parameter_supported":   true,
	}
	if in.JWKSURI != "" {
		m["jwks_uri"] = in.JWKSURI
	}
	if in.RevocationEndpoint != "" {
		m["revocation_endpoint"] = in.RevocationEndpoint
		m["revocation_endpoint_auth_methods_supported"] = append([]string(nil), authMethods...)
		m["revocation_endpoint_auth_signing_alg_values_supported"] = append([]string(nil), AssertionAlgs...)
	}
	if in.RegistrationEndpoint != "" {
		m["registration_endpoint"] = in.RegistrationEndpoint
	}
	if in.EndSessionEndpoint != "" {
		m["end_session_endpoint"] = in.EndSessionEndpoint
	}
	if in.CIMD {
		m["client_id_metadata_document_supported"] = true
	}
	if in.ServiceDocumentation != "" {
		m["service_documentation"] = in.ServiceDocumentation
	}
	if in.IDJAG {
		m["authorization_grant_profiles_supported"] = []string{GrantProfileIDJAG}
	}
	return m
}

// grantTypesSupported lists the grants served, and only those.
func grantTypesSupported(in MetadataInput) []string {
	g := []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
	if in.ClientCredentials {
		g = append(g, oauth.GrantClientCredentials)
	}
	if in.IDJAG {
		g = append(g, oauth.GrantJWTBearer)
	}
	return g
}

// scopesWithOffline returns scopes without duplicates or empty entries,
// with offline_access appended when missing.
func scopesWithOffline(scopes []string) []string {
	out := make([]string, 0, len(scopes)+1)
	seen := map[string]bool{}
	for _, s := range scopes {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	if !seen["offline_access"] {
		out = append(out, "offline_access")
	}
	return out
}

// MetadataPath returns the path at which the metadata of issuer is served:
// the well-known suffix inserted before the issuer's path (RFC 8414 §3.1),
// e.g. "/.well-known/oauth-authorization-server/tenant" for
// "https://as.example/tenant". A trailing slash of the issuer is dropped.
func MetadataPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return WellKnownAuthorizationServer
	}
	return WellKnownAuthorizationServer + strings.TrimRight(u.EscapedPath(), "/")
}
