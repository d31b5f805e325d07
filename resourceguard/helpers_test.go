package resourceguard

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testResource = "https://mcp.example.com/mcp"
	testIssuer   = "https://auth.example.com"
)

var testEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testClock is an adjustable clock.
type testClock struct{ ns atomic.Int64 }

func newClock() *testClock {
	c := &testClock{}
	c.ns.Store(testEpoch.UnixNano())
	return c
}
func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Test keys, generated once per test binary.
var (
	keysOnce                    sync.Once
	ecKey, ecKey2               *ecdsa.PrivateKey
	ec384Key                    *ecdsa.PrivateKey
	edKey                       ed25519.PrivateKey
	rsaKey                      *rsa.PrivateKey
	errTestKeySourceUnavailable = errors.New("test: key source down")
)

func loadKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if ecKey2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if ec384Key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
}

// memKeys is an in-memory KeySource, like the authorization server's key set.
type memKeys struct {
	mu    sync.RWMutex
	keys  map[string]memKey
	gen   atomic.Uint64
	calls atomic.Int64
	down  atomic.Bool
}

type memKey struct {
	pub crypto.PublicKey
	alg string
}

func newMemKeys(t testing.TB) *memKeys {
	loadKeys(t)
	return &memKeys{keys: map[string]memKey{
		"ec1":    {&ecKey.PublicKey, "ES256"},
		"ec384":  {&ec384Key.PublicKey, "ES384"},
		"ed1":    {edKey.Public(), "EdDSA"},
		"rsa1":   {&rsaKey.PublicKey, "RS256"},
		"rsaPSS": {&rsaKey.PublicKey, "PS256"},
	}}
}

func (m *memKeys) PublicKey(_ context.Context, kid string) (crypto.PublicKey, string, error) {
	m.calls.Add(1)
	if m.down.Load() {
		return nil, "", errTestKeySourceUnavailable
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.keys[kid]
	if !ok {
		return nil, "", fmt.Errorf("test key set: %w", ErrUnknownKey)
	}
	return k.pub, k.alg, nil
}

func (m *memKeys) Generation() uint64 { return m.gen.Load() }

func (m *memKeys) remove(kid string) {
	m.mu.Lock()
	delete(m.keys, kid)
	m.mu.Unlock()
	m.gen.Add(1)
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// signRaw signs already-encoded header and claims JSON with alg and key.
func signRaw(t testing.TB, alg string, key any, header, claims []byte) string {
	t.Helper()
	input := b64u(header) + "." + b64u(claims)
	var sig []byte
	var err error
	switch alg {
	case "none":
		sig = nil
	case "ES256", "ES384":
		k := key.(*ecdsa.PrivateKey)
		var digest []byte
		if alg == "ES256" {
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		} else {
			d := sha512.Sum384([]byte(input))
			digest = d[:]
		}
		r, s, e := ecdsa.Sign(rand.Reader, k, digest)
		if e != nil {
			t.Fatal(e)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	case "EdDSA":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), []byte(input))
	case "RS256":
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, d[:])
	case "PS256":
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "HS256":
		mac := hmac.New(sha256.New, key.([]byte))
		mac.Write([]byte(input))
		sig = mac.Sum(nil)
	default:
		t.Fatalf("signRaw: unknown alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64u(sig)
}

func sign(t testing.TB, alg string, key any, header, claims map[string]any) string {
	t.Helper()
	return signRaw(t, alg, key, mustJSON(header), mustJSON(claims))
}

// goodClaims are valid claims for testResource at clock c.
func goodClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss":       testIssuer,
		"sub":       "user-123",
		"aud":       testResource,
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Add(-time.Minute).Unix(),
		"jti":       "tok-1",
		"client_id": "client-abc",
		"scope":     "mcp todo:read",
		"sid":       "grant-1",
		"email":     "user@example.com",
		// The guard forwards the email only when it is verified.
		"email_verified": true,
	}
}

func ecHeader() map[string]any { return map[string]any{"alg": "ES256", "kid": "ec1", "typ": "at+jwt"} }

// fixture is a guard over an upstream that records what reached it.
type fixture struct {
	t       testing.TB
	g       *Guard
	keys    *memKeys
	clock   *testClock
	handler http.Handler
	reached atomic.Int64
	mu      sync.Mutex
	seen    []*http.Request
	bodies  []string
}

func newFixture(t testing.TB, mutate func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, keys: newMemKeys(t), clock: newClock()}
	cfg := Config{
		Resource:   testResource,
		Issuer:     testIssuer,
		Keys:       f.keys,
		RequireTyp: true,
		Scopes:     []string{"mcp"},
		Now:        f.clock.Now,
		Identity:   IdentityHeaders{Subject: "X-Auth-Subject", ClientID: "X-Auth-Client", Scopes: "X-Auth-Scopes", Email: "X-Auth-Email"},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.g = g
	f.handler = g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.reached.Add(1)
		var body strings.Builder
		if r.Body != nil {
			buf := make([]byte, 512)
			for {
				n, err := r.Body.Read(buf)
				body.Write(buf[:n])
				if err != nil {
					break
				}
			}
		}
		f.mu.Lock()
		f.seen = append(f.seen, r)
		f.bodies = append(f.bodies, body.String())
		f.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("upstream ok"))
	}))
	return f
}

func (f *fixture) token(mutate func(h, c map[string]any)) string {
	h, c := ecHeader(), goodClaims(f.clock.Now())
	if mutate != nil {
		mutate(h, c)
	}
	return sign(f.t, "ES256", ecKey, h, c)
}

func (f *fixture) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w
}

func bearerReq(method, target, tok string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

// parseChallenges parses a WWW-Authenticate value holding one challenge
// (RFC 9110 §11.6.1 / RFC 7235 §2.1):
//
//	challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//
// It is written independently of the builder and is strict: duplicate
// parameters, bad escapes and stray characters are errors.
func parseChallenge(s string) (scheme string, params map[string]string, err error) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	if i == 0 {
		return "", nil, errors.New("no auth-scheme")
	}
	scheme = s[:i]
	params = map[string]string{}
	if i == len(s) {
		return scheme, params, nil
	}
	if s[i] != ' ' {
		return "", nil, fmt.Errorf("expected SP after scheme at %d", i)
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	first := true
	for i < len(s) {
		if !first {
			// OWS "," OWS
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			if i >= len(s) || s[i] != ',' {
				return "", nil, fmt.Errorf("expected ',' at %d", i)
			}
			i++
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
		}
		first = false
		start := i
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		if i == start {
			return "", nil, fmt.Errorf("expected param name at %d", i)
		}
		name := strings.ToLower(s[start:i])
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			return "", nil, fmt.Errorf("expected '=' at %d", i)
		}
		i++
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				switch {
				case c == '"':
					closed = true
					i++
				case c == '\\':
					if i+1 >= len(s) {
						return "", nil, errors.New("dangling escape")
					}
					n := s[i+1]
					if !(n == '\t' || n == ' ' || (n >= 0x21 && n != 0x7f)) {
						return "", nil, errors.New("bad quoted-pair")
					}
					val.WriteByte(n)
					i += 2
					continue
				case c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80:
					val.WriteByte(c)
					i++
					continue
				default:
					return "", nil, fmt.Errorf("bad character %q in quoted-string", c)
				}
				break
			}
			if !closed {
				return "", nil, errors.New("unterminated quoted-string")
			}
		} else {
			start := i
			for i < len(s) && isTokenChar(s[i]) {
				i++
			}
			if i == start {
				return "", nil, fmt.Errorf("expected value at %d", i)
			}
			val.WriteString(s[start:i])
		}
		if _, dup := params[name]; dup {
			return "", nil, fmt.Errorf("duplicate param %q", name)
		}
		params[name] = val.String()
	}
	return scheme, params, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
