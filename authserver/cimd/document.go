package cimd

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/dcr"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/jsonobject"
	"github.com/mcpauth/caddy-mcpauth/internal/jwsalg"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// maxDocRedirectURIs caps redirect_uris in a metadata document.
const maxDocRedirectURIs = 20

// sharedSecretMethods are token endpoint auth methods built on a shared
// symmetric secret (draft §4.1: MUST NOT be used). Any other method
// starting with "client_secret" is treated the same.
var sharedSecretMethods = map[string]bool{
	"client_secret_post":  true,
	"client_secret_basic": true,
	"client_secret_jwt":   true,
}

// ValidateDocument checks a fetched Client ID Metadata Document (draft §4)
// for clientID and returns the public client it describes. It does no I/O
// and does not check clientID itself (see ValidClientIDURL).
//
// Rules, in order:
//   - one JSON object, UTF-8, no duplicate members, nothing after it;
//   - "client_id" is a string equal to clientID (plain string comparison,
//     RFC 3986 §6.2.1: no normalization);
//   - no "client_secret" or "client_secret_expires_at" (draft §4.1);
//   - no private key material in "jwks" (draft §4.1);
//   - token endpoint authentication (checkAuthMethod): "none" (absent
//     counts as "none") or "private_key_jwt" (RFC 7523 §2.2) with exactly
//     one of "jwks_uri" (https) and "jwks", and an optional
//     "token_endpoint_auth_signing_alg" among ES256, ES384, EdDSA, PS256,
//     RS256. The "token_endpoint_auth_method" string decides: ChatGPT
//     declares private_key_jwt while its "token_endpoint_auth_methods_supported"
//     lists ["none","private_key_jwt"], and gets private_key_jwt (no silent
//     downgrade). Without the string, a list containing "none" means none,
//     one naming private_key_jwt but not none means private_key_jwt.
//     Shared-secret methods are refused (the draft forbids them);
//   - "redirect_uris": non-empty array of strings, each https, loopback
//     http or a private-use scheme (oauth.CheckRedirectURI), at most 20;
//   - "client_name": non-empty string, at most 200 bytes, no control or
//     formatting characters;
//   - "grant_types" (default [authorization_code]) must contain
//     authorization_code; other grants (Claude lists jwt-bearer) are
//     ignored, and the client gets authorization_code plus refresh_token
//     when listed;
//   - "response_types" (default [code]) must contain "code"; others are
//     ignored since only "code" is served;
//   - "logo_uri" and "client_uri" are kept when they are https URLs,
//     silently dropped otherwise. "scope" is ignored: the server's scope
//     policy applies at /authorize.
//
// Errors wrap ErrInvalidDocument with a short reason that names at most a
// field and a recognised method; document content is never echoed.
func ValidateDocument(clientID string, raw []byte) (storage.Client, error) {
	m, err := jsonobject.Decode(raw)
	if err != nil {
		return storage.Client{}, invalidDoc("document: " + err.Error())
	}

	var id string
	if !present(m["client_id"]) {
		return storage.Client{}, invalidDoc("client_id is missing")
	}
	if json.Unmarshal(m["client_id"], &id) != nil {
		return storage.Client{}, invalidDoc("client_id must be a string")
	}
	if id != clientID {
		return storage.Client{}, invalidDoc("client_id does not match the document url")
	}
	if _, ok := m["client_secret"]; ok {
		return storage.Client{}, invalidDoc("client_secret must not be present")
	}
	if _, ok := m["client_secret_expires_at"]; ok {
		return storage.Client{}, invalidDoc("client_secret_expires_at must not be present")
	}
	if present(m["jwks"]) && hasPrivateKey(m["jwks"]) {
		return storage.Client{}, invalidDoc("jwks must not contain private key material")
	}
	auth, err := checkAuthMethod(m)
	if err != nil {
		return storage.Client{}, err
	}

	// redirect_uris
	if !present(m["redirect_uris"]) {
		return storage.Client{}, invalidDoc("redirect_uris is missing")
	}
	var uris []string
	if json.Unmarshal(m["redirect_uris"], &uris) != nil {
		return storage.Client{}, invalidDoc("redirect_uris must be an array of strings")
	}
	if len(uris) == 0 {
		return storage.Client{}, invalidDoc("redirect_uris must not be empty")
	}
	if len(uris) > maxDocRedirectURIs {
		return storage.Client{}, invalidDoc("too many redirect_uris")
	}
	clean := make([]string, 0, len(uris))
	for i, u := range uris {
		if _, err := oauth.CheckRedirectURI(u, oauth.CIMDRedirects); err != nil {
			return storage.Client{}, invalidDoc("redirect_uris[" + strconv.Itoa(i) + "]: " + oauth.AsError(err).Description)
		}
		if !slices.Contains(clean, u) {
			clean = append(clean, u)
		}
	}

	// client_name
	if !present(m["client_name"]) {
		return storage.Client{}, invalidDoc("client_name is missing")
	}
	var name string
	if json.Unmarshal(m["client_name"], &name) != nil {
		return storage.Client{}, invalidDoc("client_name must be a string")
	}
	name, err = dcr.CheckClientName(name)
	if err != nil {
		return storage.Client{}, invalidDoc("document: " + err.Error())
	}
	if name == "" {
		return storage.Client{}, invalidDoc("client_name is empty")
	}

	// grant_types
	grants := []string{oauth.GrantAuthorizationCode}
	if present(m["grant_types"]) {
		var gs []string
		if json.Unmarshal(m["grant_types"], &gs) != nil {
			return storage.Client{}, invalidDoc("grant_types must be an array of strings")
		}
		if !slices.Contains(gs, oauth.GrantAuthorizationCode) {
			return storage.Client{}, invalidDoc("grant_types must include authorization_code")
		}
		if slices.Contains(gs, oauth.GrantRefreshToken) {
			grants = append(grants, oauth.GrantRefreshToken)
		}
		if slices.Contains(gs, oauth.GrantClientCredentials) {
			// Kept only for hosts the operator marks for machine use
			// (the authorization server's CIMD policy).
			grants = append(grants, oauth.GrantClientCredentials)
		}
	}

	// response_types
	if present(m["response_types"]) {
		var rs []string
		if json.Unmarshal(m["response_types"], &rs) != nil {
			return storage.Client{}, invalidDoc("response_types must be an array of strings")
		}
		if !slices.Contains(rs, oauth.ResponseTypeCode) {
			return storage.Client{}, invalidDoc("response_types must include code")
		}
	}

	c := storage.Client{
		ID:                          clientID,
		Kind:                        storage.ClientCIMD,
		Name:                        name,
		RedirectURIs:                clean,
		GrantTypes:                  grants,
		TokenEndpointAuthMethod:     auth.method,
		JWKSURI:                     auth.jwksURI,
		JWKS:                        auth.jwks,
		TokenEndpointAuthSigningAlg: auth.alg,
		LogoURI:                     httpsURL(m["logo_uri"]),
		ClientURI:                   httpsURL(m["client_uri"]),
	}
	c.Fingerprint = oauth.Fingerprint(c)
	if present(m["software_id"]) {
		var sid string
		if json.Unmarshal(m["software_id"], &sid) == nil && len(sid) <= 200 {
			if _, err := dcr.CheckClientName(sid); err == nil {
				c.SoftwareID = sid
			}
		}
	}
	return c, nil
}

// authMethod is the token endpoint authentication a document asks for.
type authMethod struct {
	method  string // "none" or "private_key_jwt"
	jwksURI string
	jwks    json.RawMessage
	alg     string
}

// checkAuthMethod applies the token endpoint authentication rules. The
// "token_endpoint_auth_method" string decides (requirement 22: a client
// that declares private_key_jwt authenticates with it, never silently as
// none, even when its list also names none); without it, a list that
// contains none means none, and a list that names private_key_jwt but not
// none means private_key_jwt.
func checkAuthMethod(m map[string]json.RawMessage) (authMethod, error) {
	none := authMethod{method: oauth.AuthMethodNone}
	var methods []string
	single := ""
	if raw := m["token_endpoint_auth_method"]; present(raw) {
		if json.Unmarshal(raw, &single) != nil {
			if json.Unmarshal(raw, &methods) != nil {
				return none, invalidDoc("token_endpoint_auth_method must be a string")
			}
			single = ""
		}
	}
	if raw := m["token_endpoint_auth_methods_supported"]; present(raw) {
		var list []string
		if json.Unmarshal(raw, &list) != nil {
			return none, invalidDoc("token_endpoint_auth_methods_supported must be an array of strings")
		}
		methods = append(methods, list...)
	}
	for _, x := range append([]string{single}, methods...) {
		if sharedSecretMethods[x] || strings.HasPrefix(x, "client_secret") {
			return none, invalidDoc("token endpoint auth method " + methodName(x) +
				" uses a shared secret, which a metadata document must not declare")
		}
	}
	switch {
	case single == oauth.AuthMethodNone:
		return none, nil
	case single == oauth.AuthMethodPrivateKeyJWT:
		return privateKeyJWT(m)
	case single != "":
		return none, invalidDoc("token endpoint auth method " + methodName(single) +
			" is not supported: this server accepts none and private_key_jwt")
	case len(methods) == 0 || slices.Contains(methods, oauth.AuthMethodNone):
		return none, nil
	case slices.Contains(methods, oauth.AuthMethodPrivateKeyJWT):
		return privateKeyJWT(m)
	}
	return none, invalidDoc("token endpoint auth methods " + methodNames(methods) +
		" include neither none nor private_key_jwt")
}

// privateKeyJWT reads the keys of a private_key_jwt client: exactly one of
// "jwks_uri" (an https URL, fetched under the Fetcher's rules when used) and
// "jwks" (an inline set of public keys, checked when used); an optional
// "token_endpoint_auth_signing_alg" among the asymmetric algorithms served.
func privateKeyJWT(m map[string]json.RawMessage) (authMethod, error) {
	a := authMethod{method: oauth.AuthMethodPrivateKeyJWT}
	hasURI, hasSet := present(m["jwks_uri"]), present(m["jwks"])
	switch {
	case hasURI && hasSet:
		return a, invalidDoc("jwks_uri and jwks must not both be present")
	case !hasURI && !hasSet:
		return a, invalidDoc("private_key_jwt needs jwks_uri or jwks")
	case hasURI:
		if json.Unmarshal(m["jwks_uri"], &a.jwksURI) != nil {
			return a, invalidDoc("jwks_uri must be a string")
		}
		if err := checkJWKSURI(a.jwksURI); err != nil {
			return a, err
		}
	default:
		a.jwks = append(json.RawMessage(nil), m["jwks"]...)
	}
	if raw := m["token_endpoint_auth_signing_alg"]; present(raw) {
		if json.Unmarshal(raw, &a.alg) != nil {
			return a, invalidDoc("token_endpoint_auth_signing_alg must be a string")
		}
		if !jwsalg.Allowed(a.alg) { // the algorithms assertions are verified with
			return a, invalidDoc("token_endpoint_auth_signing_alg " + methodName(a.alg) + " is not supported")
		}
	}
	return a, nil
}

// checkJWKSURI checks the form of a jwks_uri: https, a host, no userinfo,
// no fragment, at most 2048 bytes, no control characters. Where it may
// point (public addresses only) is decided when it is fetched.
func checkJWKSURI(s string) error {
	if len(s) > 2048 || !strings.HasPrefix(s, "https://") || strings.ContainsAny(s, "#\\ \t\r\n") {
		return invalidDoc("jwks_uri must be an https URL")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return invalidDoc("jwks_uri must be an https URL")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return invalidDoc("jwks_uri must be an https URL")
		}
	}
	return nil
}

// methodName renders a method name when it is a short registry-like token.
func methodName(s string) string {
	if s == "" || len(s) > 64 {
		return "(unrecognized)"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return "(unrecognized)"
		}
	}
	return strconv.Quote(s)
}

func methodNames(ms []string) string {
	if len(ms) > 4 {
		ms = ms[:4]
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = methodName(m)
	}
	return strings.Join(out, ", ")
}

// hasPrivateKey reports whether a JWK set carries private members.
func hasPrivateKey(raw json.RawMessage) bool {
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(raw, &set) != nil {
		return true // not a JWK set: refuse rather than guess
	}
	for _, k := range set.Keys {
		for _, member := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := k[member]; ok {
				return true
			}
		}
	}
	return false
}

// httpsURL returns the member when it is an https URL dcr would accept as
// a redirect (no userinfo, fragment, control characters), else "".
func httpsURL(raw json.RawMessage) string {
	if !present(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || !strings.HasPrefix(s, "https://") {
		return ""
	}
	if k, err := oauth.CheckRedirectURI(s, oauth.WebRedirects); err != nil || k != oauth.RedirectHTTPS {
		return ""
	}
	return s
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// stamp sets the time fields of a resolved client.
func stamp(c storage.Client, t time.Time) storage.Client {
	c.CreatedAt, c.UpdatedAt = t, t
	return c
}
