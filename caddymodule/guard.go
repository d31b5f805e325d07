package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

func init() {
	caddy.RegisterModule(Guard{})
	httpcaddyfile.RegisterDirective("mcp_protect", parseGuard)
	httpcaddyfile.RegisterDirectiveOrder("mcp_protect", httpcaddyfile.After, "basic_auth")
}

// Guard makes the routes after it an OAuth protected resource (RFC 9728,
// RFC 6750): it serves protected resource metadata, challenges requests
// without a valid access token, checks scopes, removes the client's token
// and hands the verified identity upstream. Put `reverse_proxy` after it.
//
// Caddyfile:
//
//	mcp_protect [<matcher>] {
//		resource <url>                  # default: issuer origin + the matcher's path (e.g. /mcp)
//		issuer <url>                    # an external authorization server; default: this config's mcp_auth
//		authorization_servers <url...>
//		scopes <scope...>               # required for every request
//		scopes_supported <scope...>
//		method_scope <method>[:<tool>] <scope...>
//		scope_implies <broad> <narrow...>
//		allowed_origins <origin...>
//		cors_origins <origin...>        # browser origins; default: the mcp_auth app's cors_origins
//		resource_name <text>
//		resource_documentation <url>
//		disable_root_metadata           # no PRM at /.well-known/oauth-protected-resource (several MCP servers on one host)
//		identity_headers {
//			subject <header>
//			client_id <header>
//			scopes <header>
//			email <header>
//		}
//		leeway <duration>
//		cache_size <n>
//		cache_ttl <duration>
//		strip_cookies product|all       # default product: only caddy-mcpauth's own cookies
//		max_headers <n>                 # default 100; more gets 431
//		max_header_bytes <size>         # default 32KiB; more gets 431
//		require_dpop                    # only DPoP-bound tokens (RFC 9449)

//		step_up challenge|tool_error    # default challenge (403 insufficient_scope)
//		tool_snapshot                   # a tool mapped after consent needs fresh consent

//		max_body_bytes <size>           # JSON-RPC body read by the guard; default 4MiB; more gets 413
//		tools_list_filter on|off        # default on (with per-tool method_scope entries)
//		max_tools_list_bytes <size>     # default 8MiB; a larger tools/list result is refused
//		tool_limit <tool>|* <calls>/<interval> [<burst>]   # per (subject, tool), e.g. 10/1m
//		metric_tools <tool...>          # tool labels of mcpauth_guard_tool_calls_total
//	}
//
// A matcher that is an exact path (`/mcp`) also guards its subpaths: it is
// widened to `/mcp` and `/mcp/*`, so that `/mcp/`, `/mcp/x` or `/mcp%2F`
// never reach an unmatched `reverse_proxy` without a token.
//
// The directive adds a second route for the discovery paths at the root of
// the host (/.well-known/oauth-protected-resource, oauth-authorization-server
// and openid-configuration, each alone or followed by a path), which the
// matcher of the protected route would not reach: the guard serves its
// metadata there and a JSON 404 for the others (requirement 28).
//
// With cors_origins (or the app's cors_origins), browser pages on those
// origins may call the guarded endpoint (requirement 27).
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
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// CacheSize bounds the verified-token cache (default 10000).
	CacheSize int `json:"cache_size,omitempty"`
	// CacheTTL bounds how long a verified token is trusted without
	// re-verifying its signature (default 5m; revocation is checked on every
	// request regardless).
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
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

	guard   *resourceguard.Guard
	metrics *Metrics
	app     *App
	headers resourceguard.IdentityHeaders
	logger  *zap.Logger
	cancel  context.CancelFunc
	unclaim func()
	// prm is the config's registry of guard metadata paths.
	prm *prmRegistry
}

// ToolLimit is a rate limit of tools/call per (subject, tool): Calls per
// Interval, with bursts of Burst (default 1).
type ToolLimit struct {
	// Tool is the tool's name, or "*" for every tool without its own limit
	// (each tool still has its own budget).
	Tool string `json:"tool"`
	// Calls per Interval (default 1m) is the sustained rate.
	Calls    int            `json:"calls"`
	Interval caddy.Duration `json:"interval,omitempty"`
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

// CaddyModule returns the Caddy module information.
func (Guard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_resource_guard",
		New: func() caddy.Module { return new(Guard) },
	}
}

// Provision builds the guard and its key source.
func (g *Guard) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	m, err := registerMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return err
	}
	g.metrics = m
	repl := caddy.NewReplacer()
	g.Resource = repl.ReplaceKnown(g.Resource, "")
	g.Issuer = strings.TrimRight(repl.ReplaceKnown(g.Issuer, ""), "/")
	if g.Path == "" {
		g.Path = "/mcp"
	}
	if g.IdentityHeaders != nil {
		g.headers = resourceguard.IdentityHeaders(*g.IdentityHeaders)
	}
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
		Identity:               g.headers,
		StripAllCookies:        g.StripCookies == stripCookiesAll,
		MaxHeaders:             g.MaxHeaders,
		MaxHeaderBytes:         g.MaxHeaderBytes,
		MaxBodyBytes:           g.MaxBodyBytes,
		DisableToolsListFilter: g.ToolsListFilter == "off",
		MaxToolsListBytes:      g.MaxToolsListBytes,
		MetricTools:            g.MetricTools,
		Logger:                 ctx.Slogger(),
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

	cfg.StepUp = g.stepUpConfig(nil)
	ours := g.Issuer == ""
	g.prm = standalonePRM
	if v, err := ctx.AppIfConfigured("mcp_auth"); err == nil {
		if app, ok := v.(*App); ok {
			// Guards with an external issuer share the registry of the
			// config's app too: they may be siblings of ours on a host.
			g.prm = app.prmRegistry()
			if app.Issuer == g.Issuer {
				ours = true
			}
		}
	}
	if ours {
		app, err := appFrom(ctx, "mcp_protect")
		if err != nil {
			return err
		}
		g.app = app
		cfg.Issuer = app.Issuer
		cfg.Keys = app.Keys()
		cfg.Revocation = app
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
		app.RegisterResource(cfg.Resource)
		cfg.StepUp = g.stepUpConfig(app)
	} else {
		if g.ToolSnapshot {
			return errors.New("mcp_protect: tool_snapshot needs this config's mcp_auth as the issuer (an external issuer sets no tool snapshot)")
		}
		if cfg.Resource == "" {
			return errors.New("mcp_protect: resource is required with an external issuer")
		}
		// The issuer may be down: the guard starts anyway (from the key set
		// last persisted in Caddy's storage, or with none: 503 until a
		// background fetch succeeds), so that the rest of the config serves.
		runCtx, cancel := context.WithCancel(context.Background())
		g.cancel = cancel
		keys, err := resourceguard.NewRemoteKeySourceWithOptions(runCtx, resourceguard.RemoteOptions{
			Issuer:                g.Issuer,
			Store:                 ctx.Storage(),
			AllowUnavailableStart: true,
			Logger:                ctx.Slogger(),
		})
		if err != nil {
			return fmt.Errorf("mcp_protect: issuer %s: %w", g.Issuer, err)
		}
		go keys.Run(runCtx)
		cfg.Keys = keys
	}
	g.Resource = cfg.Resource
	cfg.DPoP = g.guardDPoP(g.app) // dpop.go
	guard, err := resourceguard.New(cfg)
	if err != nil {
		return fmt.Errorf("mcp_protect: %w", err)
	}
	g.guard = guard
	if g.app != nil {
		tools, implies := guard.MappedTools()
		g.app.RegisterResourceTools(cfg.Resource, tools, implies)
	}
	if u, err := url.Parse(guard.Resource()); err == nil {
		g.unclaim = g.prm.claim(u.Host, guard.MetadataPaths())
	}
	return nil
}

// Values of StripCookies.
const (
	stripCookiesProduct = "product"
	stripCookiesAll     = "all"
)

// Validate checks the options that Provision does not.
func (g *Guard) Validate() error {
	switch g.StripCookies {
	case "", stripCookiesProduct, stripCookiesAll:
	default:
		return fmt.Errorf("mcp_protect: strip_cookies %q: want product or all", g.StripCookies)
	}
	switch g.StepUp {
	case "", stepUpChallenge, stepUpToolError:
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

// Cleanup stops the remote key source, if any, and forgets the guard's
// metadata paths.
func (g *Guard) Cleanup() error {
	if g.cancel != nil {
		g.cancel()
	}
	if g.unclaim != nil {
		g.unclaim()
	}
	return nil
}

// ServeHTTP serves metadata, or checks the request and passes it on.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if g.guard.ServeMetadata(w, r) {
		return nil
	}
	if rootDiscovery(r.URL.Path) {
		return g.serveDiscovery(w, r, next)
	}
	if g.guard.ServeDiscoveryNotFound(w, r) || g.guard.ServeCORS(w, r) {
		return nil
	}
	d, ch := g.guard.Authorize(r)
	g.metrics.GuardDecision(ch)
	g.metrics.GuardToolCalls(g.guard, d, ch)
	if ch != nil {
		// One line per refusal, at debug (a scan of the endpoint must not
		// flood the log): the outcome of a closed set, never the token.
		if g.logger != nil {
			g.logger.Debug("mcp_protect: request refused", zap.String("outcome", resourceguard.Outcome(ch)),
				zap.Int("status", ch.Status), zap.String("error", ch.Error))
		}
		return g.refuse(w, r, ch)
	}
	p := d.Principal
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		// Resolved lazily: most configs never read them.
		repl.Map(func(key string) (any, bool) {
			switch key {
			case "http.auth.user.id":
				return p.Subject, true
			case "http.auth.user.client_id":
				return p.ClientID, true
			case "http.auth.user.scope":
				return strings.Join(p.Scopes, " "), true
			case "http.auth.user.email":
				return p.Email, true
			}
			return nil, false
		})
	}
	g.guard.PrepareUpstream(r, p)
	fw, finish := g.guard.FilterWriter(w, d)
	err := next.ServeHTTP(fw, r)
	if ferr := finish(); ferr != nil && g.logger != nil {
		g.logger.Warn("mcp_protect: tools/list result refused", zap.Error(ferr))
	}
	return err
}

// refuse writes the challenge. When the server has handle_errors routes the
// refusal is returned as a caddyhttp.Error (with WWW-Authenticate already
// set) so the operator's error routes render it, except a JSON-RPC refusal;
// otherwise the guard writes its small JSON body itself.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, ch *resourceguard.Challenge) error {
	if ch.IsToolResult() {
		// A step-up answered as a JSON-RPC tool result (step_up
		// tool_error): a 200 the MCP client reads, not an error route's.
		g.guard.WriteChallenge(w, ch)
		return nil
	}
	// A JSON-RPC refusal (-32020 HeaderMismatch) keeps its JSON-RPC body:
	// 2026-07-28 clients read it to tell a modern server from a legacy one.
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && ch.RPCCode == 0 && srv.Errors != nil && len(srv.Errors.Routes) > 0 {
		g.guard.SetChallengeHeaders(w, ch)
		return caddyhttp.Error(ch.Status, ch.Err())
	}
	g.guard.WriteChallenge(w, ch)
	return nil
}

// serveDiscovery answers a discovery path at the root of the host that is
// not this guard's metadata (requirement 28). Some clients (ChatGPT) look for
// the authorization server's metadata on the MCP host itself: when the guard
// and our authorization server share the host, the authorization server
// answers its discovery paths here as on its own site (with the app's CORS).
// A sibling guard's metadata path on this host goes on to that guard; every
// other path is a JSON 404. Nothing reaches the upstream.
func (g *Guard) serveDiscovery(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	p := r.URL.Path
	if !prmFamily(p) && g.app != nil && sameHost(g.Resource, g.app.Issuer) {
		if srv, err := g.app.Server(); err == nil && srv.Handles(r) {
			srv.ServeHTTP(w, r)
			return nil
		}
	}
	if prmFamily(p) && g.registry().servedElsewhere(p, r.Host, hostOf(g.Resource)) {
		g.guard.PrepareUpstream(r, nil) // unauthenticated: no credentials, no forged identity
		return nextOrNotFound(w, r, next)
	}
	resourceguard.WriteNotFound(w, r)
	return nil
}

// registry is the guard's PRM registry (standalonePRM for a guard built
// without Provision).
func (g *Guard) registry() *prmRegistry {
	if g.prm == nil {
		return standalonePRM
	}
	return g.prm
}

func hostOf(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return pu.Host
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Host, ub.Host)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Guard)(nil)
	_ caddy.Validator             = (*Guard)(nil)
	_ caddy.CleanerUpper          = (*Guard)(nil)
	_ caddyhttp.MiddlewareHandler = (*Guard)(nil)
	_ caddyfile.Unmarshaler       = (*Guard)(nil)
)
