package config

import (
	"github.com/mcpauth/caddy-mcpauth/idp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

func TestAppValidate(t *testing.T) {
	base := func() *App {
		return &App{Issuer: "https://auth.example.com", SigningAlgorithm: "ES256"}
	}
	cases := []struct {
		name string
		mod  func(a *App)
		want string // "" = valid
	}{
		{"minimal", func(a *App) {}, ""},
		{"no issuer", func(a *App) { a.Issuer = "" }, "issuer is required"},
		{"http issuer off loopback", func(a *App) { a.Issuer = "http://auth.example.com" }, "must be https"},
		{"http issuer on localhost", func(a *App) { a.Issuer = "http://localhost:8080" }, ""},
		{"issuer with query", func(a *App) { a.Issuer = "https://a.example.com/?x=1" }, "no query"},
		{"bad algorithm", func(a *App) { a.SigningAlgorithm = "HS256" }, "signing_algorithm"},
		{"long code lifetime", func(a *App) { a.CodeLifetime = 11 * 60 * 1e9 }, "code_lifetime"},
		{"negative refresh grace", func(a *App) { g := Duration(-time.Second); a.RefreshGrace = &g }, "refresh_grace"},
		{"long refresh grace", func(a *App) { g := Duration(11 * time.Minute); a.RefreshGrace = &g }, "refresh_grace"},
		{"strict refresh rotation", func(a *App) { g := Duration(0); a.RefreshGrace = &g }, ""},
		{"client without redirect", func(a *App) { a.Clients = []Client{{ID: "x"}} }, "redirect_uri"},
		{"machine client without redirect", func(a *App) {
			a.Clients = []Client{{ID: "x", Secret: "s3cret-s3cret-s3cret", GrantTypes: []string{"client_credentials"}}}
		}, ""},
		{"machine client with the code grant needs a redirect", func(a *App) {
			a.Clients = []Client{{ID: "x", GrantTypes: []string{"client_credentials", "authorization_code"}}}
		}, "redirect_uri"},
		{"unknown grant type", func(a *App) {
			a.Clients = []Client{{ID: "x", GrantTypes: []string{"password"}}}
		}, `grant_types "password"`},
		{"enterprise idp http issuer", func(a *App) {
			a.EnterpriseIdPs = []EnterpriseIdP{{Name: "acme", Issuer: "http://idp.example.com", Clients: []string{"x"}}}
		}, "enterprise_idp \"acme\": issuer"},
		{"enterprise idp twice", func(a *App) {
			p := EnterpriseIdP{Name: "acme", Issuer: "https://idp.example.com", Clients: []string{"x"}}
			a.EnterpriseIdPs = []EnterpriseIdP{p, p}
		}, "configured twice"},
		{"workload issuer with query", func(a *App) {
			a.WorkloadIssuers = []WorkloadIssuer{{Name: "gh", Issuer: "https://token.example.com/?x", Clients: map[string]string{"s": "x"}}}
		}, "workload_issuer \"gh\": issuer"},
		{"client id is a URL", func(a *App) {
			a.Clients = []Client{{ID: "https://x.example/c.json", RedirectURIs: []string{"https://x.example/cb"}}}
		}, "must not be URLs"},
		{"client twice", func(a *App) {
			c := Client{ID: "x", RedirectURIs: []string{"https://x.example/cb"}}
			a.Clients = []Client{c, c}
		}, "twice"},
		{"client with a bad redirect", func(a *App) {
			a.Clients = []Client{{ID: "x", RedirectURIs: []string{"http://x.example/cb"}}}
		}, "client \"x\""},
		{"client with secret and jwks_uri", func(a *App) {
			a.Clients = []Client{{ID: "x", RedirectURIs: []string{"https://x.example/cb"}, Secret: "s3cret-s3cret-s3cret", JWKSURI: "https://x.example/jwks"}}
		}, "not both"},
		{"client with secret and jwks_file", func(a *App) {
			a.Clients = []Client{{ID: "x", RedirectURIs: []string{"https://x.example/cb"}, Secret: "s3cret-s3cret-s3cret", JWKSFile: "/k.json"}}
		}, "not both"},
		{"client with jwks_uri and jwks_file", func(a *App) {
			a.Clients = []Client{{ID: "x", RedirectURIs: []string{"https://x.example/cb"}, JWKSURI: "https://x.example/jwks", JWKSFile: "/k.json"}}
		}, "jwks_uri or jwks_file"},
		{"client with http jwks_uri", func(a *App) {
			a.Clients = []Client{{ID: "x", RedirectURIs: []string{"https://x.example/cb"}, JWKSURI: "http://x.example/jwks"}}
		}, "https URL"},
		{"private_key_jwt client", func(a *App) {
			a.Clients = []Client{{ID: "x", RedirectURIs: []string{"https://x.example/cb"}, JWKSURI: "https://x.example/jwks"}}
		}, ""},
		{"cimd trusted without hosts uses the built-in hosts", func(a *App) { a.CIMD = &CIMD{} }, ""},
		{"cimd any", func(a *App) { a.CIMD = &CIMD{Policy: "any"} }, ""},
		{"cimd rate without interval", func(a *App) { a.CIMD = &CIMD{Policy: "any", HostRate: &CIMDRate{Burst: 5}} }, "host_rate"},
		{"cimd rate without burst", func(a *App) {
			a.CIMD = &CIMD{Policy: "any", RequesterRate: &CIMDRate{Interval: 1e9}}
		}, "requester_rate"},
		{"cimd rates", func(a *App) {
			a.CIMD = &CIMD{Policy: "any", DomainRate: &CIMDRate{Burst: 5, Interval: 1e9}, NegativeCache: -1}
		}, ""},
		{"cimd client policy", func(a *App) {
			a.Scopes = []string{"mcp:read"}
			a.CIMD = &CIMD{Policy: "any",
				Clients:     map[string]*CIMDClientPolicy{"https://claude.ai/oauth/mcp-oauth-client-metadata": {AccessTokenLifetime: Duration(24 * time.Hour)}},
				ClientHosts: map[string]*CIMDClientPolicy{"*.example.com": {Scopes: []string{"mcp:read", "offline_access"}, RememberConsent: -1}}}
		}, ""},
		{"cimd client policy over 24h", func(a *App) {
			a.CIMD = &CIMD{Policy: "any", Clients: map[string]*CIMDClientPolicy{"https://claude.ai/c": {AccessTokenLifetime: Duration(25 * time.Hour)}}}
		}, "at most 24h"},
		{"cimd client policy id not a url", func(a *App) {
			a.CIMD = &CIMD{Policy: "any", Clients: map[string]*CIMDClientPolicy{"claude.ai": {}}}
		}, `cimd client "claude.ai"`},
		{"cimd client_host pattern", func(a *App) {
			a.CIMD = &CIMD{Policy: "any", ClientHosts: map[string]*CIMDClientPolicy{"https://claude.ai": {}}}
		}, "client_host"},
		{"cimd policy scope not offered", func(a *App) {
			a.Scopes = []string{"mcp:read"}
			a.CIMD = &CIMD{Policy: "any", ClientHosts: map[string]*CIMDClientPolicy{"claude.ai": {Scopes: []string{"mcp:admin"}}}}
		}, `scope "mcp:admin"`},
		{"cimd policy negative lifetime", func(a *App) {
			a.CIMD = &CIMD{Policy: "any", ClientHosts: map[string]*CIMDClientPolicy{"claude.ai": {RefreshTokenLifetime: -1}}}
		}, "negative"},
		{"provider name", func(a *App) { a.Login.OIDC = []OIDCProvider{{UpstreamButton: idp.UpstreamButton{Name: "Bad/Name"}}} }, "provider name"},
		{"provider twice", func(a *App) {
			a.Login.OIDC = []OIDCProvider{{UpstreamButton: idp.UpstreamButton{Name: "corp"}}}
			a.Login.SAML = []SAMLProvider{{UpstreamButton: idp.UpstreamButton{Name: "corp"}}}
		}, "configured twice"},
		{"home realm unknown provider", func(a *App) { a.Login.HomeRealm = map[string]string{"example.org": "nobody"} }, "unknown provider"},
		{"signup domains empty", func(a *App) { a.Login.Signup = "domains" }, "at least one domain"},
		{"shared_limits with bbolt", func(a *App) { a.Storage.Backend = "bbolt"; a.SharedLimits = true }, "shared_limits needs storage postgres"},
		{"shared_limits without storage", func(a *App) { a.SharedLimits = true }, "shared_limits needs storage postgres"},
		{"shared_limits with postgres", func(a *App) {
			a.Storage = Storage{Backend: "postgres", DSN: "postgres://x@db/x"}
			a.SharedLimits = true
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := base()
			c.mod(a)
			err := a.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// refresh_grace: unset is authserver's default, 0 is strict rotation,
// anything else is passed on.
func TestAppRefreshGrace(t *testing.T) {
	d := func(v time.Duration) *Duration { c := Duration(v); return &c }
	for _, c := range []struct {
		name string
		in   *Duration
		want time.Duration
	}{
		{"unset", nil, 0},
		{"strict", d(0), authserver.NoRefreshGrace},
		{"two minutes", d(2 * time.Minute), 2 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := (&App{RefreshGrace: c.in}).refreshGrace(); got != c.want {
				t.Fatalf("refreshGrace() = %v, want %v", got, c.want)
			}
		})
	}
}

// The cimd client policies reach the authorization server as configured;
// remember_consent off becomes "never remembered".
func TestAppCIMDPolicy(t *testing.T) {
	a := &App{CIMD: &CIMD{
		Clients:     map[string]*CIMDClientPolicy{"https://claude.ai/c": {AccessTokenLifetime: Duration(24 * time.Hour), RefreshTokenLifetime: Duration(time.Hour)}},
		ClientHosts: map[string]*CIMDClientPolicy{"*.example.com": {Scopes: []string{"mcp:read"}, RememberConsent: -1}, "claude.ai": {RememberConsent: Duration(time.Hour)}},
	}}
	p := a.cimdPolicy()
	if c := p.Clients["https://claude.ai/c"]; c.AccessTokenTTL != 24*time.Hour || c.RefreshTokenTTL != time.Hour {
		t.Fatalf("client policy %+v", c)
	}
	if h := p.Hosts["*.example.com"]; h.RememberConsent != authserver.ConsentNotRemembered || len(h.Scopes) != 1 {
		t.Fatalf("host policy %+v", h)
	}
	if h := p.Hosts["claude.ai"]; h.RememberConsent != time.Hour {
		t.Fatalf("host policy %+v", h)
	}
	if (&App{}).cimdPolicy().Clients != nil {
		t.Fatal("a policy without cimd")
	}
}

// TestOwnedClientKeys: jwks_uri and jwks_file make an owned client a
// private_key_jwt client; the file is read at provision.
func TestOwnedClientKeys(t *testing.T) {
	dir := t.TempDir()
	set := `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}`
	path := filepath.Join(dir, "client.jwks.json")
	if err := os.WriteFile(path, []byte(set), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &App{Clients: []Client{
		{ID: "uri", RedirectURIs: []string{"https://a.example/cb"}, JWKSURI: "https://a.example/jwks.json"},
		{ID: "file", RedirectURIs: []string{"https://b.example/cb"}, JWKSFile: path},
		{ID: "public", RedirectURIs: []string{"https://c.example/cb"}},
	}}
	got, err := a.ownedClients()
	if err != nil {
		t.Fatal(err)
	}
	if got[0].TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT || got[0].JWKSURI != "https://a.example/jwks.json" {
		t.Errorf("jwks_uri client: %+v", got[0])
	}
	if got[1].TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT || string(got[1].JWKS) != set {
		t.Errorf("jwks_file client: %+v", got[1])
	}
	if got[2].TokenEndpointAuthMethod != "none" || got[2].JWKSURI != "" || got[2].JWKS != nil {
		t.Errorf("public client: %+v", got[2])
	}
	a.Clients = []Client{{ID: "missing", RedirectURIs: []string{"https://a.example/cb"}, JWKSFile: filepath.Join(dir, "nope")}}
	if _, err := a.ownedClients(); err == nil || !strings.Contains(err.Error(), "jwks_file") {
		t.Errorf("missing jwks_file: %v", err)
	}
}
