package dpop

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// ProofRequest says what a client-side proof states (Sign).
type ProofRequest struct {
	Method, URL string
	// AccessToken, when set, gives ath.
	AccessToken string
	Nonce       string
	// JTI is generated when empty; IssuedAt defaults to now.
	JTI      string
	IssuedAt time.Time
}

// Sign makes a proof with key (a private key jwx can sign with) under alg:
// the client side of RFC 9449 §4, used by tests and example clients.
func Sign(key crypto.Signer, alg string, req ProofRequest) (string, error) {
	pub, err := jwk.FromRaw(key.Public())
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{"typ": Type, "jwk": pub} {
		if err := hdr.Set(k, v); err != nil {
			return "", err
		}
	}
	jti := req.JTI
	if jti == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		jti = base64.RawURLEncoding.EncodeToString(b)
	}
	iat := req.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	claims := map[string]any{"jti": jti, "htm": req.Method, "htu": req.URL, "iat": iat.Unix()}
	if req.AccessToken != "" {
		claims["ath"] = AccessTokenHash(req.AccessToken)
	}
	if req.Nonce != "" {
		claims["nonce"] = req.Nonce
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(alg), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("dpop: sign proof: %w", err)
	}
	return string(out), nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint (base64url) of a public key.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return "", err
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}
