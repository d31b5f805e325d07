package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/mailer"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/internal/discovery"
	"github.com/mcpauth/caddy-mcpauth/internal/metrics"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `mcp_auth` app: it owns the store, the signing keys, the OAuth
// 2.1 authorization server and the hosted login. Sites serve it with the
// `mcp_auth_server` handler and protect MCP endpoints with `mcp_protect`.
//
// Caddyfile (global option):
//
//	{
//		mcp_auth {
//			issuer <url>
//			storage bbolt [<path>] | postgres <dsn>
//			signing_algorithm ES256|EdDSA|RS256
//			key_rotation <duration>
//			key_reload <duration>         # re-read the keys (default 1m)
//			key_prepublish <duration>     # new key published before it signs
//			key_encryption_key <base64 of 32 random bytes, e.g. {env.MCPAUTH_KEK}>
//			key_encryption_key_file <path>
//			key_encryption_key_previous <old key>     # during KEK rotation
//			key_encryption_key_previous_file <path>
//			code_lifetime <duration>
//			access_token_lifetime <duration>
//			refresh_token_lifetime <duration>
//			grant_lifetime <duration>
//			refresh_grace <duration>      # 0: strict rotation
//			scopes <scope...>
//			default_scopes <scope...>
//			resource <url>                # a known resource (repeatable)
//			default_resource <url>
//			resource_indicators {
//				enabled <bool>
//				client_audience_fallback <bool>
//				enforce_on_token_exchange <bool>
//				keep_binding_on_refresh <bool>
//			}
//			cors_origins <origin...>
//			audit_retention <duration>
//			token_rate_limit <per second>|off [<burst>]
//			cimd {
//				policy trusted|any
//				trusted_hosts <host...>      # default: builtin (claude.ai chatgpt.com vscode.dev)
//				max_bytes <n>
//				timeout <duration>
//				untrusted_timeout <duration>
//				cache_min <duration>
//				cache_max <duration>
//				negative_cache <duration>|off
//				serve_stale <duration>|off
//				host_rate <n>/<duration>
//				domain_rate <n>/<duration>
//				requester_rate <n>/<duration>
//				ca_bundle <pem file>
//				insecure_allow_loopback
//				client <client id url> {      # policy for one client (repeatable)
//					access_token_lifetime <duration>   # at most 24h
//					refresh_token_lifetime <duration>
//					scopes <scope...>
//					remember_consent <duration>|off
//				}
//				client_host <host>|*.<domain> { … }   # same options, by host
//			}
//			client_ipv4_prefix <bits>       # requester key of budgets (default 32)
//			client_ipv6_prefix <bits>       # (default 64)
//			dpop {                          # DPoP-bound tokens (RFC 9449)
//				algorithms <alg...>
//				nonce
//			}
//			dcr {
//				rate_limit <burst> <interval>
//				global_rate_limit <burst> <interval>
//				max_clients_per_prefix <n>
//				max_clients <n>
//				expire_unused <duration>
//				private_schemes on|off
//			}
//			client <id> {
//				name <text>
//				redirect_uri <uri>        # repeatable
//				scopes <scope...>
//				default_scopes <scope...>
//				audience <url>
//				secret <secret>           # makes it a confidential client
//				jwks_uri <https url>      # or: private_key_jwt with keys fetched from here
//				jwks_file <path>          # or: private_key_jwt with these public keys
//				access_token_lifetime <duration>
//				refresh_token_lifetime <duration>
//				skip_consent
//			}
//			login {
//				product_name <text>
//				logo <url>
//				accent_color <#hex>
//				support_url <url>
//				templates <dir>
//				password on|off
//				signup off|open|domains <domain...>
//				user <email> <password> [<name>]
//				session_idle <duration>
//				session_lifetime <duration>
//				smtp {
//					host <host>
//					port <port>
//					tls starttls|tls|none
//					from <address>
//					username <user>
//					password <password>
//				}
//				oidc <name> {
//					issuer <url>
//					client_id <id>
//					client_secret <secret>
//					scopes <scope...>
//					display_name <text>
//					icon_url <url>
//					claim_subject|claim_email|claim_email_verified|claim_name|claim_groups <claim>
//					userinfo
//					allow_email_domains|allow_groups|allow_subjects <value...>
//					link_by_email
//					no_account_creation
//				}
//				saml <name> {
//					idp_metadata_url <url> | idp_metadata_file <path>
//					entity_id <id>
//					sp_cert_file <pem>
//					sp_key_file <pem>
//					binding redirect|post
//					metadata_validity <duration>
//					display_name <text>
//					icon_url <url>
//					attr_subject|attr_email|attr_name|attr_groups <attribute>
//					trust_email
//					accept_response_signature
//					allow_email_domains|allow_groups|allow_subjects <value...>
//					link_by_email
//					no_account_creation
//				}
//				home_realm <email domain> <provider>
//			}
//		}
//	}
type App struct {
	// App is the JSON configuration (package config), flat in the JSON.
	config.App

	metrics *metrics.Metrics
	ctx     caddy.Context
	logger  *zap.Logger
	slogger *slog.Logger
	store   storage.Backend
	// shared is the store's shared buckets when SharedLimits is on.
	shared abuse.SharedBuckets
	keys   *authserver.KeySet
	login  *idp.Login
	cancel context.CancelFunc
	st     *appState
	// prm is this config's registry of the guards' metadata paths.
	prm *discovery.PRMRegistry
	// refusals aggregates unauthenticated refusals for the audit log;
	// refusalsDone closes once its last records are written.
	refusals     *abuse.Aggregator
	refusalsDone chan struct{}
	// auditW writes the audit events that are not security decisions
	// (batched, retried, bounded); closed by Stop and Cleanup.
	auditW *audit.Writer
}

// appState is the app's mutable runtime state, behind a pointer so that the
// module value stays copyable.
type appState struct {
	mu       sync.Mutex
	extraRes []string
	tools    map[string]authserver.ToolMap // per-tool scope maps of guarded resources
	once     sync.Once
	server   *authserver.Server
	srvErr   error
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "mcp_auth",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens the store and the signing keys, and builds the hosted login.
func (a *App) Provision(ctx caddy.Context) error {
	if err := a.provision(ctx); err != nil {
		return a.positioned(err)
	}
	return nil
}

// positioned prefixes a configuration error with the mcp_auth block's
// Caddyfile line when it names none of its own (config.App.Positioned), and
// logs it first so that it leads the output of `caddy validate` and `caddy
// run` (Caddy prefixes the returned error with the whole module path).
func (a *App) positioned(err error) error {
	err = a.App.Positioned(err)
	if a.logger != nil {
		a.logger.Error(err.Error())
	}
	return err
}

func (a *App) provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.st = &appState{}
	a.prm = discovery.NewPRMRegistry()
	a.logger = ctx.Logger()
	a.slogger = ctx.Slogger()
	repl := caddy.NewReplacer()
	replace := func(s string) string { return repl.ReplaceKnown(s, "") }

	if err := a.App.Resolve(replace, caddy.AppDataDir(), a.slogger); err != nil {
		return err
	}
	warnAdminExposure(a.logger, adminOf(ctx))
	a.App.SetDefaults(a.slogger)
	if err := a.Validate(); err != nil {
		return err
	}

	m, err := metrics.Register(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("mcp_auth: metrics: %w", err)
	}
	a.metrics = m

	store, err := sharedStore(a.Storage, a.slogger)
	if err != nil {
		return err
	}
	a.store = store
	if a.SharedLimits {
		sb, ok := store.(abuse.SharedBuckets)
		if !ok {
			return errors.New("mcp_auth: shared_limits: this storage cannot share limits")
		}
		a.shared = sb
	}

	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	kc, err := a.KeyConfig(a.slogger)
	if err != nil {
		return err
	}
	keys, err := authserver.NewKeySet(runCtx, store, kc)
	if err != nil {
		return fmt.Errorf("mcp_auth: signing keys: %w", err)
	}
	a.keys = keys
	go keys.Run(runCtx)
	go authserver.RunMaintenance(runCtx, store, a.MaintenanceConfig(a.slogger))
	a.refusals = abuse.NewAggregator(abuse.AggregatorConfig{Store: store, Logger: a.slogger})
	a.auditW = audit.NewWriter(audit.Config{Store: store, Logger: a.slogger, OnDrop: a.metrics.OnAuditDrop})
	a.auditW.Start()
	a.refusalsDone = make(chan struct{})
	go func() { defer close(a.refusalsDone); a.refusals.Run(runCtx, refusalFlushEvery) }()

	providers, err := a.providers(ctx, runCtx)
	if err != nil {
		return err
	}
	icfg := a.IdPConfig(a.runtime())
	icfg.Providers = providers
	if s := a.Login.SMTP; s != nil {
		m, err := mailer.New(mailer.Config{Host: s.Host, Port: s.Port, TLS: s.TLS, From: s.From, Username: s.Username, Password: s.Password})
		if err != nil {
			return fmt.Errorf("mcp_auth: login smtp: %w", err)
		}
		icfg.Mailer = m
	}
	login, err := idp.New(runCtx, icfg)
	if err != nil {
		return fmt.Errorf("mcp_auth: hosted login: %w", err)
	}
	a.login = login
	return nil
}

// runtime is what the config builders take from this provisioned app.
func (a *App) runtime() config.Runtime {
	rt := config.Runtime{
		Store:       a.store,
		Logger:      a.slogger,
		ClientIP:    clientIP,
		OnEvent:     a.metrics.OnEvent,
		OnCIMDFetch: a.metrics.CIMDFetch,
		Refusals:    a.refusals,
		Audit:       a.auditW,
		Shared:      a.shared,
		LookupIP:    testCIMDLookupIP,
		Keys:        a.keys,
		Login:       a.login,
	}
	if len(a.EnterpriseIdPs) > 0 || len(a.WorkloadIssuers) > 0 {
		// As the guard's external issuers (guard.go): the last good key
		// set of each trusted issuer is kept in Caddy's storage.
		rt.IssuerKeyStore = a.ctx.Storage()
	}
	return rt
}

// Validate checks the configuration's invariants (config.App.Validate); an
// error names the Caddyfile line of the mcp_auth block (or of the client or
// user at fault).
func (a *App) Validate() error {
	if err := a.App.Validate(); err != nil {
		return a.positioned(err)
	}
	return nil
}

// Start builds the authorization server once every handler of the config
// has registered its resource.
func (a *App) Start() error {
	if _, err := a.Server(); err != nil {
		return err
	}
	v := PluginVersion()
	a.logger.Info("mcp_auth started", zap.String("version", v.Version), zap.String("revision", v.Revision), zap.Bool("modified", v.Modified))
	return nil
}

// Stop stops background work and flushes the authorization server's batched
// audit events and the aggregated refusals (requests still in flight then
// write theirs directly).
func (a *App) Stop() error {
	if a.cancel != nil {
		a.cancel()
	}
	a.waitRefusals()
	var err error
	if a.st != nil && a.st.server != nil {
		err = a.st.server.Close()
	}
	if a.auditW != nil {
		a.auditW.Close()
	}
	return err
}

// Cleanup releases the store (closed when no config uses it any more).
// Safe after a partial Provision.
func (a *App) Cleanup() error {
	if a.cancel != nil {
		a.cancel()
	}
	a.waitRefusals()
	if a.auditW != nil {
		a.auditW.Close()
	}
	if a.store != nil {
		return releaseSharedStore(a.Storage)
	}
	return nil
}

// refusalFlushEvery is how often ended minutes of aggregated refusals are
// written.
const refusalFlushEvery = 15 * time.Second

// waitRefusals waits until the refusal aggregator has written its last
// records (after cancel).
func (a *App) waitRefusals() {
	if a.refusalsDone != nil {
		<-a.refusalsDone
	}
}

// RegisterResource adds a protected resource that tokens may be bound to.
// Resource guards call it while they are provisioned.
func (a *App) RegisterResource(resource string) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	if !slices.Contains(a.st.extraRes, resource) {
		a.st.extraRes = append(a.st.extraRes, resource)
	}
}

// Server returns the authorization server, building it on first use.
func (a *App) Server() (*authserver.Server, error) {
	a.st.once.Do(func() { a.st.server, a.st.srvErr = a.buildServer() })
	return a.st.server, a.st.srvErr
}

// Keys returns the signing key set (also the in-process key source of guards).
func (a *App) Keys() *authserver.KeySet { return a.keys }

// prmRegistry is this config's registry of guard metadata paths.
func (a *App) prmRegistry() *discovery.PRMRegistry {
	if a == nil || a.prm == nil {
		return standalonePRM
	}
	return a.prm
}

// Store returns the storage backend.
func (a *App) Store() storage.Backend { return a.store }

// Active implements the guard's revocation check against this app's store.
func (a *App) Active(ctx context.Context, grantID, clientID string) (bool, error) {
	s, err := a.Server()
	if err != nil {
		return false, err
	}
	return s.Active(ctx, grantID, clientID)
}

// buildServer builds the authorization server from the JSON and what the
// guards registered.
func (a *App) buildServer() (*authserver.Server, error) {
	rt := a.runtime()
	a.st.mu.Lock()
	rt.Resources = slices.Clone(a.st.extraRes)
	rt.Tools = a.st.tools
	a.st.mu.Unlock()
	cfg, err := a.ServerConfig(rt)
	if err != nil {
		return nil, err
	}
	return authserver.New(context.Background(), cfg)
}

// testCIMDLookupIP replaces the CIMD fetcher's name resolution in this
// package's tests (a vendor's host resolved to a test listener); always nil
// in a running server.
var testCIMDLookupIP func(ctx context.Context, host string) ([]netip.Addr, error)

// clientIP is Caddy's resolved client IP (trusted_proxies aware), never a raw
// X-Forwarded-For.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = strings.Trim(host[:i], "[]")
	}
	return host
}

// appFrom returns the mcp_auth app of this config. Without one, the error
// says what to add (not "issuer is required" of an empty app).
func appFrom(ctx caddy.Context, directive string) (*App, error) {
	v, err := ctx.AppIfConfigured("mcp_auth")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil, fmt.Errorf("%s needs an authorization server, and this config has no mcp_auth app: add the global `mcp_auth { issuer https://… }` block%s",
			directive, map[bool]string{true: ", or set `issuer <url>` (and `resource`) in mcp_protect to accept an external authorization server's tokens"}[directive == "mcp_protect"])
	}
	if err != nil {
		return nil, fmt.Errorf("mcp_auth app: %w", err)
	}
	app, ok := v.(*App)
	if !ok {
		return nil, fmt.Errorf("mcp_auth app has unexpected type %T", v)
	}
	if app.store == nil {
		return nil, errors.New("mcp_auth app is not configured: add a global `mcp_auth { issuer … }` block")
	}
	return app, nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
