package authserver

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestBuildMetadata(t *testing.T) {
	full := MetadataInput{
		Issuer:                "https://as.example",
		AuthorizationEndpoint: "https://as.example/authorize",
		TokenEndpoint:         "https://as.example/token",
		RevocationEndpoint:    "https://as.example/revoke",
		RegistrationEndpoint:  "https://as.example/register",
		JWKSURI:               "https://as.example/jwks.json",
		EndSessionEndpoint:    "https://as.example/logout",
		ScopesSupported:       []string{"mcp:read", "mcp:write", "mcp:read", ""},
		CIMD:                  true,
		ServiceDocumentation:  "https://docs.example",
	}
	m := BuildMetadata(full)
	// Round-trip through JSON as a client sees it.
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	strs := func(v any) []string {
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
	}
	checks := map[string]any{
		"issuer":                 full.Issuer,
		"authorization_endpoint": full.AuthorizationEndpoint,
		"token_endpoint":         full.TokenEndpoint,
		"revocation_endpoint":    full.RevocationEndpoint,
		"registration_endpoint":  full.RegistrationEndpoint,
		"jwks_uri":               full.JWKSURI,
		"end_session_endpoint":   full.EndSessionEndpoint,
		"service_documentation":  full.ServiceDocumentation,
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          true,
	}
	for k, v := range checks {
		if doc[k] != v {
			t.Fatalf("%s = %v, want %v", k, doc[k], v)
		}
	}
	lists := map[string][]string{
		"response_types_supported":                   {"code"},
		"response_modes_supported":                   {"query"},
		"grant_types_supported":                      {"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":           {"S256"},
		"token_endpoint_auth_methods_supported":      {"none", "client_secret_basic", "client_secret_post", "private_key_jwt"},
		"revocation_endpoint_auth_methods_supported": {"none", "client_secret_basic", "client_secret_post", "private_key_jwt"},
		// RFC 8414 §2: the asymmetric algorithms of client assertions only.
		"token_endpoint_auth_signing_alg_values_supported":      {"ES256", "ES384", "EdDSA", "PS256", "RS256"},
		"revocation_endpoint_auth_signing_alg_values_supported": {"ES256", "ES384", "EdDSA", "PS256", "RS256"},
		"scopes_supported": {"mcp:read", "mcp:write", "offline_access"},
	}
	for k, v := range lists {
		if got := strs(doc[k]); !reflect.DeepEqual(got, v) {
			t.Fatalf("%s = %v, want %v", k, got, v)
		}
	}
	if len(doc) != len(checks)+len(lists) {
		t.Fatalf("unexpected fields in %v", doc)
	}

	t.Run("optional endpoints absent", func(t *testing.T) {
		m := BuildMetadata(MetadataInput{Issuer: "https://as.example", AuthorizationEndpoint: "a", TokenEndpoint: "t", ScopesSupported: []string{"offline_access"}})
		for _, k := range []string{"registration_endpoint", "revocation_endpoint", "revocation_endpoint_auth_methods_supported", "revocation_endpoint_auth_signing_alg_values_supported",
			"jwks_uri", "end_session_endpoint", "client_id_metadata_document_supported", "service_documentation"} {
			if _, ok := m[k]; ok {
				t.Fatalf("%s present", k)
			}
		}
		if got := m["scopes_supported"].([]string); !reflect.DeepEqual(got, []string{"offline_access"}) {
			t.Fatalf("scopes %v", got)
		}
	})
}

func TestMetadataPath(t *testing.T) {
	tests := []struct{ issuer, want string }{
		{"https://as.example", "/.well-known/oauth-authorization-server"},
		{"https://as.example/", "/.well-known/oauth-authorization-server"},
		{"https://as.example/tenant1", "/.well-known/oauth-authorization-server/tenant1"},
		{"https://as.example/a/b/", "/.well-known/oauth-authorization-server/a/b"},
		{"http://localhost:8080/auth", "/.well-known/oauth-authorization-server/auth"},
		{"://bad", "/.well-known/oauth-authorization-server"},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			if got := MetadataPath(tt.issuer); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
