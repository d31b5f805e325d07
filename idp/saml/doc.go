// Package saml is an upstream SAML 2.0 identity provider for the hosted
// login (package idp): "Sign in with <company IdP>" for Okta, Entra ID,
// Keycloak, ADFS, Google Workspace or any SAML 2.0 IdP.
//
// It implements idp.Provider with github.com/crewjam/saml (signature
// verification through github.com/russellhaering/goxmldsig >= 1.6.0,
// decryption, Destination, InResponseTo, issuer and validity checks) and
// adds what crewjam leaves open (requirement 17):
//
//   - SP-initiated login only. Begin sends an AuthnRequest (signed,
//     RSA-SHA256) with the HTTP-Redirect binding when the IdP's metadata
//     offers it, else HTTP-POST (an auto-submitting form with a nonce'd
//     script under a strict CSP).
//   - The request id is bound to the browser: Begin sets the cookie
//     __Host-mcpauth_saml_<name> holding a random 256-bit key; a single-use
//     storage.Ticket (kind "saml.request") stored under the key's SHA-256
//     holds the request id and the idp attempt. The ACS takes the ticket
//     (once) and accepts only a response to that request id. A response to a
//     request we never sent, a replayed response and an IdP-initiated
//     (unsolicited) response are refused.
//   - The IdP's response reaches the ACS by a cross-site POST, which does not
//     carry SameSite=Lax cookies. The binding cookie is therefore
//     SameSite=None; Secure; HttpOnly; it is the only SameSite=None cookie
//     of the hosted login, holds nothing but the random key, and is cleared
//     at the ACS.
//   - Signed assertions are required: the response's own signature is
//     ignored unless Config.AcceptResponseSignature, so the assertion must
//     carry a valid signature by a certificate of the IdP metadata.
//   - Signature wrapping: the response must hold exactly one assertion
//     (plain or encrypted) anywhere in the document, and the identity is
//     read from the element goxmldsig verified.
//   - An AudienceRestriction is required and must name our entity id
//     (crewjam accepts an assertion without one).
//   - A bearer SubjectConfirmation with our request id, our ACS as
//     Recipient and an unexpired NotOnOrAfter is required; Conditions and
//     IssueInstant are checked against Config.Now with a two-minute skew.
//   - IdP metadata and its single sign-on URLs must be https (http only on
//     loopback, for development and tests).
//
// Every refusal goes through idp.Completer.FailUpstream with a short audit
// reason (binding_cookie_missing, request_unknown, request_id_mismatch,
// assertion_unsigned, signature_invalid, assertion_count, audience_missing,
// audience_mismatch, assertion_expired, ...); no session is created.
//
// The SP key pair (signing AuthnRequests, decrypting assertions) comes from
// the configuration, or is generated once (RSA 2048, self-signed) and
// persisted through a KeyStore: certmagic.Storage (Caddy's storage) fits
// the interface as is, DirKeyStore is a local directory.
//
// Routes, under the idp's provider root {public URL}{prefix}/login/{name}:
//
//	GET  /metadata   our SP metadata (entity id, ACS, certificate) for the IdP
//	POST /acs        the assertion consumer service (HTTP-POST binding)
//
// The package registers the upstream kind "saml" (idp.RegisterKind) in
// init. Options (options.go) is the operator's configuration: the JSON of
// login.saml and the lines of the Caddyfile's saml block (SetOption, one
// subdirective per field); the kind's Build turns it into a Config and calls
// New.
package saml
