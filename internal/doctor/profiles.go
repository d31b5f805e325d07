package doctor

// Profile is what one MCP client does during discovery and onboarding.
type Profile struct {
	// Name is shown in the report ("Claude Code").
	Name string `json:"name"`
	// CIMD is the client's published Client ID Metadata Document URL, when
	// it onboards through CIMD; CIMDRedirect the redirect URI it then uses.
	CIMD         string `json:"cimd,omitempty"`
	CIMDRedirect string `json:"cimd_redirect,omitempty"`
	// CIMDNeedsAuth is the token endpoint auth method the client's document
	// declares; the client picks CIMD only when the metadata lists it in
	// token_endpoint_auth_methods_supported (Claude and OpenCode: "none";
	// ChatGPT: "private_key_jwt").
	CIMDNeedsAuth string `json:"cimd_needs_auth,omitempty"`
	// DCR is the client's RFC 7591 registration body (nil: it never uses
	// DCR). Rejecting any one redirect URI fails the whole registration.
	DCR *Registration `json:"dcr,omitempty"`
	// ManualFallback: when neither lane is available the client can still be
	// configured by hand with an owned client id (a warning, not a failure).
	ManualFallback bool `json:"manual_fallback,omitempty"`
	// ASOnMCPHost: the client reads the authorization server metadata on
	// the MCP server's host (ChatGPT).
	ASOnMCPHost bool `json:"as_on_mcp_host,omitempty"`
	// OriginEndpoints: the client uses /authorize and /token on the MCP
	// server's origin whatever the metadata says (Claude web).
	OriginEndpoints bool `json:"origin_endpoints,omitempty"`
	// TrailingSlash: the client adds "/" to a bare-origin resource.
	TrailingSlash bool `json:"trailing_slash,omitempty"`
	// Origin is the browser origin of a client that runs in a browser: the
	// site must answer its CORS preflights.
	Origin string `json:"origin,omitempty"`
	// Scope is what the client asks for at /authorize ("" lets the server
	// choose).
	Scope string `json:"scope,omitempty"`
}

// Registration is a DCR request body, in the client's shape.
type Registration struct {
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

func publicReg(name string, redirects ...string) *Registration {
	return &Registration{ClientName: name, RedirectURIs: redirects, GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none"}
}

// Profiles are the built-in clients, in the order they are reported. The
// redirect URIs and document URLs are the ones the clients publish.
func Profiles() []Profile {
	return []Profile{
		{
			Name: "Claude", CIMD: "https://claude.ai/oauth/mcp-oauth-client-metadata",
			CIMDRedirect: "https://claude.ai/api/mcp/auth_callback", CIMDNeedsAuth: "none",
			DCR:             publicReg("Claude", "https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"),
			OriginEndpoints: true,
		},
		{
			Name: "Claude Code", CIMD: "https://claude.ai/oauth/claude-code-client-metadata",
			CIMDRedirect: "http://localhost:54212/callback", CIMDNeedsAuth: "none",
			DCR:           publicReg("Claude Code", "http://localhost:54212/callback"),
			TrailingSlash: true,
		},
		{
			Name: "ChatGPT", CIMD: "https://chatgpt.com/oauth/client.json",
			CIMDRedirect: "https://chatgpt.com/connector_platform_oauth_redirect", CIMDNeedsAuth: "private_key_jwt",
			DCR:            publicReg("ChatGPT", "https://chatgpt.com/connector_platform_oauth_redirect"),
			ASOnMCPHost:    true,
			ManualFallback: true,
		},
		{
			Name: "VS Code", CIMD: "https://vscode.dev/oauth/client-metadata.json",
			CIMDRedirect: "http://127.0.0.1:33418/callback",
			DCR: publicReg("Visual Studio Code", "https://vscode.dev/redirect", "https://insiders.vscode.dev/redirect",
				"http://127.0.0.1/", "http://127.0.0.1:33418/"),
			ManualFallback: true,
		},
		{
			Name: "Cursor",
			DCR: publicReg("Cursor", "cursor://anysphere.cursor-mcp/oauth/callback",
				"https://www.cursor.com/agents/mcp/oauth/callback", "http://localhost:8787/callback"),
		},
		{
			Name:           "Inspector",
			DCR:            publicReg("MCP Inspector", "http://localhost:6274/oauth/callback", "http://localhost:6274/oauth/callback/debug"),
			Origin:         "http://localhost:6274",
			ManualFallback: true,
		},
	}
}
