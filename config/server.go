package config

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/dcr"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Runtime is what the builders take from the host of the app (caddymodule,
// a test) besides the JSON: the open store, the logger, the hooks and the
// parts built before the authorization server.
type Runtime struct {
	Store  storage.Backend
	Logger *slog.Logger
	// ClientIP is the requester's address (Caddy's trusted_proxies aware).
	ClientIP func(*http.Request) string
	// OnEvent and OnCIMDFetch feed the metrics.
	OnEvent     func(storage.AuditEvent)
	OnCIMDFetch func(host, result string)
	Refusals    *abuse.Aggregator
	Audit       *audit.Writer
	// Shared is the store's shared buckets when SharedLimits is on.
	Shared abuse.SharedBuckets
	// IssuerKeyStore keeps the last good key set of trusted issuers.
	IssuerKeyStore resourceguard.KeySetStore
	// LookupIP replaces the CIMD fetcher's name resolution (tests only).
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)

	// Keys and Login are built before the authorization server.
	Keys  *authserver.KeySet
	Login *idp.Login
	// Resources are the resources guards registered, besides the JSON's.
	Resources []string
	// Tools are the per-tool scope maps guards registered, by resource.
	Tools map[string]authserver.ToolMap
}

// KeyConfig is the signing keys' configuration (after ResolveKEK).
func (a *App) KeyConfig(logger *slog.Logger) (authserver.KeyConfig, error) {
	// The publication window of retired keys is the authorization server's
	// to decide (authserver.New raises it to cover every access-token
	// lifetime it mints).
	enc, err := a.keyEncryption()
	if err != nil {
		return authserver.KeyConfig{}, err
	}
	return authserver.KeyConfig{
		Algorithm:   a.SigningAlgorithm,
		RotateEvery: time.Duration(a.KeyRotation),
		ReloadEvery: time.Duration(a.KeyReload),
		PrePublish:  time.Duration(a.KeyPrePublish),
		Logger:      logger,
		Encryption:  enc,
	}, nil
}

// MaintenanceConfig is the store's background clean-up.
func (a *App) MaintenanceConfig(logger *slog.Logger) authserver.MaintenanceConfig {
	mc := authserver.MaintenanceConfig{AuditRetention: time.Duration(a.AuditRetention), Logger: logger}
	if a.DCR != nil && a.DCR.ExpireUnused != nil {
		mc.DCRUnusedFor = time.Duration(*a.DCR.ExpireUnused)
	}
	return mc
}

// knownResources is the JSON's resources and the registered ones.
func (a *App) knownResources(extra []string) []string {
	out := slices.Clone(a.Resources)
	for _, r := range extra {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func (a *App) resourcePolicy(extra []string) (authserver.ResourcePolicy, error) {
	on := func(b *bool) bool { return b == nil || *b }
	ri := a.ResourceIndicators
	if ri == nil {
		ri = &ResourceIndicators{}
	}
	p := authserver.ResourcePolicy{
		Enabled:                on(ri.Enabled),
		ClientAudienceFallback: on(ri.ClientAudienceFallback),
		EnforceOnTokenExchange: on(ri.EnforceOnTokenExchange),
		KeepBindingOnRefresh:   on(ri.KeepBindingOnRefresh),
	}
	for _, r := range a.knownResources(extra) {
		n, err := authserver.NormalizeResource(r)
		if err != nil {
			return p, fmt.Errorf("mcp_auth: resource %q: %w", r, err)
		}
		if !slices.Contains(p.Known, n) {
			p.Known = append(p.Known, n)
		}
	}
	if a.DefaultResource != "" {
		n, err := authserver.NormalizeResource(a.DefaultResource)
		if err != nil {
			return p, fmt.Errorf("mcp_auth: default_resource: %w", err)
		}
		p.Default = n
		if !slices.Contains(p.Known, n) {
			p.Known = append(p.Known, n)
		}
	} else if len(p.Known) == 1 {
		p.Default = p.Known[0]
	}
	return p, nil
}

func (a *App) ownedClients() ([]storage.Client, error) {
	out := make([]storage.Client, 0, len(a.Clients))
	for _, c := range a.Clients {
		sc := storage.Client{
			ID:                      c.ID,
			Kind:                    storage.ClientOwned,
			Name:                    c.Name,
			RedirectURIs:            c.RedirectURIs,
			GrantTypes:              grantTypesOr(c.GrantTypes),
			Scopes:                  c.Scopes,
			DefaultScopes:           c.DefaultScopes,
			AccessTokenTTL:          time.Duration(c.AccessTokenLifetime),
			RefreshTokenTTL:         time.Duration(c.RefreshTokenLifetime),
			TokenEndpointAuthMethod: "none",
			SkipConsent:             c.SkipConsent,
		}
		if sc.Name == "" {
			sc.Name = c.ID
		}
		if c.Audience != "" {
			n, err := authserver.NormalizeResource(c.Audience)
			if err != nil {
				return nil, fmt.Errorf("mcp_auth: client %q audience: %w", c.ID, err)
			}
			sc.DefaultAudience = n
		}
		if c.Secret != "" {
			h, err := authserver.HashClientSecret(c.Secret)
			if err != nil {
				return nil, err
			}
			sc.SecretHash = h
			sc.TokenEndpointAuthMethod = "client_secret_basic"
		}
		if c.JWKSURI != "" || c.JWKSFile != "" {
			sc.TokenEndpointAuthMethod = oauth.AuthMethodPrivateKeyJWT
			sc.JWKSURI = c.JWKSURI
			if c.JWKSFile != "" {
				raw, err := os.ReadFile(c.JWKSFile)
				if err != nil {
					return nil, fmt.Errorf("mcp_auth: client %q jwks_file: %w", c.ID, err)
				}
				sc.JWKS = raw
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// refreshGrace maps refresh_grace to authserver.Config.RefreshGrace: unset
// is the default, 0 strict rotation.
func (a *App) refreshGrace() time.Duration {
	switch {
	case a.RefreshGrace == nil:
		return 0
	case *a.RefreshGrace == 0:
		return authserver.NoRefreshGrace
	}
	return time.Duration(*a.RefreshGrace)
}

// ServerConfig is the authorization server's configuration, with its CIMD
// resolver, JWKS fetcher and registration handler built.
func (a *App) ServerConfig(rt Runtime) (authserver.Config, error) {
	policy, err := a.resourcePolicy(rt.Resources)
	if err != nil {
		return authserver.Config{}, err
	}
	clients, err := a.ownedClients()
	if err != nil {
		return authserver.Config{}, err
	}
	cfg := authserver.Config{
		Issuer:          a.Issuer,
		PathPrefix:      a.PathPrefix,
		Store:           rt.Store,
		Browser:         rt.Login,
		Keys:            rt.Keys,
		Scopes:          a.Scopes,
		DefaultScopes:   a.DefaultScopes,
		Resources:       policy,
		Tools:           rt.Tools,
		Clients:         clients,
		CodeTTL:         time.Duration(a.CodeLifetime),
		AccessTokenTTL:  time.Duration(a.AccessTokenLifetime),
		RefreshTokenTTL: time.Duration(a.RefreshTokenLifetime),
		GrantTTL:        time.Duration(a.GrantLifetime),
		RefreshGrace:    a.refreshGrace(),
		CIMDPolicy:      a.cimdPolicy(),
		CORS:            authserver.CORS{AllowedOrigins: a.CORSOrigins},
		DPoP:            a.DPoP.serverConfig(),
		ClientIP:        rt.ClientIP,
		Logger:          rt.Logger,
		OnEvent:         rt.OnEvent,
		Refusals:        rt.Refusals,
		Audit:           rt.Audit,
		TokenRatePerIP:  a.tokenRate(),
		TokenBurstPerIP: a.TokenRateBurst,
		SharedLimits:    rt.Shared,
		IPv4Prefix:      a.ClientIPv4Prefix,
		IPv6Prefix:      a.ClientIPv6Prefix,
		UserEmail: func(ctx context.Context, subject string) (string, bool) {
			acct, err := rt.Store.GetAccount(ctx, subject)
			if err != nil {
				return "", false
			}
			return acct.Email, acct.EmailVerified
		},
	}
	// One fetcher serves CIMD documents and the jwks_uri of private_key_jwt
	// clients (CIMD and owned), under the same rules and budgets.
	fetcher, err := a.cimdFetcher(rt)
	if err != nil {
		return authserver.Config{}, err
	}
	cfg.JWKSFetcher = fetcher
	a.trustedIssuers(&cfg, rt)
	if a.CIMD != nil {
		res, err := a.cimdResolver(fetcher, rt)
		if err != nil {
			return authserver.Config{}, err
		}
		cfg.ClientResolver = res
	}
	if a.DCR != nil {
		opts := dcr.DefaultOptions()
		if a.DCR.PrivateSchemes != nil {
			opts.AllowPrivateSchemes = *a.DCR.PrivateSchemes
		}
		reg, err := authserver.NewRegistrationHandler(authserver.RegistrationConfig{
			Store:               rt.Store,
			Options:             &opts,
			RatePerIP:           rate.Every(time.Duration(a.DCR.RateEvery)),
			BurstPerIP:          a.DCR.RateBurst,
			GlobalRate:          rate.Every(time.Duration(a.DCR.GlobalRateEvery)),
			GlobalBurst:         a.DCR.GlobalRateBurst,
			MaxClientsPerPrefix: a.DCR.MaxClientsPerPrefix,
			MaxClients:          a.DCR.MaxClients,
			IPv4Prefix:          a.ClientIPv4Prefix,
			IPv6Prefix:          a.ClientIPv6Prefix,
			ClientIP:            rt.ClientIP,
			Logger:              rt.Logger,
			OnEvent:             rt.OnEvent,
			Refusals:            rt.Refusals,
			SharedLimits:        rt.Shared,
		})
		if err != nil {
			return authserver.Config{}, err
		}
		cfg.Registration = reg
	}
	return cfg, nil
}

// cimdPolicy maps the CIMD policies to the authorization server's.
func (a *App) cimdPolicy() authserver.CIMDPolicy {
	var out authserver.CIMDPolicy
	conv := func(p *CIMDClientPolicy) authserver.ClientPolicy {
		cp := authserver.ClientPolicy{
			AccessTokenTTL:  time.Duration(p.AccessTokenLifetime),
			RefreshTokenTTL: time.Duration(p.RefreshTokenLifetime),
			Scopes:          p.Scopes,
			RememberConsent: time.Duration(p.RememberConsent),
			MachineUse:      p.MachineUse,
		}
		if cp.RememberConsent < 0 {
			cp.RememberConsent = authserver.ConsentNotRemembered
		}
		return cp
	}
	if a.CIMD == nil {
		return out
	}
	for id, p := range a.CIMD.Clients {
		if out.Clients == nil {
			out.Clients = map[string]authserver.ClientPolicy{}
		}
		out.Clients[id] = conv(p)
	}
	for host, p := range a.CIMD.ClientHosts {
		if out.Hosts == nil {
			out.Hosts = map[string]authserver.ClientPolicy{}
		}
		out.Hosts[host] = conv(p)
	}
	return out
}

// tokenRate is the per-IP token endpoint rate (0: no limit).
func (a *App) tokenRate() float64 {
	switch {
	case a.TokenRateLimit < 0:
		return 0
	case a.TokenRateLimit == 0:
		return 10
	}
	return a.TokenRateLimit
}

// cimdFetcher builds the fetcher of CIMD documents and JWK sets from the
// cimd options (defaults when cimd is not configured).
func (a *App) cimdFetcher(rt Runtime) (*cimd.Fetcher, error) {
	c := a.CIMD
	if c == nil {
		c = &CIMD{}
	}
	fc := cimd.FetcherConfig{
		MaxBytes:          c.MaxBytes,
		TotalTimeout:      time.Duration(c.Timeout),
		UntrustedTimeout:  time.Duration(c.UntrustedTimeout),
		AllowLoopback:     c.InsecureAllowLoopback,
		Logger:            rt.Logger,
		RequesterPrefixes: abuse.Prefixes{IPv4: a.ClientIPv4Prefix, IPv6: a.ClientIPv6Prefix},
		LookupIP:          rt.LookupIP,
	}
	fc.PerHostRate, fc.PerHostBurst = c.HostRate.perSecond()
	fc.PerDomainRate, fc.PerDomainBurst = c.DomainRate.perSecond()
	fc.PerRequesterRate, fc.PerRequesterBurst = c.RequesterRate.perSecond()
	if c.CABundle != "" {
		pem, err := os.ReadFile(c.CABundle)
		if err != nil {
			return nil, fmt.Errorf("mcp_auth: cimd ca_bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mcp_auth: cimd ca_bundle %s has no PEM certificates", c.CABundle)
		}
		fc.ExtraCAs = pool
	}
	f, err := cimd.NewFetcher(fc)
	if err != nil {
		return nil, fmt.Errorf("mcp_auth: cimd: %w", err)
	}
	return f, nil
}

func (a *App) cimdResolver(f *cimd.Fetcher, rt Runtime) (*cimd.Resolver, error) {
	c := a.CIMD
	return cimd.NewResolver(cimd.ResolverConfig{
		Fetcher:      f,
		TrustedHosts: cimd.ExpandTrustedHosts(c.TrustedHosts),
		Policy:       c.Policy,
		MinCacheTTL:  time.Duration(c.CacheMin),
		MaxCacheTTL:  time.Duration(c.CacheMax),
		NegativeTTL:  time.Duration(c.NegativeCache),
		MaxStale:     time.Duration(c.ServeStale),
		Logger:       rt.Logger,
		OnFetch:      rt.OnCIMDFetch,
	})
}

// IdPConfig is the hosted login's configuration, without its upstream
// providers and mailer (the host builds those).
func (a *App) IdPConfig(rt Runtime) idp.Config {
	password := a.Login.Password == nil || *a.Login.Password
	seeds := make([]idp.SeedAccount, 0, len(a.Login.Users))
	for _, u := range a.Login.Users {
		seeds = append(seeds, idp.SeedAccount{Email: u.Email, Name: u.Name, Password: u.Password, PasswordHash: u.PasswordHash})
	}
	signup := a.Login.Signup
	if signup == "" {
		signup = "off"
	}
	return idp.Config{
		PublicURL:  a.Issuer,
		PathPrefix: a.PathPrefix,
		Store:      rt.Store,
		Branding: idp.Branding{
			ProductName: a.Login.ProductName,
			LogoURL:     a.Login.Logo,
			AccentColor: a.Login.AccentColor,
			SupportURL:  a.Login.SupportURL,
		},
		TemplatesDir:    a.Login.Templates,
		Signup:          idp.SignupPolicy{Mode: signup, Domains: a.Login.SignupDomains},
		PasswordLogin:   password,
		SeedAccounts:    seeds,
		SessionIdle:     time.Duration(a.Login.SessionIdle),
		SessionAbsolute: time.Duration(a.Login.SessionLifetime),
		HomeRealm:       a.Login.HomeRealm,
		ClientIP:        rt.ClientIP,
		Logger:          rt.Logger,
		OnEvent:         rt.OnEvent,
		Refusals:        rt.Refusals,
		Audit:           rt.Audit,
		Throttle:        idp.ThrottleConfig{IPv4Prefix: a.ClientIPv4Prefix, IPv6Prefix: a.ClientIPv6Prefix},
		SharedLimits:    rt.Shared,
	}
}
