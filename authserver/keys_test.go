package authserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// keysTestClock is a settable clock.
type keysTestClock struct {
	mu  sync.Mutex
	now time.Time
}

func newKeysTestClock() *keysTestClock {
	return &keysTestClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *keysTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *keysTestClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// countingKeys is the real bbolt store, counting list calls (reloads).
type countingKeys struct {
	*bboltstore.Store
	lists atomic.Int64
}

func (c *countingKeys) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	c.lists.Add(1)
	return c.Store.ListSigningKeys(ctx)
}

func openKeysTestStore(t *testing.T) *bboltstore.Store {
	t.Helper()
	s, err := bboltstore.Open(filepath.Join(t.TempDir(), "keys.db"), bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestKeySet(t *testing.T, store storage.Keys, alg string, clock *keysTestClock) *KeySet {
	t.Helper()
	ks, err := NewKeySet(context.Background(), store, KeyConfig{Algorithm: alg, PublishFor: time.Hour, Now: clock.Now, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// jwsParts decodes a compact JWS.
func jwsParts(t *testing.T, token string) (header, claims map[string]any, signingInput string, sig []byte) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", token)
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := json.Unmarshal(dec(parts[0]), &header); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(dec(parts[1]), &claims); err != nil {
		t.Fatal(err)
	}
	return header, claims, parts[0] + "." + parts[1], dec(parts[2])
}

// verifyStdlib checks a JWS signature with the standard library only, as an
// independent implementation.
func verifyStdlib(t *testing.T, token string, pub crypto.PublicKey, alg string) bool {
	t.Helper()
	_, _, input, sig := jwsParts(t, token)
	digest := sha256.Sum256([]byte(input))
	switch alg {
	case AlgES256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || len(sig) != 64 {
			return false
		}
		return ecdsa.Verify(k, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case AlgEdDSA:
		k, ok := pub.(ed25519.PublicKey)
		return ok && ed25519.Verify(k, []byte(input), sig)
	case AlgRS256:
		k, ok := pub.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil
	}
	return false
}

var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"}

func TestKeySetSignVerify(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			clock := newKeysTestClock()
			store := openKeysTestStore(t)
			ks := newTestKeySet(t, store, alg, clock)
			if ks.Algorithm() != alg {
				t.Fatalf("Algorithm() = %q", ks.Algorithm())
			}
			tok, err := ks.Sign(ctx, map[string]any{"sub": "u1", "n": 1}, "at+jwt")
			if err != nil {
				t.Fatal(err)
			}
			hdr, claims, _, _ := jwsParts(t, tok)
			kid, _ := hdr["kid"].(string)
			if hdr["alg"] != alg || hdr["typ"] != "at+jwt" || kid == "" || len(hdr) != 3 {
				t.Fatalf("header %v", hdr)
			}
			if claims["sub"] != "u1" {
				t.Fatalf("claims %v", claims)
			}
			pub, gotAlg, err := ks.PublicKey(ctx, kid)
			if err != nil || gotAlg != alg {
				t.Fatalf("PublicKey: %v %q", err, gotAlg)
			}
			if !verifyStdlib(t, tok, pub, alg) {
				t.Fatal("standard library does not verify the signature")
			}
			if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.SignatureAlgorithm(alg), pub)); err != nil {
				t.Fatalf("jwx verify: %v", err)
			}
			// The JWKS alone verifies it, and holds no private member.
			set, err := jwk.Parse(ks.JWKSJSON())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set)); err != nil {
				t.Fatalf("verify with JWKS: %v", err)
			}
			var raw struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(ks.JWKSJSON(), &raw); err != nil {
				t.Fatal(err)
			}
			if len(raw.Keys) != 1 {
				t.Fatalf("%d keys published", len(raw.Keys))
			}
			k := raw.Keys[0]
			if k["kid"] != kid || k["alg"] != alg || k["use"] != "sig" {
				t.Fatalf("jwk %v", k)
			}
			for _, m := range privateJWKMembers {
				if _, ok := k[m]; ok {
					t.Fatalf("JWKS leaks private member %q", m)
				}
			}
			// The store holds the private JWK.
			stored, err := store.ListSigningKeys(ctx)
			if err != nil || len(stored) != 1 {
				t.Fatalf("stored keys: %v %d", err, len(stored))
			}
			priv, err := jwk.ParseKey(stored[0].PrivateJWK)
			if err != nil {
				t.Fatal(err)
			}
			if isPriv, _ := jwk.IsPrivateKey(priv); !isPriv || stored[0].ID != kid || stored[0].Algorithm != alg {
				t.Fatalf("stored key %+v is not the private key", stored[0].ID)
			}
			// A tampered token does not verify.
			tampered := tok[:len(tok)-4] + "AAAA"
			if tampered != tok && verifyStdlib(t, tampered, pub, alg) {
				t.Fatal("tampered signature verifies")
			}
		})
	}
}

func TestKeySetLoadsExistingKey(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	store := openKeysTestStore(t)
	a := newTestKeySet(t, store, AlgES256, clock)
	b := newTestKeySet(t, store, "", clock) // default ES256: same key, no rotation
	if string(a.JWKSJSON()) != string(b.JWKSJSON()) {
		t.Fatal("two key sets on one store publish different JWKS")
	}
	keys, _ := store.ListSigningKeys(ctx)
	if len(keys) != 1 {
		t.Fatalf("%d keys in store, want 1", len(keys))
	}
}

func TestKeySetAlgorithmChangeRotates(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	store := openKeysTestStore(t)
	es := newTestKeySet(t, store, AlgES256, clock)
	old, _ := es.Sign(ctx, map[string]any{"x": 1}, "at+jwt")
	ed := newTestKeySet(t, store, AlgEdDSA, clock)
	// The EdDSA key is pre-published: the ES256 key signs until then.
	tok, _ := ed.Sign(ctx, map[string]any{"x": 1}, "at+jwt")
	if h, _, _, _ := jwsParts(t, tok); h["alg"] != AlgES256 {
		t.Fatalf("alg %v during pre-publication, want ES256", h["alg"])
	}
	// A restart during pre-publication does not rotate again.
	_ = newTestKeySet(t, store, AlgEdDSA, clock)
	if keys, _ := store.ListSigningKeys(ctx); len(keys) != 2 {
		t.Fatalf("%d keys after a restart during pre-publication, want 2", len(keys))
	}
	clock.Add(ed.PrePublish())
	tok, _ = ed.Sign(ctx, map[string]any{"x": 1}, "at+jwt")
	if h, _, _, _ := jwsParts(t, tok); h["alg"] != AlgEdDSA {
		t.Fatalf("alg %v", h["alg"])
	}
	// The ES256 key stays published for tokens it signed.
	h, _, _, _ := jwsParts(t, old)
	if _, alg, err := ed.PublicKey(ctx, h["kid"].(string)); err != nil || alg != AlgES256 {
		t.Fatalf("retired ES256 key: %v %q", err, alg)
	}
}

func TestKeySetRotation(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	store := openKeysTestStore(t)
	ks := newTestKeySet(t, store, AlgES256, clock)
	gen0 := ks.Generation()
	if gen0 == 0 {
		t.Fatal("generation starts at 0")
	}
	oldTok, _ := ks.Sign(ctx, map[string]any{"t": "old"}, "at+jwt")
	oldHdr, _, _, _ := jwsParts(t, oldTok)
	oldKid := oldHdr["kid"].(string)

	clock.Add(time.Minute)
	if err := ks.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if ks.Generation() == gen0 {
		t.Fatal("generation did not change on rotation")
	}
	// Pre-published: the old key signs until PrePublish has passed.
	if tok, _ := ks.Sign(ctx, map[string]any{"t": "old"}, "at+jwt"); tokenKid(t, tok) != oldKid {
		t.Fatal("the rotated-in key signs before its pre-publication window passed")
	}
	clock.Add(ks.PrePublish())
	newTok, _ := ks.Sign(ctx, map[string]any{"t": "new"}, "at+jwt")
	gen1 := ks.Generation()
	newHdr, _, _, _ := jwsParts(t, newTok)
	newKid := newHdr["kid"].(string)
	if newKid == oldKid {
		t.Fatal("rotation kept the kid")
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(ks.JWKSJSON(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].Kid != newKid || set.Keys[1].Kid != oldKid {
		t.Fatalf("JWKS after rotation %+v, want [%s %s]", set.Keys, newKid, oldKid)
	}
	pub, _, err := ks.PublicKey(ctx, oldKid)
	if err != nil || !verifyStdlib(t, oldTok, pub, AlgES256) {
		t.Fatalf("token of the retired key no longer verifies: %v", err)
	}
	// A reload without changes keeps the generation.
	if err := ks.Reload(ctx); err != nil || ks.Generation() != gen1 {
		t.Fatalf("reload changed generation: %v", err)
	}

	// Still published just before PublishUntil (PublishFor + ReloadEvery
	// after the new key's activation).
	clock.Add(time.Hour + time.Minute - time.Second)
	if _, _, err := ks.PublicKey(ctx, oldKid); err != nil {
		t.Fatalf("retired key dropped before PublishUntil: %v", err)
	}
	// Past PublishUntil the retired key leaves the JWKS and maintenance
	// deletes it from the store.
	clock.Add(time.Second)
	if _, _, err := ks.PublicKey(ctx, oldKid); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("expired key still served: %v", err)
	}
	ks.maintain(ctx)
	if ks.Generation() == gen1 {
		t.Fatal("generation did not change when a key stopped being published")
	}
	if err := json.Unmarshal(ks.JWKSJSON(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].Kid != newKid {
		t.Fatalf("JWKS %+v, want only %s", set.Keys, newKid)
	}
	stored, _ := store.ListSigningKeys(ctx)
	if len(stored) != 1 || stored[0].ID != newKid {
		t.Fatalf("store still holds %d keys", len(stored))
	}
}

func TestKeySetUnknownKid(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	store := &countingKeys{Store: openKeysTestStore(t)}
	ks := newTestKeySet(t, store, AlgES256, clock)
	before := store.lists.Load()
	for _, kid := range []string{"nope", "", strings.Repeat("k", 300)} {
		_, _, err := ks.PublicKey(ctx, kid)
		if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, resourceguard.ErrUnknownKey) {
			t.Fatalf("kid %q: %v", kid, err)
		}
	}
	if got := store.lists.Load() - before; got != 1 {
		t.Fatalf("unknown kids caused %d reloads, want 1 within 10s", got)
	}
	clock.Add(11 * time.Second)
	_, _, _ = ks.PublicKey(ctx, "nope")
	if got := store.lists.Load() - before; got != 2 {
		t.Fatalf("after 10s: %d reloads, want 2", got)
	}

	// With the store down, known keys are still served from memory, and an
	// unknown kid is "unavailable", not "unknown".
	tok, err := ks.Sign(ctx, map[string]any{"x": 1}, "at+jwt")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Add(11 * time.Second)
	h, _, _, _ := jwsParts(t, tok)
	if _, _, err := ks.PublicKey(ctx, h["kid"].(string)); err != nil {
		t.Fatalf("known key with the store down: %v", err)
	}
	_, _, err = ks.PublicKey(ctx, "other")
	if err == nil || errors.Is(err, ErrUnknownKey) || errors.Is(err, resourceguard.ErrUnknownKey) {
		t.Fatalf("store down: %v, want an unavailable error", err)
	}
}

func TestKeySetsConverge(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	store := openKeysTestStore(t)

	// Instances starting together agree on one key.
	var wg sync.WaitGroup
	sets := make([]*KeySet, 4)
	errs := make([]error, 4)
	for i := range sets {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sets[i], errs[i] = NewKeySet(ctx, store, KeyConfig{PublishFor: time.Hour, Now: clock.Now, Logger: quietLogger()})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	keys, _ := store.ListSigningKeys(ctx)
	if len(keys) != 1 {
		t.Fatalf("%d keys after concurrent start, want 1", len(keys))
	}
	a, b := sets[0], sets[1]
	for _, s := range sets[1:] {
		if string(s.JWKSJSON()) != string(a.JWKSJSON()) {
			t.Fatal("instances publish different JWKS")
		}
	}

	// A rotates; B publishes the new key from its next reload, before
	// anyone signs with it; both switch to it at its activation without
	// reading the store again.
	clock.Add(time.Minute)
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if string(a.JWKSJSON()) != string(b.JWKSJSON()) {
		t.Fatal("JWKS differ after B reloaded")
	}
	before, _ := b.Sign(ctx, map[string]any{"x": 1}, "at+jwt")
	clock.Add(a.PrePublish())
	tok, _ := a.Sign(ctx, map[string]any{"x": 1}, "at+jwt")
	tb, _ := b.Sign(ctx, map[string]any{"x": 1}, "at+jwt")
	if tokenKid(t, tok) == tokenKid(t, before) || tokenKid(t, tb) != tokenKid(t, tok) {
		t.Fatalf("after activation A signs with %s, B with %s (before: %s)", tokenKid(t, tok), tokenKid(t, tb), tokenKid(t, before))
	}
	h, _, _, _ := jwsParts(t, tok)
	pub, _, err := b.PublicKey(ctx, h["kid"].(string))
	if err != nil || !verifyStdlib(t, tok, pub, AlgES256) {
		t.Fatalf("B cannot verify A's new key: %v", err)
	}

	// Both rotate at once from the same view: exactly one new key wins, both adopt it.
	clock.Add(time.Minute)
	if err := sets[2].Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sets[3].Reload(ctx); err != nil {
		t.Fatal(err)
	}
	errs = errs[:2]
	for i, s := range []*KeySet{sets[2], sets[3]} {
		wg.Add(1)
		go func(i int, s *KeySet) {
			defer wg.Done()
			errs[i] = s.Rotate(ctx)
		}(i, s)
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("rotate: %v %v", errs[0], errs[1])
	}
	keys, _ = store.ListSigningKeys(ctx)
	if len(keys) != 3 {
		t.Fatalf("%d keys after concurrent rotation, want 3", len(keys))
	}
	if string(sets[2].JWKSJSON()) != string(sets[3].JWKSJSON()) {
		t.Fatal("concurrent rotators disagree")
	}
	t2, _ := sets[2].Sign(ctx, map[string]any{}, "at+jwt")
	t3, _ := sets[3].Sign(ctx, map[string]any{}, "at+jwt")
	h2, _, _, _ := jwsParts(t, t2)
	h3, _, _, _ := jwsParts(t, t3)
	if h2["kid"] != h3["kid"] {
		t.Fatal("concurrent rotators sign with different keys")
	}
}

func TestKeySetSkipsUnreadableKey(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	store := openKeysTestStore(t)
	ks := newTestKeySet(t, store, AlgES256, clock)
	good, _ := store.ListSigningKeys(ctx)
	// A newer record that is not a private key (a public JWK) must never
	// be used or published.
	pubOnly, _ := jwk.ParseKey(good[0].PrivateJWK)
	pk, _ := jwk.PublicKeyOf(pubOnly)
	pkJSON, _ := json.Marshal(pk)
	clock.Add(time.Second)
	if err := store.AddSigningKey(ctx, storage.SigningKey{ID: "bogus", Algorithm: AlgES256, PrivateJWK: pkJSON, CreatedAt: clock.Now()}, good[0].ID, clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := ks.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ks.JWKSJSON()), "bogus") {
		t.Fatal("unreadable key published")
	}
	if _, err := ks.Sign(ctx, map[string]any{}, "at+jwt"); err == nil {
		t.Fatal("signed with no usable active key")
	}
	// Rotation recovers.
	if err := ks.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Sign(ctx, map[string]any{}, "at+jwt"); err != nil {
		t.Fatal(err)
	}
}

func TestNewKeySetRefusesBadConfig(t *testing.T) {
	store := openKeysTestStore(t)
	for name, cfg := range map[string]KeyConfig{
		"HS256":           {Algorithm: "HS256"},
		"none":            {Algorithm: "none"},
		"negative rotate": {RotateEvery: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewKeySet(context.Background(), store, cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := NewKeySet(context.Background(), nil, KeyConfig{}); err == nil {
		t.Fatal("accepted a nil store")
	}
}

// TestKeySetRun drives Run's timers with a fake clock (testing/synctest):
// scheduled rotation, then deletion of the retired key past PublishUntil.
func TestKeySetRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		store, err := bboltstore.Open(filepath.Join(t.TempDir(), "run.db"), bboltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		ks, err := NewKeySet(ctx, store, KeyConfig{
			RotateEvery: 90 * time.Minute, PublishFor: 30 * time.Minute, ReloadEvery: time.Minute, Logger: quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		first, _ := store.ListSigningKeys(ctx)
		done := make(chan struct{})
		go func() { ks.Run(ctx); close(done) }()

		time.Sleep(91 * time.Minute)
		synctest.Wait()
		keys, _ := store.ListSigningKeys(ctx)
		if len(keys) != 2 {
			t.Fatalf("after 91m: %d keys, want 2 (rotated at 90m)", len(keys))
		}
		time.Sleep(34 * time.Minute) // 125m: the first key's PublishUntil (120m) has passed
		synctest.Wait()
		keys, _ = store.ListSigningKeys(ctx)
		if len(keys) != 1 || keys[0].ID == first[0].ID {
			t.Fatalf("after 125m: %d keys, want only the new one", len(keys))
		}
		if strings.Contains(string(ks.JWKSJSON()), first[0].ID) {
			t.Fatal("deleted key still published")
		}
		cancel()
		<-done
	})
}
