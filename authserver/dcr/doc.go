// Package dcr implements the narrowed OAuth 2.0 Dynamic Client Registration
// (RFC 7591) of caddy-mcpauth: requirement 12 of the project's requirements.
//
// It is a set of pure building blocks the authorization server's /register
// handler calls; it does no I/O and stores nothing:
//
//   - ValidateRegistration turns a registration request body into the
//     storage.Client to create, or an *oauth.Error carrying the RFC 7591 §3.2.2
//     code (invalid_redirect_uri or invalid_client_metadata) and a safe
//     description. Only public clients (token_endpoint_auth_method "none")
//     using authorization_code (and optionally refresh_token) with
//     response type "code" are accepted; PKCE is enforced at /authorize.
//   - redirect URIs follow the one policy of every lane
//     (oauth.CheckRedirectURI) with the operator's private-use scheme
//     options; several kinds in one registration are accepted (Cursor sends
//     a cursor://, an https and a loopback URI together).
//   - NewClientID mints "dcr_" + 128 random bits; ids never start with
//     "https://" (draft-ietf-oauth-client-id-metadata-document §7.1), so they
//     are never confused with CIMD client ids.
//   - RegistrationResponse renders the RFC 7591 §3.2.1 response (no secret).
//   - the returned client carries its consent fingerprint
//     (oauth.Fingerprint); a change asks for fresh consent.
//
// Rate limiting, audit and expiry of unused clients are the caller's job.
package dcr
