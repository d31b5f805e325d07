// Package dpop verifies DPoP proofs (RFC 9449): the one proof verifier of
// the authorization server's token endpoint and of the resource guard.
//
// A proof is a compact JWS whose header carries its own public key (jwk).
// Verify checks, in RFC 9449 §4.3's order: one well-formed JWS, typ
// dpop+jwt, an asymmetric alg from the allow-list, a public jwk (no private
// or symmetric members) that fits alg, the signature with that key, then the
// claims: jti, htm (exact), htu (syntax- and scheme-normalized, query and
// fragment ignored), iat within the window, nonce (when the caller wants
// one) and ath (when an access token is presented). Replay (jti single use)
// is the caller's: it records ReplayKey in a shared store, after Verify.
//
// The package knows nothing of Caddy, storage or clients.
package dpop

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mcpauth/caddy-mcpauth/internal/jsonobject"
	"github.com/mcpauth/caddy-mcpauth/internal/jwsalg"
	"github.com/mcpauth/caddy-mcpauth/internal/resourceuri"
)

// Type is the JOSE typ of a proof (RFC 9449 §4.2).
const Type = "dpop+jwt"

// Algs are the JWS algorithms accepted by default: asymmetric only, never
// HMAC or "none" (RFC 9449 §4.2: "MUST NOT be none or an identifier for a
// symmetric algorithm").
var Algs = jwsalg.Names()

// Limits.
const (
	// MaxProofBytes caps a proof before any parsing (an RSA-4096 jwk and
	// its signature fit easily).
	MaxProofBytes = 4096
	// DefaultMaxAge is how old a proof's iat may be.
	DefaultMaxAge = 5 * time.Minute
	// DefaultSkew is how far ahead of the clock a proof's iat may be.
	DefaultSkew = 30 * time.Second
	maxJTIBytes = 256
	maxNonce    = 512
)

// ErrInvalidProof is matched (errors.Is) by every refusal that is the
// proof's fault; its reason is safe to show (it never echoes the proof).
var ErrInvalidProof = errors.New("dpop: invalid proof")

// ErrNonce is matched when the proof lacks the server nonce or carries a
// stale one: the answer is use_dpop_nonce with a fresh DPoP-Nonce.
var ErrNonce = errors.New("dpop: nonce required")

// Error is a refused proof with a short, safe reason.
type Error struct {
	Reason string
	nonce  bool
}

func (e *Error) Error() string { return ErrInvalidProof.Error() + ": " + e.Reason }

// Unwrap returns ErrInvalidProof (and ErrNonce for a nonce refusal).
func (e *Error) Unwrap() []error {
	if e.nonce {
		return []error{ErrInvalidProof, ErrNonce}
	}
	return []error{ErrInvalidProof}
}

func bad(reason string) error { return &Error{Reason: reason} }

// Header is the JOSE header of a proof.
type Header struct {
	Alg string
	Typ string
	// JWK is the raw public key member.
	JWK json.RawMessage
	// Other is true when the header has members that select a key elsewhere
	// (kid, jku, x5u, x5c) or critical extensions (crit, b64).
	Other bool
}

// Parse decodes a proof's header and claims without verifying anything: the
// compact JWS form (three base64url parts), at most MaxProofBytes, JSON
// objects without duplicate members.
func Parse(raw string) (Header, map[string]json.RawMessage, error) {
	var h Header
	if raw == "" {
		return h, nil, bad("empty proof")
	}
	if len(raw) > MaxProofBytes {
		return h, nil, bad("proof too large")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return h, nil, bad("not a compact JWS")
	}
	h, err := parseHeader(parts[0])
	if err != nil {
		return h, nil, err
	}
	claims, err := parseClaims(parts[1])
	return h, claims, err
}

func parseHeader(seg string) (Header, error) {
	var h Header
	hb, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return h, bad("malformed header")
	}
	hm, err := jsonobject.Decode(hb)
	if err != nil {
		return h, bad("malformed header")
	}
	for name, dst := range map[string]*string{"alg": &h.Alg, "typ": &h.Typ} {
		if v, ok := hm[name]; ok && json.Unmarshal(v, dst) != nil {
			return h, bad("malformed header")
		}
	}
	h.JWK = hm["jwk"]
	for _, name := range []string{"kid", "jku", "x5u", "x5c", "crit", "b64", "enc", "zip"} {
		if _, ok := hm[name]; ok {
			h.Other = true
		}
	}
	return h, nil
}

func parseClaims(seg string) (map[string]json.RawMessage, error) {
	pb, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return nil, bad("malformed claims")
	}
	claims, err := jsonobject.Decode(pb)
	if err != nil {
		return nil, bad("malformed claims")
	}
	return claims, nil
}

// Policy says what Verify expects of one proof.
type Policy struct {
	// Method is the HTTP method of the request (htm must equal it).
	Method string
	// URL is the request's target URI, built from configuration (never
	// from Host or X-Forwarded-* headers); its query is ignored.
	URL string
	// AccessToken, when set, is the access token presented with the
	// proof: ath must be its SHA-256 (RFC 9449 §4.3 item 11). When empty,
	// ath is not looked at.
	AccessToken string
	// AccessTokenHash is SHA-256(AccessToken) when the caller has it
	// already (it replaces AccessToken).
	AccessTokenHash []byte
	// Algs narrows Algs; empty means Algs.
	Algs []string
	// MaxAge and Skew bound iat (defaults DefaultMaxAge, DefaultSkew).
	MaxAge, Skew time.Duration
	// Nonce, when set, must accept the proof's nonce claim; a missing or
	// refused nonce is ErrNonce.
	Nonce func(string) bool
	// Now is the time of the request.
	Now time.Time
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the base64url SHA-256 JWK thumbprint (RFC 7638) of the
	// proof's key: the cnf.jkt of tokens bound to it.
	JKT      string
	JTI      string
	IssuedAt time.Time
	// Until is when the proof stops being acceptable (iat + MaxAge +
	// Skew): its jti must be remembered until then.
	Until time.Time
}

// Verify verifies one proof under p (see the package doc). Every refusal
// matches ErrInvalidProof; a nonce refusal also matches ErrNonce.
func Verify(raw string, p Policy) (*Proof, error) {
	maxAge, skew := p.MaxAge, p.Skew
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if skew <= 0 {
		skew = DefaultSkew
	}
	if raw == "" {
		return nil, bad("empty proof")
	}
	if len(raw) > MaxProofBytes {
		return nil, bad("proof too large")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, bad("not a compact JWS")
	}
	// A client sends the same header (typ, alg, its jwk) in every proof:
	// the parsed header and key are remembered by the header's bytes.
	e, err := headers.get(parts[0])
	if err != nil {
		return nil, err
	}
	h := e.h
	if !strings.EqualFold(h.Typ, Type) && !strings.EqualFold(h.Typ, "application/"+Type) {
		return nil, bad("typ is not dpop+jwt")
	}
	algs := Algs
	if len(p.Algs) > 0 {
		algs = p.Algs
	}
	if !slices.Contains(Algs, h.Alg) || !slices.Contains(algs, h.Alg) {
		return nil, bad("signing algorithm not allowed")
	}
	if h.Other {
		return nil, bad("header parameters other than typ, alg and jwk are not accepted")
	}
	if len(h.JWK) == 0 {
		return nil, bad("jwk header is required")
	}
	if e.keyErr != nil {
		return nil, e.keyErr
	}
	pub, jkt := e.pub, e.jkt
	if !jwsalg.KeyFits(pub, h.Alg) {
		return nil, bad("the key does not fit the algorithm")
	}
	// The signature over the compact form's first two parts, with the alg
	// checked above and the key of the header (jwx's verifier for alg: the
	// proof is parsed once).
	dot := strings.LastIndexByte(raw, '.')
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return nil, bad("malformed signature")
	}
	v, err := jws.NewVerifier(jwa.SignatureAlgorithm(h.Alg))
	if err != nil || v.Verify([]byte(raw[:dot]), sig, pub) != nil {
		return nil, bad("bad signature")
	}
	claims, err := parseClaims(parts[1])
	if err != nil {
		return nil, err
	}

	str := func(name string) (string, bool) {
		v, ok := claims[name]
		if !ok {
			return "", true
		}
		var s string
		return s, json.Unmarshal(v, &s) == nil
	}
	jti, ok1 := str("jti")
	htm, ok2 := str("htm")
	htu, ok3 := str("htu")
	ath, ok4 := str("ath")
	nonce, ok5 := str("nonce")
	var iatF float64
	rawIat, hasIat := claims["iat"]
	ok6 := hasIat && json.Unmarshal(rawIat, &iatF) == nil && iatF >= 0 && iatF < 1<<40
	switch {
	case !(ok1 && ok2 && ok3 && ok4 && ok5):
		return nil, bad("malformed claims")
	case jti == "":
		return nil, bad("jti is required")
	case len(jti) > maxJTIBytes:
		return nil, bad("jti too long")
	case !ok6:
		return nil, bad("iat is required")
	case htm != p.Method:
		return nil, bad("htm does not match the request method")
	case !HTUMatches(htu, p.URL):
		return nil, bad("htu does not match the request URL")
	}
	iat := time.Unix(int64(iatF), 0)
	if iat.After(p.Now.Add(skew)) {
		return nil, bad("iat is in the future")
	}
	if iat.Before(p.Now.Add(-maxAge)) {
		return nil, bad("the proof is too old")
	}
	if p.AccessToken != "" || p.AccessTokenHash != nil {
		want := p.AccessTokenHash
		if want == nil {
			sum := sha256.Sum256([]byte(p.AccessToken))
			want = sum[:]
		}
		got, err := base64.RawURLEncoding.Strict().DecodeString(ath)
		if ath == "" || err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
			return nil, bad("ath does not match the access token")
		}
	}
	if p.Nonce != nil {
		if nonce == "" || len(nonce) > maxNonce || !p.Nonce(nonce) {
			return nil, &Error{Reason: "a fresh server nonce is required", nonce: true}
		}
	}
	return &Proof{JKT: jkt, JTI: jti, IssuedAt: iat, Until: iat.Add(maxAge + skew)}, nil
}

// headerCache remembers parsed proof headers and their keys by the
// header's bytes: a client signs every proof with the same header, and
// parsing it (a JWK, its thumbprint) costs half as much as the signature
// check. An entry is a pure function of the bytes, so caching changes no
// decision; the cache is emptied when full.
type headerCache struct {
	mu sync.Mutex
	m  map[string]*headerEntry
}

type headerEntry struct {
	h      Header
	pub    crypto.PublicKey
	jkt    string
	keyErr error // the jwk's refusal (never cached)
}

const maxCachedHeaders = 4096

var headers = &headerCache{m: map[string]*headerEntry{}}

func (c *headerCache) get(seg string) (*headerEntry, error) {
	c.mu.Lock()
	e, ok := c.m[seg]
	c.mu.Unlock()
	if ok {
		return e, nil
	}
	h, err := parseHeader(seg)
	if err != nil {
		return nil, err
	}
	e = &headerEntry{h: h}
	if len(h.JWK) == 0 || h.Other {
		return e, nil // refused by Verify
	}
	key, pub, err := PublicJWK(h.JWK)
	if err == nil {
		var tp []byte
		if tp, err = key.Thumbprint(crypto.SHA256); err != nil {
			err = bad("unusable jwk")
		}
		e.pub, e.jkt = pub, base64.RawURLEncoding.EncodeToString(tp)
	}
	if err != nil {
		e.keyErr = err
		return e, nil
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedHeaders {
		clear(c.m)
	}
	c.m[seg] = e
	c.mu.Unlock()
	return e, nil
}

// secretMembers are JWK members that carry private or symmetric material.
var secretMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// PublicJWK parses a public signing JWK (RSA, EC or OKP) strictly: no
// duplicate members, no private or symmetric material.
func PublicJWK(raw json.RawMessage) (jwk.Key, crypto.PublicKey, error) {
	m, err := jsonobject.Decode(raw)
	if err != nil {
		return nil, nil, bad("jwk is not a JSON object")
	}
	for _, name := range secretMembers {
		if _, ok := m[name]; ok {
			return nil, nil, bad("jwk carries private or symmetric key material")
		}
	}
	var kty string
	if json.Unmarshal(m["kty"], &kty) != nil || (kty != "RSA" && kty != "EC" && kty != "OKP") {
		return nil, nil, bad("jwk key type not accepted")
	}
	k, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, nil, bad("malformed jwk")
	}
	var pub any
	if err := k.Raw(&pub); err != nil {
		return nil, nil, bad("malformed jwk")
	}
	return k, pub, nil
}

// NormalizeHTU puts an http(s) URI in the form RFC 9449 §4.3 compares:
// syntax- and scheme-based normalization (RFC 3986 §6.2.2, §6.2.3: lower-case
// scheme and host, no default port, percent-encodings upper-cased and
// unreserved characters decoded, dot segments removed, an empty path is
// "/"), without query and fragment.
func NormalizeHTU(raw string) (string, error) {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return "", errors.New("dpop: htu is not an absolute http(s) URI")
	}
	path, err := normalizePath(u.EscapedPath())
	if err != nil {
		return "", err
	}
	origin, err := resourceuri.Normalize(u.Scheme + "://" + u.Host)
	if err != nil {
		return "", fmt.Errorf("dpop: htu: %w", err)
	}
	return origin + path, nil
}

// normalizePath normalizes percent-encodings and removes dot segments.
func normalizePath(p string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) {
			return "", errors.New("dpop: htu has a malformed percent-encoding")
		}
		v, err := strconv.ParseUint(p[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("dpop: htu has a malformed percent-encoding")
		}
		d := byte(v)
		if d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' || d >= '0' && d <= '9' || d == '-' || d == '.' || d == '_' || d == '~' {
			b.WriteByte(d)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
		}
		i += 2
	}
	p = b.String()
	if p == "" {
		return "/", nil
	}
	// RFC 3986 §5.2.4 on segments (the path is absolute here).
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	p = strings.Join(out, "/")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p, nil
}

// HTUMatches reports whether a proof's htu names the request URL want, both
// normalized (NormalizeHTU).
func HTUMatches(htu, want string) bool {
	if htu == "" || len(htu) > 2048 {
		return false
	}
	if htu == want && (strings.HasPrefix(want, "https://") || strings.HasPrefix(want, "http://")) && !strings.ContainsAny(want, "?#") {
		// What clients send: the URL as is. Equal strings normalize
		// equally; want is built by the server from its configuration.
		return true
	}
	a, err1 := NormalizeHTU(htu)
	b, err2 := NormalizeHTU(want)
	return err1 == nil && err2 == nil && a == b
}

// ReplayKey is the store key of a proof's jti: hashed with the key's
// thumbprint, in a namespace of its own (apart from assertion jtis).
func ReplayKey(jkt, jti string) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "dpop\x00%d:%s\x00%s", len(jkt), jkt, jti)
	return h.Sum(nil)
}

// AccessTokenHash is ath: base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AlgsValue is the algs parameter of a DPoP challenge (RFC 9449 §7.1).
func AlgsValue(algs []string) string {
	if len(algs) == 0 {
		algs = Algs
	}
	return strings.Join(algs, " ")
}
