package cimd

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/dcr"
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
//   - token endpoint authentication (this server serves public clients
//     only): a "token_endpoint_auth_method" string must be "none"
//     (absent counts as "none"); "private_key_jwt" is refused because the
//     draft then requires client authentication, shared-secret methods
//     because the draft forbids them. A list of methods (as
//     "token_endpoint_auth_methods_supported", which ChatGPT publishes as
//     ["none","private_key_jwt"], or a non-standard array in
//     "token_endpoint_auth_method") is accepted as "none" when it contains
//     "none" and no shared-secret method;
//   - "redirect_uris": non-empty array of strings, each https, loopback
//     http or a private-use scheme (dcr.CheckRedirectURI), at most 20;
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
	m, err := dcr.DecodeObject(raw)
	if err != nil {
		return storage.Client{}, invalidDoc(err.Error())
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
	if err := checkAuthMethod(m); err != nil {
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
	policy := dcr.RedirectPolicy{AllowPrivateSchemes: true}
	clean := make([]string, 0, len(uris))
	for i, u := range uris {
		if _, err := dcr.CheckRedirectURI(u, policy); err != nil {
			return storage.Client{}, invalidDoc("redirect_uris[" + strconv.Itoa(i) + "]: " +
				strings.TrimPrefix(err.Error(), dcr.ErrRedirectURI.Error()+": "))
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
		return storage.Client{}, invalidDoc(err.Error())
	}
	if name == "" {
		return storage.Client{}, invalidDoc("client_name is empty")
	}

	// grant_types
	grants := []string{dcr.GrantAuthorizationCode}
	if present(m["grant_types"]) {
		var gs []string
		if json.Unmarshal(m["grant_types"], &gs) != nil {
			return storage.Client{}, invalidDoc("grant_types must be an array of strings")
		}
		if !slices.Contains(gs, dcr.GrantAuthorizationCode) {
			return storage.Client{}, invalidDoc("grant_types must include authorization_code")
		}
		if slices.Contains(gs, dcr.GrantRefreshToken) {
			grants = append(grants, dcr.GrantRefreshToken)
		}
	}

	// response_types
	if present(m["response_types"]) {
		var rs []string
		if json.Unmarshal(m["response_types"], &rs) != nil {
			return storage.Client{}, invalidDoc("response_types must be an array of strings")
		}
		if !slices.Contains(rs, dcr.ResponseTypeCode) {
			return storage.Client{}, invalidDoc("response_types must include code")
		}
	}

	c := storage.Client{
		ID:                      clientID,
		Kind:                    storage.ClientCIMD,
		Name:                    name,
		RedirectURIs:            clean,
		GrantTypes:              grants,
		TokenEndpointAuthMethod: dcr.AuthMethodNone,
		Fingerprint:             dcr.Fingerprint(name, clean),
		LogoURI:                 httpsURL(m["logo_uri"]),
		ClientURI:               httpsURL(m["client_uri"]),
	}
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

// checkAuthMethod applies the token endpoint authentication rules.
func checkAuthMethod(m map[string]json.RawMessage) error {
	var methods []string
	single := ""
	if raw := m["token_endpoint_auth_method"]; present(raw) {
		if json.Unmarshal(raw, &single) != nil {
			if json.Unmarshal(raw, &methods) != nil {
				return invalidDoc("token_endpoint_auth_method must be a string")
			}
			single = ""
		}
	}
	if raw := m["token_endpoint_auth_methods_supported"]; present(raw) {
		var list []string
		if json.Unmarshal(raw, &list) != nil {
			return invalidDoc("token_endpoint_auth_methods_supported must be an array of strings")
		}
		methods = append(methods, list...)
	}
	for _, x := range append([]string{single}, methods...) {
		if sharedSecretMethods[x] || strings.HasPrefix(x, "client_secret") {
			return invalidDoc("token endpoint auth method " + methodName(x) +
				" uses a shared secret, which a metadata document must not declare")
		}
	}
	if single != "" {
		if single == dcr.AuthMethodNone {
			return nil
		}
		return invalidDoc("token endpoint auth method " + methodName(single) +
			" is not supported: this server accepts public clients (none) only")
	}
	if len(methods) == 0 || slices.Contains(methods, dcr.AuthMethodNone) {
		return nil
	}
	return invalidDoc("token endpoint auth methods " + methodNames(methods) +
		" do not include none: this server accepts public clients only")
}

// methodName renders a method name when it is a short registry-like token.
func methodName(s string) string {
	if s == "" || len(s) > 64 {
		return "(unrecognized)"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
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
	if k, err := dcr.CheckRedirectURI(s, dcr.RedirectPolicy{}); err != nil || k != dcr.RedirectHTTPS {
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
