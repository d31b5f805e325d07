package authserver

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Signing keys at rest: with a key-encryption key (KEK) configured, the
// private JWK of every signing key is stored sealed with AES-256-GCM under a
// random 96-bit nonce, with the key id as additional authenticated data (a
// sealed key moved to another kid does not open). The stored form is
//
//	mcpauth-kek-v1:<KEK id>:<base64url(nonce || ciphertext || tag)>
//
// where the KEK id (12 hex digits, derived from the KEK with HKDF under its
// own label, so it reveals nothing about the AES key) names the KEK that
// sealed it: a wrong KEK is told apart from a tampered record, and the id is
// safe to log so that operators can check that every instance has the same.
// Anything not starting with the prefix is a legacy plaintext JWK.

// ErrKeyDecrypt: a stored signing key cannot be decrypted with the
// configured key-encryption keys (wrong or missing key_encryption_key, or a
// tampered record). NewKeySet refuses to start on it rather than create a
// new key.
var ErrKeyDecrypt = errors.New("cannot decrypt signing keys: wrong key_encryption_key?")

// MinKEKBytes is the least decoded length of a key-encryption key.
const MinKEKBytes = 32

const (
	sealedPrefix = "mcpauth-kek-v1:"
	kekIDInfo    = "caddy-mcpauth key-encryption-key id v1"
	kekAESInfo   = "caddy-mcpauth signing-key encryption v1"
)

// ParseKeyEncryptionKey decodes a configured key-encryption key: base64
// (standard or URL alphabet, padding optional, surrounding whitespace
// ignored) of at least 32 bytes, such as the output of
// `openssl rand -base64 32`. Exactly 32 bytes are the AES-256 key itself;
// longer values are reduced with HKDF-SHA256. Short values, values that are
// not base64 (passphrases) and values with few distinct bytes (repeated
// patterns) are refused. Errors never include the value.
func ParseKeyEncryptionKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("key-encryption key is empty")
	}
	var raw []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil {
			raw = b
			break
		}
	}
	if raw == nil {
		return nil, errors.New("key-encryption key is not base64 (generate one with: openssl rand -base64 32)")
	}
	if len(raw) < MinKEKBytes {
		return nil, fmt.Errorf("key-encryption key decodes to %d bytes, want at least %d (generate one with: openssl rand -base64 32)", len(raw), MinKEKBytes)
	}
	var seen [256]bool
	distinct := 0
	for _, c := range raw {
		if !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	// 32 random bytes have about 30 distinct values; fewer than 16 is a
	// pattern, not a random key.
	if distinct < 16 {
		return nil, errors.New("key-encryption key looks weak (too few distinct bytes): use random bytes (openssl rand -base64 32)")
	}
	return raw, nil
}

// kek is one key-encryption key, ready to use.
type kek struct {
	id   string
	aead cipher.AEAD
}

func newKEK(secret []byte) (kek, error) {
	if len(secret) < MinKEKBytes {
		return kek{}, fmt.Errorf("key-encryption key must be at least %d bytes", MinKEKBytes)
	}
	idBytes, err := hkdf.Key(sha256.New, secret, nil, kekIDInfo, 6)
	if err != nil {
		return kek{}, err
	}
	aesKey := secret
	if len(secret) != 32 {
		if aesKey, err = hkdf.Key(sha256.New, secret, nil, kekAESInfo, 32); err != nil {
			return kek{}, err
		}
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return kek{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return kek{}, err
	}
	return kek{id: hex.EncodeToString(idBytes), aead: aead}, nil
}

// KeyEncryption seals signing keys with the current key-encryption key and
// opens those sealed with it or with a previous one (during KEK rotation).
type KeyEncryption struct {
	current  kek
	previous []kek
}

// NewKeyEncryption takes the decoded current KEK (see
// ParseKeyEncryptionKey) and any previous ones, which only decrypt.
func NewKeyEncryption(current []byte, previous ...[]byte) (*KeyEncryption, error) {
	cur, err := newKEK(current)
	if err != nil {
		return nil, err
	}
	e := &KeyEncryption{current: cur}
	for _, p := range previous {
		pk, err := newKEK(p)
		if err != nil {
			return nil, fmt.Errorf("previous %w", err)
		}
		if pk.id == cur.id {
			continue // the same key twice
		}
		e.previous = append(e.previous, pk)
	}
	return e, nil
}

// ID is the current KEK's id: safe to log, equal on every instance that
// shares the KEK.
func (e *KeyEncryption) ID() string { return e.current.id }

// seal encrypts a private JWK of key kid with the current KEK.
func (e *KeyEncryption) seal(kid string, plain []byte) ([]byte, error) {
	nonce := make([]byte, e.current.aead.NonceSize(), e.current.aead.NonceSize()+len(plain)+e.current.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("authserver: key encryption nonce: %w", err)
	}
	sealed := e.current.aead.Seal(nonce, nonce, plain, []byte(kid))
	out := make([]byte, 0, len(sealedPrefix)+len(e.current.id)+1+base64.RawURLEncoding.EncodedLen(len(sealed)))
	out = append(out, sealedPrefix...)
	out = append(out, e.current.id...)
	out = append(out, ':')
	return base64.RawURLEncoding.AppendEncode(out, sealed), nil
}

// isSealed reports whether stored key material is encrypted.
func isSealed(stored []byte) bool { return bytes.HasPrefix(stored, []byte(sealedPrefix)) }

// sealedKEKID returns the id of the KEK that sealed stored ("" if plaintext).
func sealedKEKID(stored []byte) string {
	if !isSealed(stored) {
		return ""
	}
	id, _, _ := strings.Cut(string(stored[len(sealedPrefix):]), ":")
	return id
}

// openPrivateJWK returns the plaintext private JWK of a stored key: stored
// material that is not sealed is a legacy plaintext JWK, returned as is.
// e may be nil (no KEK configured): sealed material is then an error. Every
// decryption error wraps ErrKeyDecrypt; none includes key material.
func (e *KeyEncryption) openPrivateJWK(kid string, stored []byte) ([]byte, error) {
	if !isSealed(stored) {
		return stored, nil
	}
	id, body, ok := strings.Cut(string(stored[len(sealedPrefix):]), ":")
	if !ok {
		return nil, fmt.Errorf("%w: signing key %q: malformed encrypted record", ErrKeyDecrypt, kid)
	}
	if e == nil {
		return nil, fmt.Errorf("%w: signing key %q is encrypted (key_encryption_key id %s) but no key_encryption_key is configured", ErrKeyDecrypt, kid, id)
	}
	var k *kek
	for i, c := range append([]kek{e.current}, e.previous...) {
		if c.id == id {
			if i == 0 {
				k = &e.current
			} else {
				k = &e.previous[i-1]
			}
			break
		}
	}
	if k == nil {
		return nil, fmt.Errorf("%w: signing key %q was encrypted with key_encryption_key id %s, the configured one is %s%s",
			ErrKeyDecrypt, kid, id, e.current.id, e.previousIDs())
	}
	sealed, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(sealed) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: signing key %q: malformed encrypted record", ErrKeyDecrypt, kid)
	}
	ns := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("%w: signing key %q does not authenticate under key_encryption_key id %s (tampered record?)", ErrKeyDecrypt, kid, id)
	}
	return plain, nil
}

func (e *KeyEncryption) previousIDs() string {
	if len(e.previous) == 0 {
		return ""
	}
	ids := make([]string, len(e.previous))
	for i, p := range e.previous {
		ids[i] = p.id
	}
	return " (previous " + strings.Join(ids, ", ") + ")"
}

// needsRewrap reports whether stored material should be sealed anew with
// the current KEK: plaintext, or sealed by a previous KEK.
func (e *KeyEncryption) needsRewrap(stored []byte) bool {
	return e != nil && sealedKEKID(stored) != e.current.id
}
