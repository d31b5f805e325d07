package oauth

// Reason says why a request was refused, from a closed set: it is logged,
// audited (detail "reason") and counted under that name, and its plain
// words (Reason.Text) tell the user and the operator what went wrong and
// what to do. The OAuth error code stays what the specifications require;
// the reason is the finer, stable explanation.
type Reason string

// Refusal reasons. Keep README "Refusal reasons" in step.
const (
	ReasonRequestMalformed      Reason = "request_malformed"
	ReasonClientIDMissing       Reason = "client_id_missing"
	ReasonClientUnknown         Reason = "client_unknown"
	ReasonClientDisabled        Reason = "client_disabled"
	ReasonClientAuthFailed      Reason = "client_auth_failed"
	ReasonAuthMethodRefused     Reason = "auth_method_refused"
	ReasonClientAssertion       Reason = "client_assertion_invalid"
	ReasonClientKeysUnusable    Reason = "client_keys_unusable"
	ReasonClientKeysUnavailable Reason = "client_keys_unavailable"
	ReasonCIMDClientIDInvalid   Reason = "cimd_client_id_invalid"
	ReasonCIMDHostUntrusted     Reason = "cimd_host_untrusted"
	ReasonCIMDAddressForbidden  Reason = "cimd_address_forbidden"
	ReasonCIMDDocumentTooLarge  Reason = "cimd_document_too_large"
	ReasonCIMDFetchRateLimited  Reason = "cimd_fetch_rate_limited"
	ReasonCIMDFetchFailed       Reason = "cimd_fetch_failed"
	ReasonCIMDDocumentInvalid   Reason = "cimd_document_invalid"
	ReasonRedirectURIMissing    Reason = "redirect_uri_missing"
	ReasonRedirectURIMismatch   Reason = "redirect_uri_mismatch"
	ReasonResponseTypeInvalid   Reason = "response_type_invalid"
	ReasonPKCEMissing           Reason = "pkce_missing"
	ReasonPKCEInvalid           Reason = "pkce_invalid"
	ReasonPKCEMismatch          Reason = "pkce_mismatch"
	ReasonScopeInvalid          Reason = "scope_invalid"
	ReasonScopeExceedsGrant     Reason = "scope_exceeds_grant"
	ReasonResourceInvalid       Reason = "resource_invalid"
	ReasonResourceUnknown       Reason = "resource_unknown"
	ReasonResourceMismatch      Reason = "resource_mismatch"
	ReasonResourceGone          Reason = "resource_gone"
	ReasonLoginRequired         Reason = "login_required"
	ReasonConsentRequired       Reason = "consent_required"
	ReasonEmailUnverified       Reason = "email_unverified"
	ReasonConsentFormInvalid    Reason = "consent_form_invalid"
	ReasonGrantTypeUnsupported  Reason = "grant_type_unsupported"
	ReasonGrantTypeNotAllowed   Reason = "grant_type_not_allowed"
	ReasonCodeInvalid           Reason = "code_invalid"
	ReasonCodeReused            Reason = "code_reused"
	ReasonCodeWrongClient       Reason = "code_wrong_client"
	ReasonRefreshInvalid        Reason = "refresh_invalid"
	ReasonRefreshReused         Reason = "refresh_reused"
	ReasonRefreshWrongClient    Reason = "refresh_wrong_client"
	ReasonDPoPProofInvalid      Reason = "dpop_proof_invalid"
	ReasonDPoPNonceRequired     Reason = "dpop_nonce_required"
	ReasonDPoPKeyMismatch       Reason = "dpop_key_mismatch"
	ReasonGrantExpired          Reason = "grant_expired"
	ReasonRegistrationInvalid   Reason = "registration_invalid"
	ReasonRegistrationRedirect  Reason = "redirect_uri_invalid"
	ReasonRegistrationRateLimit Reason = "registration_rate_limited"
	ReasonRegistrationCap       Reason = "registration_client_cap"
	ReasonRegistrationDisabled  Reason = "registration_disabled"
	ReasonRateLimited           Reason = "rate_limited"
	ReasonStorageUnavailable    Reason = "storage_unavailable"
	ReasonServerBusy            Reason = "server_busy"
	ReasonInternalError         Reason = "internal_error"
	ReasonWorkloadTokenInvalid  Reason = "workload_token_invalid"
	ReasonWorkloadUnmapped      Reason = "workload_unmapped"
	ReasonIssuerKeysUnavailable Reason = "issuer_keys_unavailable"
	ReasonIDJAGInvalid          Reason = "id_jag_invalid"
	ReasonIDJAGUntrustedIssuer  Reason = "id_jag_untrusted_issuer"
	ReasonIDJAGWrongClient      Reason = "id_jag_wrong_client"
	ReasonIDJAGReplayed         Reason = "id_jag_replayed"
	ReasonAccountUnmapped       Reason = "enterprise_account_unmapped"
)

// reasonText holds the plain words of each reason: what went wrong, then
// what to do. Never empty (TestEveryReasonHasText).
var reasonText = map[Reason]string{
	ReasonRequestMalformed:      "the request is malformed (a parameter is missing, repeated or invalid); the app must send a valid OAuth request",
	ReasonClientIDMissing:       "the request does not say which app it comes from (client_id); the app must send its client_id",
	ReasonClientUnknown:         "this app is not registered with this server; the app must register again (or the operator must configure it)",
	ReasonClientDisabled:        "this app has been disabled by the operator; ask the operator to enable it",
	ReasonClientAuthFailed:      "the app's credentials were wrong; check the app's client secret",
	ReasonClientAssertion:       "the app's signed client assertion (private_key_jwt) was refused (signature, issuer, audience, expiry or a reused jti); the app must sign a fresh assertion with a key from its published set",
	ReasonClientKeysUnusable:    "the app's published key set (jwks or jwks_uri) is not usable (invalid, too large, private keys, or refused address); the app's developer must fix it",
	ReasonClientKeysUnavailable: "the app's published key set cannot be fetched right now; try again shortly",
	ReasonAuthMethodRefused:     "the app authenticated in a way this server does not accept for it (a secret for a public app, or none for a confidential one); use the method it is registered with",
	ReasonCIMDClientIDInvalid:   "the app's client_id is not a valid metadata document URL; the app's developer must fix it",
	ReasonCIMDHostUntrusted:     "this server does not accept apps whose metadata document is on that host; ask the operator to allow it",
	ReasonCIMDAddressForbidden:  "the app's metadata document URL points to a private or special address, which is never fetched; the app's developer must host it publicly",
	ReasonCIMDDocumentTooLarge:  "the app's metadata document is larger than this server accepts; the app's developer must make it smaller",
	ReasonCIMDFetchRateLimited:  "too many metadata documents were fetched for this app or host just now; try again in a moment",
	ReasonCIMDFetchFailed:       "the app's metadata document could not be fetched; try again later, or the app's developer must make it reachable",
	ReasonCIMDDocumentInvalid:   "the app's metadata document was fetched but is not valid; the app's developer must fix it",
	ReasonRedirectURIMissing:    "the request has no redirect_uri (or several); the app must send exactly one",
	ReasonRedirectURIMismatch:   "the redirect_uri is not one registered for this app; the app must use a registered redirect URI",
	ReasonResponseTypeInvalid:   "only response_type=code is served; the app must use the authorization code flow",
	ReasonPKCEMissing:           "the request has no PKCE code_challenge or code_verifier; the app must use PKCE with S256",
	ReasonPKCEInvalid:           "the PKCE code_challenge is malformed or not S256; the app must send an S256 challenge",
	ReasonPKCEMismatch:          "the code_verifier does not match the code_challenge; sign in again",
	ReasonScopeInvalid:          "a requested scope is unknown or not allowed for this app; request only offered scopes",
	ReasonScopeExceedsGrant:     "the refresh asked for more scopes than were granted; sign in again to grant them",
	ReasonResourceInvalid:       "the resource parameter is not a valid URI; the app must send the MCP server's URL",
	ReasonResourceUnknown:       "the resource (MCP server) is not served by this authorization server, or none was named; the app must name a served MCP server",
	ReasonResourceMismatch:      "the resource does not match the one this grant was made for; use the grant's own resource",
	ReasonResourceGone:          "the MCP server of this grant is no longer served; sign in again",
	ReasonLoginRequired:         "a sign-in is required and the app asked for none (prompt=none); sign in interactively",
	ReasonConsentRequired:       "the user must approve this app and the app asked for no interaction (prompt=none); sign in interactively",
	ReasonEmailUnverified:       "the user must verify their email address first; follow the link in the verification mail",
	ReasonConsentFormInvalid:    "the consent form has expired or is malformed; go back to the app and start the sign-in again",
	ReasonGrantTypeUnsupported:  "the grant_type is missing or not served; use authorization_code or refresh_token",
	ReasonGrantTypeNotAllowed:   "this app may not use this grant type; ask the operator to allow it",
	ReasonCodeInvalid:           "the authorization code is invalid, expired or unknown; sign in again",
	ReasonCodeReused:            "the authorization code was already used (a replay); sign in again",
	ReasonCodeWrongClient:       "the authorization code was issued to another app or redirect URI; sign in again",
	ReasonRefreshInvalid:        "the refresh token is invalid, expired or revoked; sign in again",
	ReasonRefreshReused:         "an old refresh token was used again, so the whole sign-in was revoked as a precaution; sign in again",
	ReasonRefreshWrongClient:    "the refresh token was issued to another app; sign in again",
	ReasonDPoPProofInvalid:      "the DPoP proof was refused (type, algorithm, key, signature, method, URL, age or a reused jti); the app must send a fresh proof for this request",
	ReasonDPoPNonceRequired:     "this server requires its DPoP nonce in the proof; the app must retry with the nonce from the DPoP-Nonce header",
	ReasonDPoPKeyMismatch:       "the refresh token is bound to a DPoP key and the request did not prove it; the app must sign its proof with the same key",
	ReasonGrantExpired:          "the sign-in (grant) has reached its maximum lifetime; sign in again",
	ReasonRegistrationInvalid:   "the registration (client metadata) is invalid; the app must fix what error_description names",
	ReasonRegistrationRedirect:  "a redirect URI of the registration is not acceptable (https, or loopback http, or a private-use scheme; no fragment); the app must register valid redirect URIs",
	ReasonRegistrationRateLimit: "too many registrations were made just now; wait and try again",
	ReasonRegistrationCap:       "too many apps are registered; unused ones expire, try again later",
	ReasonRegistrationDisabled:  "this server does not accept dynamic client registration; the app must sign in with a client ID metadata document (CIMD) or a client the operator configured, or the operator must turn on dcr",
	ReasonRateLimited:           "too many requests came from this address; wait and try again",
	ReasonStorageUnavailable:    "the server's storage is unavailable; try again later (the operator should check the store)",
	ReasonServerBusy:            "the server is busy; try again",
	ReasonInternalError:         "an internal error occurred; try again, and tell the operator if it persists",
	ReasonWorkloadTokenInvalid:  "the workload token used as client assertion was refused (signature, issuer, audience or expiry); the agent must present a fresh token of a trusted workload issuer with this server as audience",
	ReasonWorkloadUnmapped:      "the workload token is valid but its subject is not mapped to a client; ask the operator to map it (workload_issuer, client)",
	ReasonIssuerKeysUnavailable: "the signing keys of the trusted issuer (enterprise IdP or workload issuer) cannot be fetched right now; try again shortly",
	ReasonIDJAGInvalid:          "the identity assertion grant (ID-JAG) was refused (type, signature, audience, expiry, resource or claims); the app must obtain a fresh ID-JAG from the enterprise IdP for this server",
	ReasonIDJAGUntrustedIssuer:  "the identity assertion grant (ID-JAG) comes from an IdP this server does not trust; ask the operator to configure it (enterprise_idp)",
	ReasonIDJAGWrongClient:      "the identity assertion grant (ID-JAG) was issued to another app, or this app may not use that IdP; the app must use its own ID-JAG",
	ReasonIDJAGReplayed:         "the identity assertion grant (ID-JAG) was already used (a replay); the app must obtain a fresh one",
	ReasonAccountUnmapped:       "the enterprise user has no account here and the IdP's policy does not create one; ask the operator to provision the user or turn on provisioning",
}

// Text is the plain-words explanation of r ("" for a reason outside the set).
func (r Reason) Text() string { return reasonText[r] }

// Known reports whether r is in the closed set.
func (r Reason) Known() bool { _, ok := reasonText[r]; return ok }

// Reasons returns the closed set (for metrics label sets and docs).
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasonText))
	for r := range reasonText {
		out = append(out, r)
	}
	return out
}

// Because sets e's reason and returns e.
func (e *Error) Because(r Reason) *Error {
	e.Reason = r
	return e
}

// Plain sets e's reason and makes its description the reason's plain
// words, followed by the safe detail when there is one.
func (e *Error) Plain(r Reason, detail string) *Error {
	e.Reason = r
	e.Description = r.Text()
	if detail != "" {
		e.Description += " (" + detail + ")"
	}
	return e
}

// ReasonOf returns e's reason, or one derived from its code for an error
// built without one: every refusal has a reason from the closed set.
func ReasonOf(e *Error) Reason {
	if e.Reason.Known() {
		return e.Reason
	}
	switch e.Code {
	case CodeInvalidClient:
		return ReasonClientAuthFailed
	case CodeInvalidGrant:
		return ReasonCodeInvalid
	case CodeUnauthorizedClient:
		return ReasonGrantTypeNotAllowed
	case CodeUnsupportedGrantType:
		return ReasonGrantTypeUnsupported
	case CodeUnsupportedResponseType:
		return ReasonResponseTypeInvalid
	case CodeInvalidScope:
		return ReasonScopeInvalid
	case CodeInvalidTarget:
		return ReasonResourceInvalid
	case CodeLoginRequired:
		return ReasonLoginRequired
	case CodeConsentRequired, CodeInteractionRequired:
		return ReasonConsentRequired
	case CodeServerError:
		return ReasonInternalError
	case CodeTemporarilyUnavailable:
		return ReasonStorageUnavailable
	case CodeInvalidRedirectURI:
		return ReasonRegistrationRedirect
	case CodeInvalidClientMetadata:
		return ReasonRegistrationInvalid
	}
	return ReasonRequestMalformed
}
