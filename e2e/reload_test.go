package e2e

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestReloadKeepsStoreAndKeys: `caddy reload` with a changed config keeps
// working on the same bbolt file. The file lock timeout is set to an hour,
// so a reload that opened the file a second time (instead of sharing it
// through the usage pool) would hang and fail the reload command's deadline.
// Nothing is lost: the signing key, the accounts and the refresh tokens of
// the old config all work under the new one.
func TestReloadKeepsStoreAndKeys(t *testing.T) {
	s := startStack(t, stackOpts{productName: "Before Reload"})
	conf := s.oauthConfig("todo:read")
	tok := s.login(t, conf)
	kidBefore := jwksKids(t, s)

	for i, name := range []string{"After Reload", "After Second Reload"} {
		s.caddy.reload(t, s.caddyfile(stackOpts{productName: name, extraApp: "access_token_lifetime 30m"}))
		if !strings.Contains(loginPage(t, s), name) {
			t.Fatalf("reload %d: login page does not show the new product name %q", i+1, name)
		}
		if kids := jwksKids(t, s); kids != kidBefore {
			t.Fatalf("reload %d: JWKS changed from %s to %s", i+1, kidBefore, kids)
		}
		// The refresh token issued before the reload still rotates.
		tok.Expiry = time.Now().Add(-time.Minute)
		next, err := conf.TokenSource(s.ctx(), tok).Token()
		if err != nil {
			t.Fatalf("reload %d: refresh with a pre-reload token: %v", i+1, err)
		}
		if code := mcpStatus(t, s, next.AccessToken); code != 200 {
			t.Fatalf("reload %d: guard refused a fresh token: %d", i+1, code)
		}
		tok = next
	}
	// The account survived too: a new login works.
	s.login(t, conf)
	if strings.Contains(s.caddy.logs.String(), "timeout") && strings.Contains(s.caddy.logs.String(), "mcpauth.db") {
		t.Errorf("a lock timeout was logged:\n%s", tail(s.caddy.logs.String(), 3000))
	}
}

func jwksKids(t testing.TB, s *stack) string {
	t.Helper()
	resp, err := s.Client.Get(s.Issuer + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %v %+v", err, set)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return strings.Join(kids, ",")
}

func loginPage(t testing.TB, s *stack) string {
	t.Helper()
	resp, err := s.Client.Get(s.Issuer + "/login")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestUpstreamProvidersOnLoginPage: upstream OIDC and SAML providers from the
// Caddyfile appear as buttons on the hosted login page, our SAML SP metadata
// is served for the operator to register, and an unreachable upstream does
// not stop the server from starting.
func TestUpstreamProvidersOnLoginPage(t *testing.T) {
	metaDir := t.TempDir()
	idpMeta := metaDir + "/idp.xml"
	if err := os.WriteFile(idpMeta, []byte(testIdPMetadata), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOpts{extraApp: `login {
			oidc acme {
				issuer http://127.0.0.1:1/unreachable
				client_id mcp
				client_secret not-a-real-secret
				display_name "Acme SSO"
			}
			saml corp {
				idp_metadata_file ` + idpMeta + `
				display_name "Corp SAML"
			}
		}`})
	page := loginPage(t, s)
	for _, want := range []string{"Acme SSO", "Corp SAML"} {
		if !strings.Contains(page, want) {
			t.Fatalf("login page lacks the %q button:\n%s", want, tail(page, 3000))
		}
	}
	if strings.Contains(page, "not-a-real-secret") {
		t.Fatal("the login page shows a client secret")
	}
	resp, err := s.Client.Get(s.Issuer + "/login/corp/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), s.Issuer+"/login/corp/acs") || !strings.Contains(string(body), "EntityDescriptor") {
		t.Fatalf("SP metadata: %d\n%s", resp.StatusCode, tail(string(body), 2000))
	}
}

// testIdPMetadata is a minimal IdP metadata document (the signing
// certificate is a throwaway self-signed one).
const testIdPMetadata = `<?xml version="1.0"?>
<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.org/metadata">
  <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">
    <KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>MIIBszCCAVmgAwIBAgIUYl0XrU3V6BPpY3nLz0vB2JH9xWQwCgYIKoZIzj0EAwIwFjEUMBIGA1UEAwwLaWRwLmV4YW1wbGUwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAwMDAwWjAWMRQwEgYDVQQDDAtpZHAuZXhhbXBsZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGcgz3rEPtXhBj2R7kq7R8jBxO0kC7kq2sQ+8xCIbD4vQ8fV4sK7Y4m9tN2cL1jY3wX8xG6kQq8g5m0kJ6oYx2ejUzBRMB0GA1UdDgQWBBQ3H7n2G7c1dDqvXJgYQ2rQ2v8b2TAfBgNVHSMEGDAWgBQ3H7n2G7c1dDqvXJgYQ2rQ2v8b2TAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQD4d3k1mF2c1v6m1Y2o9bB7b7bV8bT7c5b1b2b3b4b5bQIgXq2t9R9m1y8w1q3h2u1r0w9b8k7l6m5n4o3p2q1r0s0=</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.org/sso"/>
  </IDPSSODescriptor>
</EntityDescriptor>`
