package cimd

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

const (
	claudeID  = "https://claude.ai/oauth/mcp-oauth-client-metadata"
	chatgptID = "https://chatgpt.com/oauth/client.json"
	vscodeID  = "https://vscode.dev/oauth/client-metadata.json"
)

var claudeDoc = `{
  "client_id": "https://claude.ai/oauth/mcp-oauth-client-metadata",
  "client_name": "Claude",
  "client_uri": "https://claude.ai",
  "logo_uri": "https://claude.ai/images/claude_app_icon.png",
  "redirect_uris": ["https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"],
  "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
  "response_types": ["code"],
  "token_endpoint_auth_method": "none"
}`

var chatgptDoc = `{
  "client_id": "https://chatgpt.com/oauth/client.json",
  "client_name": "ChatGPT",
  "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect", "https://chatgpt.com/connector/oauth/abc123"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
  "jwks_uri": "https://chatgpt.com/oauth/jwks.json",
  "scope": "openid offline_access"
}`

var vscodeDoc = `{
  "client_id": "https://vscode.dev/oauth/client-metadata.json",
  "client_name": "Visual Studio Code",
  "client_uri": "https://code.visualstudio.com",
  "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback", "https://vscode.dev/redirect", "vscode://vscode.github-authentication/did-authenticate"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "token_endpoint_auth_method": "none",
  "application_type": "native"
}`

// chatgptRealDoc is ChatGPT's published document with its full field set
// (https://chatgpt.com/oauth/client.json, as served in 2026-09): it
// declares private_key_jwt while listing none too, a jwks_uri and
// token_endpoint_auth_signing_alg.
var chatgptRealDoc = `{
  "client_id": "https://chatgpt.com/oauth/client.json",
  "client_uri": "https://chatgpt.com/",
  "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
  "token_endpoint_auth_method": "private_key_jwt",
  "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "client_name": "ChatGPT",
  "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
  "token_endpoint_auth_signing_alg": "RS256",
  "jwks_uri": "https://chatgpt.com/oauth/jwks.json"
}`

// chatgptConnectorDoc is the shape of ChatGPT's per-connector documents
// (https://chatgpt.com/oauth/<id>/client.json).
var chatgptConnectorDoc = `{
  "client_id": "https://chatgpt.com/oauth/tU1UVEq8rRTK/client.json",
  "client_uri": "https://chatgpt.com/",
  "redirect_uris": ["https://chatgpt.com/connector/oauth/tU1UVEq8rRTK"],
  "token_endpoint_auth_method": "private_key_jwt",
  "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "client_name": "ChatGPT",
  "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
  "token_endpoint_auth_signing_alg": "RS256",
  "jwks_uri": "https://chatgpt.com/oauth/jwks.json"
}`

// TestValidateDocumentChatGPTPrivateKeyJWT: ChatGPT's real documents are
// accepted as private_key_jwt clients (never downgraded to none although
// their list names none), with the jwks_uri and signing alg they declare.
func TestValidateDocumentChatGPTPrivateKeyJWT(t *testing.T) {
	for _, tc := range []struct{ name, id, doc, redirect string }{
		{"client.json", chatgptID, chatgptRealDoc, "https://chatgpt.com/connector_platform_oauth_redirect"},
		{"per-connector", "https://chatgpt.com/oauth/tU1UVEq8rRTK/client.json", chatgptConnectorDoc, "https://chatgpt.com/connector/oauth/tU1UVEq8rRTK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ValidateDocument(tc.id, []byte(tc.doc))
			if err != nil {
				t.Fatalf("ValidateDocument: %v", err)
			}
			if c.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT {
				t.Errorf("auth method = %q, want private_key_jwt", c.TokenEndpointAuthMethod)
			}
			if c.JWKSURI != "https://chatgpt.com/oauth/jwks.json" || len(c.JWKS) != 0 {
				t.Errorf("keys = %q / %s", c.JWKSURI, c.JWKS)
			}
			if c.TokenEndpointAuthSigningAlg != "RS256" {
				t.Errorf("signing alg = %q", c.TokenEndpointAuthSigningAlg)
			}
			if c.Name != "ChatGPT" || !slices.Equal(c.RedirectURIs, []string{tc.redirect}) ||
				!slices.Equal(c.GrantTypes, []string{"authorization_code", "refresh_token"}) ||
				c.LogoURI != "https://persistent.oaistatic.com/sonic/misc/openai-logo.png" || c.ClientURI != "https://chatgpt.com/" {
				t.Errorf("client = %+v", c)
			}
		})
	}
	t.Run("inline jwks", func(t *testing.T) {
		doc := `{"client_id":"https://app.example.com/client","client_name":"App","redirect_uris":["https://app.example.com/cb"],
			"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}}`
		c, err := ValidateDocument("https://app.example.com/client", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if c.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT || c.JWKSURI != "" || !strings.Contains(string(c.JWKS), `"P-256"`) {
			t.Errorf("client = %+v", c)
		}
	})
	t.Run("list of private_key_jwt only", func(t *testing.T) {
		doc := `{"client_id":"https://app.example.com/client","client_name":"App","redirect_uris":["https://app.example.com/cb"],
			"token_endpoint_auth_methods_supported":["private_key_jwt"],"jwks_uri":"https://app.example.com/jwks.json"}`
		c, err := ValidateDocument("https://app.example.com/client", []byte(doc))
		if err != nil || c.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT {
			t.Errorf("client = %+v, %v", c, err)
		}
	})
}

func TestValidateDocumentAccepted(t *testing.T) {
	tests := []struct {
		name       string
		id, doc    string
		wantName   string
		wantURIs   []string
		wantGrants []string
		wantLogo   string
		wantURI    string
	}{
		{"claude", claudeID, claudeDoc, "Claude",
			[]string{"https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"},
			[]string{"authorization_code", "refresh_token"},
			"https://claude.ai/images/claude_app_icon.png", "https://claude.ai"},
		{"chatgpt none+private_key_jwt", chatgptID, chatgptDoc, "ChatGPT",
			[]string{"https://chatgpt.com/connector_platform_oauth_redirect", "https://chatgpt.com/connector/oauth/abc123"},
			[]string{"authorization_code", "refresh_token"}, "", ""},
		{"vscode", vscodeID, vscodeDoc, "Visual Studio Code",
			[]string{"http://127.0.0.1/callback", "http://localhost/callback", "https://vscode.dev/redirect", "vscode://vscode.github-authentication/did-authenticate"},
			[]string{"authorization_code", "refresh_token"}, "", "https://code.visualstudio.com"},
		{"minimal: defaults", "https://app.example.com/client",
			`{"client_id":"https://app.example.com/client","client_name":"App","redirect_uris":["https://app.example.com/cb"]}`,
			"App", []string{"https://app.example.com/cb"}, []string{"authorization_code"}, "", ""},
		{"auth method as non-standard list with none", "https://app.example.com/client",
			`{"client_id":"https://app.example.com/client","client_name":"App","redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":["private_key_jwt","none"]}`,
			"App", []string{"https://app.example.com/cb"}, []string{"authorization_code"}, "", ""},
		{"singular none wins over supported list", "https://app.example.com/client",
			`{"client_id":"https://app.example.com/client","client_name":"App","redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none","token_endpoint_auth_methods_supported":["private_key_jwt"]}`,
			"App", []string{"https://app.example.com/cb"}, []string{"authorization_code"}, "", ""},
		{"public jwks allowed", "https://app.example.com/client",
			`{"client_id":"https://app.example.com/client","client_name":"App","redirect_uris":["https://app.example.com/cb"],"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}}`,
			"App", []string{"https://app.example.com/cb"}, []string{"authorization_code"}, "", ""},
		{"http logo dropped", "https://app.example.com/client",
			`{"client_id":"https://app.example.com/client","client_name":"App","redirect_uris":["https://app.example.com/cb"],"logo_uri":"http://app.example.com/logo.png","client_uri":"javascript:alert(1)"}`,
			"App", []string{"https://app.example.com/cb"}, []string{"authorization_code"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ValidateDocument(tt.id, []byte(tt.doc))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.ID != tt.id || c.Kind != storage.ClientCIMD || c.TokenEndpointAuthMethod != "none" || c.SecretHash != "" {
				t.Errorf("id=%q kind=%q method=%q", c.ID, c.Kind, c.TokenEndpointAuthMethod)
			}
			if c.Name != tt.wantName {
				t.Errorf("name = %q", c.Name)
			}
			if !slices.Equal(c.RedirectURIs, tt.wantURIs) {
				t.Errorf("redirect_uris = %q", c.RedirectURIs)
			}
			if !slices.Equal(c.GrantTypes, tt.wantGrants) {
				t.Errorf("grant_types = %q", c.GrantTypes)
			}
			if c.LogoURI != tt.wantLogo || c.ClientURI != tt.wantURI {
				t.Errorf("logo=%q client_uri=%q", c.LogoURI, c.ClientURI)
			}
			if c.Fingerprint != oauth.Fingerprint(storage.Client{Name: tt.wantName, RedirectURIs: tt.wantURIs}) {
				t.Errorf("fingerprint mismatch")
			}
			if len(c.Scopes) != 0 {
				t.Errorf("scopes = %q, want none (document scope is ignored)", c.Scopes)
			}
		})
	}
}

func TestValidateDocumentRefused(t *testing.T) {
	const id = "https://app.example.com/client"
	base := func(extra string) string {
		return `{"client_id":"` + id + `","client_name":"App","redirect_uris":["https://app.example.com/cb"]` + extra + `}`
	}
	tests := []struct {
		name, doc, reason string
	}{
		{"malformed json", `{"client_id":`, "not a valid JSON object"},
		{"not an object", `["x"]`, "not a JSON object"},
		{"empty", ``, "not a JSON object"},
		{"trailing data", base(``) + `{}`, "data after"},
		{"duplicate client_id", `{"client_id":"https://evil.example/x","client_id":"` + id + `","client_name":"A","redirect_uris":["https://a.example/cb"]}`, "duplicate"},
		{"case-variant member is not client_id", `{"Client_ID":"` + id + `","client_name":"A","redirect_uris":["https://a.example/cb"]}`, "client_id is missing"},
		{"client_id missing", `{"client_name":"App","redirect_uris":["https://app.example.com/cb"]}`, "client_id is missing"},
		{"client_id mismatch", `{"client_id":"https://app.example.com/other","client_name":"App","redirect_uris":["https://app.example.com/cb"]}`, "does not match"},
		{"client_id differs by port", `{"client_id":"https://app.example.com:443/client","client_name":"App","redirect_uris":["https://app.example.com/cb"]}`, "does not match"},
		{"client_id differs by trailing slash", `{"client_id":"https://app.example.com/client/","client_name":"App","redirect_uris":["https://app.example.com/cb"]}`, "does not match"},
		{"client_id not string", `{"client_id":1}`, "must be a string"},
		{"client_secret", base(`,"client_secret":"s3cr3t"`), "client_secret must not be present"},
		{"client_secret null", base(`,"client_secret":null`), "client_secret must not be present"},
		{"client_secret_expires_at", base(`,"client_secret_expires_at":0`), "client_secret_expires_at"},
		{"private jwk", base(`,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"secret"}]}`), "private key"},
		{"symmetric jwk", base(`,"jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), "private key"},
		{"private_key_jwt without keys", base(`,"token_endpoint_auth_method":"private_key_jwt"`), "private_key_jwt needs jwks_uri or jwks"},
		{"private_key_jwt singular despite list, without keys", base(`,"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_methods_supported":["none","private_key_jwt"]`), "private_key_jwt needs jwks_uri or jwks"},
		{"private_key_jwt list only, without keys", base(`,"token_endpoint_auth_methods_supported":["private_key_jwt"]`), "private_key_jwt needs jwks_uri or jwks"},
		{"private_key_jwt with jwks and jwks_uri", base(`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://app.example.com/jwks","jwks":{"keys":[]}`), "must not both be present"},
		{"private_key_jwt jwks_uri over http", base(`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://app.example.com/jwks"`), "jwks_uri must be an https URL"},
		{"private_key_jwt jwks_uri with userinfo", base(`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://u@app.example.com/jwks"`), "jwks_uri must be an https URL"},
		{"private_key_jwt jwks_uri not a string", base(`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":["https://app.example.com/jwks"]`), "jwks_uri must be a string"},
		{"private_key_jwt HMAC signing alg", base(`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://app.example.com/jwks","token_endpoint_auth_signing_alg":"HS256"`), `"HS256" is not supported`},
		{"private_key_jwt alg none", base(`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://app.example.com/jwks","token_endpoint_auth_signing_alg":"none"`), `"none" is not supported`},
		{"neither none nor private_key_jwt", base(`,"token_endpoint_auth_methods_supported":["tls_client_auth"]`), "include neither none nor private_key_jwt"},
		{"client_secret_basic", base(`,"token_endpoint_auth_method":"client_secret_basic"`), `"client_secret_basic" uses a shared secret`},
		{"client_secret_post", base(`,"token_endpoint_auth_method":"client_secret_post"`), `"client_secret_post" uses a shared secret`},
		{"client_secret_jwt", base(`,"token_endpoint_auth_method":"client_secret_jwt"`), `"client_secret_jwt" uses a shared secret`},
		{"shared secret in list with none", base(`,"token_endpoint_auth_methods_supported":["none","client_secret_basic"]`), "shared secret"},
		{"tls_client_auth", base(`,"token_endpoint_auth_method":"tls_client_auth"`), `"tls_client_auth" is not supported`},
		{"hostile method not echoed", base(`,"token_endpoint_auth_method":"<img src=x>"`), "(unrecognized)"},
		{"auth method wrong type", base(`,"token_endpoint_auth_method":5`), "must be a string"},
		{"missing redirect_uris", `{"client_id":"` + id + `","client_name":"App"}`, "redirect_uris is missing"},
		{"empty redirect_uris", `{"client_id":"` + id + `","client_name":"App","redirect_uris":[]}`, "must not be empty"},
		{"redirect_uris string", `{"client_id":"` + id + `","client_name":"App","redirect_uris":"https://a.example/cb"}`, "array of strings"},
		{"redirect fragment", `{"client_id":"` + id + `","client_name":"App","redirect_uris":["https://a.example/cb#x"]}`, "redirect_uris[0]: contains a fragment"},
		{"redirect javascript", `{"client_id":"` + id + `","client_name":"App","redirect_uris":["https://a.example/cb","javascript:alert(1)"]}`, "redirect_uris[1]: scheme not allowed"},
		{"redirect http remote", `{"client_id":"` + id + `","client_name":"App","redirect_uris":["http://a.example/cb"]}`, "loopback"},
		{"missing client_name", `{"client_id":"` + id + `","redirect_uris":["https://a.example/cb"]}`, "client_name is missing"},
		{"blank client_name", `{"client_id":"` + id + `","client_name":"   ","redirect_uris":["https://a.example/cb"]}`, "client_name is empty"},
		{"client_name bidi", `{"client_id":"` + id + `","client_name":"\u202eevil","redirect_uris":["https://a.example/cb"]}`, "formatting"},
		{"no authorization_code grant", base(`,"grant_types":["client_credentials"]`), "must include authorization_code"},
		{"grant_types wrong type", base(`,"grant_types":"authorization_code"`), "array of strings"},
		{"no code response type", base(`,"response_types":["token"]`), "must include code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ValidateDocument(id, []byte(tt.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("error %v is not ErrInvalidDocument", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not say %q", err, tt.reason)
			}
			for _, leak := range []string{"s3cr3t", "secret\"", "<img", "evil.example", "c2VjcmV0"} {
				if strings.Contains(err.Error(), leak) {
					t.Fatalf("error echoes document content: %q", err)
				}
			}
			if c.ID != "" {
				t.Fatalf("refusal returned a client")
			}
		})
	}
}

func TestFingerprintTracksConsentRelevantChanges(t *testing.T) {
	a, err := ValidateDocument(claudeID, []byte(claudeDoc))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal([]byte(claudeDoc), &m)

	m["logo_uri"] = "https://claude.ai/other.png"
	b, _ := json.Marshal(m)
	same, err := ValidateDocument(claudeID, b)
	if err != nil || same.Fingerprint != a.Fingerprint {
		t.Fatalf("logo change altered the fingerprint (err %v)", err)
	}
	m["redirect_uris"] = []string{"https://claude.ai/api/mcp/auth_callback", "https://evil.example/cb"}
	b, _ = json.Marshal(m)
	changed, err := ValidateDocument(claudeID, b)
	if err != nil || changed.Fingerprint == a.Fingerprint {
		t.Fatalf("redirect change kept the fingerprint (err %v)", err)
	}
	m["redirect_uris"] = a.RedirectURIs
	m["client_name"] = "Claude (new)"
	b, _ = json.Marshal(m)
	renamed, err := ValidateDocument(claudeID, b)
	if err != nil || renamed.Fingerprint == a.Fingerprint {
		t.Fatalf("name change kept the fingerprint (err %v)", err)
	}
}

func FuzzValidateDocument(f *testing.F) {
	f.Add(claudeID, []byte(claudeDoc))
	f.Add(chatgptID, []byte(chatgptDoc))
	f.Add(vscodeID, []byte(vscodeDoc))
	f.Add(chatgptID, []byte(chatgptRealDoc))
	f.Add("https://a.example/c", []byte(`{"client_id":"https://a.example/c","client_name":"x","redirect_uris":["cursor://a/b"],"token_endpoint_auth_methods_supported":["private_key_jwt"]}`))
	f.Add("https://a.example/c", []byte(`{"client_id":"https://a.example/c","client_secret":"x"}`))
	f.Add("https://a.example/c", []byte(`{"client_id":"https://a.example/c","client_name":"x","redirect_uris":["http://[::1]:1/"],"jwks":{"keys":[{"d":1}]}}`))
	f.Add("https://a.example/c", []byte(`[`))
	f.Fuzz(func(t *testing.T, id string, raw []byte) {
		c, err := ValidateDocument(id, raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("error does not wrap ErrInvalidDocument: %v", err)
			}
			return
		}
		if c.ID != id || c.Kind != storage.ClientCIMD {
			t.Fatalf("bad client %+v", c)
		}
		switch c.TokenEndpointAuthMethod {
		case "none":
			if c.JWKSURI != "" || len(c.JWKS) != 0 || c.TokenEndpointAuthSigningAlg != "" {
				t.Fatalf("public client with keys %+v", c)
			}
		case oauth.AuthMethodPrivateKeyJWT:
			if (c.JWKSURI == "") == (len(c.JWKS) == 0) {
				t.Fatalf("private_key_jwt client without exactly one key source %+v", c)
			}
			if c.JWKSURI != "" && !strings.HasPrefix(c.JWKSURI, "https://") {
				t.Fatalf("jwks_uri not https %+v", c)
			}
		default:
			t.Fatalf("bad auth method %+v", c)
		}
		if c.Name == "" || len(c.RedirectURIs) == 0 || !slices.Contains(c.GrantTypes, "authorization_code") {
			t.Fatalf("incomplete client %+v", c)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			t.Fatal("accepted a document encoding/json cannot read")
		}
		if _, ok := m["client_secret"]; ok {
			t.Fatal("accepted a client_secret")
		}
		for _, u := range c.RedirectURIs {
			if _, err := oauth.CheckRedirectURI(u, oauth.CIMDRedirects); err != nil {
				t.Fatalf("accepted redirect %q: %v", u, err)
			}
		}
		if c.Fingerprint != oauth.Fingerprint(c) {
			t.Fatal("fingerprint mismatch")
		}
	})
}

// TestValidateDocumentClientCredentials: a document may declare
// client_credentials beside authorization_code; the grant is kept (the
// authorization server grants it only to hosts marked for machine use).
func TestValidateDocumentClientCredentials(t *testing.T) {
	doc := `{"client_id":"https://agents.example.com/client","client_name":"Agent","redirect_uris":["https://agents.example.com/cb"],
		"grant_types":["authorization_code","client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://agents.example.com/jwks.json"}`
	c, err := ValidateDocument("https://agents.example.com/client", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.GrantTypes, []string{"authorization_code", "client_credentials"}) {
		t.Fatalf("grant types = %v", c.GrantTypes)
	}
}
