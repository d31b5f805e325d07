package caddymodule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/config"
)

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
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "issuer":
			if !d.AllArgs(&a.Issuer) {
				return d.ArgErr()
			}
		case "path_prefix":
			if !d.AllArgs(&a.PathPrefix) {
				return d.ArgErr()
			}
		case "storage":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.Storage.Backend = args[0]
			switch args[0] {
			case "bbolt":
				if len(args) > 2 {
					return d.ArgErr()
				}
				if len(args) == 2 {
					a.Storage.Path = args[1]
				}
			case "postgres":
				if len(args) != 2 {
					return d.Errf("storage postgres needs a connection string")
				}
				a.Storage.DSN = args[1]
			default:
				return d.Errf("unknown storage backend %q (bbolt or postgres)", args[0])
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "max_conns":
					n, err := intArg(d)
					if err != nil {
						return err
					}
					a.Storage.MaxConns = int32(n)
				case "lock_timeout":
					v, err := configDurationArg(d)
					if err != nil {
						return err
					}
					a.Storage.LockTimeout = v
				default:
					return d.Errf("unknown storage option %q", d.Val())
				}
			}
		case "signing_algorithm":
			if !d.AllArgs(&a.SigningAlgorithm) {
				return d.ArgErr()
			}
		case "key_encryption_key":
			if !d.AllArgs(&a.KeyEncryptionKey) {
				return d.ArgErr()
			}
		case "key_encryption_key_file":
			if !d.AllArgs(&a.KeyEncryptionKeyFile) {
				return d.ArgErr()
			}
		case "key_encryption_key_previous":
			if !d.AllArgs(&a.KeyEncryptionKeyPrevious) {
				return d.ArgErr()
			}
		case "key_encryption_key_previous_file":
			if !d.AllArgs(&a.KeyEncryptionKeyPreviousFile) {
				return d.ArgErr()
			}
		case "key_rotation", "key_reload", "key_prepublish", "code_lifetime", "access_token_lifetime", "refresh_token_lifetime", "grant_lifetime":
			v, err := configDurationArg(d)
			if err != nil {
				return err
			}
			switch opt {
			case "key_rotation":
				a.KeyRotation = v
			case "key_reload":
				a.KeyReload = v
			case "key_prepublish":
				a.KeyPrePublish = v
			case "code_lifetime":
				a.CodeLifetime = v
			case "access_token_lifetime":
				a.AccessTokenLifetime = v
			case "refresh_token_lifetime":
				a.RefreshTokenLifetime = v
			case "grant_lifetime":
				a.GrantLifetime = v
			}
		case "refresh_grace":
			v, err := configDurationArg(d)
			if err != nil {
				return err
			}
			a.RefreshGrace = &v
		case "scopes":
			a.Scopes = append(a.Scopes, d.RemainingArgs()...)
		case "default_scopes":
			a.DefaultScopes = append(a.DefaultScopes, d.RemainingArgs()...)
		case "resource":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.Resources = append(a.Resources, args...)
		case "default_resource":
			if !d.AllArgs(&a.DefaultResource) {
				return d.ArgErr()
			}
		case "resource_indicators":
			ri := &ResourceIndicators{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				name := d.Val()
				b, err := boolArg(d)
				if err != nil {
					return err
				}
				switch name {
				case "enabled":
					ri.Enabled = &b
				case "client_audience_fallback":
					ri.ClientAudienceFallback = &b
				case "enforce_on_token_exchange":
					ri.EnforceOnTokenExchange = &b
				case "keep_binding_on_refresh":
					ri.KeepBindingOnRefresh = &b
				default:
					return d.Errf("unknown resource_indicators option %q", name)
				}
			}
			a.ResourceIndicators = ri
		case "token_rate_limit":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("token_rate_limit <requests per second>|off [<burst>]")
			}
			if args[0] == "off" {
				a.TokenRateLimit = -1
			} else if v, err := strconv.ParseFloat(args[0], 64); err != nil || v <= 0 {
				return d.Errf("token_rate_limit %q is not a positive number", args[0])
			} else {
				a.TokenRateLimit = v
			}
			if len(args) == 2 {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 {
					return d.Errf("token_rate_limit burst %q is not a positive number", args[1])
				}
				a.TokenRateBurst = n
			}
		case "shared_limits":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.SharedLimits = true
		case "audit_retention":
			v, err := configDurationArg(d)
			if err != nil {
				return err
			}
			a.AuditRetention = v
		case "client_ipv4_prefix", "client_ipv6_prefix":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			maxBits := 32
			if opt == "client_ipv6_prefix" {
				maxBits = 128
			}
			if n < 1 || n > maxBits {
				return d.Errf("%s %d must be between 1 and %d", opt, n, maxBits)
			}
			if opt == "client_ipv4_prefix" {
				a.ClientIPv4Prefix = n
			} else {
				a.ClientIPv6Prefix = n
			}
		case "cors_origins":
			a.CORSOrigins = append(a.CORSOrigins, d.RemainingArgs()...)
		case "client":
			c, err := parseClient(d)
			if err != nil {
				return err
			}
			a.Clients = append(a.Clients, c)
		case "login":
			if err := unmarshalLogin(&a.Login, d); err != nil {
				return err
			}
		case "enterprise_idp":
			c, err := parseEnterpriseIdP(d)
			if err != nil {
				return err
			}
			a.EnterpriseIdPs = append(a.EnterpriseIdPs, c)
		case "workload_issuer":
			c, err := parseWorkloadIssuer(d)
			if err != nil {
				return err
			}
			a.WorkloadIssuers = append(a.WorkloadIssuers, c)
		case "cimd":
			c, err := parseCIMD(d)
			if err != nil {
				return err
			}
			a.CIMD = c
		case "dcr":
			c, err := parseDCR(d)
			if err != nil {
				return err
			}
			a.DCR = c
		case "dpop":
			c, err := parseDPoP(d) // dpop.go
			if err != nil {
				return err
			}
			a.DPoP = c
		default:
			return d.Errf("unknown mcp_auth option %q", opt)
		}
	}
	return nil
}

func parseClient(d *caddyfile.Dispenser) (ClientConfig, error) {
	var c ClientConfig
	if !d.NextArg() {
		return c, d.Errf("client needs an id")
	}
	c.ID = d.Val()
	c.Source = tokenPos(d)
	if d.NextArg() {
		return c, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "name":
			if !d.AllArgs(&c.Name) {
				return c, d.ArgErr()
			}
		case "redirect_uri":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return c, d.ArgErr()
			}
			c.RedirectURIs = append(c.RedirectURIs, args...)
		case "scopes":
			c.Scopes = append(c.Scopes, d.RemainingArgs()...)
		case "default_scopes":
			c.DefaultScopes = append(c.DefaultScopes, d.RemainingArgs()...)
		case "audience":
			if !d.AllArgs(&c.Audience) {
				return c, d.ArgErr()
			}
		case "secret":
			if !d.AllArgs(&c.Secret) {
				return c, d.ArgErr()
			}
		case "jwks_uri":
			if !d.AllArgs(&c.JWKSURI) {
				return c, d.ArgErr()
			}
		case "jwks_file":
			if !d.AllArgs(&c.JWKSFile) {
				return c, d.ArgErr()
			}
		case "access_token_lifetime", "refresh_token_lifetime":
			v, err := configDurationArg(d)
			if err != nil {
				return c, err
			}
			if opt == "access_token_lifetime" {
				c.AccessTokenLifetime = v
			} else {
				c.RefreshTokenLifetime = v
			}
		case "skip_consent":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			c.SkipConsent = true
		case "grant_types":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return c, d.ArgErr()
			}
			c.GrantTypes = append(c.GrantTypes, args...)
		default:
			return c, d.Errf("unknown client option %q", opt)
		}
	}
	return c, nil
}

func unmarshalLogin(l *LoginConfig, d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "product_name":
			if !d.AllArgs(&l.ProductName) {
				return d.ArgErr()
			}
		case "logo":
			if !d.AllArgs(&l.Logo) {
				return d.ArgErr()
			}
		case "accent_color":
			if !d.AllArgs(&l.AccentColor) {
				return d.ArgErr()
			}
		case "support_url":
			if !d.AllArgs(&l.SupportURL) {
				return d.ArgErr()
			}
		case "templates":
			if !d.AllArgs(&l.Templates) {
				return d.ArgErr()
			}
		case "password":
			b, err := boolArg(d)
			if err != nil {
				return err
			}
			l.Password = &b
		case "signup":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			l.Signup = args[0]
			switch args[0] {
			case "off", "open":
				if len(args) > 1 {
					return d.ArgErr()
				}
			case "domains":
				if len(args) < 2 {
					return d.Errf("signup domains needs at least one domain")
				}
				l.SignupDomains = args[1:]
			default:
				return d.Errf("signup %q: use off, open or domains <domain...>", args[0])
			}
		case "user":
			args := d.RemainingArgs()
			if len(args) < 2 || len(args) > 3 {
				return d.Errf("user <email> <password> [<name>]")
			}
			u := UserConfig{Email: args[0], Password: args[1], Source: tokenPos(d)}
			if len(args) == 3 {
				u.Name = args[2]
			}
			l.Users = append(l.Users, u)
		case "oidc":
			o, err := parseOIDC(d)
			if err != nil {
				return err
			}
			l.OIDC = append(l.OIDC, o)
		case "saml":
			s, err := parseSAML(d)
			if err != nil {
				return err
			}
			l.SAML = append(l.SAML, s)
		case "upstream":
			u, err := parseUpstream(d)
			if err != nil {
				return err
			}
			l.Upstreams = append(l.Upstreams, u)
		case "home_realm":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("home_realm <email domain> <provider>")
			}
			if l.HomeRealm == nil {
				l.HomeRealm = map[string]string{}
			}
			l.HomeRealm[strings.ToLower(args[0])] = args[1]
		case "smtp":
			s, err := parseSMTP(d)
			if err != nil {
				return err
			}
			l.SMTP = s
		case "session_idle", "session_lifetime":
			v, err := configDurationArg(d)
			if err != nil {
				return err
			}
			if opt == "session_idle" {
				l.SessionIdle = v
			} else {
				l.SessionLifetime = v
			}
		default:
			return d.Errf("unknown login option %q", opt)
		}
	}
	return nil
}

func parseSMTP(d *caddyfile.Dispenser) (*SMTPConfig, error) {
	s := &SMTPConfig{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var ok bool
		switch d.Val() {
		case "host":
			ok = d.AllArgs(&s.Host)
		case "port":
			var v string
			if ok = d.AllArgs(&v); ok {
				p, err := strconv.Atoi(v)
				if err != nil || p < 1 || p > 65535 {
					return nil, d.Errf("smtp port %q: use a port number", v)
				}
				s.Port = p
			}
		case "tls":
			if ok = d.AllArgs(&s.TLS); ok && s.TLS != "starttls" && s.TLS != "tls" && s.TLS != "none" {
				return nil, d.Errf("smtp tls %q: use starttls, tls or none", s.TLS)
			}
		case "from":
			ok = d.AllArgs(&s.From)
		case "username":
			ok = d.AllArgs(&s.Username)
		case "password":
			ok = d.AllArgs(&s.Password)
		default:
			return nil, d.Errf("unknown smtp option %q", d.Val())
		}
		if !ok {
			return nil, d.ArgErr()
		}
	}
	if s.Host == "" || s.From == "" {
		return nil, d.Errf("smtp needs host and from")
	}
	return s, nil
}

func parseCIMD(d *caddyfile.Dispenser) (*CIMDConfig, error) {
	c := &CIMDConfig{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "policy":
			if !d.AllArgs(&c.Policy) {
				return nil, d.ArgErr()
			}
			if c.Policy != "trusted" && c.Policy != "any" {
				return nil, d.Errf("cimd policy %q: use trusted or any", c.Policy)
			}
		case "trusted_hosts":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			c.TrustedHosts = append(c.TrustedHosts, args...)
		case "max_bytes":
			n, err := intArg(d)
			if err != nil {
				return nil, err
			}
			c.MaxBytes = int64(n)
		case "timeout", "untrusted_timeout", "cache_min", "cache_max":
			v, err := configDurationArg(d)
			if err != nil {
				return nil, err
			}
			switch opt {
			case "timeout":
				c.Timeout = v
			case "untrusted_timeout":
				c.UntrustedTimeout = v
			case "cache_min":
				c.CacheMin = v
			default:
				c.CacheMax = v
			}
		case "negative_cache", "serve_stale":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			dur := config.Duration(-1) // off
			if v != "off" {
				p, err := caddy.ParseDuration(v)
				if err != nil || p <= 0 {
					return nil, d.Errf("cimd %s: %q is not a positive duration or off", opt, v)
				}
				dur = config.Duration(p)
			}
			if opt == "negative_cache" {
				c.NegativeCache = dur
			} else {
				c.ServeStale = dur
			}
		case "host_rate", "domain_rate", "requester_rate":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			r, err := parseCIMDRate(v)
			if err != nil {
				return nil, d.Errf("cimd %s: %v", opt, err)
			}
			switch opt {
			case "host_rate":
				c.HostRate = r
			case "domain_rate":
				c.DomainRate = r
			default:
				c.RequesterRate = r
			}
		case "ca_bundle":
			if !d.AllArgs(&c.CABundle) {
				return nil, d.ArgErr()
			}
		case "insecure_allow_loopback":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			c.InsecureAllowLoopback = true
		case "client", "client_host":
			var key string
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			key = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			p, err := parseCIMDClientPolicy(d)
			if err != nil {
				return nil, err
			}
			m := &c.Clients
			if opt == "client_host" {
				m = &c.ClientHosts
			}
			if *m == nil {
				*m = map[string]*CIMDClientPolicy{}
			}
			if _, dup := (*m)[key]; dup {
				return nil, d.Errf("cimd %s %s is configured twice", opt, key)
			}
			(*m)[key] = p
		default:
			return nil, d.Errf("unknown cimd option %q", opt)
		}
	}
	return c, nil
}

// parseCIMDClientPolicy parses the block of a cimd client or client_host.
func parseCIMDClientPolicy(d *caddyfile.Dispenser) (*CIMDClientPolicy, error) {
	p := &CIMDClientPolicy{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "access_token_lifetime", "refresh_token_lifetime":
			v, err := configDurationArg(d)
			if err != nil {
				return nil, err
			}
			if v <= 0 {
				return nil, d.Errf("%s must be positive", opt)
			}
			if opt == "access_token_lifetime" {
				if time.Duration(v) > authserver.MaxPolicyAccessTokenTTL {
					return nil, d.Errf("access_token_lifetime %s is longer than %s", time.Duration(v), authserver.MaxPolicyAccessTokenTTL)
				}
				p.AccessTokenLifetime = v
			} else {
				p.RefreshTokenLifetime = v
			}
		case "scopes":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			p.Scopes = append(p.Scopes, args...)
		case "remember_consent":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			if v == "off" {
				p.RememberConsent = -1
				break
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("remember_consent %q is not a positive duration or off", v)
			}
			p.RememberConsent = config.Duration(dur)
		case "machine_use":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			p.MachineUse = true
		default:
			return nil, d.Errf("unknown cimd client option %q", opt)
		}
	}
	return p, nil
}

func parseDCR(d *caddyfile.Dispenser) (*DCRConfig, error) {
	c := &DCRConfig{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "rate_limit", "global_rate_limit":
			// [global_]rate_limit <burst> <every>
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("%s <burst> <refill interval>", opt)
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return nil, d.Errf("%s burst %q is not a positive number", opt, args[0])
			}
			every, err := caddy.ParseDuration(args[1])
			if err != nil || every <= 0 {
				return nil, d.Errf("%s interval %q: %v", opt, args[1], err)
			}
			if opt == "rate_limit" {
				c.RateBurst, c.RateEvery = n, config.Duration(every)
			} else {
				c.GlobalRateBurst, c.GlobalRateEvery = n, config.Duration(every)
			}
		case "max_clients_per_prefix", "max_clients":
			n, err := intArg(d)
			if err != nil {
				return nil, err
			}
			if n < 1 {
				return nil, d.Errf("%s %d is not a positive number", opt, n)
			}
			if opt == "max_clients" {
				c.MaxClients = n
			} else {
				c.MaxClientsPerPrefix = n
			}
		case "expire_unused":
			v, err := configDurationArg(d)
			if err != nil {
				return nil, err
			}
			c.ExpireUnused = &v
		case "private_schemes":
			b, err := boolArg(d)
			if err != nil {
				return nil, err
			}
			c.PrivateSchemes = &b
		default:
			return nil, d.Errf("unknown dcr option %q", opt)
		}
	}
	return c, nil
}

// parseCIMDRate parses "<n>/<duration>" (e.g. "10/10s"): n fetches at
// once, refilled n per duration.
func parseCIMDRate(v string) (*CIMDRate, error) {
	ns, ds, ok := strings.Cut(v, "/")
	if !ok {
		return nil, fmt.Errorf("%q: want <n>/<duration>, e.g. 10/10s", v)
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 1 || n > 1_000_000 {
		return nil, fmt.Errorf("%q: %q is not a whole number from 1 to 1000000", v, ns)
	}
	dur, err := caddy.ParseDuration(ds)
	if err != nil || dur <= 0 {
		return nil, fmt.Errorf("%q: %q is not a positive duration", v, ds)
	}
	return &CIMDRate{Burst: n, Interval: config.Duration(dur)}, nil
}

// tokenPos is the Caddyfile position (file:line) of the current token, kept
// in the JSON so that errors found at provision can name it.
func tokenPos(d *caddyfile.Dispenser) string {
	return fmt.Sprintf("%s:%d", d.File(), d.Line())
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: %v", name, err)
	}
	return caddy.Duration(dur), nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	name := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, d.Errf("%s: %q is not a whole number", name, v)
	}
	return n, nil
}

func boolArg(d *caddyfile.Dispenser) (bool, error) {
	name := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return false, d.ArgErr()
	}
	switch v {
	case "on", "true", "yes":
		return true, nil
	case "off", "false", "no":
		return false, nil
	}
	return false, d.Errf("%s: %q is not on/off", name, v)
}

var _ caddyfile.Unmarshaler = (*App)(nil)
