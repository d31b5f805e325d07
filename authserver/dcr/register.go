package dcr

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/jsonobject"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Limits on a registration request.
const (
	// MaxRequestBytes caps the JSON body ValidateRegistration accepts. The
	// HTTP handler should read at most this many bytes (plus one, to detect
	// an oversized body).
	MaxRequestBytes = 16 << 10
	// MaxClientNameLength caps client_name, in bytes.
	MaxClientNameLength = 200
	// ClientIDPrefix starts every generated client id.
	ClientIDPrefix = "dcr_"
)

func metadataErr(format string, a ...any) *oauth.Error {
	return oauth.ErrInvalidClientMetadata(fmt.Sprintf(format, a...))
}

func redirectErr(format string, a ...any) *oauth.Error {
	return oauth.ErrInvalidRedirectURI(fmt.Sprintf(format, a...))
}

// Options tune ValidateRegistration. The zero value is the strictest
// setting (no private-use schemes); DefaultOptions is what the server uses
// unless the operator says otherwise.
type Options struct {
	// AllowPrivateSchemes accepts private-use redirect schemes such as
	// cursor:// or vscode:// (RFC 8252 §7.1). Default (DefaultOptions): true.
	AllowPrivateSchemes bool
	// PrivateSchemes, when non-empty, restricts private-use schemes to this
	// list (lower-case scheme names).
	PrivateSchemes []string
	// MaxRedirectURIs caps redirect_uris; 0 means 20.
	MaxRedirectURIs int
	// Now stamps CreatedAt/UpdatedAt; nil means time.Now.
	Now func() time.Time
}

// DefaultOptions returns the options the authorization server uses by
// default: private-use schemes allowed, at most 20 redirect URIs.
func DefaultOptions() Options {
	return Options{AllowPrivateSchemes: true, MaxRedirectURIs: 20}
}

// request is the subset of RFC 7591 §2 client metadata this server reads.
// Fields are raw so that a wrong JSON type is reported precisely. It is
// filled from exact member names (encoding/json would match keys without
// regard to case, a parser differential).
type request struct {
	RedirectURIs            json.RawMessage
	TokenEndpointAuthMethod json.RawMessage
	GrantTypes              json.RawMessage
	ResponseTypes           json.RawMessage
	ClientName              json.RawMessage
	ClientURI               json.RawMessage
	LogoURI                 json.RawMessage
	SoftwareID              json.RawMessage
}

// ValidateRegistration checks an RFC 7591 §3.1 client registration request,
// narrowed to public PKCE clients (requirement 12), and returns the client
// to store. It never stores anything itself. The returned client has a fresh
// ID from NewClientID, Kind storage.ClientDCR, TokenEndpointAuthMethod
// "none" and a Fingerprint.
//
// Rules:
//   - the body is one JSON object of at most MaxRequestBytes;
//   - redirect_uris is required and non-empty; each is https, loopback http
//     (127.0.0.1, [::1], localhost; any port) or, when allowed, a private-use
//     scheme; never a fragment, userinfo, javascript:, data:, file: or http
//     to another host. Kinds may be mixed. Failures: invalid_redirect_uri;
//   - token_endpoint_auth_method is absent or "none";
//   - grant_types is a subset of {authorization_code, refresh_token}
//     containing authorization_code (default [authorization_code]);
//   - response_types is [code] (default [code]);
//   - client_name, when present, is a string of at most 200 bytes without
//     control characters;
//   - client_uri and logo_uri are kept only when they are https URLs on a
//     public DNS name (not an IP address, localhost or a special-use name
//     such as .local or .internal); otherwise they are dropped, as RFC 7591
//     §2 lets the server do;
//   - unknown metadata is ignored (RFC 7591 §2). "scope" is ignored: the
//     server's scope policy applies at /authorize.
func ValidateRegistration(raw []byte, opts Options) (storage.Client, *oauth.Error) {
	if opts.MaxRedirectURIs <= 0 {
		opts.MaxRedirectURIs = 20
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if len(raw) > MaxRequestBytes {
		return storage.Client{}, metadataErr("request body larger than %d bytes", MaxRequestBytes)
	}
	members, err := jsonobject.Decode(raw)
	if err != nil {
		return storage.Client{}, metadataErr("body: %s", err.Error())
	}
	req := request{
		RedirectURIs:            members["redirect_uris"],
		TokenEndpointAuthMethod: members["token_endpoint_auth_method"],
		GrantTypes:              members["grant_types"],
		ResponseTypes:           members["response_types"],
		ClientName:              members["client_name"],
		ClientURI:               members["client_uri"],
		LogoURI:                 members["logo_uri"],
		SoftwareID:              members["software_id"],
	}

	// token_endpoint_auth_method: public clients only.
	if present(req.TokenEndpointAuthMethod) {
		var m string
		if json.Unmarshal(req.TokenEndpointAuthMethod, &m) != nil {
			return storage.Client{}, metadataErr("token_endpoint_auth_method must be a string")
		}
		if m != oauth.AuthMethodNone {
			return storage.Client{}, metadataErr("token_endpoint_auth_method %s is not supported: only public clients (none) may register", safeToken(m))
		}
	}

	grants := []string{oauth.GrantAuthorizationCode}
	if present(req.GrantTypes) {
		var gs []string
		if json.Unmarshal(req.GrantTypes, &gs) != nil {
			return storage.Client{}, metadataErr("grant_types must be an array of strings")
		}
		grants = grants[:0]
		for _, g := range gs {
			switch g {
			case oauth.GrantAuthorizationCode, oauth.GrantRefreshToken:
				if !slices.Contains(grants, g) {
					grants = append(grants, g)
				}
			default:
				return storage.Client{}, metadataErr("grant type %s is not supported: only authorization_code and refresh_token", safeToken(g))
			}
		}
		if !slices.Contains(grants, oauth.GrantAuthorizationCode) {
			return storage.Client{}, metadataErr("grant_types must include authorization_code")
		}
		sort.Strings(grants)
	}

	if present(req.ResponseTypes) {
		var rs []string
		if json.Unmarshal(req.ResponseTypes, &rs) != nil {
			return storage.Client{}, metadataErr("response_types must be an array of strings")
		}
		if len(rs) == 0 {
			return storage.Client{}, metadataErr("response_types must include code")
		}
		for _, r := range rs {
			if r != oauth.ResponseTypeCode {
				return storage.Client{}, metadataErr("response type %s is not supported: only code", safeToken(r))
			}
		}
	}

	name := ""
	if present(req.ClientName) {
		if json.Unmarshal(req.ClientName, &name) != nil {
			return storage.Client{}, metadataErr("client_name must be a string")
		}
		var err error
		if name, err = CheckClientName(name); err != nil {
			return storage.Client{}, metadataErr("body: %s", err.Error())
		}
	}

	// Redirect URIs last among the required checks, so a request with both
	// bad metadata and bad redirects reports the metadata first: the order
	// is fixed and tested.
	if !present(req.RedirectURIs) {
		return storage.Client{}, redirectErr("redirect_uris is required")
	}
	var uris []string
	if json.Unmarshal(req.RedirectURIs, &uris) != nil {
		return storage.Client{}, redirectErr("redirect_uris must be an array of strings")
	}
	if len(uris) == 0 {
		return storage.Client{}, redirectErr("redirect_uris must not be empty")
	}
	if len(uris) > opts.MaxRedirectURIs {
		return storage.Client{}, redirectErr("at most %d redirect_uris are allowed", opts.MaxRedirectURIs)
	}
	policy := oauth.RedirectPolicy{AllowPrivateSchemes: opts.AllowPrivateSchemes, PrivateSchemes: opts.PrivateSchemes}
	clean := make([]string, 0, len(uris))
	for i, u := range uris {
		if _, err := oauth.CheckRedirectURI(u, policy); err != nil {
			return storage.Client{}, redirectErr("redirect_uris[%d]: %s", i, oauth.AsError(err).Description)
		}
		if !slices.Contains(clean, u) {
			clean = append(clean, u)
		}
	}

	t := now().UTC()
	c := storage.Client{
		ID:                      NewClientID(),
		Kind:                    storage.ClientDCR,
		Name:                    name,
		RedirectURIs:            clean,
		GrantTypes:              grants,
		TokenEndpointAuthMethod: oauth.AuthMethodNone,
		LogoURI:                 optionalHTTPS(req.LogoURI),
		ClientURI:               optionalHTTPS(req.ClientURI),
		CreatedAt:               t,
		UpdatedAt:               t,
	}
	c.Fingerprint = oauth.Fingerprint(c)
	if present(req.SoftwareID) {
		var sid string
		if json.Unmarshal(req.SoftwareID, &sid) == nil && len(sid) <= 200 && printable(sid) {
			c.SoftwareID = sid
		}
	}
	return c, nil
}

// present reports whether a member was sent with a non-null value.
func present(m json.RawMessage) bool {
	return len(m) > 0 && string(m) != "null"
}

// CheckClientName trims a client name and refuses one that is too long, not
// UTF-8, or carries control or bidirectional-override characters (they can
// disguise the name on the consent page).
func CheckClientName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if len(name) > MaxClientNameLength {
		return "", fmt.Errorf("client_name longer than %d bytes", MaxClientNameLength)
	}
	if !utf8.ValidString(name) || !printable(name) {
		return "", errors.New("client_name contains control or formatting characters")
	}
	return name, nil
}

// printable refuses control characters and Unicode format characters (Cf:
// bidi overrides, zero-width joiners and the like).
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// safeToken renders a client-supplied token in an error description only
// when it is short and harmless; otherwise a placeholder.
func safeToken(s string) string {
	if s == "" {
		return `""`
	}
	if len(s) > 64 {
		return "(unrecognized value)"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.:", c) >= 0) {
			return "(unrecognized value)"
		}
	}
	return strconv.Quote(s)
}

// optionalHTTPS returns the member when it is a well-formed https URL, else "".
func optionalHTTPS(m json.RawMessage) string {
	if !present(m) {
		return ""
	}
	var s string
	if json.Unmarshal(m, &s) != nil {
		return ""
	}
	if !strings.HasPrefix(s, "https://") {
		return ""
	}
	if k, err := oauth.CheckRedirectURI(s, oauth.WebRedirects); err != nil || k != oauth.RedirectHTTPS {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || !publicName(u.Hostname()) {
		return ""
	}
	return s
}

// specialUseSuffixes are the special-use and private-use domain names
// (RFC 6761, RFC 6762, RFC 7686, RFC 8375, RFC 9476, ICANN's .internal):
// names that never denote a public web site.
var specialUseSuffixes = []string{
	"localhost", "local", "test", "invalid", "example", "onion", "alt", "internal", "arpa",
	"example.com", "example.net", "example.org",
}

// publicName reports whether host is a DNS name of the public web: dotted,
// not an IP address (in any spelling a browser would parse as one), not
// localhost and not under a special-use name. Names are not resolved.
func publicName(host string) bool {
	host = strings.ToLower(host)
	if host == "" || strings.HasSuffix(host, ".") || !strings.Contains(host, ".") {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	last := host[strings.LastIndexByte(host, '.')+1:]
	if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		return false // "ends in a number": browsers read 127.1 or 0x7f.1 as IPv4
	}
	for _, sfx := range specialUseSuffixes {
		if host == sfx || strings.HasSuffix(host, "."+sfx) {
			return false
		}
	}
	return true
}

// PublicWebRedirects reports whether every redirect URI is https on a
// public DNS name: none is loopback, a private-use scheme, an IP address or
// a special-use name, so no program on the user's machine can receive what
// is sent there. Only such clients may reuse a consent given to an earlier
// registration with the same metadata: any local program can register the
// others.
func PublicWebRedirects(uris []string) bool {
	if len(uris) == 0 {
		return false
	}
	for _, s := range uris {
		k, err := oauth.CheckRedirectURI(s, oauth.WebRedirects)
		if err != nil || k != oauth.RedirectHTTPS {
			return false
		}
		u, err := url.Parse(s)
		if err != nil || !publicName(u.Hostname()) {
			return false
		}
	}
	return true
}

// NewClientID returns a fresh client id: "dcr_" and 128 bits from
// crypto/rand, base64url without padding. It never starts with "https://",
// so it cannot be mistaken for a CIMD client id.
func NewClientID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand.Read does not fail on supported platforms (Go 1.24+
		// crashes the program instead); keep the contract explicit.
		panic("dcr: crypto/rand failed: " + err.Error())
	}
	return ClientIDPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// RegistrationResponse is the RFC 7591 §3.2.1 response body for a client
// just registered. It never contains a client secret (public clients only).
func RegistrationResponse(c storage.Client, issuedAt time.Time) map[string]any {
	grants := c.GrantTypes
	if len(grants) == 0 {
		grants = []string{oauth.GrantAuthorizationCode}
	}
	resp := map[string]any{
		"client_id":                  c.ID,
		"client_id_issued_at":        issuedAt.Unix(),
		"redirect_uris":              slices.Clone(c.RedirectURIs),
		"grant_types":                slices.Clone(grants),
		"response_types":             []string{oauth.ResponseTypeCode},
		"token_endpoint_auth_method": oauth.AuthMethodNone,
	}
	if c.Name != "" {
		resp["client_name"] = c.Name
	}
	if c.LogoURI != "" {
		resp["logo_uri"] = c.LogoURI
	}
	if c.ClientURI != "" {
		resp["client_uri"] = c.ClientURI
	}
	if c.SoftwareID != "" {
		resp["software_id"] = c.SoftwareID
	}
	return resp
}
