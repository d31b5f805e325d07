package authserver

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// randomKEK returns n random bytes and their base64 form.
func randomKEK(t *testing.T, n int) ([]byte, string) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, base64.StdEncoding.EncodeToString(b)
}

func mustKeyEncryption(t *testing.T, current []byte, previous ...[]byte) *KeyEncryption {
	t.Helper()
	e, err := NewKeyEncryption(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestParseKeyEncryptionKey(t *testing.T) {
	raw32, std32 := randomKEK(t, 32)
	raw48, _ := randomKEK(t, 48)
	for _, tc := range []struct {
		name, in string
		want     []byte // nil: refused
	}{
		{"std base64 of 32 bytes", std32, raw32},
		{"surrounding whitespace (a file's newline)", "  " + std32 + "\n", raw32},
		{"raw std base64", base64.RawStdEncoding.EncodeToString(raw32), raw32},
		{"url base64", base64.URLEncoding.EncodeToString(raw32), raw32},
		{"raw url base64", base64.RawURLEncoding.EncodeToString(raw32), raw32},
		{"48 bytes", base64.StdEncoding.EncodeToString(raw48), raw48},
		{"empty", "", nil},
		{"blank", " \n", nil},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw32[:16]), nil},
		{"31 bytes", base64.StdEncoding.EncodeToString(raw32[:31]), nil},
		{"passphrase", "correct horse battery staple correct horse battery staple", nil},
		{"repeated byte", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'A'}, 32)), nil},
		{"repeated word that is valid base64", strings.Repeat("password", 6), nil},
		{"zero bytes", base64.StdEncoding.EncodeToString(make([]byte, 64)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeyEncryptionKey(tc.in)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("accepted %q", tc.in)
				}
				if s := strings.TrimSpace(tc.in); s != "" && strings.Contains(err.Error(), s) {
					t.Fatalf("error echoes the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("decoded %x, want %x", got, tc.want)
			}
		})
	}
}

func TestKeyEncryptionRoundTrip(t *testing.T) {
	secret, _ := randomKEK(t, 32)
	e := mustKeyEncryption(t, secret)
	plain := []byte(`{"kty":"EC","crv":"P-256","d":"c2VjcmV0LXNjYWxhcg","x":"eA","y":"eQ"}`)
	a, err := e.seal("kid-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.seal("kid-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same key are equal: the nonce is not random")
	}
	if !strings.HasPrefix(string(a), sealedPrefix+e.ID()+":") {
		t.Fatalf("sealed form %q lacks the prefix and KEK id", a)
	}
	if bytes.Contains(a, []byte("c2VjcmV0LXNjYWxhcg")) || bytes.Contains(a, []byte(`"kty"`)) {
		t.Fatal("sealed form contains the plaintext")
	}
	for _, s := range [][]byte{a, b} {
		got, err := e.openPrivateJWK("kid-1", s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %q", got)
		}
	}
	if e.needsRewrap(a) {
		t.Fatal("a key sealed with the current KEK needs rewrapping")
	}
	if !e.needsRewrap(plain) {
		t.Fatal("a plaintext key does not need rewrapping")
	}
}

// The documented format, checked with the standard library directly: a
// 32-byte KEK is the AES-256-GCM key, a longer one goes through HKDF-SHA256,
// the nonce leads the ciphertext and the kid is the additional data.
func TestKeyEncryptionFormat(t *testing.T) {
	plain := []byte(`{"kty":"OKP"}`)
	for _, n := range []int{32, 48} {
		secret, _ := randomKEK(t, n)
		e := mustKeyEncryption(t, secret)
		sealed, err := e.seal("the-kid", plain)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.SplitN(string(sealed), ":", 3)
		if len(parts) != 3 || parts[0]+":" != sealedPrefix || len(parts[1]) != 12 {
			t.Fatalf("format: %q", sealed)
		}
		body, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		aesKey := secret
		if n != 32 {
			if aesKey, err = hkdf.Key(sha256.New, secret, nil, "caddy-mcpauth signing-key encryption v1", 32); err != nil {
				t.Fatal(err)
			}
		}
		block, _ := aes.NewCipher(aesKey)
		gcm, _ := cipher.NewGCM(block)
		got, err := gcm.Open(nil, body[:12], body[12:], []byte("the-kid"))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d-byte KEK: stdlib open: %q, %v", n, got, err)
		}
	}
}

func TestKeyEncryptionRefusals(t *testing.T) {
	secret, _ := randomKEK(t, 32)
	other, _ := randomKEK(t, 32)
	e := mustKeyEncryption(t, secret)
	plain := []byte(`{"kty":"EC","d":"UFJJVkFURQ"}`)
	sealed, err := e.seal("kid-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	head := len(sealedPrefix) + 13 // prefix, 12-digit KEK id, colon
	body, err := base64.RawURLEncoding.DecodeString(string(sealed[head:]))
	if err != nil {
		t.Fatal(err)
	}
	body[len(body)/2] ^= 0x01 // one bit of the ciphertext
	tampered := append(bytes.Clone(sealed[:head]), base64.RawURLEncoding.EncodeToString(body)...)
	// The same body under a forged KEK id.
	forged := []byte(sealedPrefix + mustKeyEncryption(t, other).ID() + string(sealed[len(sealedPrefix)+12:]))
	for _, tc := range []struct {
		name   string
		enc    *KeyEncryption
		kid    string
		stored []byte
		want   string
	}{
		{"wrong KEK", mustKeyEncryption(t, other), "kid-1", sealed, "was encrypted with key_encryption_key id " + e.ID()},
		{"no KEK configured", nil, "kid-1", sealed, "no key_encryption_key is configured"},
		{"tampered ciphertext", e, "kid-1", tampered, "does not authenticate"},
		{"AAD mismatch (moved to another kid)", e, "kid-2", sealed, "does not authenticate"},
		{"forged KEK id", mustKeyEncryption(t, other), "kid-1", forged, "does not authenticate"},
		{"truncated", e, "kid-1", sealed[:len(sealedPrefix)+20], "malformed"},
		{"no body", e, "kid-1", []byte(sealedPrefix + e.ID()), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.enc.openPrivateJWK(tc.kid, tc.stored)
			if !errors.Is(err, ErrKeyDecrypt) {
				t.Fatalf("openPrivateJWK = %q, %v; want ErrKeyDecrypt", got, err)
			}
			if !strings.Contains(err.Error(), "cannot decrypt signing keys: wrong key_encryption_key?") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "UFJJVkFURQ") {
				t.Fatal("error carries key material")
			}
		})
	}
}

func TestKeyEncryptionLegacyAndRotation(t *testing.T) {
	oldSecret, _ := randomKEK(t, 32)
	newSecret, _ := randomKEK(t, 32)
	plain := []byte(`{"kty":"EC"}`)

	// Legacy plaintext reads as is, with or without a KEK.
	for _, e := range []*KeyEncryption{nil, mustKeyEncryption(t, newSecret)} {
		got, err := e.openPrivateJWK("k", plain)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("legacy read: %q, %v", got, err)
		}
	}

	old := mustKeyEncryption(t, oldSecret)
	sealedOld, err := old.seal("k", plain)
	if err != nil {
		t.Fatal(err)
	}
	rotating := mustKeyEncryption(t, newSecret, oldSecret)
	if rotating.ID() == old.ID() {
		t.Fatal("two KEKs share an id")
	}
	got, err := rotating.openPrivateJWK("k", sealedOld)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("previous KEK does not open: %q, %v", got, err)
	}
	if !rotating.needsRewrap(sealedOld) {
		t.Fatal("a key sealed with the previous KEK does not need rewrapping")
	}
	sealedNew, err := rotating.seal("k", plain)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(sealedNew), sealedPrefix+rotating.ID()+":") {
		t.Fatal("sealing does not use the current KEK")
	}
	if _, err := old.openPrivateJWK("k", sealedNew); !errors.Is(err, ErrKeyDecrypt) {
		t.Fatalf("old KEK opens a key sealed with the new one: %v", err)
	}
	if _, err := mustKeyEncryption(t, newSecret).openPrivateJWK("k", sealedOld); !errors.Is(err, ErrKeyDecrypt) {
		t.Fatalf("new KEK alone opens a key sealed with the old one: %v", err)
	}
	if _, err := NewKeyEncryption(newSecret[:16]); err == nil {
		t.Fatal("NewKeyEncryption accepted a 16-byte key")
	}
	if _, err := NewKeyEncryption(newSecret, oldSecret[:8]); err == nil {
		t.Fatal("NewKeyEncryption accepted an 8-byte previous key")
	}
}

// FuzzOpenPrivateJWK: stored material is read from a shared store; no input
// may panic, and anything sealed-looking that opens must be what was sealed.
func FuzzOpenPrivateJWK(f *testing.F) {
	secret := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, 2)[:32]
	e, err := NewKeyEncryption(secret)
	if err != nil {
		f.Fatal(err)
	}
	plain := []byte(`{"kty":"EC"}`)
	sealed, err := e.seal("kid", plain)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("kid", sealed)
	f.Add("kid", plain)
	f.Add("kid", []byte(sealedPrefix))
	f.Add("kid", []byte(sealedPrefix+e.ID()+":"))
	f.Fuzz(func(t *testing.T, kid string, stored []byte) {
		got, err := e.openPrivateJWK(kid, stored)
		if err != nil {
			if !errors.Is(err, ErrKeyDecrypt) {
				t.Fatalf("error does not wrap ErrKeyDecrypt: %v", err)
			}
			return
		}
		if isSealed(stored) && !(kid == "kid" && bytes.Equal(got, plain)) {
			t.Fatalf("forged record opened: %q", got)
		}
	})
}
