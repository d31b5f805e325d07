package authserver

import (
	"testing"

	"github.com/mcpauth/caddy-mcpauth/idp/password"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// A hash written by the authserver's former argon2id code (before client
// secrets moved onto idp/password) still verifies, and a new client secret
// hash verifies with the account-password verifier: one hasher.
func TestClientSecretHashOneHasher(t *testing.T) {
	const oldSecret = "old-code-client-secret-0123456789"
	const oldHash = "$argon2id$v=19$m=19456,t=2,p=1$+ZNS/ghB5uhdoU5owj0yyg$0kETZzd6mBGApqBBGO1BoZ6oWYlEI4Z5q+m3eclf5A0"
	if !verifyClientSecret(oldHash, oldSecret) || verifyClientSecret(oldHash, oldSecret+"x") {
		t.Fatal("a stored hash of the old code no longer verifies")
	}
	h, err := HashClientSecret(oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := password.Verify(h, oldSecret); !ok || rehash || err != nil {
		t.Fatalf("password.Verify(client secret hash) = %v %v %v", ok, rehash, err)
	}
}

// The configured secret_hash of an owned client obeys the same rule as a
// seeded account's password_hash (password.CheckHash): at least m=19456,t=2.
func TestOwnedClientSecretHashFloor(t *testing.T) {
	h := newHarness(t)
	for name, hash := range map[string]string{
		// Accepted by the former authserver parser (m >= 8 MiB, t >= 1).
		"t=1":       "$argon2id$v=19$m=19456,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"m=8192":    "$argon2id$v=19$m=8192,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"padded":    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA",
		"truncated": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
	} {
		c := storage.Client{ID: "x", RedirectURIs: []string{"https://x.example/cb"}, SecretHash: hash}
		if err := h.srv.validateOwnedClient(&c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	good, _ := HashClientSecret(testSecret)
	c := storage.Client{ID: "x", RedirectURIs: []string{"https://x.example/cb"}, SecretHash: good}
	if err := h.srv.validateOwnedClient(&c); err != nil {
		t.Fatal(err)
	}
}
