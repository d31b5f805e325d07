package authserver

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func pkceS256(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func TestValidCodeChallenge(t *testing.T) {
	good := pkceS256(strings.Repeat("a", 43))
	tests := []struct {
		name      string
		challenge string
		method    string
		wantDesc  string // "" = accepted
	}{
		{"s256 accepted", good, "S256", ""},
		{"rfc7636 appendix b", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", ""},
		{"plain refused", good, "plain", "code_challenge_method plain is not supported; use S256"},
		{"missing method refused", good, "", "code_challenge_method S256 required"},
		{"lowercase method refused", good, "s256", "unsupported code_challenge_method; use S256"},
		{"missing challenge", "", "S256", "code_challenge required (PKCE S256)"},
		{"missing both", "", "", "code_challenge required (PKCE S256)"},
		{"short challenge", good[:42], "S256", "code_challenge must be 43 characters of base64url (S256)"},
		{"long challenge", good + "A", "S256", "code_challenge must be 43 characters of base64url (S256)"},
		{"padded challenge", good[:42] + "=", "S256", "code_challenge is not base64url"},
		{"std base64 chars", strings.Repeat("+", 42) + "A", "S256", "code_challenge is not base64url"},
		{"non-canonical last char", good[:42] + "B", "S256", "code_challenge is not base64url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidCodeChallenge(tt.challenge, tt.method)
			if tt.wantDesc == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if err.Code != "invalid_request" || err.Status != 400 || err.Description != tt.wantDesc {
				t.Fatalf("got %+v", err)
			}
		})
	}
}

func TestVerifyPKCE(t *testing.T) {
	v43 := strings.Repeat("a", 43)
	v128 := strings.Repeat("Z", 128)
	allChars := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	tests := []struct {
		name      string
		verifier  string
		challenge string
		want      bool
	}{
		{"rfc7636 appendix b", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", true},
		{"43 chars", v43, pkceS256(v43), true},
		{"128 chars", v128, pkceS256(v128), true},
		{"every unreserved char", allChars, pkceS256(allChars), true},
		{"wrong verifier", v43, pkceS256(v128), false},
		{"42 chars", v43[:42], pkceS256(v43[:42]), false},
		{"129 chars", v128 + "Z", pkceS256(v128 + "Z"), false},
		{"space", v43[:42] + " ", pkceS256(v43[:42] + " "), false},
		{"plus sign", v43[:42] + "+", pkceS256(v43[:42] + "+"), false},
		{"slash", v43[:42] + "/", pkceS256(v43[:42] + "/"), false},
		{"percent", v43[:42] + "%", pkceS256(v43[:42] + "%"), false},
		{"non-ascii", v43[:41] + "é", pkceS256(v43[:41] + "é"), false},
		{"plain method comparison", v43, v43, false},
		{"empty challenge", v43, "", false},
		{"empty verifier", "", pkceS256(""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyPKCE(tt.verifier, tt.challenge); got != tt.want {
				t.Fatalf("VerifyPKCE = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzVerifyPKCE: never panics; success implies a syntactically valid
// verifier whose S256 transform is the challenge.
func FuzzVerifyPKCE(f *testing.F) {
	f.Add("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
	f.Add(strings.Repeat("a", 43), strings.Repeat("a", 43))
	f.Add("", "")
	f.Fuzz(func(t *testing.T, verifier, challenge string) {
		if !VerifyPKCE(verifier, challenge) {
			return
		}
		if !validVerifier(verifier) || pkceS256(verifier) != challenge {
			t.Fatalf("accepted %q for %q", verifier, challenge)
		}
		if ValidCodeChallenge(challenge, "S256") != nil {
			t.Fatalf("verified against an invalid challenge %q", challenge)
		}
	})
}
