package caddymodule

import (
	"strings"
	"testing"
)

// Provider names: one rule, idp.ValidProviderName (1-32 of [a-z0-9-]). The
// adapter's own copy accepted 33-40 characters, which idp then refused at
// provision; idp accepted "_", which the adapter refused.
func TestAppValidateProviderNameIsIdpRule(t *testing.T) {
	for name, want := range map[string]bool{
		"corp":                  true,
		"corp-sso-2":            true,
		strings.Repeat("a", 32): true,
		strings.Repeat("a", 33): false,
		strings.Repeat("a", 40): false,
		"corp_sso":              false,
		"Corp":                  false,
		"":                      false,
	} {
		a := &App{Issuer: "https://auth.example.com", SigningAlgorithm: "ES256"}
		a.Login.OIDC = []OIDCProvider{{Name: name}}
		err := a.Validate()
		if got := err == nil || !strings.Contains(err.Error(), "provider name"); got != want {
			t.Errorf("provider %q: Validate() = %v, want accepted %v", name, err, want)
		}
	}
}
