// Package resourceguard turns any HTTP upstream (typically an unmodified MCP
// server) into an OAuth 2.x protected resource.
//
// It is responsible for, in request order:
//
//   - Request header limits (hygiene.go): more than MaxHeaders fields or
//     MaxHeaderBytes of them is refused with 431 before any other check.
//   - Protected Resource Metadata (RFC 9728, prm.go): the JSON document that tells
//     clients which authorization server protects this resource, served at the
//     path-inserted URL /.well-known/oauth-protected-resource<resource path> and at
//     the root /.well-known/oauth-protected-resource, CORS-open (no credentials).
//     Any other path with a /.well-known/ segment that reaches the guard is a
//     JSON 404 {"error":"not_found"} before the token check (requirement 28).
//   - The Origin check (origin.go): a present Origin header that is not allowed
//     is refused with 403 (DNS rebinding defence, MCP transport specification).
//   - Bearer token extraction (bearer.go, RFC 6750 §2.1): tokens are accepted
//     only from a single Authorization header; a token in the query string is
//     refused with 401 invalid_request (with the challenge), two
//     Authorization headers with 400 invalid_request;
//     the query is scanned for access_token in every spelling an upstream
//     might read (";" separators, percent-encoding, "access.token", any case).
//     Every cheap syntactic check runs before any cryptography.
//   - JWT access token verification (verify.go, RFC 9068 and the JWT BCP RFC
//     8725): a fixed algorithm allow-list, the key chosen by kid from a KeySource
//     only (never jku, x5u, jwk or x5c from the token), the algorithm taken from
//     the key (never from the token), exact iss, aud containing this resource,
//     exp/nbf/iat with a small leeway, typ at+jwt for our own issuer, and an
//     optional revocation check on every request.
//   - A bounded cache of verified tokens (cache.go), keyed by SHA-256 of the
//     token, flushed when the key set changes, never caching a failure.
//   - The JSON-RPC body (scopes.go, jsonscan.go), read when the policy depends
//     on the method or tool, or the request declares MCP 2026-07-28: bounded
//     (413 over MaxBodyBytes, never partly parsed), gzip/deflate decompressed
//     for reading and forwarded as sent, scanned in one validating pass that
//     decodes only method, id and params.name/uri. Mcp-Method and Mcp-Name
//     (=?base64?…?= decoded) must agree with it, else 400 with JSON-RPC
//     -32020 (mcpheaders.go, requirement 26).
//   - Scope checks (scopes.go): per route, and optionally per JSON-RPC method
//     and tool, with a configurable scope hierarchy; ToolPolicy says what a
//     tools/call needs. Per-(subject, tool) rate limits (toollimits.go).
//   - Scope-filtered tools/list (toolslist.go, requirement 31): the result
//     (JSON, or the SSE event carrying it) reaches the client with only the
//     tools its token may call; bounded by MaxToolsListBytes, failing closed.
//   - Challenges (challenge.go, RFC 6750 §3 and RFC 9728 §5.1): the
//     WWW-Authenticate header and a small JSON body.
//   - The hand-off upstream (guard.go): the client's Authorization header and
//     the product's own cookies (IsProductCookie; every cookie with
//     StripAllCookies) are removed, and identity headers are set after
//     deleting client-sent copies.
//     Responses are never buffered, so SSE streams pass through (only the
//     response to a tools/list request is filtered, an SSE one event by event).
//   - Remote key discovery (remote.go, RFC 8414 and OpenID Connect Discovery):
//     a JWKS cache for authorization servers other than ours, refreshed in
//     the background (bounded exponential back-off after a failure, an
//     unknown kid refetched at most once a minute) and optionally persisted
//     in a KeySetStore; the request path never waits for the issuer.
//
// The package imports neither Caddy nor the authorization server: it works with
// any standards-compliant authorization server through the KeySource interface.
//
// # Choices
//
//   - When AllowedOrigins is empty, only the resource's own origin is allowed;
//     requests without an Origin header (non-browser clients) are always allowed.
//   - A request with a non-Bearer Authorization scheme is treated as carrying no
//     bearer token (401 without an error attribute). "Bearer" with an empty or
//     syntactically invalid token is an invalid token (401 invalid_token).
//   - When a RevocationChecker is set, a token without a "sid" (grant id) claim
//     is refused: its revocation state cannot be checked (fail closed).
//   - A failure of the key source (other than an unknown key) or of the
//     revocation checker answers 503, never 200 and never 500. While a
//     RemoteKeySource has no key set yet the 503 carries a Retry-After of the
//     time until its next fetch.
//   - CORS on the guarded endpoint is opt-in (Config.CORSOrigins, or
//     Config.CORS for AllowedOrigins): the guard then answers preflights from
//     those origins itself (they carry no token), echoes the requested MCP
//     headers (Mcp-Param-* cannot be listed as a prefix), and exposes
//     WWW-Authenticate, Mcp-Session-Id and DPoP-Nonce (requirement 27). CORS
//     origins also pass the Origin check; "*" is refused for them. Credentials
//     are never allowed. The PRM is always CORS-open.
//   - A token must carry "kid", "exp" and "sub"; the client id is "client_id"
//     (RFC 9068), else "azp"; scopes come from "scope" (space-separated) and
//     "scp" (array or string).
//   - Principal.Scopes are the scopes the token carries, not the scopes implied
//     by the hierarchy; the hierarchy only affects the checks.
package resourceguard
