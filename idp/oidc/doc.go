// Package oidc is an upstream OpenID Connect identity provider for the
// hosted login (package idp): "Sign in with Google / Entra ID / Okta /
// Keycloak / any OpenID Provider".
//
// It implements idp.Provider with github.com/coreos/go-oidc/v3 (discovery,
// ID token signature, iss, aud and exp) and golang.org/x/oauth2
// (authorization code flow with PKCE S256), and adds what those libraries
// leave to the relying party (requirement 17):
//
//   - state, nonce and the PKCE verifier are bound to the browser: Begin sets
//     a cookie holding a random 256-bit key, and derives state, nonce and
//     verifier from it with HMAC-SHA-256. Only the key's SHA-256 is stored
//     (a single-use storage.Ticket of kind "oidc.state" holding the idp
//     attempt id). The callback takes the ticket (once), recomputes state and
//     nonce from the cookie and compares them in constant time. Nothing
//     secret is stored: the store alone cannot complete a login.
//   - The ID token's nonce must equal the one derived for this browser.
//   - azp must equal our client id when present, and must be present when
//     aud has several values (OpenID Connect Core 1.0 §3.1.3.7).
//   - Mix-up defence: the discovery document's issuer must equal the
//     configured issuer (go-oidc), discovery endpoints must be https, and the
//     RFC 9207 "iss" authorization response parameter, when present, must
//     equal the issuer; it is required when the provider advertises
//     authorization_response_iss_parameter_supported.
//
// The binding cookie is __Host-mcpauth_oidc_<name> (Secure, HttpOnly,
// SameSite=Lax, Path=/): the callback is a top-level GET navigation from the
// provider, which carries Lax cookies. Over a loopback http redirect URL
// (development) the __Host- prefix and Secure are dropped.
//
// Every refusal goes through idp.Completer.FailUpstream: the attempt is
// consumed, a "login.failure" audit event carries a short reason code
// (state_unknown, state_mismatch, issuer_mismatch, nonce_mismatch,
// azp_mismatch, audience_mismatch, id_token_expired, ...), the user sees the
// idp's error page and no session is created.
//
// Routes, under the idp's provider root {public URL}{prefix}/login/{name}:
//
//	GET /callback   the redirect URI to register at the provider
//
// The package registers the upstream kind "oidc" (idp.RegisterKind) in
// init. Options (options.go) is the operator's configuration: the JSON of
// login.oidc and the lines of the Caddyfile's oidc block (SetOption, one
// subdirective per field); the kind's Build turns it into a Config and calls
// New.
package oidc
