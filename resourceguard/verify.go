package resourceguard

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
	"unique"
	"unsafe"

	"github.com/mcpauth/caddy-mcpauth/internal/jsonobject"
	"github.com/mcpauth/caddy-mcpauth/internal/jwsalg"
	"github.com/mcpauth/caddy-mcpauth/internal/resourceuri"
)

// JWT access token verification: RFC 9068 (JWT profile for OAuth 2.0 access
// tokens) and RFC 8725 (JWT best current practices).
//
// RFC 8725 §3.1: "libraries MUST enable the caller to specify a supported set
// of algorithms and MUST NOT use any other algorithms". The algorithm is the
// one the KeySource binds to the key; the token's "alg" must equal it.
// RFC 8725 §3.11 / RFC 9068 §4: explicit typing, "at+jwt".
// RFC 9068 §4: the resource server MUST check iss, aud, exp and the signature
// with the algorithm it expects.

// algorithm describes a supported JWS algorithm.
type algorithm struct {
	hash crypto.Hash
	kind string // "ec", "ed", "rsa", "pss"
	// curve is the EC curve and sigLen its fixed R||S size.
	curve  elliptic.Curve
	sigLen int
}

var supportedAlgs = map[string]algorithm{
	"ES256": {hash: crypto.SHA256, kind: "ec", curve: elliptic.P256(), sigLen: 64},
	"ES384": {hash: crypto.SHA384, kind: "ec", curve: elliptic.P384(), sigLen: 96},
	"ES512": {hash: crypto.SHA512, kind: "ec", curve: elliptic.P521(), sigLen: 132},
	"EdDSA": {kind: "ed"},
	"RS256": {hash: crypto.SHA256, kind: "rsa"},
	"RS384": {hash: crypto.SHA384, kind: "rsa"},
	"RS512": {hash: crypto.SHA512, kind: "rsa"},
	"PS256": {hash: crypto.SHA256, kind: "pss"},
	"PS384": {hash: crypto.SHA384, kind: "pss"},
	"PS512": {hash: crypto.SHA512, kind: "pss"},
}

var errSignature = errors.New("resourceguard: signature verification failed")

// verifySignature checks sig over input with key, using alg only.
func verifySignature(alg string, key crypto.PublicKey, input, sig []byte) error {
	a, ok := supportedAlgs[alg]
	if !ok {
		return fmt.Errorf("resourceguard: unsupported algorithm %q", alg)
	}
	var digest []byte
	if a.hash != 0 {
		var h hash.Hash
		switch a.hash {
		case crypto.SHA256:
			h = sha256.New()
		case crypto.SHA384:
			h = sha512.New384()
		default:
			h = sha512.New()
		}
		h.Write(input)
		digest = h.Sum(nil)
	}
	switch a.kind {
	case "ec":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k.Curve != a.curve {
			return fmt.Errorf("resourceguard: key does not fit %s", alg)
		}
		if len(sig) != a.sigLen {
			return errSignature
		}
		r := new(big.Int).SetBytes(sig[:a.sigLen/2])
		s := new(big.Int).SetBytes(sig[a.sigLen/2:])
		if !ecdsa.Verify(k, digest, r, s) {
			return errSignature
		}
	case "ed":
		k, ok := key.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("resourceguard: key does not fit %s", alg)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k, input, sig) {
			return errSignature
		}
	case "rsa", "pss":
		k, ok := key.(*rsa.PublicKey)
		if !ok || k.N == nil || k.N.BitLen() < jwsalg.MinRSABits {
			return fmt.Errorf("resourceguard: key does not fit %s", alg)
		}
		var err error
		if a.kind == "rsa" {
			err = rsa.VerifyPKCS1v15(k, a.hash, digest, sig)
		} else {
			err = rsa.VerifyPSS(k, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.hash})
		}
		if err != nil {
			return errSignature
		}
	}
	return nil
}

// verifiedToken is a verified token as cached. What every request reads
// comes first (bound, scopes, p): cacheEntry keeps it in its first three
// cache lines (cache.go).
type verifiedToken struct {
	bound bool // jkt != "" (read on every request: jkt lies beyond those lines)
	// used is tokenCache's CLOCK reference bit for the entry holding this
	// token (written under the shard's lock; cache.go): here, not in
	// cacheEntry, because it fits beside bound.
	used       bool
	scopes     *tokenScopes // shared by the tokens with the same scope claim
	p          Principal
	jkt        string // cnf.jkt: the DPoP key the token is bound to ("" unbound)
	cacheUntil int64  // Unix nanoseconds: min(exp, verification + CacheMaxTTL)
	// interned keeps the canonical copies of p's identity strings alive
	// while the token is cached (intern).
	interned [4]unique.Handle[string]
}

func (v *verifiedToken) hasAll(need []string) bool {
	for _, s := range need {
		if _, ok := v.scopes.set[s]; !ok {
			return false
		}
	}
	return true
}

// verified returns the verified token, from the cache when possible. An
// unchecked token's characters are checked only on a miss: a hit is a token
// identical to one that passed the check (every cached token did, and the
// JWS syntax verifyToken requires is a subset of RFC 6750's b64token).
func (g *Guard) verified(ctx context.Context, pr presented) (*verifiedToken, *Challenge) {
	tok := pr.token
	var key [32]byte
	var claims string
	now := g.now()
	if g.cache != nil {
		g.cache.sync(g.keys.Generation())
		key, claims = tokenKey(tok)
		if v := g.cache.get(key, claims, now); v != nil {
			return v, nil
		}
	}
	if pr.unchecked && !validB64Token(tok) {
		return nil, invalidToken("malformed bearer token")
	}
	v, gen, c := g.verifyToken(ctx, tok)
	if c != nil {
		return nil, c
	}
	if g.cache != nil && now.UnixNano() < v.cacheUntil {
		g.cache.put(key, claims, v, gen, now)
	}
	return v, nil
}

// tokenKey splits a token for the cache: key is the SHA-256 of its
// signature (the segment after the last '.'), claims the rest (header and
// payload, with the dot), which a hit must match byte for byte. A hit is
// thus the very token that was verified, as with a hash of the whole token,
// for a hash of its 86 (ES256) to 342 (RS256) signature characters instead
// of its 800 or so (without SHA extensions, the largest cost of a cached
// request). The cache keeps no credential: claims without a signature are
// not one, and they hold what the cached Principal holds anyway. The hash is
// taken without the copy that []byte(sig) would make (Sum256 only reads it).
func tokenKey(tok string) (key [32]byte, claims string) {
	i := strings.LastIndexByte(tok, '.') // -1: no dot, the whole token is hashed
	sig := tok[i+1:]
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(sig), len(sig))), tok[:i+1]
}

// jwsHeader is the part of the JOSE header we read.
type jwsHeader struct {
	alg, kid, typ string
}

// forbiddenHeaders carry keys or key locations chosen by the token (RFC 8725
// §3.10 and "never a key from the token's header"), extensions we do not
// understand (crit, b64) or JWE members.
var forbiddenHeaders = []string{"jku", "x5u", "jwk", "x5c", "crit", "b64", "enc", "zip", "epk"}

// verifyToken verifies a token from scratch. It returns the key-set
// generation read before the key lookup, so that a result computed with
// retired keys is never cached under the new generation.
func (g *Guard) verifyToken(ctx context.Context, tok string) (*verifiedToken, uint64, *Challenge) {
	// Syntax first: three base64url segments, no cryptography yet.
	if len(tok) > maxTokenLen {
		return nil, 0, invalidToken("malformed token")
	}
	dot1 := strings.IndexByte(tok, '.')
	dot2 := strings.LastIndexByte(tok, '.')
	if dot1 <= 0 || dot2 == dot1 || dot2 == len(tok)-1 || dot2-dot1 == 1 ||
		strings.IndexByte(tok[dot1+1:dot2], '.') >= 0 || !base64URLChars(tok) {
		return nil, 0, invalidToken("malformed token")
	}
	headerJSON, err1 := b64.DecodeString(tok[:dot1])
	payload, err2 := b64.DecodeString(tok[dot1+1 : dot2])
	sig, err3 := b64.DecodeString(tok[dot2+1:])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, 0, invalidToken("malformed token")
	}
	h, err := g.parseHeader(headerJSON)
	if err != nil {
		g.log.Debug("resourceguard: token header refused", "error", err)
		return nil, 0, invalidToken("token header refused")
	}

	// The key: by kid, from our key source only; its algorithm is fixed.
	gen := g.keys.Generation()
	key, keyAlg, err := g.keys.PublicKey(ctx, h.kid)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			g.log.Debug("resourceguard: unknown key id")
			return nil, 0, invalidToken("unknown signing key")
		}
		if ue := (*KeysUnavailableError)(nil); errors.As(err, &ue) {
			// The key source logs its failed fetches; not once per request.
			c := unavailable("the authorization server's signing keys are not available yet")
			c.RetryAfter = ue.RetryAfter
			return nil, 0, c
		}
		g.log.Warn("resourceguard: key source failed", "error", err)
		return nil, 0, unavailable("signing keys are temporarily unavailable")
	}
	if keyAlg != h.alg || !g.algs[keyAlg] {
		g.log.Debug("resourceguard: algorithm does not match key", "alg", h.alg, "key_alg", keyAlg)
		return nil, 0, invalidToken("token algorithm refused")
	}
	if err := verifySignature(keyAlg, key, []byte(tok[:dot2]), sig); err != nil {
		if !errors.Is(err, errSignature) {
			g.log.Warn("resourceguard: key source returned an unusable key", "kid", h.kid, "error", err)
		}
		return nil, 0, invalidToken("invalid signature")
	}

	v, c := g.checkClaims(payload)
	if c != nil {
		return nil, 0, c
	}
	return v, gen, nil
}

var b64 = base64.RawURLEncoding.Strict()

func base64URLChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (g *Guard) parseHeader(data []byte) (jwsHeader, error) {
	var h jwsHeader
	m, err := jsonobject.Decode(data)
	if err != nil {
		return h, err
	}
	for _, name := range forbiddenHeaders {
		if _, ok := m[name]; ok {
			return h, fmt.Errorf("resourceguard: header %q is not accepted", name)
		}
	}
	if h.alg, err = stringMember(m, "alg"); err != nil || h.alg == "" {
		return h, errors.New("resourceguard: header alg missing")
	}
	if !g.algs[h.alg] {
		return h, fmt.Errorf("resourceguard: algorithm %q not allowed", h.alg)
	}
	if h.kid, err = stringMember(m, "kid"); err != nil || h.kid == "" {
		return h, errors.New("resourceguard: header kid missing")
	}
	if len(h.kid) > 256 {
		return h, errors.New("resourceguard: kid too long")
	}
	for i := 0; i < len(h.kid); i++ {
		if c := h.kid[i]; c < 0x21 || c > 0x7e {
			return h, errors.New("resourceguard: kid has forbidden characters")
		}
	}
	if h.typ, err = stringMember(m, "typ"); err != nil {
		return h, err
	}
	if g.requireTyp && !isAccessTokenTyp(h.typ) {
		return h, errors.New("resourceguard: typ is not at+jwt")
	}
	return h, nil
}

// isAccessTokenTyp: "at+jwt", also with the "application/" prefix (RFC 9068
// §2.1, RFC 7515 §4.1.9), case-insensitively.
func isAccessTokenTyp(t string) bool {
	return strings.EqualFold(t, "at+jwt") || strings.EqualFold(t, "application/at+jwt")
}

// stringMember returns member name as a string; absent is "".
func stringMember(m map[string]json.RawMessage, name string) (string, error) {
	raw, ok := m[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("resourceguard: %s is not a string", name)
	}
	return s, nil
}

// trueMember reports whether m has name set to the JSON boolean true.
func trueMember(m map[string]json.RawMessage, name string) bool {
	var b bool
	return json.Unmarshal(m[name], &b) == nil && b
}

// stringsMember returns a string or an array of strings.
func stringsMember(m map[string]json.RawMessage, name string) ([]string, error) {
	raw, ok := m[name]
	if !ok {
		return nil, nil
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var a []string
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("resourceguard: %s is not an array of strings", name)
		}
		return a, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("resourceguard: %s is not a string", name)
	}
	return []string{s}, nil
}

// maxNumericDate is 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// dateMember returns a NumericDate member (RFC 7519 §2); absent is zero.
func dateMember(m map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("resourceguard: %s is not a NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// safeHeaderValue: claims that may be sent upstream as header values must
// not carry control characters, and are bounded.
func safeHeaderValue(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// checkClaims validates the claims (RFC 9068 §4) and builds the principal.
func (g *Guard) checkClaims(payload []byte) (*verifiedToken, *Challenge) {
	m, err := jsonobject.Decode(payload)
	if err != nil {
		return nil, invalidToken("malformed token claims")
	}
	bad := func(reason string) (*verifiedToken, *Challenge) {
		g.log.Debug("resourceguard: token refused", "reason", reason)
		return nil, invalidToken(reason)
	}
	iss, err := stringMember(m, "iss")
	if err != nil || iss != g.issuer {
		return bad("wrong issuer")
	}
	aud, err := stringsMember(m, "aud")
	if err != nil || !g.audienceOK(aud) {
		return bad("the token is not meant for this resource")
	}
	now := g.now()
	exp, err := dateMember(m, "exp")
	if err != nil || exp.IsZero() {
		return bad("the token has no valid expiry")
	}
	if !now.Before(exp.Add(g.leeway)) {
		return bad("the token expired")
	}
	nbf, err := dateMember(m, "nbf")
	if err != nil {
		return bad("malformed nbf")
	}
	if !nbf.IsZero() && now.Add(g.leeway).Before(nbf) {
		return bad("the token is not valid yet")
	}
	iat, err := dateMember(m, "iat")
	if err != nil {
		return bad("malformed iat")
	}
	if !iat.IsZero() && now.Add(g.leeway).Before(iat) {
		return bad("the token was issued in the future")
	}
	var p Principal
	p.Audience = aud
	p.Expiry = exp
	if p.Subject, err = stringMember(m, "sub"); err != nil || p.Subject == "" {
		return bad("the token has no subject")
	}
	if p.ClientID, err = stringMember(m, "client_id"); err != nil {
		return bad("malformed client_id")
	}
	if p.ClientID == "" {
		if p.ClientID, err = stringMember(m, "azp"); err != nil {
			return bad("malformed azp")
		}
	}
	if p.Email, err = stringMember(m, "email"); err != nil {
		p.Email = "" // not ours to validate; just not forwarded
	}
	if !trueMember(m, "email_verified") {
		// Only a verified email goes upstream (requirement 36): an
		// address nobody verified could be anyone's.
		p.Email = ""
	}
	if p.GrantID, err = stringMember(m, "sid"); err != nil {
		return bad("malformed sid")
	}
	if p.TokenID, err = stringMember(m, "jti"); err != nil {
		return bad("malformed jti")
	}
	if !safeHeaderValue(p.Subject) || !safeHeaderValue(p.ClientID) || !safeHeaderValue(p.Email) {
		return bad("the token's identity claims contain control characters")
	}
	scope, err := stringMember(m, "scope")
	if err != nil {
		return bad("malformed scope")
	}
	p.Scopes = strings.Fields(scope)
	if scp, err := stringsMember(m, "scp"); err != nil {
		return bad("malformed scp")
	} else {
		for _, s := range scp {
			p.Scopes = append(p.Scopes, strings.Fields(s)...)
		}
	}
	p.Scopes = dedupe(p.Scopes)
	for _, s := range p.Scopes {
		if !validScopeToken(s) {
			return bad("malformed scope")
		}
	}
	p.Claims = make(map[string]any, len(m))
	for k, raw := range m {
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return bad("malformed claims")
		}
		p.Claims[k] = v
	}
	jkt, ok := cnfJKT(m)
	if !ok {
		return bad("the token's confirmation (cnf) is not a DPoP key thumbprint")
	}
	// Tokens of one user, client and grant share these strings and their
	// scope set: the check of every request reads them, and 1,000 cached
	// tokens with 1,000 copies of each kept them out of the CPU's caches.
	v := &verifiedToken{scopes: g.scopeSet(p.Scopes), jkt: jkt, bound: jkt != ""}
	h := &v.interned
	p.Subject, p.ClientID, p.GrantID, p.Email = intern(p.Subject, &h[0]), intern(p.ClientID, &h[1]), intern(p.GrantID, &h[2]), intern(p.Email, &h[3])
	v.p = p
	v.cacheUntil = min(now.Add(g.cacheMaxTTL).UnixNano(), exp.UnixNano())
	return v, nil
}

// audienceOK reports whether one of aud is ours: exactly one of the
// configured audiences, or, only when no value matches exactly, equal to the
// resource once both are in resourceuri's canonical form.
func (g *Guard) audienceOK(aud []string) bool {
	for _, a := range aud {
		if slices.Contains(g.audiences, a) {
			return true
		}
	}
	if len(g.normAudiences) == 0 {
		return false
	}
	for _, a := range aud {
		if n, err := resourceuri.Normalize(a); err == nil && slices.Contains(g.normAudiences, n) {
			return true
		}
	}
	return false
}

// intern returns the canonical copy of s and keeps its handle in h: the
// canonical copy lives only while a handle does, so without it the next
// garbage collection would end the sharing.
func intern(s string, h *unique.Handle[string]) string {
	if s == "" {
		return ""
	}
	*h = unique.Make(s)
	return h.Value()
}

// maxScopeSets bounds the shared scope sets: tokens beyond it get their own.
const maxScopeSets = 1024

// tokenScopes is what a token's scope claim means to the guard, shared by
// every token with the same claim (read-only once built).
type tokenScopes struct {
	set  map[string]struct{} // the scopes plus those the hierarchy implies (expandScopes)
	line string              // the scopes, space-separated: the identity header's value
}

// scopeSet returns the shared tokenScopes of a scope claim.
func (g *Guard) scopeSet(scopes []string) *tokenScopes {
	key := strings.Join(scopes, " ")
	if ts, ok := g.scopeSets.Load(key); ok {
		return ts.(*tokenScopes)
	}
	ts := &tokenScopes{set: g.expandScopes(scopes), line: key}
	if g.scopeSetCount.Add(1) <= maxScopeSets {
		got, _ := g.scopeSets.LoadOrStore(key, ts)
		return got.(*tokenScopes)
	}
	return ts
}
