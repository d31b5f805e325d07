// Package authserver is the OAuth 2.1 authorization server of caddy-mcpauth,
// a plain http.Handler that knows nothing of Caddy.
//
// It serves, on the issuer's origin (under Config.PathPrefix when set):
//
//	/.well-known/oauth-authorization-server[/issuer-path]  RFC 8414 metadata (path-inserted, §3.1)
//	/authorize   authorization code + PKCE S256 (GET; POST only for the consent form)
//	/token       authorization_code and refresh_token grants; client_credentials
//	             and the ID-JAG jwt-bearer grant when configured (client auth:
//	             none, client_secret_basic/post, private_key_jwt, workload tokens)
//	/revoke      RFC 7009 revocation
//	/jwks.json   the public signing keys
//	/register    RFC 7591 registration, only when Config.Registration is set
//
// /.well-known/openid-configuration is deliberately NOT served (it answers a
// JSON 404, as every other discovery spelling on the origin, see
// Server.OwnsDiscovery): this server
// issues no ID tokens and has no userinfo endpoint, so an OpenID Provider
// configuration would advertise what is not served (requirement 1: "only if
// it is complete and valid"). Clients that probe it get a 404 and fall back to
// RFC 8414 metadata, as the MCP authorization specification prescribes.
//
// The rules every lane shares (the OAuth error values and refusal reasons,
// grant and auth-method names, the redirect-URI policy, the consent
// fingerprint, which ids are CIMD ids) live once in the leaf package
// authserver/oauth; dcr and cimd use the same package.
//
// Errors are *oauth.Error values written in one place (errors.go). The split between
// errors shown to the user and errors redirected to the client follows
// RFC 9700 §4.11.2 and requirement 4: a bad client_id or redirect_uri is never
// redirected; for third-party clients (CIMD, DCR) neither is any error raised
// before the user has signed in.
//
// Documented choices (requirements 2-10, 13):
//
//   - redirect_uri is required on every authorization request, also for
//     clients with a single registered URI. At /token it is optional (OAuth
//     2.1 §4.1.3): the code is bound to the authorization request's redirect
//     URI and PKCE to that request; when sent, it must equal that URI exactly.
//   - An authorization request's path and query are at most 4 KiB (it must
//     survive the round trip through the hosted login as ReturnTo).
//   - An authorization request is a GET; POST /authorize is only the consent
//     form posting back to the request's own URL (the request parameters are
//     re-read and re-validated from its query).
//   - prompt=login and an exceeded max_age send the browser to the hosted login
//     with ForceLogin; the return URL drops prompt=login and max_age so the
//     fresh sign-in is not asked for again in a loop.
//   - A failed check at /token (client binding, redirect_uri, PKCE, resource)
//     burns the code. Syntax errors found before the store is touched (missing
//     code or code_verifier, duplicated parameters) leave it redeemable.
//   - A replayed code whose client and verifier are valid revokes the grant
//     the first redemption produced; a replay with a wrong verifier or from
//     another client revokes nothing. Both answer invalid_grant.
//   - A refresh token is issued to every client allowed the refresh_token
//     grant (MCP clients rarely ask for offline_access but expect one).
//   - Refresh tokens rotate on every use. The rotated-out token may be
//     redeemed once more within Config.RefreshGrace (default 60s; a client
//     that lost the response); any other use of a token of the family is
//     reuse and revokes the grant (requirements 9 and 37, decided by
//     storage.RotateGrant in the store's transaction).
//   - Confidential owned clients authenticate with client_secret_basic or
//     client_secret_post (either; never both in one request). Secrets are
//     stored as argon2id PHC strings (idp/password, as account passwords); at most four
//     verifications run at once (19 MiB each), so a flood of guesses cannot
//     exhaust memory.
//   - private_key_jwt (RFC 7523 §2.2, requirement 22): CIMD clients whose
//     document declares it and owned clients with jwks/jwks_uri send a
//     client_assertion at /token and /revoke; the registered method decides
//     (no downgrade to none). One verifier (assertion.go: VerifyAssertion,
//     with issuer, audiences and key source as parameters, for later
//     assertion grants too) and one remote key source (keysource.go:
//     RemoteKeys, JWK sets fetched through Config.JWKSFetcher, the CIMD
//     fetcher). Every bad assertion is 401 invalid_client; the jti is
//     recorded in the store (storage.Replays) only when all else holds.
//   - The same verifier serves ID-JAGs (idjag.go, requirement 24) and
//     workload tokens as client assertions (machine.go, requirement 23);
//     the trusted issuers' keys come from the guard's one remote key source
//     (resourceguard.RemoteKeySource: discovered, refreshed in the
//     background, kept through outages and, with Config.IssuerKeyStore,
//     restarts; issuerkeys.go, Config.IssuerClient).
//   - /revoke answers 400 unauthorized_client and changes nothing when the
//     token belongs to another client (RFC 7009 §2.1 "refuses"); unknown,
//     expired or already revoked tokens answer 200; a storage failure 503.
//   - Audit events are appended by a background writer in batches so that a
//     code exchange costs exactly one write transaction on the request path.
package authserver
