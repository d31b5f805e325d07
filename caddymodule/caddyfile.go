package caddymodule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/internal/dpop"
)

// The Caddyfile syntax of mcp_auth and mcp_protect: each block is a table
// of the parsers in cfparse.go (the syntax is in App's and Guard's doc
// comments; oidc and saml are parsed in upstream.go).

func init() {
	httpcaddyfile.RegisterGlobalOption("mcp_auth", parseGlobalOption)
}

// parseGlobalOption turns the global `mcp_auth { … }` block into the
// mcp_auth app (syntax in App's doc comment).
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if existing != nil {
		d.Next()
		return nil, d.Err("mcp_auth may be configured only once")
	}
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "mcp_auth", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the global mcp_auth block.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	a.Source = tokenPos(d)
	return block("mcp_auth option", opts{
		"issuer":                           str(&a.Issuer),
		"path_prefix":                      str(&a.PathPrefix),
		"storage":                          parseStorage(&a.Storage),
		"signing_algorithm":                str(&a.SigningAlgorithm),
		"key_encryption_key":               str(&a.KeyEncryptionKey),
		"key_encryption_key_file":          str(&a.KeyEncryptionKeyFile),
		"key_encryption_key_previous":      str(&a.KeyEncryptionKeyPrevious),
		"key_encryption_key_previous_file": str(&a.KeyEncryptionKeyPreviousFile),
		"key_rotation":                     dur(&a.KeyRotation),
		"key_reload":                       dur(&a.KeyReload),
		"key_prepublish":                   dur(&a.KeyPrePublish),
		"code_lifetime":                    dur(&a.CodeLifetime),
		"access_token_lifetime":            dur(&a.AccessTokenLifetime),
		"refresh_token_lifetime":           dur(&a.RefreshTokenLifetime),
		"grant_lifetime":                   dur(&a.GrantLifetime),
		"refresh_grace":                    durPtr(&a.RefreshGrace),
		"scopes":                           anyStrs(&a.Scopes),
		"default_scopes":                   anyStrs(&a.DefaultScopes),
		"resource":                         strs(&a.Resources),
		"default_resource":                 str(&a.DefaultResource),
		"resource_indicators": fresh(&a.ResourceIndicators, func(ri *ResourceIndicators, d *caddyfile.Dispenser) error {
			// No argument check: an argument here is read as the next option.
			return parseBlock(d, "resource_indicators option", opts{
				"enabled":                   onOffPtr(&ri.Enabled),
				"client_audience_fallback":  onOffPtr(&ri.ClientAudienceFallback),
				"enforce_on_token_exchange": onOffPtr(&ri.EnforceOnTokenExchange),
				"keep_binding_on_refresh":   onOffPtr(&ri.KeepBindingOnRefresh),
			})
		}),
		"token_rate_limit":   tokenRateLimit(&a.TokenRateLimit, &a.TokenRateBurst),
		"shared_limits":      present(&a.SharedLimits),
		"audit_retention":    dur(&a.AuditRetention),
		"client_ipv4_prefix": intArg(&a.ClientIPv4Prefix, 1, 32),
		"client_ipv6_prefix": intArg(&a.ClientIPv6Prefix, 1, 128),
		"cors_origins":       anyStrs(&a.CORSOrigins),
		"client":             each(&a.Clients, parseClient),
		"login":              parseLogin(&a.Login),
		"enterprise_idp":     each(&a.EnterpriseIdPs, parseEnterpriseIdP),
		"workload_issuer":    each(&a.WorkloadIssuers, parseWorkloadIssuer),
		"cimd":               fresh(&a.CIMD, parseCIMD),
		"dcr":                fresh(&a.DCR, parseDCR),
		"dpop": fresh(&a.DPoP, func(c *DPoPConfig, d *caddyfile.Dispenser) error {
			return block("dpop option", opts{
				"algorithms": nargs(1, -1, "", func(d *caddyfile.Dispenser, args []string) error {
					for _, alg := range args {
						if !slices.Contains(dpop.Algs, alg) {
							return d.Errf("dpop: algorithm %q is not accepted (one of %v)", alg, dpop.Algs)
						}
					}
					c.Algorithms = append(c.Algorithms, args...)
					return nil
				}),
				"nonce": present(&c.Nonce),
			})(d)
		}),
	})(d)
}

// The parsers of config blocks are functions, not methods, so that the
// config types need not live in this package.

// parseStorage reads `storage bbolt [<path>]` or `storage postgres <dsn>`,
// with an optional block.
func parseStorage(s *StorageConfig) opt {
	return nargs(1, -1, "", func(d *caddyfile.Dispenser, args []string) error {
		s.Backend = args[0]
		switch {
		case args[0] == "bbolt" && len(args) > 2:
			return d.ArgErr()
		case args[0] == "bbolt" && len(args) == 2:
			s.Path = args[1]
		case args[0] == "postgres" && len(args) != 2:
			return d.Errf("storage postgres needs a connection string")
		case args[0] == "postgres":
			s.DSN = args[1]
		case args[0] != "bbolt":
			return d.Errf("unknown storage backend %q (bbolt or postgres)", args[0])
		}
		return parseBlock(d, "storage option", opts{
			"max_conns":    intArg(&s.MaxConns, 0, unbounded),
			"lock_timeout": dur(&s.LockTimeout),
		})
	})
}

// tokenRateLimit reads `token_rate_limit <per second>|off [<burst>]`.
func tokenRateLimit(limit *float64, burst *int) opt {
	return nargs(1, 2, "%s <requests per second>|off [<burst>]", func(d *caddyfile.Dispenser, args []string) error {
		if v, err := strconv.ParseFloat(args[0], 64); args[0] == "off" {
			*limit = -1
		} else if err != nil || v <= 0 {
			return d.Errf("token_rate_limit %q is not a positive number", args[0])
		} else {
			*limit = v
		}
		if len(args) == 2 {
			n, ok := positive(args[1])
			if !ok {
				return d.Errf("token_rate_limit burst %q is not a positive number", args[1])
			}
			*burst = n
		}
		return nil
	})
}

func parseClient(d *caddyfile.Dispenser, c *ClientConfig) error {
	if err := named(d, &c.ID, "client needs an id"); err != nil {
		return err
	}
	c.Source = tokenPos(d)
	return parseBlock(d, "client option", opts{
		"name":                   str(&c.Name),
		"redirect_uri":           strs(&c.RedirectURIs),
		"scopes":                 anyStrs(&c.Scopes),
		"default_scopes":         anyStrs(&c.DefaultScopes),
		"audience":               str(&c.Audience),
		"secret":                 str(&c.Secret),
		"jwks_uri":               str(&c.JWKSURI),
		"jwks_file":              str(&c.JWKSFile),
		"access_token_lifetime":  dur(&c.AccessTokenLifetime),
		"refresh_token_lifetime": dur(&c.RefreshTokenLifetime),
		"skip_consent":           present(&c.SkipConsent),
		"grant_types":            strs(&c.GrantTypes),
	})
}

func parseLogin(l *LoginConfig) opt {
	return block("login option", opts{
		"product_name": str(&l.ProductName),
		"logo":         str(&l.Logo),
		"accent_color": str(&l.AccentColor),
		"support_url":  str(&l.SupportURL),
		"templates":    str(&l.Templates),
		"password":     onOffPtr(&l.Password),
		"signup": nargs(1, -1, "", func(d *caddyfile.Dispenser, args []string) error {
			l.Signup = args[0]
			switch {
			case (args[0] == "off" || args[0] == "open") && len(args) > 1:
				return d.ArgErr()
			case args[0] == "domains" && len(args) < 2:
				return d.Errf("signup domains needs at least one domain")
			case args[0] == "domains":
				l.SignupDomains = args[1:]
			case args[0] != "off" && args[0] != "open":
				return d.Errf("signup %q: use off, open or domains <domain...>", args[0])
			}
			return nil
		}),
		"user": nargs(2, 3, "%s <email> <password> [<name>]", func(d *caddyfile.Dispenser, args []string) error {
			u := UserConfig{Email: args[0], Password: args[1], Source: tokenPos(d)}
			if len(args) == 3 {
				u.Name = args[2]
			}
			l.Users = append(l.Users, u)
			return nil
		}),
		"oidc": each(&l.OIDC, func(d *caddyfile.Dispenser, o *OIDCProvider) (err error) { *o, err = parseOIDC(d); return }),
		"saml": each(&l.SAML, func(d *caddyfile.Dispenser, s *SAMLProvider) (err error) { *s, err = parseSAML(d); return }),
		"upstream": each(&l.Upstreams, func(d *caddyfile.Dispenser, u *UpstreamProvider) (err error) {
			*u, err = parseUpstream(d)
			return
		}),
		"home_realm": nargs(2, 2, "%s <email domain> <provider>", func(_ *caddyfile.Dispenser, args []string) error {
			if l.HomeRealm == nil {
				l.HomeRealm = map[string]string{}
			}
			l.HomeRealm[strings.ToLower(args[0])] = args[1]
			return nil
		}),
		"smtp":             fresh(&l.SMTP, parseSMTP),
		"session_idle":     dur(&l.SessionIdle),
		"session_lifetime": dur(&l.SessionLifetime),
	})
}

func parseSMTP(s *SMTPConfig, d *caddyfile.Dispenser) error {
	err := block("smtp option", opts{
		"host": str(&s.Host),
		"port": checked(&s.Port, "smtp port %[2]q: use a port number", func(v string) (int, bool) {
			p, err := strconv.Atoi(v)
			return p, err == nil && p >= 1 && p <= 65535
		}),
		"tls":      oneOf(&s.TLS, "starttls", "tls", "none"),
		"from":     str(&s.From),
		"username": str(&s.Username),
		"password": str(&s.Password),
	})(d)
	if err == nil && (s.Host == "" || s.From == "") {
		err = d.Errf("smtp needs host and from")
	}
	return err
}

func parseCIMD(c *CIMDConfig, d *caddyfile.Dispenser) error {
	return block("cimd option", opts{
		"policy":                  oneOf(&c.Policy, "trusted", "any"),
		"trusted_hosts":           strs(&c.TrustedHosts),
		"max_bytes":               intArg(&c.MaxBytes, 0, unbounded),
		"timeout":                 dur(&c.Timeout),
		"untrusted_timeout":       dur(&c.UntrustedTimeout),
		"cache_min":               dur(&c.CacheMin),
		"cache_max":               dur(&c.CacheMax),
		"negative_cache":          durOrOff(&c.NegativeCache),
		"serve_stale":             durOrOff(&c.ServeStale),
		"host_rate":               cimdRate(&c.HostRate),
		"domain_rate":             cimdRate(&c.DomainRate),
		"requester_rate":          cimdRate(&c.RequesterRate),
		"ca_bundle":               str(&c.CABundle),
		"insecure_allow_loopback": present(&c.InsecureAllowLoopback),
		"client":                  cimdPolicies(&c.Clients),
		"client_host":             cimdPolicies(&c.ClientHosts),
	})(d)
}

// cimdPolicies reads `client <id> { … }` or `client_host <host> { … }`.
func cimdPolicies(m *map[string]*CIMDClientPolicy) opt {
	return func(d *caddyfile.Dispenser) error {
		opt := d.Val()
		var key string
		if err := named(d, &key, ""); err != nil {
			return err
		}
		p := &CIMDClientPolicy{}
		if err := parseBlock(d, "cimd client option", opts{
			"access_token_lifetime":  posDur(&p.AccessTokenLifetime, authserver.MaxPolicyAccessTokenTTL),
			"refresh_token_lifetime": posDur(&p.RefreshTokenLifetime, 0),
			"scopes":                 strs(&p.Scopes),
			"remember_consent":       durOrOff(&p.RememberConsent),
			"machine_use":            present(&p.MachineUse),
		}); err != nil {
			return err
		}
		if !putNew(m, key, p) {
			return d.Errf("cimd %s %s is configured twice", opt, key)
		}
		return nil
	}
}

// cimdRate reads `<n>/<duration>` (e.g. 10/10s): n fetches at once,
// refilled n per duration.
func cimdRate(p **CIMDRate) opt {
	return arg1(p, func(name, v string) (*CIMDRate, error) {
		ns, ds, ok := strings.Cut(v, "/")
		n, err := strconv.Atoi(ns)
		iv, err2 := caddy.ParseDuration(ds)
		switch {
		case !ok:
			return nil, fmt.Errorf("cimd %s: %q: want <n>/<duration>, e.g. 10/10s", name, v)
		case err != nil || n < 1 || n > 1_000_000:
			return nil, fmt.Errorf("cimd %s: %q: %q is not a whole number from 1 to 1000000", name, v, ns)
		case err2 != nil || iv <= 0:
			return nil, fmt.Errorf("cimd %s: %q: %q is not a positive duration", name, v, ds)
		}
		r := &CIMDRate{Burst: n}
		setDur(&r.Interval, iv)
		return r, nil
	})
}

func parseDCR(c *DCRConfig, d *caddyfile.Dispenser) error {
	return block("dcr option", opts{
		"rate_limit":             dcrRate(&c.RateBurst, &c.RateEvery),
		"global_rate_limit":      dcrRate(&c.GlobalRateBurst, &c.GlobalRateEvery),
		"max_clients_per_prefix": intArg(&c.MaxClientsPerPrefix, 1, unbounded),
		"max_clients":            intArg(&c.MaxClients, 1, unbounded),
		"expire_unused":          durPtr(&c.ExpireUnused),
		"private_schemes":        onOffPtr(&c.PrivateSchemes),
	})(d)
}

// dcrRate reads `[global_]rate_limit <burst> <refill interval>`.
func dcrRate[T ~int64](burst *int, every *T) opt {
	return func(d *caddyfile.Dispenser) error {
		opt := d.Val()
		return nargs(2, 2, "%s <burst> <refill interval>", func(d *caddyfile.Dispenser, args []string) error {
			n, ok := positive(args[0])
			if !ok {
				return d.Errf("%s burst %q is not a positive number", opt, args[0])
			}
			iv, err := caddy.ParseDuration(args[1])
			if err != nil || iv <= 0 {
				return d.Errf("%s interval %q: %v", opt, args[1], err)
			}
			*burst = n
			setDur(every, iv)
			return nil
		})(d)
	}
}

// parseEnterpriseIdP parses `enterprise_idp <name> { … }`.
func parseEnterpriseIdP(d *caddyfile.Dispenser, c *EnterpriseIdPConfig) error {
	return parseIssuerBlock(d, &c.Name, &c.Issuer, &c.JWKSURI, &c.MaxLifetime, opts{
		"clients": strs(&c.Clients),
		"scope_map": nargs(2, -1, "%s needs an IdP scope and our scopes", func(d *caddyfile.Dispenser, args []string) error {
			if !putNew(&c.ScopeMap, args[0], args[1:]) {
				return d.Errf("scope_map %s is configured twice", args[0])
			}
			return nil
		}),
		"subject":   oneOf(&c.Subject, authserver.SubjectBySub, authserver.SubjectByVerifiedEmail),
		"provision": onOff(&c.Provision),
	})
}

// parseWorkloadIssuer parses `workload_issuer <name> { … }`.
func parseWorkloadIssuer(d *caddyfile.Dispenser, c *WorkloadIssuerConfig) error {
	return parseIssuerBlock(d, &c.Name, &c.Issuer, &c.JWKSURI, &c.MaxLifetime, opts{
		"audience":      str(&c.Audience),
		"subject_claim": str(&c.SubjectClaim),
		"client": func(d *caddyfile.Dispenser) error {
			var sub, id string
			if !d.AllArgs(&sub, &id) {
				return d.Errf("client needs a workload subject and a client id")
			}
			if !putNew(&c.Clients, sub, id) {
				return d.Errf("workload subject %s is mapped twice", sub)
			}
			return nil
		},
		"single_use": present(&c.SingleUse),
	})
}

// parseIssuerBlock parses `<kind> <name> { … }` of a trusted token issuer
// (enterprise_idp, workload_issuer): the subdirectives both kinds share,
// then the kind's own.
func parseIssuerBlock[T ~int64](d *caddyfile.Dispenser, name, issuer, jwksURI *string, maxLifetime *T, own opts) error {
	kind := d.Val()
	if err := named(d, name, kind+" needs a name"); err != nil {
		return err
	}
	own["issuer"], own["jwks_uri"], own["max_lifetime"] = str(issuer), str(jwksURI), dur(maxLifetime)
	return parseBlock(d, kind+" option", own)
}

// UnmarshalCaddyfile sets up the guard from Caddyfile tokens (after the
// directive name and its optional matcher).
func (g *Guard) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	scopeMap := func(m *map[string][]string) opt {
		return nargs(2, -1, "", func(_ *caddyfile.Dispenser, args []string) error {
			if *m == nil {
				*m = map[string][]string{}
			}
			(*m)[args[0]] = append((*m)[args[0]], args[1:]...)
			return nil
		})
	}
	return block("mcp_protect option", opts{
		"resource": str(&g.Resource),
		"path":     str(&g.Path),
		"issuer":   str(&g.Issuer),
		"authorization_servers": func(d *caddyfile.Dispenser) error {
			// Refused only while the list is empty.
			g.AuthorizationServers = append(g.AuthorizationServers, d.RemainingArgs()...)
			if len(g.AuthorizationServers) == 0 {
				return d.ArgErr()
			}
			return nil
		},
		"scopes":                 anyStrs(&g.Scopes),
		"scopes_supported":       anyStrs(&g.ScopesSupported),
		"method_scope":           scopeMap(&g.MethodScopes),
		"scope_implies":          scopeMap(&g.ScopeHierarchy),
		"allowed_origins":        anyStrs(&g.AllowedOrigins),
		"cors_origins":           strs(&g.CORSOrigins),
		"resource_name":          str(&g.ResourceName),
		"resource_documentation": str(&g.ResourceDocumentation),
		"disable_root_metadata":  present(&g.DisableRootMetadata),
		"identity_headers": fresh(&g.IdentityHeaders, func(ih *IdentityHeaders, d *caddyfile.Dispenser) error {
			return block("identity header", opts{
				"subject":   str(&ih.Subject),
				"client_id": str(&ih.ClientID),
				"scopes":    str(&ih.Scopes),
				"email":     str(&ih.Email),
			})(d)
		}),
		"leeway":     dur(&g.Leeway),
		"cache_ttl":  dur(&g.CacheTTL),
		"cache_size": intArg(&g.CacheSize, 0, unbounded),
		"max_headers": checked(&g.MaxHeaders, "%[1]s: %[2]q is not a positive number (or -1 for no limit)", func(v string) (int, bool) {
			n, err := strconv.Atoi(v)
			return n, err == nil && n >= -1 && n != 0
		}),
		"strip_cookies": oneOf(&g.StripCookies, stripCookiesProduct, stripCookiesAll),
		"require_dpop":  present(&g.RequireDPoP),
		"max_header_bytes": checked(&g.MaxHeaderBytes, "%[1]s: %[2]q is not a size such as 32KiB (or -1 for no limit)", func(v string) (int, bool) {
			n, ok := byteSize(v)
			if v == "-1" {
				return -1, true
			}
			return int(n), ok
		}),
		"step_up":              oneOf(&g.StepUp, stepUpChallenge, stepUpToolError),
		"tool_snapshot":        present(&g.ToolSnapshot),
		"max_body_bytes":       checked(&g.MaxBodyBytes, sizeMsg, byteSize),
		"max_tools_list_bytes": checked(&g.MaxToolsListBytes, sizeMsg, byteSize),
		"tools_list_filter":    oneOf(&g.ToolsListFilter, "on", "off"),
		"tool_limit":           toolLimits(&g.ToolLimits),
		"metric_tools":         strs(&g.MetricTools),
	})(d)
}

// toolLimits reads `tool_limit <tool> <calls>/<interval> [<burst>]`.
func toolLimits(p *[]ToolLimit) opt {
	return nargs(2, 3, "", func(d *caddyfile.Dispenser, args []string) error {
		l := ToolLimit{Tool: args[0]}
		calls, per, ok := strings.Cut(args[1], "/")
		n, err := strconv.Atoi(calls)
		iv, err2 := caddy.ParseDuration(per)
		if !ok || err != nil || n <= 0 || err2 != nil || iv <= 0 {
			return d.Errf("tool_limit: %q: want <calls>/<interval> such as 10/1m", args[1])
		}
		l.Calls = n
		setDur(&l.Interval, iv)
		if len(args) == 3 {
			if l.Burst, ok = positive(args[2]); !ok {
				return d.Errf("tool_limit: burst %q is not a positive number", args[2])
			}
		}
		*p = append(*p, l)
		return nil
	})
}

// parseGuard adapts `mcp_protect [<matcher>] { … }` into one route whose
// matcher is the user's or the host's discovery paths (without a matcher
// the route matches every path, those included).
func parseGuard(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	pos := fmt.Sprintf("%s:%d", h.File(), h.Line())
	// A plain path matcher (`/mcp*`) also names the MCP endpoint's path.
	path, exact := "", ""
	if h.NextArg() && strings.HasPrefix(h.Val(), "/") {
		path = strings.TrimRight(strings.TrimSuffix(h.Val(), "*"), "/")
		if !strings.Contains(h.Val(), "*") {
			exact = h.Val()
		}
	}
	h.Reset()
	h.Next()
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	if exact != "" && matcherSet["path"] != nil {
		// An exact path also guards its subpaths: /mcp/, /mcp/x and /mcp%2F
		// must not reach an unmatched reverse_proxy without a token.
		matcherSet["path"] = h.JSON(caddyhttp.MatchPath{exact, strings.TrimRight(exact, "/") + "/*"})
	}
	var g Guard
	if err := g.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if g.Path == "" && path != "" {
		g.Path = path
	}
	if g.Path == "" {
		g.Path = "/mcp"
	}
	if err := checkGuard(h, &g, pos); err != nil {
		return nil, err
	}
	// Every discovery path at the root of the host: the guard serves its
	// metadata and answers the others (requirement 28).
	metaPaths := caddyhttp.MatchPath{
		"/.well-known/oauth-protected-resource",
		"/.well-known/oauth-protected-resource/*",
		"/.well-known/oauth-authorization-server",
		"/.well-known/oauth-authorization-server/*",
		"/.well-known/openid-configuration",
		"/.well-known/openid-configuration/*",
	}
	metaMatcher := caddy.ModuleMap{"path": h.JSON(metaPaths)}
	out := h.NewRoute(matcherSet, &g)
	if matcherSet != nil {
		// One route, one guard: the user's matcher OR the discovery paths.
		// The user's comes first, so an MCP request is matched by one
		// pattern and never tried against the six discovery paths (Caddy
		// stops at the first matching set).
		route := out[0].Value.(caddyhttp.Route)
		route.MatcherSetsRaw = append(route.MatcherSetsRaw, metaMatcher)
		out[0].Value = route
	}
	return out, nil
}

// positive parses a whole number of at least 1.
func positive(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 1
}

const sizeMsg = "%[1]s: %[2]q is not a size such as 4MiB"

// byteSize parses a size such as 4MiB, from 1 byte to 1GiB.
func byteSize(v string) (int64, bool) {
	n, err := humanize.ParseBytes(v)
	return int64(n), err == nil && n > 0 && n <= 1<<30
}

// tokenPos is the Caddyfile position (file:line) of the current token, kept
// in the JSON so that errors found at provision can name it.
func tokenPos(d *caddyfile.Dispenser) string {
	return fmt.Sprintf("%s:%d", d.File(), d.Line())
}

var _ caddyfile.Unmarshaler = (*App)(nil)
