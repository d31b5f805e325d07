package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// Guard is the JSON configuration of the `mcp_protect` handler
// (caddymodule.Guard embeds it).
type Guard struct {
	// Resource is the exact URL clients use for the MCP endpoint. It is
	// published as the metadata's `resource` and required in the token's
	// `aud`. Never built from Host or X-Forwarded-* headers.
	Resource string `json:"resource,omitempty"`
	// Path is the MCP endpoint's path, used with the issuer's origin when
	// Resource is empty (default /mcp).
	Path string `json:"path,omitempty"`
	// Issuer is the expected `iss`. Empty: the mcp_auth app of this config,
	// whose keys are used in-process. Otherwise the issuer's keys are
	// discovered through its RFC 8414 (or OpenID) metadata.
	Issuer string `json:"issuer,omitempty"`
	// AuthorizationServers are published in the metadata (default [Issuer]).
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// Scopes are required for every request.
	Scopes []string `json:"scopes,omitempty"`
	// ScopesSupported are published in the metadata (default: the app's scopes).
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// MethodScopes maps a JSON-RPC method ("tools/call") or a tool
	// ("tools/call:delete_todo") to the scopes it needs. The body of POST
	// requests is read only when this is set.
	MethodScopes map[string][]string `json:"method_scopes,omitempty"`
	// ScopeHierarchy maps a broad scope to the narrower scopes it implies.
	ScopeHierarchy map[string][]string `json:"scope_hierarchy,omitempty"`
	// AllowedOrigins may send requests with an Origin header (default: the
	// resource's own origin). Any other Origin gets 403 (DNS rebinding).
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// CORSOrigins are the browser origins (e.g. the MCP Inspector's
	// http://localhost:6274) whose pages may call the guarded endpoint: the
	// guard answers their CORS preflights before any token check, allows the
	// MCP request headers and exposes WWW-Authenticate and Mcp-Session-Id.
	// They are also allowed by the Origin check. Default: the cors_origins of
	// this config's mcp_auth app when the guard uses it; with neither, CORS
	// is off. "*" is refused (it would disable the DNS-rebinding defence).
	CORSOrigins []string `json:"cors_origins,omitempty"`
	// ResourceName is published in the metadata.
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation is published in the metadata.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
	// DisableRootMetadata stops serving this resource's protected resource
	// metadata at the root /.well-known/oauth-protected-resource of its
	// host; the path-inserted URL (/.well-known/oauth-protected-resource/mcp)
	// is always served. Set it when several MCP servers share a host, so
	// that the root document does not name one of them for all.
	DisableRootMetadata bool `json:"disable_root_metadata,omitempty"`
	// IdentityHeaders name the request headers that carry the verified
	// identity upstream; client-sent copies are always removed first.
	IdentityHeaders *IdentityHeaders `json:"identity_headers,omitempty"`
	// Leeway is the clock skew allowed on exp and nbf (default 30s).
	Leeway Duration `json:"leeway,omitempty"`
	// CacheSize bounds the verified-token cache (default 10000).
	CacheSize int `json:"cache_size,omitempty"`
	// CacheTTL bounds how long a verified token is trusted without
	// re-verifying its signature (default 5m; revocation is checked on every
	// request regardless).
	CacheTTL Duration `json:"cache_ttl,omitempty"`
	// StripCookies chooses which request cookies are removed before the
	// upstream: "product" (the default) removes caddy-mcpauth's own cookies
	// (the hosted login's session and CSRF cookies, the OIDC and SAML binding
	// cookies) and forwards the others; "all" removes every cookie.
	StripCookies string `json:"strip_cookies,omitempty"`
	// MaxHeaders bounds the number of request header fields on the guarded
	// route (default 100; -1: no limit). More gets 431 before the token is
	// looked at.
	MaxHeaders int `json:"max_headers,omitempty"`
	// MaxHeaderBytes bounds the total size of the request header fields on
	// the guarded route (default 32 KiB; -1: no limit). More gets 431 before
	// the token is looked at.
	MaxHeaderBytes int `json:"max_header_bytes,omitempty"`
	// RequireDPoP refuses access tokens that are not DPoP-bound (RFC 9449):
	// only `Authorization: DPoP` with a proof is accepted, and the metadata
	// says dpop_bound_access_tokens_required. Without it, the guard accepts
	// DPoP-bound tokens when the mcp_auth app has dpop, and bearer tokens.
	RequireDPoP bool `json:"require_dpop,omitempty"`

	// StepUp chooses how a tools/call lacking a scope (or, with
	// ToolSnapshot, consent for a new tool) is answered: "challenge" (the
	// default) is the standard 403 insufficient_scope naming every scope
	// needed; "tool_error" answers a single tools/call with a JSON-RPC tool
	// result (isError true) telling the user what to do, with a link to the
	// authorization server's step-up page that widens the grant (the
	// client's next refresh carries it), for clients that do not follow the
	// 403. Other requests keep the 403.
	StepUp string `json:"step_up,omitempty"`
	// ToolSnapshot makes a tools/call of a tool named in MethodScopes need
	// the tool in the token's tool snapshot (claim mcp_tools): a tool mapped
	// after the user consented is refused with the step-up answer until the
	// user consents again, on a consent page that names it. Only with this
	// config's mcp_auth as the issuer; tokens minted before it was turned on
	// need one fresh consent.
	ToolSnapshot bool `json:"tool_snapshot,omitempty"`

	// ToolsListFilter is "on" (the default) or "off". When on and
	// MethodScopes name tools ("tools/call:<tool>"), tools/list results (JSON
	// and SSE) reach the client with only the tools its token may call.
	ToolsListFilter string `json:"tools_list_filter,omitempty"`
	// MaxToolsListBytes bounds a tools/list result held to be filtered
	// (default 8 MiB); a larger one is refused with a JSON-RPC error.
	MaxToolsListBytes int64 `json:"max_tools_list_bytes,omitempty"`
	// MaxBodyBytes bounds the JSON-RPC request body the guard reads
	// (default 4 MiB); a larger one gets 413.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// ToolLimits are rate limits of tools/call per (subject, tool).
	ToolLimits []ToolLimit `json:"tool_limits,omitempty"`
	// MetricTools are tool names used as the tool label of
	// mcpauth_guard_tool_calls_total, with the tools of MethodScopes and
	// ToolLimits; every other tool is counted as "other".
	MetricTools []string `json:"metric_tools,omitempty"`
}

// ToolLimit is a rate limit of tools/call per (subject, tool): Calls per
// Interval, with bursts of Burst (default 1).
type ToolLimit struct {
	// Tool is the tool's name, or "*" for every tool without its own limit
	// (each tool still has its own budget).
	Tool string `json:"tool"`
	// Calls per Interval (default 1m) is the sustained rate.
	Calls    int      `json:"calls"`
	Interval Duration `json:"interval,omitempty"`
	// Burst is how many calls may come at once (default Calls).
	Burst int `json:"burst,omitempty"`
}

// IdentityHeaders name the headers that carry identity upstream.
type IdentityHeaders struct {
	// Subject carries the token's `sub`.
	Subject string `json:"subject,omitempty"`
	// ClientID carries the token's `client_id`.
	ClientID string `json:"client_id,omitempty"`
	// Scopes carries the granted scopes, space-separated.
	Scopes string `json:"scopes,omitempty"`
	// Email carries the user's email when the token has one.
	Email string `json:"email,omitempty"`
}

// Values of StripCookies.
const (
	StripCookiesProduct = "product"
	StripCookiesAll     = "all"
)

// Values of StepUp.
const (
	StepUpChallenge = "challenge"
	StepUpToolError = "tool_error"
)

// Validate checks the options that GuardConfig and resourceguard.New do
// not.
func (g *Guard) Validate() error {
	switch g.StripCookies {
	case "", StripCookiesProduct, StripCookiesAll:
	default:
		return fmt.Errorf("mcp_protect: strip_cookies %q: want product or all", g.StripCookies)
	}
	switch g.StepUp {
	case "", StepUpChallenge, StepUpToolError:
	default:
		return fmt.Errorf("mcp_protect: step_up %q: want challenge or tool_error", g.StepUp)
	}
	if g.MaxHeaders < -1 || g.MaxHeaderBytes < -1 {
		return errors.New("mcp_protect: max_headers and max_header_bytes must be positive (or -1 for no limit)")
	}
	switch g.ToolsListFilter {
	case "", "on", "off":
	default:
		return fmt.Errorf("mcp_protect: tools_list_filter %q: want on or off", g.ToolsListFilter)
	}
	if g.MaxToolsListBytes < 0 || g.MaxBodyBytes < 0 {
		return errors.New("mcp_protect: max_tools_list_bytes and max_body_bytes must be positive")
	}
	for _, l := range g.ToolLimits {
		if l.Tool == "" || l.Calls <= 0 || l.Interval < 0 || l.Burst < 0 {
			return fmt.Errorf("mcp_protect: tool_limit %q: want a tool, a positive number of calls and interval", l.Tool)
		}
	}
	return nil
}

// Resolve replaces the placeholders of the resource and issuer and sets the
// default path.
func (g *Guard) Resolve(replace func(string) string) {
	g.Resource = replace(g.Resource)
	g.Issuer = strings.TrimRight(replace(g.Issuer), "/")
	if g.Path == "" {
		g.Path = "/mcp"
	}
}

// GuardConfig is the resource guard's configuration, without its key
// source, revocation check, DPoP and step-up (see UseApp, DPoPConfig,
// StepUpConfig).
func (g *Guard) GuardConfig(logger *slog.Logger) resourceguard.Config {
	cfg := resourceguard.Config{
		Resource:               g.Resource,
		Issuer:                 g.Issuer,
		AuthorizationServers:   g.AuthorizationServers,
		Scopes:                 g.Scopes,
		ScopesSupported:        g.ScopesSupported,
		MethodScopes:           g.MethodScopes,
		ScopeHierarchy:         g.ScopeHierarchy,
		AllowedOrigins:         g.AllowedOrigins,
		CORSOrigins:            g.CORSOrigins,
		ResourceName:           g.ResourceName,
		ResourceDocumentation:  g.ResourceDocumentation,
		DisableRootMetadata:    g.DisableRootMetadata,
		Leeway:                 time.Duration(g.Leeway),
		CacheSize:              g.CacheSize,
		CacheMaxTTL:            time.Duration(g.CacheTTL),
		StripAllCookies:        g.StripCookies == StripCookiesAll,
		MaxHeaders:             g.MaxHeaders,
		MaxHeaderBytes:         g.MaxHeaderBytes,
		MaxBodyBytes:           g.MaxBodyBytes,
		DisableToolsListFilter: g.ToolsListFilter == "off",
		MaxToolsListBytes:      g.MaxToolsListBytes,
		MetricTools:            g.MetricTools,
		Logger:                 logger,
	}
	if g.IdentityHeaders != nil {
		cfg.Identity = resourceguard.IdentityHeaders(*g.IdentityHeaders)
	}
	for _, l := range g.ToolLimits {
		iv := time.Duration(l.Interval)
		if iv == 0 {
			iv = time.Minute
		}
		burst := l.Burst
		if burst == 0 {
			burst = l.Calls
		}
		cfg.ToolLimits = append(cfg.ToolLimits, resourceguard.ToolLimit{Tool: l.Tool, Rate: float64(l.Calls) / iv.Seconds(), Burst: burst})
	}
	cfg.StepUp = g.StepUpConfig(nil)
	return cfg
}

// UseApp sets up cfg for tokens of this config's mcp_auth app: its issuer,
// and its scopes, CORS origins and issuer origin where the guard names
// none. The caller adds the app's keys and revocation check.
func (g *Guard) UseApp(cfg *resourceguard.Config, app *App) error {
	cfg.Issuer = app.Issuer
	cfg.RequireTyp = true
	if len(cfg.ScopesSupported) == 0 {
		cfg.ScopesSupported = app.Scopes
	}
	if len(cfg.CORSOrigins) == 0 {
		cfg.CORSOrigins = app.CORSOrigins
	}
	if cfg.Resource == "" {
		u, err := url.Parse(app.Issuer)
		if err != nil {
			return err
		}
		cfg.Resource = u.Scheme + "://" + u.Host + g.Path
	}
	return nil
}

// CheckExternal checks a guard that accepts an external issuer's tokens.
func (g *Guard) CheckExternal(cfg resourceguard.Config) error {
	if g.ToolSnapshot {
		return errors.New("mcp_protect: tool_snapshot needs this config's mcp_auth as the issuer (an external issuer sets no tool snapshot)")
	}
	if cfg.Resource == "" {
		return errors.New("mcp_protect: resource is required with an external issuer")
	}
	return nil
}

// StepUpConfig maps the guard's step_up and tool_snapshot options; url,
// when the guard uses this config's mcp_auth as the issuer, is its step-up
// page for a grant (the tool error then links to it), else nil.
func (g *Guard) StepUpConfig(url func(grantID string, scopes []string) string) resourceguard.StepUpConfig {
	cfg := resourceguard.StepUpConfig{ToolError: g.StepUp == StepUpToolError, ToolSnapshot: g.ToolSnapshot}
	if url != nil {
		cfg.URL = func(p *resourceguard.Principal, scopes []string) string { return url(p.GrantID, scopes) }
	}
	return cfg
}
