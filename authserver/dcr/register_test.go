package dcr

import (
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

var fixedNow = time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)

func opts() Options {
	o := DefaultOptions()
	o.Now = func() time.Time { return fixedNow }
	return o
}

func TestValidateRegistrationAccepted(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		opts       func(*Options)
		wantURIs   []string
		wantGrants []string
		wantName   string
		check      func(t *testing.T, c storage.Client)
	}{
		{
			name:       "minimal loopback",
			body:       `{"redirect_uris":["http://127.0.0.1:33418/callback"]}`,
			wantURIs:   []string{"http://127.0.0.1:33418/callback"},
			wantGrants: []string{"authorization_code"},
		},
		{
			name: "cursor three mixed kinds",
			body: `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback",
				"https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"],
				"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
				"token_endpoint_auth_method":"none"}`,
			wantURIs: []string{"cursor://anysphere.cursor-mcp/oauth/callback",
				"https://www.cursor.com/agents/mcp/oauth/callback", "http://localhost:8787/callback"},
			wantGrants: []string{"authorization_code", "refresh_token"},
			wantName:   "Cursor",
		},
		{
			name: "vscode dcr set",
			body: `{"client_name":"Visual Studio Code","redirect_uris":["https://vscode.dev/redirect",
				"https://insiders.vscode.dev/redirect","http://127.0.0.1/","http://127.0.0.1:33418/"],
				"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`,
			wantURIs: []string{"https://vscode.dev/redirect", "https://insiders.vscode.dev/redirect",
				"http://127.0.0.1/", "http://127.0.0.1:33418/"},
			wantGrants: []string{"authorization_code", "refresh_token"},
			wantName:   "Visual Studio Code",
		},
		{
			name:       "mcp-remote",
			body:       `{"client_name":"MCP CLI Proxy","redirect_uris":["http://localhost:3334/oauth/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none","client_uri":"https://github.com/modelcontextprotocol/mcp-cli","software_id":"2e6dc280-f3c3-4e01-99a7-8181dbd1d23d","software_version":"0.1.0"}`,
			wantURIs:   []string{"http://localhost:3334/oauth/callback"},
			wantGrants: []string{"authorization_code", "refresh_token"},
			wantName:   "MCP CLI Proxy",
			check: func(t *testing.T, c storage.Client) {
				if c.ClientURI != "https://github.com/modelcontextprotocol/mcp-cli" {
					t.Errorf("client_uri = %q", c.ClientURI)
				}
				if c.SoftwareID != "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d" {
					t.Errorf("software_id = %q", c.SoftwareID)
				}
			},
		},
		{
			name:       "ipv6 loopback and reverse-dns scheme",
			body:       `{"redirect_uris":["http://[::1]:8080/cb","com.example.app:/oauth2redirect"]}`,
			wantURIs:   []string{"http://[::1]:8080/cb", "com.example.app:/oauth2redirect"},
			wantGrants: []string{"authorization_code"},
		},
		{
			name:       "null members are absent",
			body:       `{"redirect_uris":["https://app.example.com/cb"],"grant_types":null,"token_endpoint_auth_method":null,"client_name":null}`,
			wantURIs:   []string{"https://app.example.com/cb"},
			wantGrants: []string{"authorization_code"},
		},
		{
			name:       "duplicate redirect collapsed",
			body:       `{"redirect_uris":["https://app.example.com/cb","https://app.example.com/cb"]}`,
			wantURIs:   []string{"https://app.example.com/cb"},
			wantGrants: []string{"authorization_code"},
		},
		{
			name:       "non-https client_uri and logo dropped",
			body:       `{"redirect_uris":["https://app.example.com/cb"],"client_uri":"http://example.com","logo_uri":"javascript:alert(1)"}`,
			wantURIs:   []string{"https://app.example.com/cb"},
			wantGrants: []string{"authorization_code"},
			check: func(t *testing.T, c storage.Client) {
				if c.ClientURI != "" || c.LogoURI != "" {
					t.Errorf("client_uri=%q logo_uri=%q, want both dropped", c.ClientURI, c.LogoURI)
				}
			},
		},
		{
			name:       "unknown metadata and scope ignored",
			body:       `{"redirect_uris":["https://app.example.com/cb"],"scope":"mcp:tools offline_access","contacts":["a@b.c"],"jwks_uri":"https://x/jwks"}`,
			wantURIs:   []string{"https://app.example.com/cb"},
			wantGrants: []string{"authorization_code"},
			check: func(t *testing.T, c storage.Client) {
				if len(c.Scopes) != 0 {
					t.Errorf("scopes = %v, want none", c.Scopes)
				}
			},
		},
		{
			name:       "private scheme on allow list",
			body:       `{"redirect_uris":["vscode://vscode.github-authentication/did-authenticate"]}`,
			opts:       func(o *Options) { o.PrivateSchemes = []string{"vscode", "cursor"} },
			wantURIs:   []string{"vscode://vscode.github-authentication/did-authenticate"},
			wantGrants: []string{"authorization_code"},
		},
		{
			name:       "upper-case https host tolerated",
			body:       `{"redirect_uris":["https://App.Example.com/cb"]}`,
			wantURIs:   []string{"https://App.Example.com/cb"},
			wantGrants: []string{"authorization_code"},
		},
		{
			name:       "operator list admits a dot-less scheme",
			body:       `{"redirect_uris":["myapp://callback/x"]}`,
			opts:       func(o *Options) { o.PrivateSchemes = []string{"myapp"} },
			wantURIs:   []string{"myapp://callback/x"},
			wantGrants: []string{"authorization_code"},
		},
		{
			name:       "client name trimmed",
			body:       `{"redirect_uris":["https://app.example.com/cb"],"client_name":"  Écrivain  "}`,
			wantURIs:   []string{"https://app.example.com/cb"},
			wantGrants: []string{"authorization_code"},
			wantName:   "Écrivain",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts()
			if tt.opts != nil {
				tt.opts(&o)
			}
			c, e := ValidateRegistration([]byte(tt.body), o)
			if e != nil {
				t.Fatalf("refused: %v", e)
			}
			if !strings.HasPrefix(c.ID, ClientIDPrefix) || strings.HasPrefix(c.ID, "https://") {
				t.Errorf("id = %q", c.ID)
			}
			if c.Kind != storage.ClientDCR || c.TokenEndpointAuthMethod != "none" || c.SecretHash != "" {
				t.Errorf("kind=%q method=%q secret=%q", c.Kind, c.TokenEndpointAuthMethod, c.SecretHash)
			}
			if !slices.Equal(c.RedirectURIs, tt.wantURIs) {
				t.Errorf("redirect_uris = %q, want %q", c.RedirectURIs, tt.wantURIs)
			}
			if !slices.Equal(c.GrantTypes, tt.wantGrants) {
				t.Errorf("grant_types = %q, want %q", c.GrantTypes, tt.wantGrants)
			}
			if c.Name != tt.wantName {
				t.Errorf("name = %q, want %q", c.Name, tt.wantName)
			}
			if c.Fingerprint != oauth.Fingerprint(storage.Client{Name: tt.wantName, RedirectURIs: tt.wantURIs}) {
				t.Errorf("fingerprint mismatch")
			}
			if !c.CreatedAt.Equal(fixedNow) || !c.UpdatedAt.Equal(fixedNow) {
				t.Errorf("created=%v updated=%v", c.CreatedAt, c.UpdatedAt)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestValidateRegistrationRefused(t *testing.T) {
	const ok = `"redirect_uris":["https://app.example.com/cb"]`
	tests := []struct {
		name     string
		body     string
		opts     func(*Options)
		wantCode string
		wantDesc string // substring of the description
	}{
		{"empty body", ``, nil, oauth.CodeInvalidClientMetadata, "not a JSON object"},
		{"array body", `[]`, nil, oauth.CodeInvalidClientMetadata, "not a JSON object"},
		{"string body", `"x"`, nil, oauth.CodeInvalidClientMetadata, "not a JSON object"},
		{"truncated", `{"redirect_uris":[`, nil, oauth.CodeInvalidClientMetadata, "not a valid JSON object"},
		{"trailing data", `{` + ok + `}{}`, nil, oauth.CodeInvalidClientMetadata, "data after"},
		{"duplicate member", `{` + ok + `,"redirect_uris":["javascript:alert(1)"]}`, nil, oauth.CodeInvalidClientMetadata, "duplicate"},
		{"invalid utf8", "{\"client_name\":\"\xff\"," + ok + "}", nil, oauth.CodeInvalidClientMetadata, "UTF-8"},
		{"too large", `{` + ok + `,"x":"` + strings.Repeat("a", MaxRequestBytes) + `"}`, nil, oauth.CodeInvalidClientMetadata, "larger than"},
		{"missing redirect_uris", `{"client_name":"x"}`, nil, oauth.CodeInvalidRedirectURI, "required"},
		{"null redirect_uris", `{"redirect_uris":null}`, nil, oauth.CodeInvalidRedirectURI, "required"},
		{"empty redirect_uris", `{"redirect_uris":[]}`, nil, oauth.CodeInvalidRedirectURI, "must not be empty"},
		{"redirect_uris string", `{"redirect_uris":"https://a.example/cb"}`, nil, oauth.CodeInvalidRedirectURI, "array of strings"},
		{"redirect_uris numbers", `{"redirect_uris":[1]}`, nil, oauth.CodeInvalidRedirectURI, "array of strings"},
		{"too many redirects", `{"redirect_uris":["https://a.example/1","https://a.example/2","https://a.example/3"]}`,
			func(o *Options) { o.MaxRedirectURIs = 2 }, oauth.CodeInvalidRedirectURI, "at most 2"},
		{"javascript", `{"redirect_uris":["javascript:alert(1)"]}`, nil, oauth.CodeInvalidRedirectURI, "redirect_uris[0]: scheme not allowed"},
		{"data", `{"redirect_uris":["data:text/html,hi"]}`, nil, oauth.CodeInvalidRedirectURI, "scheme not allowed"},
		{"file", `{"redirect_uris":["file:///etc/passwd"]}`, nil, oauth.CodeInvalidRedirectURI, "scheme not allowed"},
		{"http remote", `{"redirect_uris":["http://evil.example/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "loopback"},
		{"http 127.0.0.2", `{"redirect_uris":["http://127.0.0.2/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "loopback"},
		{"http LOCALHOST", `{"redirect_uris":["http://LOCALHOST/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "invalid host"},
		{"http localhost dot", `{"redirect_uris":["http://localhost./cb"]}`, nil, oauth.CodeInvalidRedirectURI, "invalid host"},
		{"fragment", `{"redirect_uris":["https://app.example.com/cb#x"]}`, nil, oauth.CodeInvalidRedirectURI, "fragment"},
		{"empty fragment", `{"redirect_uris":["https://app.example.com/cb#"]}`, nil, oauth.CodeInvalidRedirectURI, "fragment"},
		{"userinfo", `{"redirect_uris":["https://user@app.example.com/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "userinfo"},
		{"userinfo loopback", `{"redirect_uris":["http://evil.example@127.0.0.1/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "userinfo"},
		{"relative", `{"redirect_uris":["/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "not an absolute"},
		{"backslash", `{"redirect_uris":["https://app.example.com\\@evil.example/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "backslash"},
		{"space", `{"redirect_uris":["https://app.example.com/c b"]}`, nil, oauth.CodeInvalidRedirectURI, "whitespace"},
		{"https no host", `{"redirect_uris":["https:///cb"]}`, nil, oauth.CodeInvalidRedirectURI, "missing host"},
		{"https opaque", `{"redirect_uris":["https:app.example.com"]}`, nil, oauth.CodeInvalidRedirectURI, "missing host"},
		{"bad port", `{"redirect_uris":["http://127.0.0.1:99999/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "port"},
		{"upper scheme", `{"redirect_uris":["HTTPS://app.example.com/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "lower-case"},
		{"one bad of three", `{"redirect_uris":["https://a.example/cb","http://localhost:1/cb","http://b.example/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "redirect_uris[2]"},
		{"private schemes off", `{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"]}`,
			func(o *Options) { o.AllowPrivateSchemes = false }, oauth.CodeInvalidRedirectURI, "private-use schemes are not allowed"},
		{"private scheme not on list", `{"redirect_uris":["evilapp://cb/x"]}`,
			func(o *Options) { o.PrivateSchemes = []string{"cursor"} }, oauth.CodeInvalidRedirectURI, "not allowed by policy"},
		{"private scheme no path", `{"redirect_uris":["cursor:"]}`, nil, oauth.CodeInvalidRedirectURI, "no path"},
		{"private scheme root path only", `{"redirect_uris":["com.example.app:/"]}`, nil, oauth.CodeInvalidRedirectURI, "no path"},
		{"unknown dot-less scheme", `{"redirect_uris":["myapp://callback"]}`, nil, oauth.CodeInvalidRedirectURI, "reverse domain names"},
		{"opaque private uri", `{"redirect_uris":["com.example.app:callback"]}`, nil, oauth.CodeInvalidRedirectURI, "scheme:/path"},
		{"vbscript", `{"redirect_uris":["vbscript:msgbox"]}`, nil, oauth.CodeInvalidRedirectURI, "scheme not allowed"},
		{"dotted javascript lookalike allowed only if not denied", `{"redirect_uris":["javascript.x:alert(1)"]}`, nil, oauth.CodeInvalidRedirectURI, "scheme:/path"},
		{"private host with percent", `{"redirect_uris":["cursor://a%2fb/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "not a valid uri"},
		{"private host with underscore-free junk", `{"redirect_uris":["cursor://a!b/cb"]}`, nil, oauth.CodeInvalidRedirectURI, "invalid host"},
		{"client_secret_basic", `{` + ok + `,"token_endpoint_auth_method":"client_secret_basic"}`, nil, oauth.CodeInvalidClientMetadata, `"client_secret_basic" is not supported`},
		{"private_key_jwt", `{` + ok + `,"token_endpoint_auth_method":"private_key_jwt"}`, nil, oauth.CodeInvalidClientMetadata, "only public clients"},
		{"auth method not string", `{` + ok + `,"token_endpoint_auth_method":["none"]}`, nil, oauth.CodeInvalidClientMetadata, "must be a string"},
		{"auth method hostile not echoed", `{` + ok + `,"token_endpoint_auth_method":"<script>"}`, nil, oauth.CodeInvalidClientMetadata, "(unrecognized value)"},
		{"implicit grant", `{` + ok + `,"grant_types":["implicit"]}`, nil, oauth.CodeInvalidClientMetadata, `"implicit" is not supported`},
		{"client credentials", `{` + ok + `,"grant_types":["authorization_code","client_credentials"]}`, nil, oauth.CodeInvalidClientMetadata, "client_credentials"},
		{"refresh only", `{` + ok + `,"grant_types":["refresh_token"]}`, nil, oauth.CodeInvalidClientMetadata, "must include authorization_code"},
		{"empty grants", `{` + ok + `,"grant_types":[]}`, nil, oauth.CodeInvalidClientMetadata, "must include authorization_code"},
		{"grants not array", `{` + ok + `,"grant_types":"authorization_code"}`, nil, oauth.CodeInvalidClientMetadata, "array of strings"},
		{"token response type", `{` + ok + `,"response_types":["code","token"]}`, nil, oauth.CodeInvalidClientMetadata, `"token" is not supported`},
		{"empty response types", `{` + ok + `,"response_types":[]}`, nil, oauth.CodeInvalidClientMetadata, "must include code"},
		{"client name number", `{` + ok + `,"client_name":5}`, nil, oauth.CodeInvalidClientMetadata, "client_name must be a string"},
		{"client name too long", `{` + ok + `,"client_name":"` + strings.Repeat("n", 201) + `"}`, nil, oauth.CodeInvalidClientMetadata, "longer than"},
		{"client name control", `{` + ok + `,"client_name":"a\u0007b"}`, nil, oauth.CodeInvalidClientMetadata, "control"},
		{"client name bidi override", `{` + ok + `,"client_name":"Claude\u202egnp.exe"}`, nil, oauth.CodeInvalidClientMetadata, "formatting"},
		{"metadata error reported before redirect error", `{"redirect_uris":["javascript:x"],"token_endpoint_auth_method":"client_secret_post"}`, nil, oauth.CodeInvalidClientMetadata, "client_secret_post"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts()
			if tt.opts != nil {
				tt.opts(&o)
			}
			c, e := ValidateRegistration([]byte(tt.body), o)
			if e == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if c.ID != "" {
				t.Errorf("refusal returned a client with id %q", c.ID)
			}
			if e.Code != tt.wantCode {
				t.Errorf("code = %q, want %q (%s)", e.Code, tt.wantCode, e.Description)
			}
			if !strings.Contains(e.Description, tt.wantDesc) {
				t.Errorf("description = %q, want it to contain %q", e.Description, tt.wantDesc)
			}
			if e.Status != 400 {
				t.Errorf("status = %d", e.Status)
			}
			if strings.Contains(e.Description, "<script>") || strings.Contains(e.Description, "evil.example") {
				t.Errorf("description echoes input: %q", e.Description)
			}
		})
	}
}

func TestNewClientID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewClientID()
		if !strings.HasPrefix(id, "dcr_") || strings.HasPrefix(id, "https://") {
			t.Fatalf("id %q", id)
		}
		if len(id) != len("dcr_")+22 { // 16 bytes, base64url, no padding
			t.Fatalf("id %q has %d chars", id, len(id))
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestRegistrationResponse(t *testing.T) {
	c, e := ValidateRegistration([]byte(`{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","http://localhost:8787/callback"],"grant_types":["refresh_token","authorization_code"],"logo_uri":"https://cursor.com/logo.png"}`), opts())
	if e != nil {
		t.Fatal(e)
	}
	resp := RegistrationResponse(c, fixedNow)
	raw, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"client_id":                  c.ID,
		"client_id_issued_at":        float64(fixedNow.Unix()),
		"client_name":                "Cursor",
		"redirect_uris":              []any{"cursor://anysphere.cursor-mcp/oauth/callback", "http://localhost:8787/callback"},
		"grant_types":                []any{"authorization_code", "refresh_token"},
		"response_types":             []any{"code"},
		"token_endpoint_auth_method": "none",
		"logo_uri":                   "https://cursor.com/logo.png",
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("response\n got %s\nwant %s", gotJSON, wantJSON)
	}
	for _, k := range []string{"client_secret", "client_secret_expires_at"} {
		if _, ok := got[k]; ok {
			t.Errorf("response carries %s", k)
		}
	}
}

func FuzzValidateRegistration(f *testing.F) {
	for _, s := range []string{
		`{"redirect_uris":["http://127.0.0.1:33418/callback"]}`,
		`{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"],"grant_types":["authorization_code","refresh_token"]}`,
		`{"redirect_uris":["javascript:alert(1)"]}`,
		`{"redirect_uris":["https://a@b/#"],"token_endpoint_auth_method":"client_secret_basic"}`,
		`{"redirect_uris":["http://[::1]:0/"],"response_types":["token"]}`,
		`{"redirect_uris":["com.example.app:/cb"],"client_name":"\u202e"}`,
		`[]`, `{}`, `{"a":1}{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, e := ValidateRegistration(raw, DefaultOptions())
		if e != nil {
			if c.ID != "" {
				t.Fatal("refusal returned a client")
			}
			if e.Code != oauth.CodeInvalidClientMetadata && e.Code != oauth.CodeInvalidRedirectURI {
				t.Fatalf("unexpected code %q", e.Code)
			}
			return
		}
		if len(c.RedirectURIs) == 0 || c.TokenEndpointAuthMethod != "none" || c.Kind != storage.ClientDCR {
			t.Fatalf("accepted an invalid client: %+v", c)
		}
		for _, u := range c.RedirectURIs {
			if strings.ContainsAny(u, "#\\ ") || strings.HasPrefix(u, "javascript:") || strings.HasPrefix(u, "data:") || strings.HasPrefix(u, "file:") {
				t.Fatalf("accepted redirect %q", u)
			}
			k, err := oauth.CheckRedirectURI(u, oauth.RedirectPolicy{AllowPrivateSchemes: true})
			if err != nil {
				t.Fatalf("accepted redirect %q fails re-check: %v", u, err)
			}
			if strings.HasPrefix(u, "http:") && k != oauth.RedirectLoopback {
				t.Fatalf("accepted non-loopback http %q", u)
			}
		}
		for _, g := range c.GrantTypes {
			if g != oauth.GrantAuthorizationCode && g != oauth.GrantRefreshToken {
				t.Fatalf("accepted grant %q", g)
			}
		}
		if !printable(c.Name) {
			t.Fatalf("accepted name %q", c.Name)
		}
	})
}

// client_uri and logo_uri are returned to whoever reads the client (a logo
// would be fetched by a browser): they are kept only when https on a public
// host, else dropped without refusing the registration (RFC 7591 §2).
func TestRegistrationLinksOnlyPublicHTTPS(t *testing.T) {
	kept := []string{
		"https://github.com/modelcontextprotocol/mcp-cli", "https://cursor.com/logo.png", "https://app.vendor.io:8443/x.png",
		"https://xn--bcher-kva.ch/", "https://8.8.8.8.nip.io/logo.png",
	}
	dropped := []string{
		"http://cursor.com/logo.png", "javascript:alert(1)", "data:image/png;base64,AAAA", "https://",
		"https://localhost/logo.png", "https://app.localhost/logo.png", "https://LOCALHOST/logo.png", "https://127.0.0.1/logo.png",
		"https://[::1]/logo.png", "https://10.0.0.5/logo.png", "https://192.168.1.1/", "https://169.254.169.254/latest/meta-data",
		"https://8.8.8.8/logo.png", "https://[2606:4700::1111]/", "https://2130706433/", "https://0x7f000001/", "https://127.1/",
		"https://printer.local/logo.png", "https://intranet/logo.png", "https://wiki.corp.internal/", "https://x.home.arpa/",
		"https://site.test/", "https://foo.invalid/", "https://example.com/logo.png", "https://www.example.org/", "https://abc.onion/",
		"https://user:pass@cursor.com/logo.png", "https://cursor.com./logo.png",
	}
	check := func(t *testing.T, uri string, wantKept bool) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}, "client_uri": uri, "logo_uri": uri})
		c, e := ValidateRegistration(body, opts())
		if e != nil {
			t.Fatalf("%s: registration refused: %v", uri, e)
		}
		want := ""
		if wantKept {
			want = uri
		}
		if c.ClientURI != want || c.LogoURI != want {
			t.Fatalf("%s: client_uri=%q logo_uri=%q, want %q", uri, c.ClientURI, c.LogoURI, want)
		}
	}
	for _, u := range kept {
		t.Run("kept "+u, func(t *testing.T) { check(t, u, true) })
	}
	for _, u := range dropped {
		t.Run("dropped "+u, func(t *testing.T) { check(t, u, false) })
	}
}

// FuzzPublicLink: the link filter never panics and keeps only https URLs
// whose host is a dotted DNS name outside the special-use names.
func FuzzPublicLink(f *testing.F) {
	for _, s := range []string{"https://cursor.com/logo.png", "https://localhost/", "https://10.0.0.1/", "https://[::1]/", "https://a.local/", "https://a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, _ := json.Marshal(s)
		got := optionalHTTPS(raw)
		if got == "" {
			return
		}
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "https" || u.User != nil {
			t.Fatalf("kept %q", got)
		}
		h := strings.ToLower(u.Hostname())
		if _, err := netip.ParseAddr(h); err == nil || !strings.Contains(h, ".") || h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".local") {
			t.Fatalf("kept %q (host %q)", got, h)
		}
	})
}

func TestPublicWebRedirects(t *testing.T) {
	for _, c := range []struct {
		uris []string
		want bool
	}{
		{[]string{"https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"}, true},
		{nil, false},
		{[]string{"https://claude.ai/cb", "http://127.0.0.1/callback"}, false},
		{[]string{"http://localhost:8787/callback"}, false},
		{[]string{"https://localhost/cb"}, false},
		{[]string{"https://127.0.0.1/cb"}, false},
		{[]string{"https://[::1]/cb"}, false},
		{[]string{"https://printer.local/cb"}, false},
		{[]string{"https://intranet/cb"}, false},
		{[]string{"cursor://anysphere.cursor-mcp/oauth/callback"}, false},
		{[]string{"com.example.app:/callback"}, false},
		{[]string{"https://claude.ai/cb#x"}, false},
	} {
		if got := PublicWebRedirects(c.uris); got != c.want {
			t.Errorf("PublicWebRedirects(%q) = %v, want %v", c.uris, got, c.want)
		}
	}
}

// FuzzPublicWebRedirects: whatever a registration sends, a URI admitted for
// consent reuse is a valid https redirect that is not loopback.
func FuzzPublicWebRedirects(f *testing.F) {
	for _, s := range []string{"https://claude.ai/cb", "https://127.0.0.1/cb", "http://localhost/cb", "cursor://x/cb", "https://0x7f.1/cb", "https://a.b.local/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !PublicWebRedirects([]string{s}) {
			return
		}
		k, err := oauth.CheckRedirectURI(s, oauth.RedirectPolicy{})
		if err != nil || k != oauth.RedirectHTTPS || oauth.IsLoopbackRedirect(s) {
			t.Fatalf("%q admitted (kind %v, %v)", s, k, err)
		}
		u, err := url.Parse(s)
		if err != nil || net.ParseIP(strings.Trim(u.Hostname(), "[]")) != nil || strings.EqualFold(u.Hostname(), "localhost") {
			t.Fatalf("%q admitted with host %q", s, u.Hostname())
		}
	})
}
