package jwsalg

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"
)

func TestNames(t *testing.T) {
	got := Names()
	got[0] = "none" // a copy: the caller cannot widen the set
	for _, a := range Names() {
		if !Allowed(a) {
			t.Errorf("%s listed but not allowed", a)
		}
	}
	for _, bad := range []string{"none", "None", "HS256", "HS384", "HS512", "es256", "", "RS1", "ES512", "RSA-OAEP"} {
		if Allowed(bad) {
			t.Errorf("%q allowed", bad)
		}
	}
}

func TestKeyFits(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// A 1024-bit modulus (its primality is irrelevant to the size rule).
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	for _, tc := range []struct {
		key  any
		alg  string
		want bool
	}{
		{&p256.PublicKey, "ES256", true},
		{&p256.PublicKey, "ES384", false},
		{&p384.PublicKey, "ES384", true},
		{&p384.PublicKey, "ES256", false},
		{&p521.PublicKey, "ES256", false},
		{edPub, "EdDSA", true},
		{edPub, "ES256", false},
		{ed25519.PublicKey(edPub[:16]), "EdDSA", false},
		{&rsa2048.PublicKey, "RS256", true},
		{&rsa2048.PublicKey, "PS256", true},
		{&rsa2048.PublicKey, "ES256", false},
		{&rsa2048.PublicKey, "HS256", false},
		{small, "RS256", false},
		{&rsa.PublicKey{}, "RS256", false},
		{[]byte("secret"), "HS256", false},
		{nil, "ES256", false},
	} {
		if got := KeyFits(tc.key, tc.alg); got != tc.want {
			t.Errorf("KeyFits(%T, %s) = %v, want %v", tc.key, tc.alg, got, tc.want)
		}
	}
}
