package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/internal/discovery"
	"github.com/mcpauth/caddy-mcpauth/internal/metrics"
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
	// Guard is the JSON configuration (package config), flat in the JSON.
	config.Guard

	guard   *resourceguard.Guard
	metrics *metrics.Metrics
	app     *App
	logger  *zap.Logger
	cancel  context.CancelFunc
	unclaim func()
	// prm is the config's registry of guard metadata paths.
	prm *discovery.PRMRegistry
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
	m, err := metrics.Register(ctx.GetMetricsRegistry())
	if err != nil {
		return err
	}
	g.metrics = m
	repl := caddy.NewReplacer()
	g.Guard.Resolve(func(s string) string { return repl.ReplaceKnown(s, "") })
	cfg := g.GuardConfig(ctx.Slogger())
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
		if err := g.UseApp(&cfg, &app.App); err != nil {
			return err
		}
		cfg.Keys = app.Keys()
		cfg.Revocation = app
		app.RegisterResource(cfg.Resource)
		cfg.StepUp = g.StepUpConfig(app.stepUpURL)
	} else {
		if err := g.CheckExternal(cfg); err != nil {
			return err
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
	if g.app != nil {
		cfg.DPoP = g.DPoPConfig(&g.app.App, g.app.store)
	} else {
		cfg.DPoP = g.DPoPConfig(nil, nil)
	}
	if app := g.app; app != nil {
		resource := cfg.Resource
		cfg.ToolsListed = func(tools []resourceguard.ListedTool) { app.toolsListed(resource, tools) }
	}
	guard, err := resourceguard.New(cfg)
	if err != nil {
		return fmt.Errorf("mcp_protect: %w", err)
	}
	g.guard = guard
	if g.app != nil {
		tools, implies := guard.MappedTools()
		g.app.RegisterResourceTools(cfg.Resource, tools, implies, guard.UnmappedToolScopes())
	}
	if u, err := url.Parse(guard.Resource()); err == nil {
		g.unclaim = g.prm.Claim(u.Host, guard.MetadataPaths())
	}
	return nil
}

// Values of StripCookies.
const (
	stripCookiesProduct = config.StripCookiesProduct
	stripCookiesAll     = config.StripCookiesAll
)

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
	if discovery.Root(r.URL.Path) {
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
	g.guard.PrepareAuthorized(r, d)
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
	if !discovery.PRMFamily(p) && g.app != nil && sameHost(g.Resource, g.app.Issuer) {
		if srv, err := g.app.Server(); err == nil && srv.Handles(r) {
			srv.ServeHTTP(w, r)
			return nil
		}
	}
	if discovery.PRMFamily(p) && g.registry().ServedElsewhere(p, r.Host, hostOf(g.Resource)) {
		g.guard.PrepareUpstream(r, nil) // unauthenticated: no credentials, no forged identity
		return nextOrNotFound(w, r, next)
	}
	resourceguard.WriteNotFound(w, r)
	return nil
}

// registry is the guard's PRM registry (standalonePRM for a guard built
// without Provision).
func (g *Guard) registry() *discovery.PRMRegistry {
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
