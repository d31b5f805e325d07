package authserver

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/mcpauth/caddy-mcpauth/internal/jsonobject"
	"github.com/mcpauth/caddy-mcpauth/internal/jwsalg"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Signed assertions (RFC 7523 and its update draft; requirement 22). One
// verifier serves every assertion the server accepts: client assertions
// (private_key_jwt) today, ID-JAGs and workload identity tokens later. The
// caller says whom to expect (issuer, subject, audiences, JOSE type) and
// where the keys come from (a KeySource); the verifier knows nothing of
// clients.

// ClientAssertionType is the client_assertion_type of RFC 7523 §2.2.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionAlgs are the JWS algorithms accepted in assertions, as metadata
// lists them: asymmetric only, never HMAC (a public key used as an HMAC
// secret) and never "none". The rule lives in internal/jwsalg.
var AssertionAlgs = jwsalg.Names()

// Assertion limits.
const (
	// DefaultAssertionMaxLifetime bounds how far ahead an assertion's exp
	// may be (and so how long its jti is remembered).
	DefaultAssertionMaxLifetime = 5 * time.Minute
	// DefaultAssertionSkew is the clock skew allowed on exp, nbf and iat.
	DefaultAssertionSkew = 30 * time.Second
	// maxAssertionBytes caps an assertion before any parsing.
	maxAssertionBytes = 8192
	// maxJTIBytes caps the jti claim.
	maxJTIBytes = 256
)

// ErrAssertion is matched (errors.Is) by every refusal of VerifyAssertion
// that is the assertion's fault. Its reasons are safe to show: they never
// echo the assertion.
var ErrAssertion = errors.New("authserver: invalid assertion")

// AssertionError is a refused assertion with a short, safe reason.
type AssertionError struct {
	Reason string
	cause  error
}

func (e *AssertionError) Error() string { return ErrAssertion.Error() + ": " + e.Reason }

// Unwrap returns ErrAssertion and the cause.
func (e *AssertionError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrAssertion, e.cause}
	}
	return []error{ErrAssertion}
}

func badAssertion(reason string) error { return &AssertionError{Reason: reason} }

// PublicKey is one verification key of a KeySource.
type PublicKey struct {
	KeyID string
	// Alg is the key's "alg" member ("" when the JWK names none).
	Alg string
	Key crypto.PublicKey
}

// KeySource yields the verification keys of one assertion issuer.
type KeySource interface {
	// AssertionKey returns the key with the given kid ("" only matches
	// when the set holds exactly one key). An unknown kid wraps
	// ErrUnknownKey; a key source that cannot be consulted returns another
	// error (temporary failures implement Temporary() bool).
	AssertionKey(ctx context.Context, kid string) (PublicKey, error)
}

// AssertionPolicy says what VerifyAssertion expects. Issuer, Audiences, Keys
// and Replays are required.
type AssertionPolicy struct {
	// Issuer is the exact "iss".
	Issuer string
	// Subject is the exact "sub"; "" accepts any non-empty subject.
	Subject string
	// Audiences: "aud" (a string or an array) must contain one of them.
	Audiences []string
	// Type is the JOSE "typ" required (compared case-insensitively, with or
	// without "application/"); "" accepts an absent typ or "JWT", and
	// refuses typ values of other token kinds (at+jwt, …).
	Type string
	// Algs narrows AssertionAlgs (e.g. to a client's declared
	// token_endpoint_auth_signing_alg); empty means AssertionAlgs.
	Algs []string
	// MaxLifetime bounds exp - now (default DefaultAssertionMaxLifetime).
	MaxLifetime time.Duration
	// Skew is the allowed clock skew (default DefaultAssertionSkew).
	Skew time.Duration
	// Keys yields the issuer's keys: the key is chosen by kid from this
	// set only, never from the assertion's header (jwk, jku, x5c, x5u).
	Keys KeySource
	// Replays records each jti until exp, so that an assertion is used once
	// across every instance sharing the store.
	Replays storage.Replays
	// Reusable marks a credential its platform reuses until it rotates it
	// (a workload token): jti is neither required nor recorded.
	Reusable bool
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// AssertionClaims are the checked claims of an assertion.
type AssertionClaims struct {
	Issuer    string
	Subject   string
	Audience  []string
	JTI       string
	ExpiresAt time.Time
	IssuedAt  time.Time // zero when absent
	NotBefore time.Time // zero when absent
	// Claims holds every claim as sent, for grant-specific checks.
	Claims map[string]json.RawMessage
}

// AssertionHeader is the JOSE header of an assertion (the members the verifier reads).
type AssertionHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// ParseAssertion decodes an assertion's header and claims without verifying
// anything: the compact JWS form only (three base64url parts), at most 8 KiB,
// JSON objects without duplicate members. Callers use it to find whom an
// assertion claims to come from before VerifyAssertion checks it.
func ParseAssertion(raw string) (AssertionHeader, map[string]json.RawMessage, error) {
	var h AssertionHeader
	if raw == "" {
		return h, nil, badAssertion("empty assertion")
	}
	if len(raw) > maxAssertionBytes {
		return h, nil, badAssertion("assertion too large")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return h, nil, badAssertion("not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return h, nil, badAssertion("malformed header")
	}
	hm, err := jsonobject.Decode(hb)
	if err != nil {
		return h, nil, badAssertion("malformed header")
	}
	for name, dst := range map[string]*string{"alg": &h.Alg, "kid": &h.Kid, "typ": &h.Typ} {
		if v, ok := hm[name]; ok && json.Unmarshal(v, dst) != nil {
			return h, nil, badAssertion("malformed header")
		}
	}
	h.Crit = hm["crit"]
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return h, nil, badAssertion("malformed claims")
	}
	claims, err := jsonobject.Decode(pb)
	if err != nil {
		return h, nil, badAssertion("malformed claims")
	}
	return h, claims, nil
}

// stringClaim returns a string claim ("" and ok=true when absent).
func stringClaim(c map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := c[name]
	if !ok {
		return "", true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// timeClaim returns a NumericDate claim (zero and ok=true when absent).
func timeClaim(c map[string]json.RawMessage, name string) (time.Time, bool) {
	raw, ok := c[name]
	if !ok {
		return time.Time{}, true
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// audienceClaim returns "aud" as a list (a string or an array of strings).
func audienceClaim(c map[string]json.RawMessage) ([]string, bool) {
	raw, ok := c["aud"]
	if !ok {
		return nil, true
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, true
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil || len(many) > 16 {
		return nil, false
	}
	return many, true
}

// typeMatches compares JOSE typ values (RFC 7515 §4.1.9: the
// "application/" prefix may be omitted; compare case-insensitively).
func typeMatches(got, want string) bool {
	norm := func(s string) string { return strings.TrimPrefix(strings.ToLower(s), "application/") }
	if want == "" {
		return got == "" || norm(got) == "jwt"
	}
	return norm(got) == norm(want)
}

// VerifyAssertion verifies a signed JWT assertion under p, in this order:
// form (ParseAssertion), no "crit", JOSE typ, alg in the allow-list, key by
// kid from p.Keys (of a type that fits alg), signature, iss, sub, aud, exp
// (required, not past, at most MaxLifetime ahead), nbf and iat (not in the
// future), jti (required); then, only when everything else holds, the jti is
// recorded (p.Replays) until exp, and a replay is refused. Every refusal
// that is the assertion's fault matches ErrAssertion; a key source or store
// failure does not (a temporary key source failure keeps its Temporary
// method).
func VerifyAssertion(ctx context.Context, raw string, p AssertionPolicy) (*AssertionClaims, error) {
	if p.Issuer == "" || len(p.Audiences) == 0 || p.Keys == nil || p.Replays == nil {
		return nil, errors.New("authserver: assertion policy needs an issuer, audiences, keys and a replay store")
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	maxLife, skew := p.MaxLifetime, p.Skew
	if maxLife <= 0 {
		maxLife = DefaultAssertionMaxLifetime
	}
	if skew <= 0 {
		skew = DefaultAssertionSkew
	}
	hdr, claims, err := ParseAssertion(raw)
	if err != nil {
		return nil, err
	}
	if len(hdr.Crit) > 0 {
		return nil, badAssertion("critical header parameters are not supported")
	}
	if !typeMatches(hdr.Typ, p.Type) {
		return nil, badAssertion("wrong JOSE type")
	}
	algs := AssertionAlgs
	if len(p.Algs) > 0 {
		algs = p.Algs
	}
	if !jwsalg.Allowed(hdr.Alg) || !slices.Contains(algs, hdr.Alg) {
		return nil, badAssertion("signing algorithm not allowed")
	}
	key, err := p.Keys.AssertionKey(ctx, hdr.Kid)
	if errors.Is(err, ErrUnknownKey) {
		return nil, &AssertionError{Reason: "unknown signing key", cause: err}
	}
	if err != nil {
		return nil, err
	}
	if key.Alg != "" && key.Alg != hdr.Alg {
		return nil, badAssertion("the key is for another algorithm")
	}
	if !jwsalg.KeyFits(key.Key, hdr.Alg) {
		return nil, badAssertion("the key does not fit the algorithm")
	}
	if _, err := jws.Verify([]byte(raw), jws.WithKey(jwa.SignatureAlgorithm(hdr.Alg), key.Key)); err != nil {
		return nil, badAssertion("bad signature")
	}

	c := &AssertionClaims{Claims: claims}
	var ok1, ok2, ok3, ok4, ok5, ok6, ok7 bool
	c.Issuer, ok1 = stringClaim(claims, "iss")
	c.Subject, ok2 = stringClaim(claims, "sub")
	c.JTI, ok3 = stringClaim(claims, "jti")
	c.Audience, ok4 = audienceClaim(claims)
	c.ExpiresAt, ok5 = timeClaim(claims, "exp")
	c.IssuedAt, ok6 = timeClaim(claims, "iat")
	c.NotBefore, ok7 = timeClaim(claims, "nbf")
	switch {
	case !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7):
		return nil, badAssertion("malformed claims")
	case c.Issuer != p.Issuer:
		return nil, badAssertion("wrong issuer")
	case c.Subject == "" || (p.Subject != "" && c.Subject != p.Subject):
		return nil, badAssertion("wrong subject")
	case !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(p.Audiences, a) }):
		return nil, badAssertion("wrong audience")
	case c.ExpiresAt.IsZero():
		return nil, badAssertion("exp is required")
	case !now.Before(c.ExpiresAt.Add(skew)):
		return nil, badAssertion("expired")
	case c.ExpiresAt.After(now.Add(maxLife + skew)):
		return nil, badAssertion("exp is too far ahead")
	case !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(skew)):
		return nil, badAssertion("not valid yet")
	case !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(skew)):
		return nil, badAssertion("issued in the future")
	case c.JTI == "" && !p.Reusable:
		return nil, badAssertion("jti is required")
	case len(c.JTI) > maxJTIBytes:
		return nil, badAssertion("jti too long")
	}
	if p.Reusable {
		return c, nil
	}
	// The jti is remembered past exp by the skew, as long as the assertion
	// could still be accepted.
	err = p.Replays.UseOnce(ctx, replayHash(c.Issuer, c.JTI), c.ExpiresAt.Add(skew), now)
	if errors.Is(err, storage.ErrReplayed) {
		return nil, badAssertion("assertion replayed")
	}
	if err != nil {
		return nil, fmt.Errorf("authserver: record assertion jti: %w", err)
	}
	return c, nil
}

// replayHash is the store key of an (issuer, jti) pair.
func replayHash(iss, jti string) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "assertion\x00%d:%s\x00%s", len(iss), iss, jti)
	return h.Sum(nil)
}

// Limits of JWK sets.
const (
	// MaxJWKSBytes caps a JWK set document (inline or fetched).
	MaxJWKSBytes = 5120
	// maxJWKSKeys caps the keys of a set.
	maxJWKSKeys = 16
)

// secretJWKMembers are JWK members that carry private or symmetric key
// material (RFC 7518 §6).
var secretJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// ParseJWKS parses a JWK set of public signing keys strictly: one JSON
// object of at most MaxJWKSBytes with a "keys" array of at most 16 keys; a
// key with private or symmetric material refuses the whole set; keys meant
// for encryption ("use": "enc"), of another type than RSA, EC or OKP, or
// that fit no allowed algorithm are skipped; kids are unique. A set with no
// usable key is refused.
func ParseJWKS(raw []byte) ([]PublicKey, error) {
	if len(raw) > MaxJWKSBytes {
		return nil, fmt.Errorf("authserver: jwks: larger than %d bytes", MaxJWKSBytes)
	}
	top, err := jsonobject.Decode(raw)
	if err != nil {
		return nil, errors.New("authserver: jwks: not a JSON object")
	}
	var keys []json.RawMessage
	if json.Unmarshal(top["keys"], &keys) != nil {
		return nil, errors.New("authserver: jwks: keys must be an array")
	}
	if len(keys) > maxJWKSKeys {
		return nil, errors.New("authserver: jwks: too many keys")
	}
	var out []PublicKey
	seen := map[string]bool{}
	for _, kr := range keys {
		m, err := jsonobject.Decode(kr)
		if err != nil {
			return nil, errors.New("authserver: jwks: a key is not a JSON object")
		}
		for _, member := range secretJWKMembers {
			if _, ok := m[member]; ok {
				return nil, errors.New("authserver: jwks: private or symmetric key material")
			}
		}
		var kty, use, kid, alg string
		for name, dst := range map[string]*string{"kty": &kty, "use": &use, "kid": &kid, "alg": &alg} {
			if v, ok := m[name]; ok && json.Unmarshal(v, dst) != nil {
				return nil, errors.New("authserver: jwks: malformed key member")
			}
		}
		if (kty != "RSA" && kty != "EC" && kty != "OKP") || (use != "" && use != "sig") {
			continue
		}
		if alg != "" && !jwsalg.Allowed(alg) {
			continue
		}
		k, err := jwk.ParseKey(kr)
		if err != nil {
			continue
		}
		var pub any
		if err := k.Raw(&pub); err != nil {
			continue
		}
		if !slices.ContainsFunc(jwsalg.Names(), func(a string) bool { return jwsalg.KeyFits(pub, a) }) {
			continue
		}
		if seen[kid] {
			return nil, errors.New("authserver: jwks: duplicate kid")
		}
		seen[kid] = true
		out = append(out, PublicKey{KeyID: kid, Alg: alg, Key: pub})
	}
	if len(out) == 0 {
		return nil, errors.New("authserver: jwks: no usable public signing key")
	}
	return out, nil
}

// StaticKeys is a KeySource over a fixed set (an inline "jwks").
type StaticKeys []PublicKey

// AssertionKey implements KeySource.
func (s StaticKeys) AssertionKey(_ context.Context, kid string) (PublicKey, error) {
	return pickKey(s, kid)
}

// pickKey chooses a key by kid; an empty kid matches only a set of one.
func pickKey(keys []PublicKey, kid string) (PublicKey, error) {
	if kid == "" {
		if len(keys) == 1 {
			return keys[0], nil
		}
		return PublicKey{}, fmt.Errorf("%w: no kid and several keys", ErrUnknownKey)
	}
	for _, k := range keys {
		if k.KeyID == kid {
			return k, nil
		}
	}
	return PublicKey{}, ErrUnknownKey
}
