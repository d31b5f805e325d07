package authserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// The key set is the resource guard's key source when both run in one
// process (no network call per request).
var _ resourceguard.KeySource = (*KeySet)(nil)

// Signing keys: persisted in the store so that every instance sharing it
// signs with the same key and publishes the same JWKS. The newest key whose
// activation has passed and that is not retired signs. Rotation adds a key
// and retires the others in one compare-and-swap
// (storage.Keys.AddSigningKey). The new key is pre-published: it is in the
// JWKS of every instance from their next reload but signs only after
// KeyConfig.PrePublish, longer than the reload interval plus the JWKS
// Cache-Control max-age, so no verifier ever meets a token whose key it
// could not have fetched; the previous key signs until that moment, on
// every instance, with no further write. A retired key stays in the JWKS
// until its PublishUntil, which is at least the longest access token
// lifetime after its retirement, so tokens it signed stay verifiable.

// Signing algorithms.
const (
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
	AlgRS256 = "RS256"
)

// ErrUnknownKey: no published key has the requested key id. Errors of
// PublicKey for an unknown kid wrap it and resourceguard.ErrUnknownKey, so
// the guard answers 401 invalid_token (not 503) for a token naming a key we
// never had.
var ErrUnknownKey = errors.New("authserver: unknown signing key")

// unknownKeyError wraps both sentinels.
func unknownKeyError(format string, args ...any) error {
	return fmt.Errorf("%w (%w): "+format, append([]any{ErrUnknownKey, resourceguard.ErrUnknownKey}, args...)...)
}

// unknownKidReloadEvery limits the reloads an unknown kid can trigger.
const unknownKidReloadEvery = 10 * time.Second

// Defaults of KeyConfig.
const (
	// DefaultKeyReloadEvery is how often a key set re-reads the store.
	DefaultKeyReloadEvery = time.Minute
	// JWKSMaxAge is the longest Cache-Control max-age the JWKS is served
	// with (KeySet.JWKSMaxAge may be shorter, with a short PrePublish).
	JWKSMaxAge = 5 * time.Minute
)

// DefaultPrePublish is the pre-publication window of a key set that
// reloads every reloadEvery (DefaultKeyReloadEvery when 0): one reload
// interval for every instance to read the new key, the JWKS max-age for
// every cache of an older JWKS to expire, and one more reload interval of
// margin (instances reload out of phase; clocks differ a little).
func DefaultPrePublish(reloadEvery time.Duration) time.Duration {
	if reloadEvery <= 0 {
		reloadEvery = DefaultKeyReloadEvery
	}
	return 2*reloadEvery + JWKSMaxAge
}

// KeyConfig configures a KeySet.
type KeyConfig struct {
	// Algorithm of new keys: ES256 (default), EdDSA or RS256 (2048-bit).
	Algorithm string
	// PublishFor is how long a retired key stays in the JWKS (plus
	// ReloadEvery, the time other instances may still sign with it). It must
	// be at least the longest access token lifetime. Default 2h for a bare
	// KeySet; New raises it to twice the longest access-token lifetime of
	// its Config (the server's, owned clients', CIMD policies').
	PublishFor time.Duration
	// RotateEvery rotates the signing key on this schedule (checked by Run);
	// 0 rotates only on demand.
	RotateEvery time.Duration
	// ReloadEvery re-reads the store (in Run) so that several instances
	// sharing it converge. Default 1m (DefaultKeyReloadEvery). Every
	// instance sharing the store should use the same value.
	ReloadEvery time.Duration
	// PrePublish is how long a rotated-in key is published before it
	// signs (Rotate; RotateNow skips it). It must be longer than
	// ReloadEvery; the JWKS max-age is then PrePublish - 2*ReloadEvery, at
	// most JWKSMaxAge, so that it also outlasts every cached JWKS. Default
	// DefaultPrePublish(ReloadEvery).
	PrePublish time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives rotation and maintenance events; nil discards them
	// (the caller injects its logger: there is no global fallback).
	Logger *slog.Logger
	// Encryption seals private keys at rest (see KeyEncryption). Nil stores
	// them as plaintext JWKs, and then an encrypted stored key fails
	// NewKeySet with ErrKeyDecrypt.
	Encryption *KeyEncryption
}

// loadedKey is a stored signing key, decoded.
type loadedKey struct {
	kid, alg     string
	signer       crypto.Signer
	public       crypto.PublicKey
	publicJWK    json.RawMessage
	createdAt    time.Time
	activatedAt  time.Time
	retiredAt    time.Time
	publishUntil time.Time
}

// signsAt reports whether the key may sign at now: activated and not retired.
func (lk *loadedKey) signsAt(now time.Time) bool {
	return !now.Before(lk.activatedAt) && (lk.retiredAt.IsZero() || now.Before(lk.retiredAt))
}

// KeySet holds the signing keys of the authorization server. It is safe for
// concurrent use.
type KeySet struct {
	store storage.Keys
	cfg   KeyConfig

	reloadMu sync.Mutex // serializes Reload and Rotate

	mu          sync.RWMutex
	active      *loadedKey
	published   map[string]*loadedKey
	jwks        []byte
	fingerprint string
	generation  uint64
	// nextSwitch is the earliest future activation (or retirement) that
	// changes the active key; zero when none is pending. Sign switches at
	// that moment, without waiting for a reload.
	nextSwitch time.Time
	lastMiss   time.Time // last reload triggered by an unknown kid
	// storeActive is the kid of the newest unretired key in the store, even
	// when it could not be decoded: rotation compares against it. It may
	// be a pre-published key not signing yet; storeActiveAlg and
	// storeActiveAt are its algorithm and activation.
	storeActive    string
	storeActiveAlg string
	storeActiveAt  time.Time
	// retiredExpired are retired keys past PublishUntil, deleted by Run.
	retiredExpired []string
}

// NewKeySet loads the keys from store. When no key is active it creates one
// (a compare-and-swap that expects none, so instances starting together
// agree on a single key); when the active key's algorithm differs from the
// configured one it rotates to a key of the configured algorithm.
func NewKeySet(ctx context.Context, store storage.Keys, cfg KeyConfig) (*KeySet, error) {
	if store == nil {
		return nil, errors.New("authserver: key set needs a store")
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = AlgES256
	}
	switch cfg.Algorithm {
	case AlgES256, AlgEdDSA, AlgRS256:
	default:
		return nil, fmt.Errorf("authserver: unsupported signing algorithm %q (ES256, EdDSA or RS256)", cfg.Algorithm)
	}
	if cfg.PublishFor <= 0 {
		cfg.PublishFor = 2 * time.Hour
	}
	if cfg.RotateEvery < 0 {
		return nil, errors.New("authserver: negative key rotation interval")
	}
	if cfg.ReloadEvery <= 0 {
		cfg.ReloadEvery = DefaultKeyReloadEvery
	}
	if cfg.PrePublish < 0 {
		return nil, errors.New("authserver: negative key pre-publication window")
	}
	if cfg.PrePublish == 0 {
		cfg.PrePublish = DefaultPrePublish(cfg.ReloadEvery)
	}
	if cfg.PrePublish <= cfg.ReloadEvery {
		return nil, fmt.Errorf("authserver: key pre-publication window %s must be longer than the key reload interval %s", cfg.PrePublish, cfg.ReloadEvery)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	k := &KeySet{store: store, cfg: cfg, published: map[string]*loadedKey{}}
	// At start a key we cannot decrypt is fatal: carrying on would replace
	// the keys of every instance sharing the store with a new one.
	if err := k.reload(ctx, true); err != nil {
		return nil, err
	}
	if err := k.rewrap(ctx); err != nil {
		return nil, err
	}
	k.mu.RLock()
	active, storeActive, storeAlg := k.active, k.storeActive, k.storeActiveAlg
	k.mu.RUnlock()
	switch {
	case active == nil:
		// Nothing signs: a first key (nobody can hold a token to verify
		// yet) or one replacing unreadable keys is active at once.
		if err := k.rotate(ctx, storeActive, true); err != nil {
			return nil, err
		}
	case storeAlg != cfg.Algorithm:
		// The newest key (maybe pre-published by another instance) is of
		// another algorithm: rotate, pre-published like any rotation.
		cfg.Logger.Info("authserver: signing algorithm changed; rotating", "from", storeAlg, "to", cfg.Algorithm)
		if err := k.rotate(ctx, storeActive, false); err != nil {
			return nil, err
		}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.active == nil {
		return nil, errors.New("authserver: no active signing key after initialization")
	}
	return k, nil
}

// Algorithm returns the algorithm of new keys.
func (k *KeySet) Algorithm() string { return k.cfg.Algorithm }

// Generation changes whenever the published key set (or the active key)
// changes. It starts at 1.
func (k *KeySet) Generation() uint64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.generation
}

// JWKSJSON returns the published keys as a JWK Set: the active key and the
// retired keys still published, public parts only, each with kid, alg and
// use "sig". The slice is shared: do not modify it.
func (k *KeySet) JWKSJSON() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.jwks
}

// PublicKey returns the public key and algorithm of a published key. An
// unknown kid triggers a reload of the store (at most once per 10s, so that
// a key rotated by another instance is found) and otherwise an error
// wrapping ErrUnknownKey (and resourceguard.ErrUnknownKey). When that reload
// fails the error does not wrap them: the keys are unavailable.
func (k *KeySet) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, string, error) {
	if pub, alg, ok := k.lookup(kid); ok {
		return pub, alg, nil
	}
	if kid == "" || len(kid) > 256 {
		return nil, "", unknownKeyError("empty or oversized kid")
	}
	now := k.cfg.Now()
	k.mu.Lock()
	retry := k.lastMiss.IsZero() || now.Sub(k.lastMiss) >= unknownKidReloadEvery || now.Before(k.lastMiss)
	if retry {
		k.lastMiss = now
	}
	k.mu.Unlock()
	if retry {
		if err := k.Reload(ctx); err != nil {
			// The kid may be a new key we cannot read now: unavailable, not unknown.
			return nil, "", fmt.Errorf("authserver: signing keys unavailable: %w", err)
		}
		if pub, alg, ok := k.lookup(kid); ok {
			return pub, alg, nil
		}
	}
	return nil, "", unknownKeyError("kid %q", kid)
}

func (k *KeySet) lookup(kid string) (crypto.PublicKey, string, bool) {
	k.mu.RLock()
	key, ok := k.published[kid]
	k.mu.RUnlock()
	if !ok {
		return nil, "", false
	}
	if !key.retiredAt.IsZero() && !k.cfg.Now().Before(key.publishUntil) {
		return nil, "", false
	}
	return key.public, key.alg, true
}

// JWKSMaxAge is the Cache-Control max-age of the JWKS: JWKSMaxAge, or
// less when PrePublish is short, so that a new key is in every cached copy
// before it signs (PrePublish >= 2*ReloadEvery + the max-age).
func (k *KeySet) JWKSMaxAge() time.Duration {
	return max(0, min(JWKSMaxAge, k.cfg.PrePublish-2*k.cfg.ReloadEvery))
}

// PrePublish returns the pre-publication window of rotated-in keys.
func (k *KeySet) PrePublish() time.Duration { return k.cfg.PrePublish }

// signer returns the key that signs now, switching to a pre-published key
// whose activation has come (on every instance at the same moment, without
// a store read).
func (k *KeySet) signer() *loadedKey {
	now := k.cfg.Now()
	k.mu.RLock()
	key, next := k.active, k.nextSwitch
	k.mu.RUnlock()
	if next.IsZero() || now.Before(next) {
		return key
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.nextSwitch.IsZero() && !now.Before(k.nextSwitch) {
		k.active, k.nextSwitch = selectActive(k.published, now)
		if err := k.rebuildLocked(); err != nil {
			k.cfg.Logger.Error("authserver: rebuilding the JWKS failed", "error", err)
		}
		if k.active != nil && k.active != key {
			k.cfg.Logger.Info("authserver: pre-published signing key now active", "kid", k.active.kid)
		}
	}
	return k.active
}

// selectActive returns the key that signs at now (the newest activated,
// unretired key) and the next moment that choice changes (zero: none).
func selectActive(published map[string]*loadedKey, now time.Time) (*loadedKey, time.Time) {
	var active *loadedKey
	var next time.Time
	later := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, lk := range published {
		if lk.activatedAt.After(now) && (lk.retiredAt.IsZero() || lk.retiredAt.After(lk.activatedAt)) {
			later(lk.activatedAt)
		}
		if !lk.signsAt(now) {
			continue
		}
		if !lk.retiredAt.IsZero() {
			later(lk.retiredAt)
		}
		if active == nil || activeNewer(lk, active) {
			active = lk
		}
	}
	return active, next
}

// ActiveSigningKey returns the id of the stored key that signs at now (""
// when none does): the rule of KeySet, for views of the store (the admin
// API) that do not decode the keys.
func ActiveSigningKey(keys []storage.SigningKey, now time.Time) string {
	published := make(map[string]*loadedKey, len(keys))
	for _, sk := range keys {
		published[sk.ID] = &loadedKey{kid: sk.ID, createdAt: sk.CreatedAt, activatedAt: sk.Activation(), retiredAt: sk.RetiredAt}
	}
	if active, _ := selectActive(published, now); active != nil {
		return active.kid
	}
	return ""
}

// activeNewer orders keys that may sign: the latest activation wins.
func activeNewer(a, b *loadedKey) bool {
	if !a.activatedAt.Equal(b.activatedAt) {
		return a.activatedAt.After(b.activatedAt)
	}
	return keyNewer(a, b)
}

// rebuildLocked re-encodes the JWKS after the active key changed (k.mu held).
func (k *KeySet) rebuildLocked() error {
	jwksJSON, fp, err := buildJWKS(k.active, k.published)
	if err != nil {
		return err
	}
	if fp != k.fingerprint || k.generation == 0 {
		k.fingerprint = fp
		k.jwks = jwksJSON
		k.generation++
	}
	return nil
}

// Sign returns a compact JWS of claims signed with the active key, with the
// protected header {alg, kid, typ}.
func (k *KeySet) Sign(ctx context.Context, claims map[string]any, typ string) (string, error) {
	key := k.signer()
	if key == nil {
		return "", errors.New("authserver: no active signing key")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("authserver: encode claims: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, key.kid); err != nil {
		return "", fmt.Errorf("authserver: jws header: %w", err)
	}
	if typ != "" {
		if err := hdr.Set(jws.TypeKey, typ); err != nil {
			return "", fmt.Errorf("authserver: jws header: %w", err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(key.alg), key.signer, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("authserver: sign: %w", err)
	}
	return string(signed), nil
}

// Rotate adds a new key, published at once and signing after PrePublish
// (when every instance and every cache of the JWKS has it); the current
// key signs until then and stays published for PublishFor after. When
// another instance rotated at the same moment (the compare-and-swap lost),
// its key is adopted instead and Rotate succeeds.
// While no key signs (every stored key unreadable), the new key signs at
// once: there is no verifier to protect and no token to keep verifiable.
func (k *KeySet) Rotate(ctx context.Context) error {
	k.mu.RLock()
	expect, none := k.storeActive, k.active == nil
	k.mu.RUnlock()
	return k.rotate(ctx, expect, none)
}

// RotateNow makes a new key active at once, skipping pre-publication. It
// is disruptive: until every instance has reloaded and every verifier has
// refetched the JWKS, tokens of the new key are refused by verifiers that
// do not have it yet (use it when the current key is compromised).
func (k *KeySet) RotateNow(ctx context.Context) error {
	k.mu.RLock()
	expect := k.storeActive
	k.mu.RUnlock()
	return k.rotate(ctx, expect, true)
}

func (k *KeySet) rotate(ctx context.Context, expectActive string, immediate bool) error {
	k.reloadMu.Lock()
	now := k.cfg.Now()
	key, err := generateSigningKey(k.cfg.Algorithm, now)
	if err == nil && !immediate {
		key.ActivatedAt = now.Add(k.cfg.PrePublish)
	}
	if err == nil && k.cfg.Encryption != nil {
		key.PrivateJWK, err = k.cfg.Encryption.seal(key.ID, key.PrivateJWK)
	}
	if err != nil {
		k.reloadMu.Unlock()
		return err
	}
	// The retired key signs until the new key's activation, and other
	// instances may keep signing with it until their next reload
	// (ReloadEvery): publish it that much longer.
	publishUntil := key.Activation().Add(k.cfg.PublishFor + k.cfg.ReloadEvery)
	err = k.store.AddSigningKey(ctx, key, expectActive, publishUntil)
	k.reloadMu.Unlock()
	switch {
	case err == nil:
		k.cfg.Logger.Info("authserver: signing key rotated", "kid", key.ID, "alg", key.Algorithm, "previous", expectActive,
			"activates_at", key.Activation().UTC().Format(time.RFC3339))
	case errors.Is(err, storage.ErrConflict):
		k.cfg.Logger.Info("authserver: signing key rotated by another instance; adopting it")
	default:
		return fmt.Errorf("authserver: add signing key: %w", err)
	}
	return k.Reload(ctx)
}

// Reload re-reads the keys from the store. A key that cannot be decoded
// (or decrypted) is logged and left out.
func (k *KeySet) Reload(ctx context.Context) error { return k.reload(ctx, false) }

// reload is Reload; with strict, a key that cannot be decrypted
// (ErrKeyDecrypt) is an error instead.
func (k *KeySet) reload(ctx context.Context, strict bool) error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	stored, err := k.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("authserver: list signing keys: %w", err)
	}
	now := k.cfg.Now()

	k.mu.RLock()
	cache := k.published
	k.mu.RUnlock()

	var (
		published   = map[string]*loadedKey{}
		expired     []string
		storeActive *storage.SigningKey
	)
	if i := newestUnretired(stored); i >= 0 {
		storeActive = &stored[i]
	}
	for _, sk := range stored {
		retired := !sk.RetiredAt.IsZero()
		if retired && !now.Before(sk.PublishUntil) {
			expired = append(expired, sk.ID)
			continue
		}
		lk, ok := cache[sk.ID]
		switch {
		case ok && (!lk.retiredAt.Equal(sk.RetiredAt) || !lk.publishUntil.Equal(sk.PublishUntil)):
			// The kid is the thumbprint of the key: only its retirement
			// changed (the stored material may have been re-encrypted with
			// a KEK this instance does not have yet, during KEK rotation).
			c := *lk
			c.retiredAt, c.publishUntil = sk.RetiredAt, sk.PublishUntil
			lk = &c
		case !ok:
			lk, err = decodeSigningKey(sk, k.cfg.Encryption)
			if err != nil {
				if strict && errors.Is(err, ErrKeyDecrypt) {
					return fmt.Errorf("authserver: %w", err)
				}
				// One bad record must not take the server down; it is neither
				// published nor used.
				k.cfg.Logger.Error("authserver: skipping unreadable signing key", "kid", sk.ID, "error", err)
				continue
			}
		}
		published[lk.kid] = lk
	}
	active, next := selectActive(published, now)
	jwksJSON, fp, err := buildJWKS(active, published)
	if err != nil {
		return err
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	k.active, k.nextSwitch = active, next
	k.storeActive, k.storeActiveAlg, k.storeActiveAt = "", "", time.Time{}
	if storeActive != nil {
		k.storeActive, k.storeActiveAlg, k.storeActiveAt = storeActive.ID, storeActive.Algorithm, storeActive.Activation()
	}
	k.published = published
	k.retiredExpired = expired
	if fp != k.fingerprint || k.generation == 0 {
		k.fingerprint = fp
		k.jwks = jwksJSON
		k.generation++
	}
	return nil
}

func keyNewer(a, b *loadedKey) bool {
	if !a.createdAt.Equal(b.createdAt) {
		return a.createdAt.After(b.createdAt)
	}
	return a.kid > b.kid
}

// Run rotates the key on schedule (RotateEvery), reloads the store every
// ReloadEvery and deletes retired keys past their PublishUntil. It returns
// when ctx is done.
func (k *KeySet) Run(ctx context.Context) {
	t := time.NewTicker(k.cfg.ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.maintain(ctx)
		}
	}
}

// maintain is one round of Run.
func (k *KeySet) maintain(ctx context.Context) {
	if err := k.Reload(ctx); err != nil {
		k.cfg.Logger.Warn("authserver: reloading signing keys failed", "error", err)
		return
	}
	if k.cfg.RotateEvery > 0 {
		// The next key is added PrePublish before the newest one has
		// signed for RotateEvery, so that it takes over on schedule; none
		// is added while one is pending.
		k.mu.RLock()
		newestAt := k.storeActiveAt
		k.mu.RUnlock()
		now := k.cfg.Now()
		k.mu.RLock()
		active := k.active
		k.mu.RUnlock()
		switch {
		case active == nil && !newestAt.After(now):
			// Nothing can sign (unreadable keys): a key at once.
			if err := k.RotateNow(ctx); err != nil {
				k.cfg.Logger.Warn("authserver: scheduled key rotation failed", "error", err)
			}
		case !newestAt.After(now) && !now.Before(newestAt.Add(max(0, k.cfg.RotateEvery-k.cfg.PrePublish))):
			if err := k.Rotate(ctx); err != nil {
				k.cfg.Logger.Warn("authserver: scheduled key rotation failed", "error", err)
			}
		}
	}
	k.mu.RLock()
	expired := append([]string(nil), k.retiredExpired...)
	k.mu.RUnlock()
	deleted := 0
	for _, kid := range expired {
		if err := k.store.DeleteSigningKey(ctx, kid); err != nil && !errors.Is(err, storage.ErrNotFound) {
			k.cfg.Logger.Warn("authserver: deleting expired signing key failed", "kid", kid, "error", err)
			continue
		}
		deleted++
	}
	if deleted > 0 {
		k.cfg.Logger.Info("authserver: deleted expired signing keys", "count", deleted)
		if err := k.Reload(ctx); err != nil {
			k.cfg.Logger.Warn("authserver: reloading signing keys failed", "error", err)
		}
	}
}

// generateSigningKey makes a new private key with crypto/rand. Its kid is
// the RFC 7638 thumbprint of the public key.
func generateSigningKey(alg string, now time.Time) (storage.SigningKey, error) {
	var raw any
	var err error
	switch alg {
	case AlgES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	case AlgRS256:
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return storage.SigningKey{}, fmt.Errorf("authserver: unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("authserver: generate %s key: %w", alg, err)
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("authserver: encode key: %w", err)
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("authserver: key thumbprint: %w", err)
	}
	kid := b64RawURL(tp)
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		return storage.SigningKey{}, fmt.Errorf("authserver: encode key: %w", err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg)); err != nil {
		return storage.SigningKey{}, fmt.Errorf("authserver: encode key: %w", err)
	}
	private, err := json.Marshal(key)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("authserver: encode key: %w", err)
	}
	return storage.SigningKey{ID: kid, Algorithm: alg, PrivateJWK: private, CreatedAt: now}, nil
}

// decodeSigningKey decrypts (with enc, when the key is sealed) and parses a
// stored key and checks that it is a private key matching its algorithm.
func decodeSigningKey(sk storage.SigningKey, enc *KeyEncryption) (*loadedKey, error) {
	plain, err := enc.openPrivateJWK(sk.ID, sk.PrivateJWK)
	if err != nil {
		return nil, err
	}
	key, err := jwk.ParseKey(plain)
	if err != nil {
		return nil, fmt.Errorf("authserver: parse signing key: %w", err)
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, fmt.Errorf("authserver: signing key material: %w", err)
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return nil, errors.New("authserver: stored signing key is not a private key")
	}
	switch s := signer.(type) {
	case *ecdsa.PrivateKey:
		if sk.Algorithm != AlgES256 || s.Curve != elliptic.P256() {
			return nil, fmt.Errorf("authserver: key type does not match algorithm %q", sk.Algorithm)
		}
	case ed25519.PrivateKey:
		if sk.Algorithm != AlgEdDSA {
			return nil, fmt.Errorf("authserver: key type does not match algorithm %q", sk.Algorithm)
		}
	case *rsa.PrivateKey:
		if sk.Algorithm != AlgRS256 || s.N.BitLen() < 2048 {
			return nil, fmt.Errorf("authserver: key type does not match algorithm %q", sk.Algorithm)
		}
	default:
		return nil, fmt.Errorf("authserver: unsupported signing key type %T", signer)
	}
	pubKey, err := jwk.FromRaw(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("authserver: public key: %w", err)
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey:     sk.ID,
		jwk.AlgorithmKey: jwa.SignatureAlgorithm(sk.Algorithm),
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := pubKey.Set(name, v); err != nil {
			return nil, fmt.Errorf("authserver: public key: %w", err)
		}
	}
	pubJSON, err := json.Marshal(pubKey)
	if err != nil {
		return nil, fmt.Errorf("authserver: public key: %w", err)
	}
	return &loadedKey{
		kid:          sk.ID,
		alg:          sk.Algorithm,
		signer:       signer,
		public:       signer.Public(),
		publicJWK:    pubJSON,
		createdAt:    sk.CreatedAt,
		activatedAt:  sk.Activation(),
		retiredAt:    sk.RetiredAt,
		publishUntil: sk.PublishUntil,
	}, nil
}

// rewrap seals with the current KEK every stored key that is plaintext
// (stored before encryption was configured) or sealed with a previous KEK.
// A key another instance rewrapped meanwhile (ErrConflict) or deleted is
// left alone. Plaintext is never logged.
func (k *KeySet) rewrap(ctx context.Context) error {
	enc := k.cfg.Encryption
	if enc == nil {
		return nil
	}
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	stored, err := k.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("authserver: list signing keys: %w", err)
	}
	done := 0
	for _, sk := range stored {
		if !enc.needsRewrap(sk.PrivateJWK) {
			continue
		}
		plain, err := enc.openPrivateJWK(sk.ID, sk.PrivateJWK)
		if err != nil {
			continue // past its PublishUntil (reload skipped it), deleted soon
		}
		sealed, err := enc.seal(sk.ID, plain)
		if err != nil {
			return err
		}
		switch err := k.store.RewrapSigningKey(ctx, sk.ID, sk.PrivateJWK, sealed); {
		case err == nil:
			done++
		case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
		default:
			return fmt.Errorf("authserver: re-encrypt signing key %q: %w", sk.ID, err)
		}
	}
	if done > 0 {
		k.cfg.Logger.Info("authserver: signing keys encrypted with the current key_encryption_key", "count", done, "kek_id", enc.ID())
	}
	return nil
}

// buildJWKS encodes the published keys, active first then newest first, and
// a fingerprint of the set (active kid and published kids).
func buildJWKS(active *loadedKey, published map[string]*loadedKey) ([]byte, string, error) {
	keys := make([]*loadedKey, 0, len(published))
	for _, lk := range published {
		keys = append(keys, lk)
	}
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i] == active) != (keys[j] == active) {
			return keys[i] == active
		}
		return keyNewer(keys[i], keys[j])
	})
	set := struct {
		Keys []json.RawMessage `json:"keys"`
	}{Keys: make([]json.RawMessage, 0, len(keys))}
	var fp strings.Builder
	if active != nil {
		fp.WriteString(active.kid)
	}
	for _, lk := range keys {
		set.Keys = append(set.Keys, lk.publicJWK)
		fp.WriteString("|")
		fp.WriteString(lk.kid)
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, "", fmt.Errorf("authserver: encode jwks: %w", err)
	}
	return body, fp.String(), nil
}
