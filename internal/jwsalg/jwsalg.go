// Package jwsalg is the one home of the JWS algorithms caddy-mcpauth accepts
// by default in what it verifies: access tokens (resourceguard), client
// assertions and ID-JAGs (authserver), DPoP proofs (internal/dpop), and the
// signing algorithm a Client ID Metadata Document may declare. Asymmetric
// algorithms only: never "none" and never HMAC, whose secret would be a
// public key (RFC 8725 §2.1, §3.1; RFC 9449 §4.2).
package jwsalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"slices"
)

// names are the accepted algorithms, in the order metadata lists them.
var names = [...]string{"ES256", "ES384", "EdDSA", "PS256", "RS256"}

// MinRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const MinRSABits = 2048

// Names returns the accepted algorithms (a copy the caller may keep).
func Names() []string { return slices.Clone(names[:]) }

// Allowed reports whether alg is one of Names.
func Allowed(alg string) bool { return slices.Contains(names[:], alg) }

// KeyFits reports whether a public key may verify alg: RSA keys of at least
// MinRSABits for RS256 and PS256, P-256 for ES256, P-384 for ES384, an
// Ed25519 key for EdDSA.
func KeyFits(k crypto.PublicKey, alg string) bool {
	switch pub := k.(type) {
	case *rsa.PublicKey:
		return (alg == "RS256" || alg == "PS256") && pub.N != nil && pub.N.BitLen() >= MinRSABits
	case *ecdsa.PublicKey:
		return alg == "ES256" && pub.Curve == elliptic.P256() || alg == "ES384" && pub.Curve == elliptic.P384()
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(pub) == ed25519.PublicKeySize
	}
	return false
}
