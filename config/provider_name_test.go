package config

import (
	"github.com/mcpauth/caddy-mcpauth/idp"
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
		a.Login.OIDC = []OIDCProvider{{UpstreamButton: idp.UpstreamButton{Name: name}}}
		err := a.Validate()
		if got := err == nil || !strings.Contains(err.Error(), "provider name"); got != want {
			t.Errorf("provider %q: Validate() = %v, want accepted %v", name, err, want)
		}
	}
}

// The issuer: one rule, authserver.ValidateIssuer. The adapter's copy let
// through a trailing slash and userinfo (refused only when the server
// started) and refused loopback addresses other than 127.0.0.1 and ::1.
func TestAppValidateIssuerIsAuthserverRule(t *testing.T) {
	for issuer, want := range map[string]bool{
		"https://auth.example.com":      true,
		"https://auth.example.com/t1":   true,
		"http://127.0.0.2:8080":         true,
		"https://auth.example.com/":     false,
		"https://u:p@auth.example.com":  false,
		"http://auth.example.com":       false,
		"https://auth.example.com/?x=1": false,
	} {
		a := &App{Issuer: issuer, SigningAlgorithm: "ES256"}
		if err := a.Validate(); (err == nil) != want {
			t.Errorf("issuer %q: Validate() = %v, want accepted %v", issuer, err, want)
		}
	}
}
